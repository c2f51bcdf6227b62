"""SEARCH with every RFC 9051 search key, sequence sets, ESEARCH
RETURN options and SEARCHRES's $ (RFC 4731, RFC 5182), SORT and THREAD
(RFC 5256), over a mailbox of eight messages whose answers are known."""
import base64
import os
import re
import shutil
import sqlite3
import time

import pytest

from conftest import IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER, \
    db_copy, db_files, fts_ids, imap_client, imap_deliver, imap_expand, \
    imap_login, imap_parse

D = "12:00:00 +0000"

# seq: (from, to, cc, bcc, subject, sent date, internal date, flags,
#       extra header lines, body)
CORPUS = [
    ("Alice A <alice@a.example>", "bob@b.example", "carol@c.example", None,
     "Quarterly report", "01 Jan 2024", "02-Jan-2024", "\\Seen \\Answered",
     "", "The numbers look good.\r\n"),
    ("bob@b.example", "alice@a.example", None, "dave@d.example",
     "Re: Quarterly report", "03 Jan 2024", "03-Jan-2024", "\\Flagged",
     "In-Reply-To: <s1@search.example>\r\nReferences: <s1@search.example>\r\n",
     "I disagree with the numbers.\r\n"),
    ("carol@c.example", "alice@a.example", None, None,
     "Lunch?", "05 Jan 2024", "05-Jan-2024", "\\Draft $Work",
     "", "pizza or sushi?\r\n" + "padding line\r\n" * 400),
    ("Dave D <dave@d.example>", "carol@c.example", None, None,
     "Re: Lunch?", "06 Jan 2024", "06-Jan-2024", "\\Deleted",
     "References: <s3@search.example>\r\n", "sushi please\r\n"),
    ("alice@a.example", "bob@b.example", None, None,
     "Fwd: Quarterly report", "10 Jan 2024", "10-Jan-2024",
     "\\Seen $Work $Urgent",
     "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
     "Content-Transfer-Encoding: 8bit\r\n",
     "Forwarded: caf\u00e9 na\u00efve\r\n"),
    ("eve@e.example", "alice@a.example", None, None,
     "Meeting notes", "02 Jan 2024", "12-Jan-2024", "",
     "X-Priority: 1\r\nMIME-Version: 1.0\r\n"
     "Content-Type: text/plain; charset=us-ascii\r\n"
     "Content-Transfer-Encoding: base64\r\n",
     base64.b64encode(b"the secret plan\r\n").decode() + "\r\n"),
    ("bob@b.example", "carol@c.example", "alice@a.example", None,
     "Re: Meeting notes", "13 Jan 2024", "13-Jan-2024", "\\Answered \\Seen",
     "References: <s6@search.example>\r\n", "see the notes\r\n"),
    ("frank@f.example", None, None, None,
     "Quarterly report", "14 Jan 2024", "04-Jan-2024", "",
     "", "final numbers attached\r\n"),
]


def build(i, entry):
    frm, to, cc, bcc, subj, sent, _, _, extra, body = entry
    h = "From: %s\r\n" % frm
    if to:
        h += "To: %s\r\n" % to
    if cc:
        h += "Cc: %s\r\n" % cc
    if bcc:
        h += "Bcc: %s\r\n" % bcc
    h += "Subject: %s\r\nDate: %s %s\r\nMessage-ID: <s%d@search.example>\r\n" \
        % (subj, sent, D, i)
    return (h + extra + "\r\n" + body).encode("utf-8")


MESSAGES = [build(i + 1, e) for i, e in enumerate(CORPUS)]
SIZES = [len(m) for m in MESSAGES]


def append_all(c, mailbox):
    c.ok("CREATE " + mailbox)
    uids = []
    for i, e in enumerate(CORPUS):
        m = MESSAGES[i]
        tag = c.tag()
        c.send(b'%s APPEND %s (%s) "%s %s" {%d+}\r\n%s\r\n'
               % (tag.encode(), mailbox.encode(), e[7].encode(),
                  e[6].encode(), D.encode(), len(m), m))
        t = c.until(tag)[-1]
        mm = re.search(r"APPENDUID \d+ (\d+)", t)
        assert mm, t
        uids.append(int(mm.group(1)))
    return uids


@pytest.fixture(scope="module")
def box(imap):
    c = imap_client(imap)
    uids = append_all(c, "Search")
    c.close()
    # The index catches up a moment after the APPENDs, in their order.
    c = imap_client(imap, select="Search")
    assert search_soon(c, "BODY attached", [8]) == [8]
    c.close()
    return imap, uids


@pytest.fixture
def c(box):
    cl = imap_client(box[0], select="Search")
    yield cl
    cl.close()


def search(c, criteria, uid=False):
    out = c.ok(("UID SEARCH " if uid else "SEARCH ") + criteria)
    lines = [ln for ln in out if ln.startswith("* SEARCH")]
    assert len(lines) == 1, (criteria, out)
    return sorted(int(x) for x in lines[0].split()[2:])


KEYS = [
    ("ALL", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("ANSWERED", [1, 7]),
    ("UNANSWERED", [2, 3, 4, 5, 6, 8]),
    ("DELETED", [4]),
    ("UNDELETED", [1, 2, 3, 5, 6, 7, 8]),
    ("DRAFT", [3]),
    ("UNDRAFT", [1, 2, 4, 5, 6, 7, 8]),
    ("FLAGGED", [2]),
    ("UNFLAGGED", [1, 3, 4, 5, 6, 7, 8]),
    ("SEEN", [1, 5, 7]),
    ("UNSEEN", [2, 3, 4, 6, 8]),
    ("KEYWORD $Work", [3, 5]),
    ("KEYWORD $work", [3, 5]),
    ("KEYWORD $Urgent", [5]),
    ("KEYWORD $Nothing", []),
    ("UNKEYWORD $Work", [1, 2, 4, 6, 7, 8]),
    ("BCC dave", [2]),
    ("CC carol", [1]),
    ("CC alice@a.example", [7]),
    ("FROM alice", [1, 5]),
    ('FROM "Dave D"', [4]),
    ("FROM a.example", [1, 5]),
    ("FROM ALICE", [1, 5]),
    ("TO carol", [4, 7]),
    ("TO alice", [2, 3, 6]),
    ("SUBJECT quarterly", [1, 2, 5, 8]),
    ('SUBJECT "lunch?"', [3, 4]),
    # Strings shorter than the trigram index.
    ("SUBJECT re", [1, 2, 4, 5, 7, 8]),
    ("SUBJECT x", []),
    ("BODY numbers", [1, 2, 8]),
    ('BODY "secret plan"', [6]),
    ("BODY alice", []),
    ("BODY or", [3, 5]),
    ("TEXT sushi", [3, 4]),
    ("TEXT alice", [1, 2, 3, 5, 6, 7]),
    ("TEXT NUMBERS", [1, 2, 8]),
    ('HEADER X-Priority 1', [6]),
    ('HEADER X-Priority ""', [6]),
    ('HEADER Message-ID "<s3@"', [3]),
    ('HEADER In-Reply-To s1', [2]),
    ("HEADER X-Absent x", []),
    ("BEFORE 05-Jan-2024", [1, 2, 8]),
    ("ON 05-Jan-2024", [3]),
    ("SINCE 10-Jan-2024", [5, 6, 7]),
    ("SENTBEFORE 05-Jan-2024", [1, 2, 6]),
    ("SENTON 05-Jan-2024", [3]),
    ("SENTSINCE 13-Jan-2024", [7, 8]),
    ("SENTON 5-Jan-2024", [3]),
    ("LARGER 4000", [3]),
    ("SMALLER 4000", [1, 2, 4, 5, 6, 7, 8]),
    ("LARGER %d" % SIZES[2], []),
    ("SMALLER %d" % SIZES[2], [1, 2, 4, 5, 6, 7, 8]),
    ("LARGER %d" % (SIZES[2] - 1), [3]),
    ("NOT SEEN", [2, 3, 4, 6, 8]),
    ("NOT NOT SEEN", [1, 5, 7]),
    ("OR FROM alice FROM bob", [1, 2, 5, 7]),
    ("OR OR DRAFT FLAGGED DELETED", [2, 3, 4]),
    ("FROM alice SEEN", [1, 5]),
    ("(FROM alice) (OR TO bob TO carol)", [1, 5]),
    ("NOT (OR SEEN DELETED)", [2, 3, 6, 8]),
    ("((((SEEN))))", [1, 5, 7]),
    ("2:4", [2, 3, 4]),
    ("*", [8]),
    ("5:*", [5, 6, 7, 8]),
    ("*:6", [6, 7, 8]),
    ("1,3,5:6", [1, 3, 5, 6]),
    ("1:* NOT 2:7", [1, 8]),
    ("SEEN 1:3", [1]),
    # IMAP4rev1's keys: no message is ever recent (posternd.8).
    ("RECENT", []),
    ("NEW", []),
    ("OLD", [1, 2, 3, 4, 5, 6, 7, 8]),
    ("NOT RECENT", [1, 2, 3, 4, 5, 6, 7, 8]),
]


@pytest.mark.parametrize("criteria,want", KEYS, ids=[k for k, _ in KEYS])
def test_search_key(c, criteria, want):
    assert search(c, criteria) == want


def test_uid_key_and_uid_search(box, c):
    uids = box[1]
    assert search(c, "UID %d:%d" % (uids[1], uids[3])) == [2, 3, 4]
    assert search(c, "UID %d,%d" % (uids[0], uids[7])) == [1, 8]
    assert search(c, "UID *") == [8]
    assert search(c, "UID 4000000000") == []
    assert search(c, "SEEN", uid=True) == [uids[0], uids[4], uids[6]]
    assert search(c, "ALL", uid=True) == uids
    assert search(c, "2:3", uid=True) == [uids[1], uids[2]]


def test_search_charset(c):
    word = "caf\u00e9".encode("utf-8")
    tag = c.tag()
    c.send(b"%s SEARCH CHARSET UTF-8 BODY {%d}\r\n" % (tag.encode(),
                                                      len(word)))
    assert c.line().startswith("+")
    c.send(word + b"\r\n")
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    assert lines[0] == "* SEARCH 5", lines
    assert search(c, "CHARSET US-ASCII FROM alice") == [1, 5]
    t, _ = c.cmd("SEARCH CHARSET X-NO-SUCH-CHARSET FROM alice")
    assert t.split()[1] == "NO" and "[BADCHARSET" in t, t


def test_search_errors(c):
    for bad in ("FROB", "FROM", "OR SEEN", "BEFORE 31-Foo-2024",
                "LARGER x", "(SEEN", "SEEN)", "UID", "NOT", "KEYWORD",
                "HEADER Subject", "RETURN (FROB) ALL", "CHARSET"):
        t, _ = c.cmd("SEARCH " + bad)
        assert t.split()[1] == "BAD", (bad, t)
    c.ok("NOOP")


def esearch(c, cmd):
    out = c.ok(cmd)
    lines = [ln for ln in out if ln.startswith("* ESEARCH")]
    assert len(lines) <= 1, out
    if not lines:
        return None
    rest = lines[0][len("* ESEARCH"):]
    v, i = imap_parse("(" + rest.strip() + ")")
    res = {}
    k = 0
    if v and isinstance(v[0], list):
        assert v[0][0].upper() == b"TAG" if isinstance(v[0][0], bytes) \
            else v[0][0].upper() == "TAG"
        res["TAG"] = v[0][1]
        k = 1
    if k < len(v) and isinstance(v[k], str) and v[k].upper() == "UID":
        res["UID"] = True
        k += 1
    while k < len(v):
        res[v[k].upper()] = v[k + 1]
        k += 2
    return res


def test_esearch(box, c):
    uids = box[1]
    c.ntag = 100
    r = esearch(c, "SEARCH RETURN (MIN MAX COUNT ALL) FROM alice")
    assert r["TAG"] == b"t101"
    assert "UID" not in r
    assert (r["MIN"], r["MAX"], r["COUNT"]) == ("1", "5", "2")
    assert imap_expand(r["ALL"]) == [1, 5]
    r = esearch(c, "UID SEARCH RETURN (MIN MAX COUNT ALL) SEEN")
    assert r["UID"] is True
    assert int(r["MIN"]) == uids[0] and int(r["MAX"]) == uids[6]
    assert r["COUNT"] == "3"
    assert imap_expand(r["ALL"]) == [uids[0], uids[4], uids[6]]
    # RETURN () is RETURN (ALL).
    r = esearch(c, "SEARCH RETURN () 2:4")
    assert imap_expand(r["ALL"]) == [2, 3, 4] and "COUNT" not in r
    r = esearch(c, "SEARCH RETURN (COUNT) ALL")
    assert r["COUNT"] == "8" and "ALL" not in r and "MIN" not in r
    # Nothing matches: no MIN, MAX, ALL; COUNT 0.
    r = esearch(c, "SEARCH RETURN (MIN MAX ALL COUNT) KEYWORD $Nothing")
    assert r == {"TAG": r["TAG"], "COUNT": "0"}, r
    r = esearch(c, "SEARCH RETURN (MIN) KEYWORD $Nothing")
    assert set(r) == {"TAG"}, r


def test_searchres(box, c):
    uids = box[1]
    # $ before any SAVE is the empty set.
    assert search(c, "$") == []
    out = c.ok("UID SEARCH RETURN (SAVE) FROM alice")
    assert not any(ln.startswith("* ESEARCH") or ln.startswith("* SEARCH")
                   for ln in out), out
    assert search(c, "$") == [1, 5]
    assert search(c, "$ SEEN", uid=True) == [uids[0], uids[4]]
    assert search(c, "OR $ DRAFT") == [1, 3, 5]
    out = c.ok("UID FETCH $ (UID)")
    assert len([ln for ln in out if " FETCH " in ln]) == 2
    out = c.ok("FETCH $ (FLAGS)")
    assert len([ln for ln in out if " FETCH " in ln]) == 2
    # SAVE with other options: saved and answered.
    r = esearch(c, "SEARCH RETURN (SAVE COUNT) TO alice")
    assert r["COUNT"] == "3"
    assert search(c, "$") == [2, 3, 6]
    # SAVE with MIN: only the minimum is saved (RFC 5182 2.1).
    esearch(c, "SEARCH RETURN (SAVE MIN) TO alice")
    assert search(c, "$") == [2]
    # SAVE with MIN MAX: both.
    esearch(c, "SEARCH RETURN (SAVE MIN MAX) TO alice")
    assert search(c, "$") == [2, 6]
    # A command on an empty $ does nothing and succeeds.
    c.ok("SEARCH RETURN (SAVE) KEYWORD $Nothing")
    assert search(c, "$") == []
    c.ok("UID STORE $ +FLAGS.SILENT ($Never)")
    assert search(c, "KEYWORD $Never") == []


def test_searchres_failed_save_empties(c):
    """A SEARCH ... SAVE answered NO empties $ (RFC 5182 2.1)."""
    c.ok("SEARCH RETURN (SAVE) FROM alice")
    assert search(c, "$") == [1, 5]
    c.refused("SEARCH RETURN (SAVE) CHARSET X-BOGUS FROM alice", "NO")
    assert search(c, "$") == []


def test_searchres_store_copy(box):
    p, _ = box
    c = imap_client(p)
    uids = append_all(c, "SearchRes")
    c.ok("CREATE SearchResDst")
    c.ok("SELECT SearchRes")
    c.ok("SEARCH RETURN (SAVE) SUBJECT quarterly")
    c.ok("STORE $ +FLAGS.SILENT ($Saved)")
    assert search(c, "KEYWORD $Saved") == [1, 2, 5, 8]
    t, _ = c.cmd("UID COPY $ SearchResDst")
    assert "[COPYUID " in t, t
    out = c.ok("STATUS SearchResDst (MESSAGES)")
    assert "MESSAGES 4" in out[0]
    c.ok("MOVE $ SearchResDst")
    assert search(c, "ALL") == [1, 2, 3, 4]
    assert search(c, "ALL", uid=True) == [uids[2], uids[3], uids[5],
                                           uids[6]]
    c.close()


def test_rev2_search_answers_esearch(box):
    c = imap_client(box[0])
    c.ok("ENABLE IMAP4rev2")
    c.ok("SELECT Search")
    r = esearch(c, "SEARCH FROM alice")
    assert r is not None and imap_expand(r["ALL"]) == [1, 5], r
    c.close()


def test_search_modseq(box, c):
    out = c.ok("SEARCH MODSEQ 1")
    m = re.match(r"\* SEARCH ([\d ]+) \(MODSEQ (\d+)\)$", out[0])
    assert m, out
    assert sorted(int(x) for x in m.group(1).split()) == list(range(1, 9))


def sort(c, criteria, search="ALL", uid=False):
    out = c.ok("%sSORT (%s) UTF-8 %s" % ("UID " if uid else "", criteria,
                                         search))
    lines = [ln for ln in out if ln.startswith("* SORT")]
    assert len(lines) == 1, out
    return [int(x) for x in lines[0].split()[2:]]


def by_size():
    # Ties, if any, in mailbox order (RFC 5256 3).
    return sorted(range(1, 9), key=lambda i: SIZES[i - 1])


SORTS = [
    ("ARRIVAL", [1, 2, 8, 3, 4, 5, 6, 7]),
    ("DATE", [1, 6, 2, 3, 4, 5, 7, 8]),
    ("REVERSE DATE", [8, 7, 5, 4, 3, 2, 6, 1]),
    ("REVERSE ARRIVAL", [7, 6, 5, 4, 3, 8, 2, 1]),
    ("FROM", [1, 5, 2, 7, 3, 4, 6, 8]),
    ("TO", [8, 2, 3, 6, 1, 5, 4, 7]),
    ("CC", [2, 3, 4, 5, 6, 8, 7, 1]),
    ("SUBJECT", [3, 4, 6, 7, 1, 2, 5, 8]),
    ("SUBJECT REVERSE DATE", [4, 3, 7, 6, 8, 5, 2, 1]),
    ("SIZE", by_size()),
]


@pytest.mark.parametrize("criteria,want", SORTS, ids=[k for k, _ in SORTS])
def test_sort(c, criteria, want):
    assert sort(c, criteria) == want


def test_sort_search_and_uid(box, c):
    uids = box[1]
    assert sort(c, "DATE", "FROM alice") == [1, 5]
    assert sort(c, "REVERSE SIZE", "SMALLER 4000 NOT DELETED")[0] != 3
    assert sort(c, "ARRIVAL", "ALL", uid=True) == \
        [uids[i - 1] for i in [1, 2, 8, 3, 4, 5, 6, 7]]
    c.refused("SORT (FROB) UTF-8 ALL", "BAD")
    c.refused("SORT () UTF-8 ALL", "BAD")
    c.refused("SORT (DATE) ALL", "BAD")


def test_sort_badcharset(c):
    """An unknown charset is NO [BADCHARSET], not BAD (RFC 3501 6.4.4,
    which SORT's charset follows)."""
    t, _ = c.cmd("SORT (DATE) X-NO-SUCH ALL")
    assert t.split()[1] == "NO" and "BADCHARSET" in t, t
    t, _ = c.cmd("THREAD REFERENCES X-NO-SUCH ALL")
    assert t.split()[1] == "NO" and "BADCHARSET" in t, t


# --- THREAD ----------------------------------------------------------

THREADS = [
    # (subject, references)
    ("alpha", None),
    ("Re: alpha", "<t1@thread.example>"),
    ("Re: alpha", "<t1@thread.example> <t2@thread.example>"),
    ("beta", None),
    ("Re: alpha", "<t1@thread.example>"),
    ("gamma", "<missing@thread.example>"),
    ("Re: gamma", "<missing@thread.example>"),
]


@pytest.fixture(scope="module")
def thread_box(imap):
    c = imap_client(imap)
    c.ok("CREATE Thread")
    uids = []
    for i, (subj, refs) in enumerate(THREADS):
        m = ("From: t@thread.example\r\nSubject: %s\r\n"
             "Date: %02d Feb 2024 10:00:00 +0000\r\n"
             "Message-ID: <t%d@thread.example>\r\n%s\r\nbody %d\r\n"
             % (subj, i + 1, i + 1,
                "References: %s\r\n" % refs if refs else "", i)).encode()
        tag = c.tag()
        c.send(b"%s APPEND Thread {%d+}\r\n%s\r\n" % (tag.encode(), len(m),
                                                       m))
        t = c.until(tag)[-1]
        uids.append(int(re.search(r"APPENDUID \d+ (\d+)", t).group(1)))
    c.close()
    return imap, uids


def thread(c, algo, search="ALL", uid=False):
    out = c.ok("%sTHREAD %s UTF-8 %s" % ("UID " if uid else "", algo,
                                         search))
    lines = [ln for ln in out if ln.startswith("* THREAD")]
    assert len(lines) == 1, out
    return lines[0][len("* THREAD"):].strip()


def norm(t):
    """Thread list without optional spaces: "(1 (2 3)(5))"."""
    return re.sub(r"\s*([()])\s*", r"\1", t)


def test_thread_references(thread_box):
    c = imap_client(thread_box[0], select="Thread")
    assert norm(thread(c, "REFERENCES")) == "(1(2 3)(5))(4)((6)(7))"
    assert norm(thread(c, "REFERENCES", "SUBJECT alpha")) == "(1(2 3)(5))"
    assert norm(thread(c, "REFERENCES", "SUBJECT beta")) == "(4)"
    # Only 3 and 5 of the alpha thread: their parents are not in the
    # set, so each stands alone... under a dummy for the shared subject
    # or parent: whichever, both appear, once each.
    t = norm(thread(c, "REFERENCES", "3,5"))
    assert sorted(re.findall(r"\d+", t)) == ["3", "5"], t
    uids = thread_box[1]
    t = norm(thread(c, "REFERENCES", "ALL", uid=True))
    assert t == "(%d(%d %d)(%d))(%d)((%d)(%d))" % tuple(
        uids[i] for i in (0, 1, 2, 4, 3, 5, 6)), t
    assert thread(c, "REFERENCES", "KEYWORD $Nothing") == ""
    c.close()


def test_thread_orderedsubject(thread_box):
    c = imap_client(thread_box[0], select="Thread")
    assert norm(thread(c, "ORDEREDSUBJECT")) == "(1(2)(3)(5))(4)(6 7)"
    t, _ = c.cmd("THREAD FROB UTF-8 ALL")
    assert t.split()[1] in ("BAD", "NO"), t
    c.refused("THREAD REFERENCES ALL", "BAD")
    c.close()


# --- the full-text index, kept by storaged's indexer thread -------------


def search_soon(c, criteria, want, timeout=5.0):
    """SEARCH until it answers want: a message stored a moment ago is
    indexed a few milliseconds later."""
    deadline = time.time() + timeout
    while True:
        got = search(c, criteria)
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.05)


def fts_rows(p):
    """The ids in the index file (a copy of it), with the daemon stopped."""
    copy = db_copy(p, "postern-fts.db")
    conn = sqlite3.connect(copy)
    ids = sorted(r[0] for r in conn.execute(
        "SELECT rowid FROM messages_fts"))
    conn.close()
    shutil.rmtree(os.path.dirname(copy))
    return ids


def test_index_is_rebuilt_and_follows_expunge(postern_factory):
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    msgs = ["From: a@a.example\r\nTo: %s\r\nSubject: note %d\r\n\r\n"
            "zebracorn body, only%dhere\r\n" % (IMAP_USER, i, i)
            for i in (1, 2, 3)]
    imap_deliver(p, msgs)
    c = imap_client(p, select="INBOX")
    assert search_soon(c, "TEXT zebracorn", [1, 2, 3]) == [1, 2, 3]
    assert search_soon(c, "BODY only2here", [2]) == [2]
    c.close()
    p.stop()
    assert len(fts_rows(p)) == 3
    # The index is derived data: without its file it is made again.
    for path in db_files(p, "postern-fts.db"):
        os.unlink(path)
    p.restart()
    c = imap_client(p, select="INBOX")
    assert search_soon(c, "TEXT zebracorn", [1, 2, 3]) == [1, 2, 3]
    assert search_soon(c, "SUBJECT note TEXT only3here", [3]) == [3]
    assert "3 messages indexed" in p.logtext()
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert search_soon(c, "TEXT zebracorn", [1, 2]) == [1, 2]
    assert search(c, "TEXT only2here") == []
    imap_deliver(p, ["From: b@b.example\r\nSubject: later\r\n\r\n"
                     "zebracorn again\r\n"])
    c.ok("NOOP")
    assert search_soon(c, "TEXT zebracorn", [1, 2, 3]) == [1, 2, 3]
    c.close()
    uids = p.message_uids(IMAP_USER)
    # The expunged message's row leaves the index once the indexer has
    # had nothing to do for a while (it matched nothing meanwhile).
    assert len(fts_ids(p, timeout=10.0, count=3)) == 3
    p.stop()
    assert len(fts_rows(p)) == len(uids) == 3


def test_sent_date_in_its_own_zone(box):
    """SENTON and friends take the Date field's date as written,
    disregarding time and zone (RFC 9051 6.4.4): 23:30 -0500 on the 5th
    is the 5th, though it is the 6th in UTC."""
    c = imap_client(box[0])
    c.ok("CREATE SentZone")
    for date in ("Fri, 05 Jan 2024 23:30:00 -0500",
                 "Sat, 06 Jan 2024 00:30:00 +0200"):
        m = ("From: z@example.net\r\nSubject: zone\r\nDate: %s\r\n\r\nz\r\n"
             % date).encode()
        c.send(b"a APPEND SentZone {%d+}\r\n%s\r\n" % (len(m), m))
        assert c.until("a")[-1].startswith("a OK")
    c.ok("EXAMINE SentZone")
    assert search(c, "SENTON 5-Jan-2024") == [1]
    assert search(c, "SENTON 6-Jan-2024") == [2]
    assert search(c, "SENTBEFORE 6-Jan-2024") == [1]
    assert search(c, "SENTSINCE 6-Jan-2024") == [2]
    c.close()


def utf8_search(c, key, word):
    w = word.encode("utf-8")
    tag = c.tag()
    c.send(b"%s SEARCH CHARSET UTF-8 %s {%d+}\r\n%s\r\n"
           % (tag.encode(), key.encode(), len(w), w))
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    return sorted(int(x) for x in [ln for ln in lines if
                                   ln.startswith("* SEARCH")][0].split()[2:])


def test_search_decodes(box):
    """Header searches match encoded-words decoded, BODY and TEXT match
    quoted-printable and base64 text decoded, case-insensitively within
    ASCII (all RFC 9051 6.4.4 asks)."""
    c = imap_client(box[0])
    c.ok("CREATE Decoded")
    msgs = [
        b"From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.net>\r\n"
        b"Subject: =?utf-8?B?w5xiZXJwcsO8ZnVuZyBkZXIgWmFobGVu?=\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Viele Gr=C3=BC=C3=9Fe aus K=C3=B6ln\r\n",
        b"From: plain@example.net\r\nSubject: nothing special\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" +
        __import__("base64").b64encode("Caf\u00e9 cr\u00e8me br\u00fbl\u00e9e"
                                       "\r\n".encode()) + b"\r\n",
    ]
    for m in msgs:
        c.send(b"a APPEND Decoded {%d+}\r\n%s\r\n" % (len(m), m))
        assert c.until("a")[-1].startswith("a OK")
    c.ok("EXAMINE Decoded")
    # The index takes the messages in order, a moment after the APPEND.
    deadline = time.time() + 10
    while utf8_search(c, "BODY", "cr\u00e8me") != [2] and \
            time.time() < deadline:
        time.sleep(0.05)
    assert utf8_search(c, "SUBJECT", "\u00dcberpr\u00fcfung") == [1]
    assert utf8_search(c, "SUBJECT", "PR\u00fcFUNG der") == [1]
    assert utf8_search(c, "FROM", "m\u00fcller") == [1]
    assert utf8_search(c, "BODY", "gr\u00fc\u00dfe") == [1]
    assert utf8_search(c, "TEXT", "K\u00f6LN") == [1]
    assert utf8_search(c, "BODY", "cr\u00e8me") == [2]
    assert utf8_search(c, "TEXT", "BR\u00fbL\u00e9E") == [2]
    assert utf8_search(c, "BODY", "\u00e9e") == [2]
    assert utf8_search(c, "BODY", "cr\u00e8me aus") == []
    c.close()


# --- TEXT is the header section too (RFC 9051 6.4.4) ---------------------

# Each message holds its marker only in one header field: TEXT finds it,
# BODY does not, HEADER finds it in its field.
HEADER_ONLY = [
    # (marker, HEADER field holding it, header lines, body)
    ("quokkatag42", "X-Tracking-Tag",
     "X-Tracking-Tag: quokkatag42\r\n", "a plain body\r\n"),
    ("wombat.7781@mid", "Message-ID",
     "Message-ID: <wombat.7781@mid.example>\r\n", "a plain body\r\n"),
    # Folded: the marker spans the fold, and matches unfolded.
    ("<earlier@refs.example> <numbat", "References",
     "References: <earlier@refs.example>\r\n"
     " <numbat-5@refs.example>\r\n", "a plain body\r\n"),
    ("Bilby fans", "List-Id",
     "List-Id: Bilby fans <bilby.lists.example>\r\n", "a plain body\r\n"),
]

ATTACHED = (
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n"
    "--b0\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n"
    "--b0\r\nContent-Type: application/pdf; name=\"platypus-plan.pdf\"\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename=\"platypus-plan.pdf\"\r\n"
    "X-Part-Note: dingo-part-note\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\n"
    "JVBERi0xLjQK\r\n"
    "--b0\r\nContent-Type: text/plain\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*0*=utf-8''%C3%A9chidna%20;\r\n"
    " filename*1=\"rates.txt\"\r\n\r\n"
    "a text attachment\r\n"
    "--b0--\r\n")


def header_messages():
    msgs = []
    for i, (_, _, fields, body) in enumerate(HEADER_ONLY):
        msgs.append("From: h%d@h.example\r\nSubject: header %d\r\n%s\r\n%s"
                    % (i, i, fields, body))
    msgs.append("From: a@h.example\r\nSubject: attached\r\n" + ATTACHED)
    msgs.append("From: e@h.example\r\nSubject: encoded\r\n"
                "X-Note: =?utf-8?q?caf=C3=A9_kookaburra?=\r\n\r\n"
                "nothing\r\n")
    # The control: every marker, but in the body only.
    msgs.append("From: c@h.example\r\nSubject: control\r\n\r\n"
                "markers in the body: emu-body-only\r\n")
    return [m.encode("utf-8") for m in msgs]


def imaplib_search(m, *criteria, charset=None, literal=None):
    if literal is not None:
        m.literal = literal
    typ, data = m.search(charset, *criteria)
    assert typ == "OK", (criteria, data)
    return sorted(int(x) for x in data[0].split())


def imaplib_search_soon(m, want, *criteria, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        got = imaplib_search(m, *criteria)
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.05)


@pytest.fixture(scope="module")
def header_box(imap):
    m = imap_login(imap)
    assert m.create("HeaderText")[0] == "OK"
    for msg in header_messages():
        typ, data = m.append("HeaderText", None, None, msg)
        assert typ == "OK", data
    assert m.select("HeaderText")[0] == "OK"
    # The index takes the messages in order: the last one says all are in.
    n = len(header_messages())
    assert imaplib_search_soon(m, [n], "BODY", "emu-body-only") == [n]
    yield m
    m.logout()


@pytest.mark.parametrize("i", range(len(HEADER_ONLY)),
                         ids=[h[1] for h in HEADER_ONLY])
def test_text_finds_header_fields(header_box, i):
    m = header_box
    marker, field = HEADER_ONLY[i][0], HEADER_ONLY[i][1]
    q = '"%s"' % marker
    assert imaplib_search(m, "TEXT", q) == [i + 1]
    assert imaplib_search(m, "BODY", q) == []
    if field != "References":
        assert imaplib_search(m, "HEADER", field, q) == [i + 1]
    assert imaplib_search(m, "HEADER", "X-Absent", q) == []


def test_text_finds_mime_part_headers(header_box):
    """The header fields of the parts count (MIME header fields), their
    RFC 2231 parameters decoded; BODY is the text of the body alone."""
    m = header_box
    att = len(HEADER_ONLY) + 1
    for q in ("platypus-plan.pdf", "dingo-part-note", "application/pdf"):
        assert imaplib_search(m, "TEXT", q) == [att], q
        assert imaplib_search(m, "BODY", q) == [], q
    assert imaplib_search(m, "TEXT", charset="UTF-8",
                          literal="\u00e9chidna rates.txt".encode()) == [att]
    assert imaplib_search(m, "BODY", charset="UTF-8",
                          literal="\u00e9chidna".encode()) == []
    assert imaplib_search(m, "BODY", '"see the attachment"') == [att]
    # Encoded-words are matched decoded.
    enc = att + 1
    assert imaplib_search(m, "TEXT", charset="UTF-8",
                          literal="caf\u00e9 KOOKABURRA".encode()) == [enc]
    assert imaplib_search(m, "BODY", "kookaburra") == []
    assert imaplib_search(m, "HEADER", "X-Note", "kookaburra") == [enc]


def test_text_header_and_body(header_box):
    m = header_box
    n = len(header_messages())
    assert imaplib_search(m, "TEXT", "emu-body-only") == [n]
    assert imaplib_search(m, "TEXT", "h.example") == list(range(1, n + 1))
    assert imaplib_search(m, "TEXT", "quokkatag42", "TEXT", "plain") == [1]
    assert imaplib_search(m, "NOT", "TEXT", "quokkatag42") == \
        list(range(2, n + 1))
    # The header as it is, field names and all.
    assert imaplib_search(m, "TEXT", '"List-Id: bilby"') == [4]
    # Fewer characters than a trigram: the index's columns by LIKE.
    assert imaplib_search(m, "TEXT", "X-N") == [n - 1]


def test_text_finds_delivery_trace(postern_factory):
    """The Return-Path and Delivered-To lines storaged adds at delivery
    are part of the header SEARCH sees."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    imap_deliver(p, ["From: a@a.example\r\nSubject: traced\r\n\r\n"
                     "body\r\n"], mail_from="bounce-7c1e@env.example")
    m = imap_login(p)
    assert m.select("INBOX")[0] == "OK"
    assert imaplib_search_soon(m, [1], "TEXT", "bounce-7c1e") == [1]
    assert imaplib_search(m, "BODY", "bounce-7c1e") == []
    assert imaplib_search(m, "HEADER", "Return-Path", "bounce-7c1e") == [1]
    m.logout()


def test_index_of_older_version_is_rebuilt(postern_factory):
    """An index file from before the header was indexed (version 1:
    subject, addresses, body) is made anew at start-up, so TEXT finds
    header fields in messages the old index had."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    imap_deliver(p, ["From: a@a.example\r\nSubject: old %d\r\n"
                     "X-Legacy: kiwi-legacy-%d\r\n\r\nlegacy body\r\n"
                     % (i, i) for i in (1, 2)])
    m = imap_login(p)
    assert m.select("INBOX")[0] == "OK"
    assert imaplib_search_soon(m, [1, 2], "TEXT", "kiwi-legacy") == [1, 2]
    m.logout()
    p.stop()
    # What the previous version left: its columns, every message
    # recorded as indexed, nothing about the header in it.
    path = os.path.join(p.statedir, "postern-fts.db")
    st = os.stat(os.path.join(p.statedir, "postern.db"))
    conn = sqlite3.connect(path)
    conn.executescript(
        "DROP TABLE messages_fts;"
        "CREATE VIRTUAL TABLE messages_fts USING fts5(subject, addresses,"
        "  body, tokenize = 'trigram');"
        "INSERT INTO messages_fts (rowid, subject, addresses, body)"
        "  SELECT id, 'old', '', 'legacy body' FROM docs;"
        "PRAGMA user_version = 1;")
    assert conn.execute("SELECT count(*) FROM docs").fetchone()[0] == 2
    conn.close()
    for path in db_files(p, "postern-fts.db"):
        os.chown(path, st.st_uid, st.st_gid)
    since = len(p.logtext())
    p.restart()
    m = imap_login(p)
    assert m.select("INBOX")[0] == "OK"
    assert imaplib_search_soon(m, [1, 2], "TEXT", "kiwi-legacy") == [1, 2]
    assert imaplib_search(m, "TEXT", "kiwi-legacy-2") == [2]
    assert imaplib_search(m, "BODY", "kiwi-legacy") == []
    m.logout()
    log = p.logtext()[since:]
    assert "schema version 1, not 3" in log
    assert "2 messages indexed" in log
