"""The queue's retries: a delivery that fails for now is shown as
deferred with its attempts and next try, persisted across a restart,
retried at once by queue schedule, delivered once it can be; one that
is still failing five days after acceptance is bounced.

A temporary failure is made by taking the message's blob away while
the queue role is stopped: storaged then cannot read the message and
answers TEMPFAIL.  The blob is back before any restart, since storaged
drops at start-up an entry whose blob never reached the disk."""
import glob
import os
import re
import signal
import sqlite3
import time
import uuid

from conftest import QUEUED_RE, TIME_SCALE, SMTPClient, split_trace

PASSWORD = "Garnet-Osprey-4417-unlikely"
ALICE = "alice@example.test"
DEFERRED = re.compile(r"deferred: attempts (\d+), next in (\S+), (.*)$")


def mark():
    return "<%s@client.example.net>" % uuid.uuid4().hex


def send(p, mid, mail_from=ALICE, rcpt=ALICE):
    data = ("From: <%s>\r\nTo: <%s>\r\nSubject: retry test\r\n"
            "Message-ID: %s\r\n\r\nretry body\r\n"
            % (mail_from, rcpt, mid)).encode()
    with SMTPClient(p.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % mail_from)[0] == 250
        assert c.cmd("RCPT TO:<%s>" % rcpt)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert code == 250, (code, text)
        return QUEUED_RE.match(text[-1]).group(1), data


def deferred_message(p, mid):
    """Accepts a message whose first delivery fails for now; returns its
    queue id, its bytes and the blobs taken away (path -> bytes)."""
    pid = p.role_pids()["queue"]
    os.kill(pid, signal.SIGSTOP)
    try:
        before = set(glob.glob(os.path.join(p.statedir, "blobs", "*")))
        qid, data = send(p, mid)
        taken = {}
        for path in set(glob.glob(os.path.join(p.statedir, "blobs",
                                               "*"))) - before:
            with open(path, "rb") as f:
                taken[path] = (f.read(), os.stat(path))
            os.unlink(path)
        assert taken, "no new blob"
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_status(p, qid, lambda s: DEFERRED.search(s))
    return qid, data, taken


def put_back(taken):
    for path, (data, st) in taken.items():
        with open(path, "wb") as f:
            f.write(data)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, st.st_mode & 0o7777)


def status(p, qid):
    """The status column of the message's one line, or None."""
    for line in p.show_queue().splitlines()[1:]:
        if line.startswith(qid):
            return re.split(r"\s{2,}", line, maxsplit=4)[4]
    return None


def wait_status(p, qid, pred, timeout=10.0):
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        s = status(p, qid)
        if pred(s) or time.time() > deadline:
            assert pred(s), (s, p.show_queue())
            return s
        time.sleep(0.05)


def attempts(s):
    m = DEFERRED.search(s or "")
    return int(m.group(1)) if m else 0


def stored_rcpt(p, qid):
    db = sqlite3.connect(os.path.join(p.statedir, "postern.db"))
    try:
        return db.execute("SELECT attempts, next_attempt, last_error "
                          "FROM queue_rcpts WHERE queue_id = ?",
                          (int(qid, 16),)).fetchall()
    finally:
        db.close()


def test_deferred_shown_persisted_and_retried(postern):
    p = postern
    p.add_account(ALICE, PASSWORD)
    mid = mark()
    qid, data, taken = deferred_message(p, mid)
    s = status(p, qid)
    n, nxt, why = DEFERRED.search(s).groups()
    assert n == "1", s
    assert nxt in ("59s", "1m"), s
    assert why, s
    rows = stored_rcpt(p, qid)
    assert len(rows) == 1 and rows[0][0] == 1, rows
    assert abs(rows[0][1] - (time.time() + 60)) < 10, rows
    assert rows[0][2] == why, rows
    assert "deferred: " in p.logtext()

    # queue schedule tries again at once; the next wait is 5 minutes.
    p.ctl("queue", "schedule", qid, check=True)
    s = wait_status(p, qid, lambda s: attempts(s) == 2)
    assert DEFERRED.search(s).group(2) in ("4m", "5m"), s

    # The schedule survives a restart: not due for minutes, it waits.
    put_back(taken)
    p.stop()
    p.restart()
    s = wait_status(p, qid, lambda s: attempts(s) == 2)
    assert DEFERRED.search(s).group(2) in ("4m", "5m"), s
    time.sleep(0.5)
    assert attempts(status(p, qid)) == 2

    # The message can be read again: the next attempt delivers it.
    p.ctl("queue", "schedule", "all", check=True)
    wait_status(p, qid, lambda s: s is None)
    found = p.find_messages(ALICE, mid)
    assert len(found) == 1
    assert split_trace(found[0])[1] == data
    assert re.search(r"%s to %s: delivered" % (qid, re.escape(ALICE)),
                     p.logtext())


def test_expired_is_bounced(postern):
    p = postern
    p.add_account(ALICE, PASSWORD)
    mid = mark()
    qid, data, taken = deferred_message(p, mid)
    put_back(taken)
    p.stop()
    # Accepted six days ago, as far as the store knows.
    db = sqlite3.connect(os.path.join(p.statedir, "postern.db"))
    db.execute("UPDATE queue SET created = created - 6 * 86400 "
               "WHERE id = ?", (int(qid, 16),))
    db.commit()
    db.close()
    p.restart()
    s = wait_status(p, qid, lambda s: attempts(s) == 1)
    line = [l for l in p.show_queue().splitlines() if l.startswith(qid)][0]
    assert re.search(r"\s6d0h\s", line), line
    for path in taken:
        os.unlink(path)
    p.ctl("queue", "schedule", qid, check=True)
    wait_status(p, qid, lambda s: s is None)
    assert "%s to %s: bounced: delivery time expired" % (qid, ALICE) in \
        p.logtext()
    # The report goes to the sender, alice, from the null sender.
    found = p.find_messages(ALICE, "delivery time expired", timeout=15)
    assert len(found) == 1, "no report in the sender's INBOX"
    added, rest = split_trace(found[0])
    assert added["return-path"] == ["<>"], added


def test_queue_lines_oldest_first(postern):
    p = postern
    p.add_account(ALICE, PASSWORD)
    ids = []
    for _ in range(3):
        qid, _, _ = deferred_message(p, mark())
        ids.append(qid)
        time.sleep(1.1)
    out = p.show_queue().splitlines()
    assert out[0].split() == ["ID", "AGE", "SENDER", "RECIPIENT", "STATUS"]
    assert [l.split()[0] for l in out[1:]] == ids, out
    # The columns line up under the header.
    col = out[0].index("STATUS")
    for l in out[1:]:
        assert l[col:].startswith("deferred: "), out
