"""Commands on many messages are all-or-nothing: a MULTIAPPEND (RFC
3502) files every message in one transaction or none, and STORE, COPY,
MOVE and UID EXPUNGE over sets longer than one request's ranges are
still one transaction (one MODSEQ, one COPYUID)."""
import base64
import os
import re
import time

import pytest

from conftest import (IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER, TIME_SCALE,
                      imap_client, imap_fetch, imap_quote)

LITERAL_MAX = 16 * 1024      # the daemon's imap-literal-size here
APPEND_MAX = 1000            # IMAP_APPEND_MAX


@pytest.fixture(scope="module")
def imap(module_factory):
    p = module_factory(listeners=IMAP_LISTENERS,
                       config_extra="limit imap-literal-size 16K\n"
                                    "limit imap-line-length 256K\n")
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    return p


def message(i, tag="m"):
    return ("From: a@example.test\r\nSubject: %s %d\r\n"
            "Message-ID: <%s%d@example.test>\r\n\r\nbody %d\r\n"
            % (tag, i, tag, i, i)).encode()


def append_raw(c, mailbox, items, tag=None):
    """Sends one APPEND of every (message, extra) of items with
    non-synchronizing literals; extra is what goes before the literal
    (flags, date).  Returns (tagged line, untagged lines)."""
    tag = tag or c.tag()
    out = [tag.encode(), b" APPEND ", imap_quote(mailbox).encode()]
    for msg, extra in items:
        out.append(b" ")
        if extra:
            out.append(extra.encode() + b" ")
        out.append(b"{%d+}\r\n" % len(msg))
        out.append(msg)
    out.append(b"\r\n")
    c.send(b"".join(out))
    lines = c.until(tag)
    return lines[-1], lines[:-1]


def append_many(c, mailbox, msgs):
    """MULTIAPPENDs msgs in commands of at most APPEND_MAX; the UIDs."""
    uids = []
    for i in range(0, len(msgs), APPEND_MAX):
        tagged, _ = append_raw(c, mailbox,
                               [(m, None) for m in msgs[i:i + APPEND_MAX]])
        uids += appenduid(tagged)[1]
    return uids


def appenduid(tagged):
    m = re.search(r"OK \[APPENDUID (\d+) (\d+)(?::(\d+))?\]", tagged)
    assert m, tagged
    lo = int(m.group(2))
    hi = int(m.group(3) or lo)
    return int(m.group(1)), list(range(lo, hi + 1))


def status(c, mailbox, what="MESSAGES"):
    out = c.ok("STATUS %s (%s)" % (imap_quote(mailbox), what))
    m = re.search(r"\(%s (\d+)\)" % what, out[0])
    assert m, out
    return int(m.group(1))


def set_of(uids):
    """A UID list as an IMAP set, runs as ranges."""
    out, i = [], 0
    while i < len(uids):
        j = i
        while j + 1 < len(uids) and uids[j + 1] == uids[j] + 1:
            j += 1
        out.append(str(uids[i]) if i == j else "%d:%d" % (uids[i], uids[j]))
        i = j + 1
    return ",".join(out)


def uids_of(s):
    out = []
    for part in s.split(","):
        lo, _, hi = part.partition(":")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def exists_seen(c, tag):
    """NOOP's untagged EXISTS counts."""
    out = c.ok("NOOP")
    return [int(m.group(1)) for m in
            (re.match(r"\* (\d+) EXISTS", ln) for ln in out) if m]


def test_multiappend_three_byte_for_byte(imap):
    c = imap_client(imap)
    c.ok("CREATE Three")
    msgs = [message(1), b"Subject: bare\r\n\r\n\x01\xff binary-ish\r\n",
            message(3) * 20]
    tagged, _ = append_raw(c, "Three", [
        (msgs[0], "(\\Seen)"),
        (msgs[1], '(\\Flagged $Label) "01-Dec-2026 10:00:00 +0100"'),
        (msgs[2], None)])
    uidvalidity, uids = appenduid(tagged)
    assert len(uids) == 3 and uids == list(range(uids[0], uids[0] + 3))
    c.ok("SELECT Three")
    got = imap_fetch(c, "UID FETCH 1:* (UID FLAGS BODY.PEEK[])")
    assert [int(i["UID"]) for _, i in got] == uids
    assert [i["BODY[]"] for _, i in got] == msgs
    assert "\\Seen" in got[0][1]["FLAGS"]
    assert "\\Flagged" in got[1][1]["FLAGS"] and "$label" in [f.lower() for f in got[1][1]["FLAGS"]]
    assert got[2][1]["FLAGS"] == []
    # Synchronizing literals, each after its "+", make one batch too.
    tag = c.tag()
    c.send("%s APPEND Three {%d}\r\n" % (tag, len(msgs[0])))
    assert c.line().startswith("+ ")
    c.send(msgs[0] + b" {%d}\r\n" % len(msgs[1]))
    assert c.line().startswith("+ ")
    c.send(msgs[1] + b"\r\n")
    lines = c.until(tag)
    assert appenduid(lines[-1])[1] == [uids[2] + 1, uids[2] + 2]
    c.close()


@pytest.mark.parametrize("bad", ["flag", "date", "toobig", "toobig-sync",
                                 "toomany"])
def test_multiappend_failure_appends_none(imap, bad):
    c = imap_client(imap)
    box = "Fail-" + bad
    c.ok("CREATE " + box)
    c.ok("APPEND %s {%d+}\r\n%s" % (box, len(message(0)),
                                    message(0).decode()))
    watcher = imap_client(imap, select=box)
    before = status(c, box)
    uidnext = status(c, box, "UIDNEXT")
    good = [(message(1), "(\\Seen)"), (message(2), None)]
    if bad == "flag":
        tagged, _ = append_raw(c, box, good + [(message(3), "(\\Bogus)")])
    elif bad == "date":
        tagged, _ = append_raw(c, box, good + [
            (message(3), '"01-Xyz-2026 10:00:00 +0000"')])
    elif bad == "toobig":
        # A non-synchronizing literal too big in the middle: read and
        # dropped, and the next message still parsed as part of it.
        tagged, _ = append_raw(c, box, good + [
            (b"x" * (LITERAL_MAX + 1), None), (message(4), None)])
        assert "[TOOBIG]" in tagged
    elif bad == "toobig-sync":
        tag = c.tag()
        c.send(b"%s APPEND %s {%d+}\r\n%s {%d}\r\n"
               % (tag.encode(), box.encode(), len(message(1)), message(1),
                  LITERAL_MAX + 1))
        tagged = c.until(tag)[-1]
        assert "[TOOBIG]" in tagged
    else:
        tagged, _ = append_raw(c, box, [(message(i), None)
                                        for i in range(APPEND_MAX + 1)])
        assert "[LIMIT]" in tagged
    assert re.match(r"t\d+ (NO|BAD) ", tagged), tagged
    # The session is in step: the next command is answered as such.
    assert status(c, box) == before
    assert status(c, box, "UIDNEXT") == uidnext
    assert exists_seen(watcher, "w") == []
    # And a good one still goes in whole.
    tagged, _ = append_raw(c, box, good)
    assert len(appenduid(tagged)[1]) == 2
    assert status(c, box) == before + 2
    c.close()
    watcher.close()


def test_multiappend_mailbox_gone(imap):
    c = imap_client(imap)
    tagged, _ = append_raw(c, "NoSuchBox", [(message(1), None),
                                            (message(2), None)])
    assert tagged.split(" ", 2)[1] == "NO" and "[TRYCREATE]" in tagged
    c.close()


def test_idle_sees_one_exists(imap):
    c = imap_client(imap)
    c.ok("CREATE Idle")
    watcher = imap_client(imap, select="Idle")
    watcher.send("i1 IDLE\r\n")
    assert watcher.line().startswith("+ ")
    n = 50
    tagged, _ = append_raw(c, "Idle", [(message(i), None) for i in range(n)])
    assert len(appenduid(tagged)[1]) == n
    line = watcher.line()
    assert line == "* %d EXISTS" % n, line
    watcher.send("DONE\r\n")
    rest = watcher.until("i1")
    assert not any(re.match(r"\* \d+ EXISTS", ln) for ln in rest), rest
    c.close()
    watcher.close()


@pytest.fixture(scope="module")
def big(imap):
    """A mailbox of 3000 messages, appended with MULTIAPPEND."""
    c = imap_client(imap)
    c.ok("CREATE Big")
    start = time.time()
    uids = append_many(c, "Big", [message(i, "big") for i in range(3000)])
    assert uids == list(range(1, 3001))
    assert time.time() - start < 120 * TIME_SCALE
    c.close()
    return uids


def highestmodseq(c, mailbox):
    return status(c, mailbox, "HIGHESTMODSEQ")


def test_store_1500_ranges_one_modseq(imap, big):
    c = imap_client(imap)
    odd = big[::2]
    assert len(odd) == 1500
    before = highestmodseq(c, "Big")
    watcher = imap_client(imap)
    watcher.ok("ENABLE CONDSTORE")
    watcher.ok("SELECT Big")
    c.ok("SELECT Big")
    c.ok("UID STORE %s +FLAGS.SILENT (\\Flagged)" % set_of(odd))
    after = highestmodseq(c, "Big")
    assert after == before + 1
    got = imap_fetch(c, "UID FETCH 1:* (UID FLAGS)")
    flagged = [int(i["UID"]) for _, i in got if "\\Flagged" in i["FLAGS"]]
    assert flagged == odd
    # The other session sees one change: every message at one MODSEQ
    # (told once unasked, as the change came in, and once as asked).
    got = imap_fetch(watcher, "UID FETCH 1:* (UID) (CHANGEDSINCE %d)"
                     % before)
    assert sorted({int(i["UID"]) for _, i in got}) == odd
    assert {i["MODSEQ"][0] for _, i in got} == {str(after)}
    c.close()
    watcher.close()


def test_copy_move_1500_ranges_one_copyuid(imap, big):
    c = imap_client(imap, select="Big")
    c.ok("CREATE CopyDest")
    c.ok("CREATE MoveDest")
    odd, even = big[::2], big[1::2]
    tagged, _ = c.cmd("UID COPY %s CopyDest" % set_of(odd))
    m = re.match(r"t\d+ OK \[COPYUID (\d+) (\S+) (\d+):(\d+)\]", tagged)
    assert m, tagged[:200]
    assert uids_of(m.group(2)) == odd
    assert int(m.group(4)) - int(m.group(3)) + 1 == 1500
    assert status(c, "CopyDest") == 1500
    before = highestmodseq(c, "Big")
    tagged, untagged = c.cmd("UID MOVE %s MoveDest" % set_of(even))
    assert tagged.split(" ", 2)[1] == "OK", tagged
    copyuid = [ln for ln in untagged if "[COPYUID" in ln]
    assert len(copyuid) == 1, copyuid
    m = re.match(r"\* OK \[COPYUID (\d+) (\S+) (\d+):(\d+)\]", copyuid[0])
    assert m and uids_of(m.group(2)) == even
    assert int(m.group(4)) - int(m.group(3)) + 1 == 1500
    assert len([ln for ln in untagged if ln.endswith(" EXPUNGE")
                or ln.startswith("* VANISHED")]) > 0
    assert status(c, "MoveDest") == 1500
    assert status(c, "Big") == 1500
    # One transaction: one MODSEQ for the expunges and the copies.
    after = highestmodseq(c, "Big")
    assert after > before
    c.ok("EXAMINE MoveDest")
    got = imap_fetch(c, "1:* (MODSEQ)")
    assert len(got) == 1500
    assert {i["MODSEQ"][0] for _, i in got} == {str(after)}
    c.ok("EXAMINE CopyDest")
    assert len({i["MODSEQ"][0] for _, i in
                imap_fetch(c, "1:* (MODSEQ)")}) == 1
    c.close()


def test_uid_expunge_1500_ranges(imap):
    c = imap_client(imap)
    c.ok("CREATE Exp")
    uids = append_many(c, "Exp", [message(i, "exp") for i in range(3000)])
    c.ok("SELECT Exp")
    c.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
    before = highestmodseq(c, "Exp")
    watcher = imap_client(imap, select="Exp")
    odd = uids[::2]
    tagged, untagged = c.cmd("UID EXPUNGE %s" % set_of(odd))
    assert tagged.split(" ", 2)[1] == "OK", tagged
    assert len([ln for ln in untagged if ln.endswith(" EXPUNGE")]) == 1500
    assert highestmodseq(c, "Exp") == before + 1
    assert status(c, "Exp") == 1500
    left = [int(i["UID"]) for _, i in imap_fetch(c, "UID FETCH 1:* (UID)")]
    assert left == uids[1::2]
    assert len([ln for ln in watcher.ok("NOOP")
                if ln.endswith(" EXPUNGE")]) == 1500
    c.close()
    watcher.close()


def test_multiappend_disconnect_appends_none(imap):
    """A client gone in the middle of a MULTIAPPEND leaves nothing: not
    the messages already sent, nor their spool files."""
    c = imap_client(imap)
    c.ok("CREATE Gone")
    before = status(c, "Gone")
    d = imap_client(imap)
    msgs = [message(i, "gone") for i in range(20)]
    d.send(b"t1 APPEND Gone" + b"".join(
        b" {%d+}\r\n%s" % (len(m), m) for m in msgs))
    time.sleep(0.5 * TIME_SCALE)
    d.close()
    spool = os.path.join(imap.statedir, "spool")
    deadline = time.time() + 10 * TIME_SCALE
    while os.listdir(spool) and time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(spool) == []
    assert status(c, "Gone") == before
    # The daemon goes on, and the next one goes in whole.
    tagged, _ = append_raw(c, "Gone", [(m, None) for m in msgs[:2]])
    assert len(appenduid(tagged)[1]) == 2
    c.close()


def attachment_message(i, size):
    """A message with an attachment large enough to be stored apart."""
    raw = bytes((i * 7 + k) % 251 for k in range(size * 3 // 4))
    b64 = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return (b"From: a@example.test\r\nSubject: big %d\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached %d\r\n"
            b"--XX\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n%s"
            b"--XX--\r\n" % (i, i, b64))


def test_multiappend_large_with_attachments(module_factory):
    """Past what storaged keeps parsed in memory (16 MB a command) the
    messages are parsed again at the commit; attachments stored apart
    come back whole."""
    p = module_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    c.ok("CREATE Large")
    msgs = [attachment_message(i, 7 * 1024 * 1024) for i in range(3)]
    # The same attachment twice in one command is stored once.
    msgs.append(msgs[0].replace(b"Subject: big 0", b"Subject: again"))
    tagged, _ = append_raw(c, "Large", [(m, None) for m in msgs])
    assert len(appenduid(tagged)[1]) == 4, tagged
    c.ok("EXAMINE Large")
    for n, m in enumerate(msgs, 1):
        got = imap_fetch(c, "%d (BODY.PEEK[])" % n)
        assert got[0][1]["BODY[]"] == m
    c.close()


def test_append_same_bytes_after_expunge_and_kill(module_factory):
    """The bytes of an expunged message come back whole when the same
    message is appended again, once or twice, with or without
    attachments stored apart (its blobs collected meanwhile, or found
    there already), and after the daemon is killed and started again;
    nothing is left in /spool."""
    p = module_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    c.ok("CREATE Again")
    msgs = [attachment_message(5, 64 * 1024), message(5, "again")]
    tagged, _ = append_raw(c, "Again", [(m, None) for m in msgs])
    assert len(appenduid(tagged)[1]) == 2, tagged
    c.ok("SELECT Again")
    c.ok("STORE 1:2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    # Collected: renamed out of /blobs, then unlinked by a thread.
    blobs = os.path.join(p.statedir, "blobs")
    spool = os.path.join(p.statedir, "spool")
    deadline = time.time() + 5 * TIME_SCALE
    while (os.listdir(blobs) or os.listdir(spool)) and \
            time.time() < deadline:
        time.sleep(0.05)
    assert os.listdir(blobs) == [] and os.listdir(spool) == []
    for _ in range(2):
        for m in msgs:
            tagged, _ = append_raw(c, "Again", [(m, None)])
            assert len(appenduid(tagged)[1]) == 1, tagged
    c.ok("NOOP")
    c.close()
    p.kill_all()
    p.restart()
    c = imap_client(p)
    c.ok("EXAMINE Again")
    for n, m in enumerate(msgs * 2, 1):
        got = imap_fetch(c, "%d (BODY.PEEK[])" % n)
        assert got[0][1]["BODY[]"] == m, n
    assert os.listdir(spool) == []
    c.close()
