"""Durable acceptance: a 250 means the message is on disk.  200 messages
over 20 concurrent sessions, the whole daemon SIGKILLed right after the
last 250, restarted: every acknowledged message is in each of its
mailboxes exactly once.  A kill during DATA leaves no partial message
and no 250."""
import base64
import os
import re
import signal
import threading
import time
import uuid

import pytest

from conftest import QUEUED_RE, TIME_SCALE, SMTPClient, split_trace

PASSWORD = "Onyx-Harrier-3390-unlikely"
USERS = ["u%d@example.test" % i for i in range(8)]
SESSIONS = 20
PER_SESSION = 10


# One attachment shared by every fourth message: the store keeps it
# once, as a blob of its own, so a kill also falls among those.
SHARED = base64.encodebytes(bytes(range(256)) * 96).replace(b"\n", b"\r\n")


def queue_left(p, timeout=5.0):
    """show queue once the entries of what was delivered are gone: the
    queue drops an entry just after storaged has stored its message,
    so a message can be found a moment before its entry leaves."""
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        out = p.show_queue()
        if not re.search(r"[0-9a-f]{16}", out) or time.time() > deadline:
            return out
        time.sleep(0.05)


def message(mid, i, size):
    head = ("From: <sender@example.net>\r\nSubject: durable %d\r\n"
            "Message-ID: %s\r\n" % (i, mid)).encode()
    line = (b"%06d " % i) + b"x" * 64 + b"\r\n"
    text = line * (size // len(line) + 1)
    if i % 4 != 1:
        return head + b"\r\n" + text
    return (head + b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=sep\r\n\r\n"
            b"--sep\r\nContent-Type: text/plain\r\n\r\n" + text +
            b"--sep\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + SHARED +
            b"--sep--\r\n")


def mids_in(p, account):
    """Message-ID -> how many times it is in the account's INBOX."""
    count = {}
    for uid, raw in p.fetch_all(account).items():
        added, rest = split_trace(raw)
        m = re.search(rb"(?m)^Message-ID: (<[^>]+>)\r?$", rest)
        assert m, raw[:300]
        key = m.group(1).decode()
        count[key] = count.get(key, 0) + 1
    return count


def wait_all(p, expect, timeout):
    """Waits until every account holds at least its expected messages;
    returns account -> {mid: count}."""
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        got = {a: mids_in(p, a) for a in expect}
        missing = sum(1 for a in expect for mid in expect[a]
                      if mid not in got[a])
        if missing == 0 or time.time() > deadline:
            return got
        time.sleep(0.2)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def spool_files(p):
    spool = os.path.join(p.statedir, "spool")
    if not os.path.isdir(spool):
        return []
    return os.listdir(spool)


@pytest.mark.parametrize("queue", ["delivering", "stopped"])
def test_kill_after_last_250_loses_and_repeats_nothing(postern_factory,
                                                      queue):
    """With queue delivering, the kill falls among deliveries under way;
    with queue stopped (SIGSTOP) nothing is delivered before the kill,
    so every message must come back from the stored queue."""
    p = postern_factory(listeners=["smtp"])
    for u in USERS:
        p.add_account(u, PASSWORD)
    if queue == "stopped":
        os.kill(p.role_pids()["queue"], signal.SIGSTOP)
    acked = {}          # mid -> (queue id, [recipients], bytes)
    lock = threading.Lock()
    errors = []
    go = threading.Event()
    killed = []

    def session(n):
        try:
            go.wait()
            with SMTPClient(p.ports["smtp"], timeout=60) as c:
                c.ehlo()
                for j in range(PER_SESSION):
                    i = n * PER_SESSION + j
                    mid = "<durable-%d-%s@client>" % (i, uuid.uuid4().hex)
                    # One, two or three recipients; 1 KB to 24 KB.
                    rcpts = [USERS[(i + k) % len(USERS)]
                             for k in range(1 + i % 3)]
                    data = message(mid, i, 1024 * (1 + (i * 7) % 24))
                    assert c.cmd("MAIL FROM:<sender@example.net>")[0] \
                        == 250
                    for r in rcpts:
                        assert c.cmd("RCPT TO:<%s>" % r)[0] == 250
                    assert c.cmd("DATA")[0] == 354
                    c.send(data + b".\r\n")
                    code, text = c.reply()
                    assert code == 250, (code, text)
                    m = QUEUED_RE.match(text[-1])
                    assert m, text
                    with lock:
                        acked[mid] = (m.group(1), rcpts, data)
                        if len(acked) == SESSIONS * PER_SESSION:
                            # Right after the last 250: kill it all.
                            killed.extend(p.kill_all())
        except Exception as e:
            errors.append("session %d: %r" % (n, e))

    threads = [threading.Thread(target=session, args=(n,))
               for n in range(SESSIONS)]
    for t in threads:
        t.start()
    go.set()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert len(acked) == SESSIONS * PER_SESSION
    assert p.proc.poll() is not None
    # Every process of the daemon died with it, none left to finish.
    assert len(killed) >= 3, killed
    for pid in killed:
        assert not alive(pid), pid
    ids = [q for q, _, _ in acked.values()]
    assert len(set(ids)) == len(ids), "queue ids repeat"

    since = len(p.logtext())
    p.restart()
    if queue == "stopped":
        # All of them came back from the store, none had been delivered.
        p.wait_log("queue: %d messages loaded from the store"
                   % len(acked), since=since)
    expect = {}
    for mid, (_, rcpts, _) in acked.items():
        for r in rcpts:
            expect.setdefault(r, set()).add(mid)
    got = wait_all(p, expect, 60)
    problems = []
    for a in USERS:
        for mid in expect.get(a, ()):
            n = got[a].get(mid, 0)
            if n != 1:
                problems.append("%s has %s %d times" % (a, mid, n))
        for mid, n in got[a].items():
            if mid not in expect.get(a, ()):
                problems.append("%s has unexpected %s" % (a, mid))
    assert not problems, problems[:20]
    # Byte for byte, for every copy.
    for a in USERS:
        for raw in p.fetch_all(a).values():
            added, rest = split_trace(raw)
            mid = re.search(rb"(?m)^Message-ID: (<[^>]+>)", rest).group(1)
            assert rest == acked[mid.decode()][2]
    # Nothing is left to deliver, and the spool was swept.
    left = queue_left(p)
    assert not re.search(r"[0-9a-f]{16}", left), left
    assert spool_files(p) == []


@pytest.mark.parametrize("stage", ["mid-body", "before-dot", "dot-no-crlf"])
def test_kill_during_data(postern_factory, stage):
    p = postern_factory(listeners=["smtp"])
    p.add_account(USERS[0], PASSWORD)
    mid = "<partial-%s@client>" % uuid.uuid4().hex
    data = message(mid, 0, 64 * 1024)
    with SMTPClient(p.ports["smtp"], timeout=10) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % USERS[0])[0] == 250
        assert c.cmd("DATA")[0] == 354
        if stage == "mid-body":
            c.send(data[:len(data) // 2])
        elif stage == "before-dot":
            c.send(data)
        else:
            c.send(data + b".")
        # Let smtpd write what it has into the spool file.
        time.sleep(0.3)
        assert spool_files(p), "no spool file while DATA is under way"
        p.kill_all()
        # No 250: the connection just ends.
        with pytest.raises((EOFError, ConnectionError)):
            c.reply()
    p.restart()
    # A message after the restart, to know delivery runs.
    later = "<after-%s@client>" % uuid.uuid4().hex
    with SMTPClient(p.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % USERS[0])[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(later, 1, 100) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(p.find_messages(USERS[0], later)) == 1
    assert p.find_messages(USERS[0], mid, timeout=0) == []
    assert p.find_messages(USERS[0], b"000000 xxxx", timeout=0) == []
    left = queue_left(p)
    assert not re.search(r"[0-9a-f]{16}", left), left
    assert spool_files(p) == []


def test_kill_between_end_of_data_and_reply(postern_factory):
    """Killed while the 250 may or may not be on its way: the message is
    then in the mailbox at most once, and once if the 250 arrived."""
    p = postern_factory(listeners=["smtp"])
    p.add_account(USERS[0], PASSWORD)
    mid = "<racy-%s@client>" % uuid.uuid4().hex
    data = message(mid, 0, 2048)
    got_250 = False
    with SMTPClient(p.ports["smtp"], timeout=10) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % USERS[0])[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        p.kill_all()
        try:
            got_250 = c.reply()[0] == 250
        except (EOFError, ConnectionError):
            pass
    p.restart()
    later = "<after-%s@client>" % uuid.uuid4().hex
    with SMTPClient(p.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % USERS[0])[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(later, 1, 100) + b".\r\n")
        assert c.reply()[0] == 250
    assert len(p.find_messages(USERS[0], later)) == 1
    # Give a recovered entry its chance to be delivered too.
    found = p.find_messages(USERS[0], mid, timeout=3 if not got_250 else 10)
    assert len(found) <= 1, len(found)
    if got_250:
        assert len(found) == 1
    if found:
        assert split_trace(found[0])[1] == data
