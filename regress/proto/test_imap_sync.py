"""Sessions stay true: two sessions on one mailbox see each other's
STORE, EXPUNGE and APPEND as untagged FETCH, EXPUNGE and EXISTS at the
next command; IDLE hears them, and an SMTP delivery, at once; STORE in
its forms, CONDSTORE's UNCHANGEDSINCE and CHANGEDSINCE, QRESYNC's
SELECT with VANISHED (EARLIER); sequence numbers never out of step
(RFC 9051 5.2, 7.5; RFC 7162)."""
import random
import re
import time

import pytest

from conftest import (TIME_SCALE, IMAP_USER, imap_client, imap_count,
                      imap_deliver, imap_expand, imap_fetch_items)


def msg(subject, n=0):
    return ("From: s@example.net\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <sync-%s-%d-%f@example.net>\r\n\r\nbody %d\r\n"
            % (IMAP_USER, subject, re.sub(r"\W", "", subject), n,
               time.time(), n)).encode()


def append(c, mailbox, data, flags=""):
    tag = c.tag()
    c.send(b"%s APPEND %s %s{%d+}\r\n%s\r\n"
           % (tag.encode(), mailbox.encode(),
              ("(%s) " % flags).encode() if flags else b"", len(data),
              data))
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    return int(re.search(r"APPENDUID \d+ (\d+)", lines[-1]).group(1)), \
        lines[:-1]


class Model:
    """One session's view of the selected mailbox, kept from the
    untagged responses it reads: UIDs by sequence number (None while
    only EXISTS told of a message)."""

    def __init__(self, uids):
        self.uids = list(uids)
        self.flags = {}

    def feed(self, lines, cmd=""):
        for ln in lines:
            m = re.match(r"\* (\d+) EXPUNGE$", ln)
            if m:
                n = int(m.group(1))
                assert 1 <= n <= len(self.uids), (ln, self.uids)
                del self.uids[n - 1]
                continue
            m = re.match(r"\* VANISHED (\(EARLIER\) )?([\d:,]+)$", ln)
            if m:
                if m.group(1):
                    continue
                gone = set(imap_expand(m.group(2)))
                assert gone <= set(self.uids), (ln, self.uids)
                self.uids = [u for u in self.uids if u not in gone]
                continue
            m = re.match(r"\* (\d+) EXISTS$", ln)
            if m:
                n = int(m.group(1))
                assert n >= len(self.uids), (ln, self.uids)
                self.uids.extend([None] * (n - len(self.uids)))
                continue
            if re.match(r"\* \d+ FETCH ", ln):
                seq, it = imap_fetch_items(ln)
                assert 1 <= seq <= len(self.uids), (cmd, ln, self.uids)
                if "UID" in it:
                    uid = int(it["UID"])
                    if self.uids[seq - 1] is None:
                        assert seq == 1 or self.uids[seq - 2] is None or \
                            self.uids[seq - 2] < uid, (ln, self.uids)
                        self.uids[seq - 1] = uid
                    assert self.uids[seq - 1] == uid, (cmd, ln, self.uids)
                if "FLAGS" in it and self.uids[seq - 1] is not None:
                    self.flags[self.uids[seq - 1]] = set(
                        f.lower() for f in it["FLAGS"])

    def cmd(self, c, text):
        tagged, out = c.cmd(text)
        self.feed(out, text)
        return tagged, out


def uids_of(c):
    out = c.ok("UID SEARCH ALL")
    return [int(x) for x in [ln for ln in out
                             if ln.startswith("* SEARCH")][0].split()[2:]]


def noop_until(c, pred, model=None, timeout=5.0):
    """NOOPs until an untagged line satisfies pred (storaged sends
    change events just after answering the session that made them)."""
    seen = []
    deadline = time.time() + timeout * TIME_SCALE
    while time.time() < deadline:
        _, out = c.cmd("NOOP")
        if model is not None:
            model.feed(out, "NOOP")
        seen.extend(out)
        if any(pred(ln) for ln in out):
            return seen
        time.sleep(0.03)
    raise AssertionError("never seen; got %r" % seen)


@pytest.fixture
def pair(imap, request):
    """Two sessions with one fresh mailbox selected."""
    name = "Sync" + re.sub(r"\W", "", request.node.name)[-20:]
    a = imap_client(imap)
    a.ok("CREATE " + name)
    for i in range(4):
        append(a, name, msg(name, i))
    a.ok("SELECT " + name)
    b = imap_client(imap, select=name)
    yield a, b, name
    a.close()
    b.close()


def test_store_seen_by_other(pair):
    a, b, _ = pair
    mb = Model(uids_of(b))
    a.ok("STORE 2 +FLAGS (\\Flagged $Other)")
    seen = noop_until(b, lambda ln: ln.startswith("* 2 FETCH"), mb)
    ln = [x for x in seen if x.startswith("* 2 FETCH")][0]
    it = imap_fetch_items(ln)[1]
    assert {"\\flagged", "$other"} <= set(f.lower() for f in it["FLAGS"])
    a.ok("STORE 2 -FLAGS (\\Flagged)")
    seen = noop_until(b, lambda ln: ln.startswith("* 2 FETCH"), mb)
    ln = [x for x in seen if x.startswith("* 2 FETCH")][-1]
    assert "\\Flagged" not in ln


def test_expunge_seen_by_other(pair):
    a, b, _ = pair
    ua = uids_of(a)
    mb = Model(uids_of(b))
    a.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    noop_until(b, lambda ln: ln.endswith(" EXPUNGE"), mb)
    # Both EXPUNGEs may come in one NOOP or in two.
    deadline = time.time() + 5
    while len(mb.uids) != 2 and time.time() < deadline:
        mb.cmd(b, "NOOP")
    assert mb.uids == [ua[1], ua[3]] == uids_of(b)


def test_append_seen_by_other(pair):
    a, b, name = pair
    mb = Model(uids_of(b))
    uid, _ = append(a, name, msg("appended by a"))
    noop_until(b, lambda ln: ln == "* 5 EXISTS", mb)
    mb.cmd(b, "FETCH 5 (UID)")
    assert mb.uids[-1] == uid


def test_no_expunge_during_fetch_store_search(pair):
    """EXPUNGE may not be sent during FETCH, STORE or SEARCH (RFC 9051
    7.5.1): they would shift the numbers the command names."""
    a, b, _ = pair
    mb = Model(uids_of(b))
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.3)
    for cmd in ("FETCH 1:* (UID)", "STORE 1 +FLAGS ($Touched)",
                "SEARCH ALL", "FETCH 2 (FLAGS)"):
        _, out = mb.cmd(b, cmd)
        assert not any(ln.endswith(" EXPUNGE") for ln in out), (cmd, out)
    # The expunged message is still message 1 for b, until NOOP.
    _, out = mb.cmd(b, "FETCH 1 (UID)")
    assert len(mb.uids) == 4
    mb.cmd(b, "NOOP")
    assert len(mb.uids) == 3
    assert mb.uids == uids_of(b)


def test_fetch_of_expunged_message(pair):
    """A non-UID FETCH of a message another session expunged, before
    this one heard of it: OK with no data for it, or NO; never another
    message's data."""
    a, b, _ = pair
    ub = uids_of(b)
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    time.sleep(0.3)
    tagged, out = b.cmd("FETCH 2 (UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert tagged.split()[1] in ("OK", "NO"), tagged
    for ln in out:
        if re.match(r"\* 2 FETCH", ln):
            assert "UID %d" % ub[1] in ln, ln


def test_idle_hears_delivery(imap):
    imap.add_account("idle@example.test", "idle-secret-1")
    c = imap_client(imap, "idle@example.test", "idle-secret-1",
                    select="INBOX")
    c.send("i1 IDLE\r\n")
    assert c.line().startswith("+ ")
    imap_deliver(imap, [msg("while idle")], to="idle@example.test")
    # Promptly: within two seconds of the message being in the store
    # (it usually is there already).
    c.sock.settimeout(2 * TIME_SCALE)
    ln = c.line()
    assert ln == "* 1 EXISTS", ln
    c.send("DONE\r\n")
    assert c.until("i1")[-1].startswith("i1 OK")
    out = c.ok("FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "while idle" in out[0]
    c.close()


def test_idle_hears_other_session(pair):
    a, b, name = pair
    mb = Model(uids_of(b))
    b.send("i2 IDLE\r\n")
    assert b.line().startswith("+ ")
    a.ok("STORE 1 +FLAGS (\\Seen)")
    ln = b.line()
    assert re.match(r"\* 1 FETCH \(.*\\Seen", ln), ln
    mb.feed([ln])
    a.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    lines = []
    while not lines or not lines[-1].endswith("EXPUNGE"):
        lines.append(b.line())
    mb.feed(lines)
    uid, _ = append(a, name, msg("during idle"))
    ln = b.line()
    assert ln == "* 4 EXISTS", ln
    mb.feed([ln])
    b.send("DONE\r\n")
    mb.feed(b.until("i2"))
    mb.cmd(b, "FETCH 4 (UID)")
    assert mb.uids == uids_of(b)
    assert mb.uids[-1] == uid
    # IDLE then a bad continuation: BAD (RFC 9051 6.3.13).
    b.send("i3 IDLE\r\n")
    assert b.line().startswith("+ ")
    b.send("NOT DONE\r\n")
    assert b.until("i3")[-1].startswith("i3 BAD")
    b.ok("NOOP")


def test_store_forms(pair):
    a, _, _ = pair
    # Replace.
    out = a.ok("STORE 1 FLAGS (\\Seen $A)")
    it = imap_fetch_items(out[0])[1]
    assert set(f.lower() for f in it["FLAGS"]) == {"\\seen", "$a"}
    out = a.ok("STORE 1 +FLAGS ($B)")
    assert set(f.lower() for f in imap_fetch_items(out[0])[1]["FLAGS"]) == \
        {"\\seen", "$a", "$b"}
    out = a.ok("STORE 1 -FLAGS ($A \\Seen)")
    assert set(f.lower() for f in imap_fetch_items(out[0])[1]["FLAGS"]) == \
        {"$b"}
    # Without parentheses.
    out = a.ok("STORE 1 +FLAGS \\Answered")
    assert "\\Answered" in out[0]
    # .SILENT: no FETCH for this session.
    out = a.ok("STORE 1:2 +FLAGS.SILENT (\\Flagged)")
    assert not any(" FETCH " in ln for ln in out), out
    out = a.ok("FETCH 1:2 FLAGS")
    assert all("\\Flagged" in ln for ln in out)
    out = a.ok("STORE 1 FLAGS.SILENT ()")
    assert not any(" FETCH " in ln for ln in out)
    assert "()" in a.ok("FETCH 1 FLAGS")[0]
    # UID STORE carries UID.
    u = uids_of(a)
    out = a.ok("UID STORE %d +FLAGS (\\Draft)" % u[2])
    assert "UID %d" % u[2] in out[0]
    # Bad syntax.
    for bad in ("1 FROB (\\Seen)", "1 +FLAGS",
                "1 +FLAGS (\\Seen", "0 +FLAGS (\\Seen)"):
        t, _ = a.cmd("STORE " + bad)
        assert t.split()[1] == "BAD", (bad, t)
    a.ok("NOOP")


def modseqs(c, what="1:*"):
    res = {}
    for ln in c.ok("FETCH %s (UID MODSEQ)" % what):
        seq, it = imap_fetch_items(ln)
        res[seq] = int(it["MODSEQ"][0])
    return res


def test_unchangedsince_modified(pair):
    a, b, _ = pair
    ms = modseqs(a)
    base = max(ms.values())
    # b changes message 2 after base.
    b.ok("STORE 2 +FLAGS.SILENT ($ByB)")
    tagged, out = a.cmd("STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)"
                        % base)
    assert tagged.split()[1] == "OK", tagged
    assert "[MODIFIED 2]" in tagged, tagged
    flags = {}
    for ln in out:
        seq, it = imap_fetch_items(ln)
        if "FLAGS" in it:
            flags[seq] = it["FLAGS"]
        # With CONDSTORE on, every FETCH carries MODSEQ.
        assert "MODSEQ" in it, ln
    assert "\\Seen" in flags[1] and "\\Seen" in flags[3]
    assert 2 not in flags or "\\Seen" not in flags[2]
    out = a.ok("FETCH 2 FLAGS")
    assert "\\Seen" not in out[-1]
    # One STORE, one modseq.
    ms2 = modseqs(a)
    assert ms2[1] == ms2[3] > base


def test_store_that_changes_nothing(pair):
    """A STORE that changes no flag (FETCH BODY[]'s \\Seen on a message
    seen already, -FLAGS of a flag not set, UNCHANGEDSINCE on flags as
    they are) answers the flags as they are, takes no MODSEQ and tells
    the other session nothing; one that changes a flag in a set of
    which the rest changes nothing still does."""
    a, b, name = pair
    a.ok("STORE 1:4 +FLAGS.SILENT (\\Seen)")
    noop_until(b, lambda ln: " FETCH " in ln)
    ms = modseqs(a)
    hms = status(a, name)
    out = a.ok("STORE 1 +FLAGS (\\Seen)")
    it = imap_fetch_items(out[0])[1]
    assert [f.lower() for f in it["FLAGS"]] == ["\\seen"], out
    out = a.ok("STORE 2 -FLAGS ($Never)")
    assert "\\Seen" in out[0], out
    a.ok("FETCH 3 BODY[]")
    tagged, out = a.cmd("STORE 1:4 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)"
                        % max(ms.values()))
    assert tagged.split()[1] == "OK" and "MODIFIED" not in tagged, tagged
    assert modseqs(a) == ms
    assert status(a, name) == hms
    # A change event would have come by now.
    time.sleep(0.2 * TIME_SCALE)
    _, out = b.cmd("NOOP")
    assert not any(" FETCH " in ln for ln in out), out
    # One of the set changes: one MODSEQ for it, the others as they were.
    out = a.ok("STORE 1:4 +FLAGS ($Once)")
    ms2 = modseqs(a)
    assert ms2[1] > max(ms.values()) and len(set(ms2.values())) == 1
    a.ok("STORE 1:4 -FLAGS ($Once)")
    a.ok("STORE 2 +FLAGS.SILENT ($Once)")
    ms3 = modseqs(a)
    assert ms3[2] > ms3[1] and ms3[1] == ms3[3] == ms3[4]
    assert status(a, name) == ms3[2]
    noop_until(b, lambda ln: "$once" in ln.lower())


def status(c, name):
    out = c.ok("STATUS %s (HIGHESTMODSEQ)" % name)
    return int(re.search(r"HIGHESTMODSEQ (\d+)", out[0]).group(1))


def test_unchangedsince_zero(pair):
    """UNCHANGEDSINCE 0 always fails (RFC 7162 3.1.3)."""
    a, _, _ = pair
    tagged, out = a.cmd("STORE 1:2 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")
    assert tagged.split()[1] == "OK" and "[MODIFIED 1:2]" in tagged or \
        "[MODIFIED 1,2]" in tagged, tagged
    assert "\\Seen" not in " ".join(a.ok("FETCH 1:2 FLAGS"))


def test_changedsince(pair):
    a, b, _ = pair
    base = max(modseqs(a).values())
    b.ok("STORE 3 +FLAGS.SILENT ($Late)")
    b.ok("STORE 1 +FLAGS.SILENT ($Late)")
    tagged, out = a.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % base)
    assert tagged.split()[1] == "OK", tagged
    # (Unsolicited FETCHes for b's changes may come first.)
    seqs = sorted(set(imap_fetch_items(ln)[0] for ln in out
                      if re.match(r"\* \d+ FETCH", ln) and
                      "$late" in ln.lower()))
    assert seqs == [1, 3], out
    for ln in out:
        if re.match(r"\* \d+ FETCH", ln):
            assert "MODSEQ" in ln
    # Nothing changed since the top: nothing.
    top = max(modseqs(a).values())
    out = a.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % top)
    assert not any(re.match(r"\* \d+ FETCH", ln) for ln in out), out
    # SELECT ... (CONDSTORE) and STATUS HIGHESTMODSEQ agree.
    st = a.ok("STATUS INBOX (HIGHESTMODSEQ)")
    assert "HIGHESTMODSEQ" in st[0]


def test_qresync_select(pair, imap):
    a, b, name = pair
    c = imap_client(imap)
    c.ok("ENABLE QRESYNC")
    out = c.ok("SELECT " + name)
    uv = int(re.search(r"UIDVALIDITY (\d+)", " ".join(out)).group(1))
    hms = int(re.search(r"HIGHESTMODSEQ (\d+)", " ".join(out)).group(1))
    uids = uids_of(c)
    c.ok("UNSELECT")
    # While c is away: b expunges two, changes one, appends one.
    b.ok("STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    b.ok("UID STORE %d +FLAGS.SILENT ($Changed)" % uids[1])
    new, _ = append(b, name, msg("while away"))
    tag = c.tag()
    c.send("%s SELECT %s (QRESYNC (%d %d %d:%d))\r\n"
           % (tag, name, uv, hms, uids[0], uids[-1]))
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    van = [ln for ln in lines if ln.startswith("* VANISHED (EARLIER) ")]
    assert len(van) == 1, lines
    assert sorted(imap_expand(van[0].split()[-1])) == [uids[0], uids[2]]
    fetches = [imap_fetch_items(ln) for ln in lines
               if re.match(r"\* \d+ FETCH", ln)]
    changed = {int(it["UID"]) for _, it in fetches}
    # The changed message and the new one, with their MODSEQ.
    assert uids[1] in changed and new in changed, lines
    assert uids[3] not in changed
    assert imap_count(lines, "EXISTS") == 3
    # Not VANISHED for UIDs the client did not know: the known-uids
    # range limits it.
    c.ok("UNSELECT")
    out = c.ok("SELECT %s (QRESYNC (%d %d %d))" % (name, uv, hms, uids[0]))
    van = [ln for ln in out if ln.startswith("* VANISHED")]
    assert van == ["* VANISHED (EARLIER) %d" % uids[0]], out
    # A wrong UIDVALIDITY: a plain SELECT, no VANISHED.
    c.ok("UNSELECT")
    out = c.ok("SELECT %s (QRESYNC (%d %d))" % (name, uv + 1, hms))
    assert not any(ln.startswith("* VANISHED") for ln in out), out
    # QRESYNC without ENABLE is BAD.
    d = imap_client(imap)
    d.refused("SELECT %s (QRESYNC (%d %d))" % (name, uv, hms), "BAD")
    d.close()
    c.close()


def test_qresync_expunge_is_vanished_to_others(pair, imap):
    a, b, name = pair
    c = imap_client(imap)
    c.ok("ENABLE QRESYNC")
    c.ok("SELECT " + name)
    u = uids_of(c)
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    seen = noop_until(c, lambda ln: ln.startswith("* VANISHED"))
    assert "* VANISHED %d" % u[1] in seen, seen
    assert not any(ln.endswith(" EXPUNGE") for ln in seen)
    c.close()


def test_sequence_numbers_in_step(pair, imap):
    """Random APPEND, STORE and EXPUNGE in one session while another
    runs FETCH, STORE, SEARCH and NOOP and keeps its model from what it
    hears: its model is always the server's."""
    a, b, name = pair
    rng = random.Random(4)
    mb = Model(uids_of(b))
    for step in range(60):
        op = rng.choice(["append", "append", "delete", "expunge", "store"])
        n = len(uids_of(a))
        if op == "append" or n == 0:
            append(a, name, msg("step", step))
        elif op == "delete":
            k = rng.randint(1, n)
            a.ok("STORE %d +FLAGS.SILENT (\\Deleted)" % k)
        elif op == "expunge":
            a.ok("EXPUNGE")
        else:
            a.ok("STORE %d:* +FLAGS.SILENT ($S%d)" % (rng.randint(1, n),
                                                     step))
        bop = rng.choice(["noop", "fetch", "uidfetch", "search", "store"])
        if bop == "noop":
            mb.cmd(b, "NOOP")
        elif bop == "fetch" and mb.uids:
            k = rng.randint(1, len(mb.uids))
            tagged, out = mb.cmd(b, "FETCH %d:* (UID FLAGS)" % k)
        elif bop == "uidfetch":
            mb.cmd(b, "UID FETCH 1:* (FLAGS)")
        elif bop == "search":
            tagged, out = mb.cmd(b, "SEARCH ALL")
        elif mb.uids:
            mb.cmd(b, "STORE %d +FLAGS ($B%d)" % (rng.randint(
                1, len(mb.uids)), step))
    a.ok("NOOP")
    deadline = time.time() + 5
    while True:
        mb.cmd(b, "NOOP")
        mb.cmd(b, "FETCH 1:* (UID)") if mb.uids else None
        if mb.uids == uids_of(a) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert None not in mb.uids
    assert mb.uids == uids_of(b) == uids_of(a)


def test_copy_and_move_seen_by_watcher_of_destination(pair, imap):
    a, b, name = pair
    dst = name + "Dst"
    a.ok("CREATE " + dst)
    w = imap_client(imap, select=dst)
    mw = Model(uids_of(w))
    assert mw.uids == []
    a.ok("COPY 1:2 " + dst)
    noop_until(w, lambda ln: ln == "* 2 EXISTS", mw)
    # MOVE: the destination grows, the source's watcher hears EXPUNGE.
    mb = Model(uids_of(b))
    a.ok("MOVE 4 " + dst)
    noop_until(w, lambda ln: ln == "* 3 EXISTS", mw)
    noop_until(b, lambda ln: ln == "* 4 EXPUNGE", mb)
    mw.cmd(w, "FETCH 1:* (UID)")
    assert mw.uids == uids_of(w)
    assert mb.uids == uids_of(b)
    w.close()


def test_flag_through_another_mailbox(pair, imap):
    """Flags belong to the message: a flag set on it in one mailbox
    shows in every mailbox holding it, and a session that has the
    other mailbox selected is told (its view stays true)."""
    a, b, name = pair
    other = name + "Other"
    a.ok("CREATE " + other)
    a.ok("COPY 1 " + other)
    w = imap_client(imap, select=other)
    out = w.ok("FETCH 1 (FLAGS)")
    assert "$viaother" not in out[0].lower()
    a.ok("STORE 1 +FLAGS ($ViaOther)")
    out = w.ok("FETCH 1 (FLAGS)")
    assert "$viaother" in " ".join(out).lower(), out
    w.close()
    w = imap_client(imap, select=other)
    a.ok("STORE 1 -FLAGS ($ViaOther)")
    noop_until(w, lambda ln: ln.startswith("* 1 FETCH") and
               "$viaother" not in ln.lower())
    w.close()


def test_other_account_hears_nothing(pair, imap):
    """Change events go only to sessions of the account that changed:
    another account with a mailbox of the same name hears nothing."""
    a, b, name = pair
    imap.add_account("other-sync@example.test", "other-sync-1")
    o = imap_client(imap, "other-sync@example.test", "other-sync-1")
    o.ok("CREATE " + name)
    o.ok("SELECT " + name)
    a.ok("STORE 1:* +FLAGS (\\Seen)")
    append(a, name, msg("not for other"))
    noop_until(b, lambda ln: ln.endswith(" EXISTS"))
    time.sleep(0.2)
    _, out = o.cmd("NOOP")
    assert out == [], out
    o.send("i IDLE\r\n")
    assert o.line().startswith("+ ")
    a.ok("STORE 1:* -FLAGS (\\Seen)")
    time.sleep(0.5)
    o.send("DONE\r\n")
    lines = o.until("i")
    assert lines == ["i OK IDLE terminated"] or len(lines) == 1, lines
    o.close()


def test_fetch_changedsince_vanished(pair, imap):
    """UID FETCH ... (CHANGEDSINCE n VANISHED) after ENABLE QRESYNC
    tells the expunges since n within the set (RFC 7162 3.2.6)."""
    a, b, name = pair
    c = imap_client(imap)
    c.ok("ENABLE QRESYNC")
    c.ok("SELECT " + name)
    u = uids_of(c)
    base = max(modseqs(c).values())
    b.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)" % u[0])
    b.ok("UID EXPUNGE %d" % u[0])
    b.ok("UID STORE %d +FLAGS.SILENT ($Late)" % u[2])
    tagged, out = c.cmd("UID FETCH %d:* (FLAGS) (CHANGEDSINCE %d VANISHED)"
                        % (u[0], base))
    assert tagged.split()[1] == "OK", tagged
    assert "* VANISHED (EARLIER) %d" % u[0] in out, out
    got = {int(imap_fetch_items(ln)[1]["UID"]) for ln in out
           if re.match(r"\* \d+ FETCH", ln) and "$late" in ln.lower()}
    assert got == {u[2]}, out
    # VANISHED without QRESYNC enabled: BAD.
    a.refused("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % base, "BAD")
    # Nor in a non-UID FETCH.
    c.refused("FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % base, "BAD")
    c.close()


def test_concurrent_appends(imap):
    """Eight sessions APPEND to one mailbox at once while another
    watches: every message is there once, each APPENDUID distinct, and
    the watcher's view is the server's."""
    import threading
    c = imap_client(imap)
    c.ok("CREATE Concurrent")
    w = imap_client(imap, select="Concurrent")
    mw = Model([])
    results = []
    errors = []

    def worker(k):
        try:
            cl = imap_client(imap)
            for j in range(25):
                uid, _ = append(cl, "Concurrent", msg("conc %d %d" % (k, j),
                                                      j))
                results.append(uid)
            cl.close()
        except Exception as e:      # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        mw.cmd(w, "NOOP")
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(results) == 200 and len(set(results)) == 200
    deadline = time.time() + 5 * TIME_SCALE
    while len(mw.uids) < 200 and time.time() < deadline:
        mw.cmd(w, "NOOP")
    mw.cmd(w, "FETCH 1:* (UID)")
    assert mw.uids == sorted(results) == uids_of(w)
    out = c.ok("STATUS Concurrent (MESSAGES UIDNEXT)")
    assert "MESSAGES 200" in out[0], out
    c.close()
    w.close()


def test_close_heard_by_other(pair):
    """CLOSE expunges silently for its own session; others hear the
    EXPUNGEs."""
    a, b, _ = pair
    mb = Model(uids_of(b))
    a.ok("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    out = a.ok("CLOSE")
    assert not any("EXPUNGE" in ln for ln in out)
    deadline = time.time() + 5 * TIME_SCALE
    while len(mb.uids) > 2 and time.time() < deadline:
        mb.cmd(b, "NOOP")
        time.sleep(0.03)
    assert len(mb.uids) == 2 and mb.uids == uids_of(b)


@pytest.mark.parametrize("change", ["DELETE", "RENAME"])
def test_selected_mailbox_deleted_or_renamed(pair, imap, change):
    """Another session deletes or renames the mailbox this one has
    selected: every command still gets its tagged answer (or the
    session ends with BYE), and imapd serves others on."""
    a, b, name = pair
    a.ok("UNSELECT")
    if change == "DELETE":
        a.ok("DELETE " + name)
    else:
        a.ok("RENAME %s %sMoved" % (name, name))
    for cmd in ("NOOP", "FETCH 1:* (FLAGS)", "STORE 1 +FLAGS ($X)",
                "UID SEARCH ALL", "EXPUNGE", "NOOP"):
        try:
            tagged, out = b.cmd(cmd)
        except EOFError:
            break
        assert tagged.split()[1] in ("OK", "NO", "BAD"), (cmd, tagged)
        if any(ln.startswith("* BYE") for ln in out):
            break
    c = imap_client(imap, select="INBOX")
    c.ok("NOOP")
    c.close()
