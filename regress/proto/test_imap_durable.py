"""UIDs and MODSEQs are never handed out twice, even across a crash
(RFC 9051 2.3.1.1, RFC 7162 3.1).  Sessions see a delivery a few
milliseconds before its flush, so after a start that follows an unclean
stop every mailbox's UIDNEXT and every account's MODSEQ has moved
forward past anything a lost commit could have shown (posternd.8,
FILES: clean-shutdown); after a clean stop nothing jumps."""
import os
import re
import struct
import time

from conftest import (IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER, IMAPClient,
                      imap_deliver, imap_login)

# storaged's STORE_LAZY_ROWS_MAX: what the counters move by.
BUMP = 16384
MARKER = "clean-shutdown"


def msg(subject):
    return ("From: Bob <bob@example.net>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s.%f@example.net>\r\n\r\nbody\r\n"
            % (IMAP_USER, subject, re.sub(r"\W", "", subject), time.time()))


def status(p, mailbox="INBOX"):
    m = imap_login(p)
    typ, data = m.status(mailbox, "(UIDNEXT UIDVALIDITY HIGHESTMODSEQ)")
    assert typ == "OK", data
    m.logout()
    item = data[0].decode()
    return {k: int(v) for k, v in
            re.findall(r"(UIDNEXT|UIDVALIDITY|HIGHESTMODSEQ) (\d+)", item)}


def uids(p, mailbox="INBOX"):
    m = imap_login(p)
    m.select(mailbox)
    typ, data = m.uid("SEARCH", "ALL")
    assert typ == "OK", data
    m.logout()
    return [int(u) for u in data[0].split()]


def append(p, mailbox, subject):
    """The UID APPENDUID names."""
    m = imap_login(p)
    typ, data = m.append(mailbox, None, None, msg(subject).encode())
    assert typ == "OK", data
    m.logout()
    found = re.search(rb"APPENDUID \d+ (\d+)", data[0])
    assert found, data
    return int(found.group(1))


def active(postern_factory):
    """A daemon with the test account after deliveries, an APPEND and a
    flag change: lazy commits all, each seen by a session right after."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    imap_deliver(p, [msg("delivered %d" % i) for i in range(3)])
    append(p, "Archive", "appended")
    m = imap_login(p)
    m.select("INBOX")
    typ, data = m.uid("STORE", "1:*", "+FLAGS", "(\\Flagged)")
    assert typ == "OK", data
    m.logout()
    return p


def test_kill_moves_uidnext_and_modseq_forward(postern_factory):
    p = active(postern_factory)
    before = status(p)
    archive = status(p, "Archive")
    seen = uids(p) + uids(p, "Archive")
    assert len(seen) == 4 and before["UIDNEXT"] == 4, (seen, before)
    # The first lazy commit took the marker away.
    assert not os.path.exists(os.path.join(p.statedir, MARKER))
    # Idle, then the whole daemon dies at once.
    time.sleep(0.5)
    p.kill_all()
    since = len(p.logtext())
    p.restart()
    assert "did not stop cleanly" in p.logtext()[since:]
    after = status(p)
    assert after["UIDVALIDITY"] == before["UIDVALIDITY"]
    assert after["UIDNEXT"] >= before["UIDNEXT"] + BUMP, (before, after)
    assert after["HIGHESTMODSEQ"] >= before["HIGHESTMODSEQ"] + BUMP, \
        (before, after)
    # Every mailbox, not only the one delivered to.
    archive_after = status(p, "Archive")
    assert archive_after["UIDNEXT"] >= archive["UIDNEXT"] + BUMP
    assert archive_after["HIGHESTMODSEQ"] > archive["HIGHESTMODSEQ"]
    assert status(p, "Drafts")["UIDNEXT"] > BUMP
    # Nothing was lost, and what comes next is above all seen so far.
    assert uids(p) == seen[:3]
    uid = append(p, "INBOX", "after the crash")
    assert uid >= after["UIDNEXT"] and uid > max(seen), (uid, seen)
    imap_deliver(p, [msg("delivered after the crash")])
    new = [u for u in uids(p) if u not in seen]
    assert len(new) == 2 and min(new) > max(seen), (new, seen)
    m = imap_login(p)
    m.select("INBOX")
    typ, data = m.uid("FETCH", "%d" % uid, "(MODSEQ)")
    assert typ == "OK", data
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    assert modseq > before["HIGHESTMODSEQ"] + BUMP, (modseq, before)
    m.logout()


def test_clean_stop_keeps_counters(postern_factory):
    p = active(postern_factory)
    before = status(p)
    p.stop()
    assert os.path.exists(os.path.join(p.statedir, MARKER))
    since = len(p.logtext())
    p.restart()
    assert "did not stop cleanly" not in p.logtext()[since:]
    assert status(p) == before
    assert append(p, "INBOX", "after the restart") == before["UIDNEXT"]


def test_kill_after_start_without_lazy_commits(postern_factory):
    """A run that only read leaves the marker: a daemon that dies
    soon after each start (a crash loop) does not use UIDs up, while
    one that delivered anything does move them forward."""
    p = active(postern_factory)
    p.stop()
    p.restart()
    before = status(p)
    uids(p)
    p.kill_all()
    p.restart()
    assert status(p) == before
    imap_deliver(p, [msg("one more")])
    delivered = status(p)
    p.kill_all()
    p.restart()
    assert status(p)["UIDNEXT"] >= delivered["UIDNEXT"] + BUMP


def test_state_file_not_a_marker_refused(postern_factory):
    """A marker that is not a plain file (a symlink, say) stops
    storaged at start rather than being trusted."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    p.stop()
    path = os.path.join(p.statedir, MARKER)
    os.unlink(path)
    os.symlink("/etc/passwd", path)
    p.start(wait=False)
    assert p.wait_exit(20) is not None
    assert "clean-shutdown is not a file" in p.logtext()


def wal_commits(path):
    """The end offset of each commit in a WAL file, and each frame as
    (offset, page bytes): the frames whose salts match the header."""
    with open(path, "rb") as f:
        data = f.read()
    assert len(data) >= 32 and data[:4] in (b"\x37\x7f\x06\x82",
                                            b"\x37\x7f\x06\x83"), path
    page = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    ends, frames = [], []
    off = 32
    while off + 24 + page <= len(data):
        head = data[off:off + 24]
        if head[8:16] != salts:
            break
        frames.append((off, data[off + 24:off + 24 + page]))
        if struct.unpack(">I", head[4:8])[0] != 0:
            ends.append(off + 24 + page)
        off += 24 + page
    return ends, frames


def test_lost_delivery_does_not_give_its_uid_again(postern_factory):
    """The crash the marker is for: a delivery that a session saw is
    taken back because the machine died before its flush (here: the
    daemon SIGKILLed and the WAL cut back to the commit before it, as a
    power cut would leave it).  The queue delivers it again, and it
    and everything after get UIDs and MODSEQs above any seen before."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    imap_deliver(p, [msg("kept %d" % i) for i in range(2)])
    lost = "lost-in-the-crash-%d" % os.getpid()
    imap_deliver(p, [msg(lost)])
    seen = uids(p)
    before = status(p)
    assert len(seen) == 3, seen
    p.kill_all()
    wal = os.path.join(p.statedir, "postern.db-wal")
    ends, frames = wal_commits(wal)
    first = [off for off, page in frames if lost.encode() in page]
    assert first, "the delivery is not in the WAL any more"
    keep = [e for e in ends if e <= first[0]]
    assert keep, ends
    with open(wal, "r+b") as f:
        f.truncate(keep[-1])
    shm = os.path.join(p.statedir, "postern.db-shm")
    if os.path.exists(shm):
        os.unlink(shm)
    p.restart()
    # Delivered again by the queue, under a UID never seen.
    msgs = p.find_messages(IMAP_USER, lost, timeout=30)
    assert len(msgs) == 1
    after = uids(p)
    assert after[:2] == seen[:2], (seen, after)
    assert len(after) == 3 and after[2] > max(seen), (seen, after)
    assert after[2] >= before["UIDNEXT"] + BUMP - 1, (before, after)
    now = status(p)
    assert now["HIGHESTMODSEQ"] > before["HIGHESTMODSEQ"], (before, now)
    m = imap_login(p)
    m.select("INBOX")
    typ, data = m.uid("FETCH", "%d" % after[2], "(MODSEQ)")
    assert typ == "OK", data
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    assert modseq > before["HIGHESTMODSEQ"], (modseq, before)
    m.logout()


def test_many_rows_in_one_commit_flushed_at_once(postern_factory):
    """One command that writes more rows than the bound lets wait for a
    flush (a STORE on 8,000 messages) has its commit flushed before any
    other session is served, which keeps the bound the restart relies
    on."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = IMAPClient(p.ports["imaps"], tls=True, timeout=120)
    c.login()
    body = b"Subject: bulk\r\n\r\nx\r\n"
    c.send(b"a APPEND INBOX" + (b" {%d+}\r\n" % len(body) + body) * 500 +
           b"\r\n")
    tagged = c.until("a")[-1]
    assert tagged.startswith("a OK"), tagged
    c.ok("SELECT INBOX")
    said = []
    for i in range(4):
        said += c.ok("UID COPY 1:* INBOX")
    said += c.ok("NOOP")
    exists = [l for l in said if l.endswith(" EXISTS")]
    assert exists and exists[-1] == "* 8000 EXISTS", exists
    since = len(p.logtext())
    c.ok("UID STORE 1:* +FLAGS.SILENT (\\Flagged)")
    assert "flushed at once past %d rows" % BUMP in p.logtext()[since:]
    c.close()
