"""The queue and its posternctl verbs: a message for another domain from
an authenticated user is held and shown, survives a restart, can be
scheduled and removed; a recipient that fails for good is bounced with
an RFC 3464 delivery status notification in the sender's INBOX."""
import email
import email.policy
import os
import re
import signal
import time
import uuid

import pytest

from conftest import QUEUED_RE, TIME_SCALE, SMTPClient, split_trace, \
    submit_session

PASSWORD = "Jasper-Curlew-8841-unlikely"
ALICE = "alice@example.test"
BOB = "bob@example.test"
HELD = "held: relaying to other domains is not built yet"


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory()
    p.add_account(ALICE, PASSWORD)
    p.add_account(BOB, PASSWORD)
    return p


def mark():
    return "<%s@client.example.net>" % uuid.uuid4().hex


def message(mid, frm=ALICE, to="someone@remote.example", body=b"body\r\n"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: queue test\r\n"
            "Message-ID: %s\r\n\r\n" % (frm, to, mid)).encode() + body


def submit_remote(p, rcpts, mid):
    s = submit_session(p, ALICE, PASSWORD)
    try:
        assert s.mail(ALICE)[0] == 250
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, (r, code, text)
        code, resp = s.data(message(mid))
        assert code == 250, resp
        m = QUEUED_RE.match(resp.decode())
        assert m, resp
        return m.group(1)
    finally:
        s.quit()


def queue_lines(p, qid):
    return [l for l in p.show_queue().splitlines() if qid in l]


def wait_queue(p, qid, present=True, timeout=5.0):
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        lines = queue_lines(p, qid)
        if bool(lines) == present or time.time() > deadline:
            return lines
        time.sleep(0.05)


# --- held remote mail -------------------------------------------------------


def test_remote_from_authenticated_user_is_held(pm):
    qid = submit_remote(pm, ["someone@remote.example"], mark())
    lines = wait_queue(pm, qid)
    assert lines, pm.show_queue()
    # One line per recipient: id, age, sender, recipient, status.
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 4)
    assert fields[0] == qid, lines
    assert fields[2:] == [ALICE, "someone@remote.example", HELD], lines
    assert pm.show_queue().splitlines()[0].split() == \
        ["ID", "AGE", "SENDER", "RECIPIENT", "STATUS"], pm.show_queue()
    # Scheduling it again changes nothing: held, never dropped.
    pm.ctl("queue", "schedule", qid, check=True)
    pm.ctl("queue", "schedule", "all", check=True)
    time.sleep(0.3)
    assert wait_queue(pm, qid), pm.show_queue()
    assert HELD in pm.show_queue()
    pm.ctl("queue", "remove", qid, check=True)


def test_mixed_local_and_remote(pm):
    """The local recipient is delivered; the remote one stays held."""
    mid = mark()
    qid = submit_remote(pm, ["someone@remote.example", BOB], mid)
    found = pm.find_messages(BOB, mid)
    assert len(found) == 1
    assert split_trace(found[0])[1] == message(mid)
    lines = wait_queue(pm, qid)
    assert lines, pm.show_queue()
    out = pm.show_queue()
    assert "someone@remote.example" in out and HELD in out, out
    assert BOB not in out, out
    pm.ctl("queue", "remove", qid, check=True)


def test_queue_remove(pm):
    qid = submit_remote(pm, ["gone@remote.example"], mark())
    assert wait_queue(pm, qid), pm.show_queue()
    r = pm.ctl("queue", "remove", qid)
    assert r.returncode == 0, r.stderr
    assert wait_queue(pm, qid, present=False) == [], pm.show_queue()
    assert "gone@remote.example" not in pm.show_queue()
    # Removed already: an error, one line.
    r = pm.ctl("queue", "remove", qid)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr
    assert qid in r.stderr or "no" in r.stderr.lower(), r.stderr


@pytest.mark.parametrize("arg", ["0123456789abcdef", "xyz", "12345",
                                 "0123456789abcdef0", ""])
def test_queue_remove_unknown_or_bad_id(pm, arg):
    r = pm.ctl("queue", "remove", arg)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr
    pm.ctl("show", "status", check=True)


@pytest.mark.parametrize("arg", ["0123456789abcdef", "xyz", "ALL"])
def test_queue_schedule_unknown_or_bad_id(pm, arg):
    r = pm.ctl("queue", "schedule", arg)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert len(r.stderr.splitlines()) == 1, r.stderr


def test_queue_verbs_need_their_arguments(pm):
    for args in (["queue", "remove"], ["queue", "schedule"],
                 ["queue", "remove", "a", "b"], ["show", "queue", "x"]):
        r = pm.ctl(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)


def test_unauthenticated_remote_is_not_queued(pm):
    before = pm.show_queue()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % ALICE)[0] == 250
        assert c.cmd("RCPT TO:<intruder@remote.example>")[0] == 550
    assert "intruder@remote.example" not in pm.show_queue()
    assert pm.show_queue() == before


def test_held_entry_survives_restart(postern_factory):
    p = postern_factory()
    p.add_account(ALICE, PASSWORD)
    qid = submit_remote(p, ["later@remote.example"], mark())
    assert wait_queue(p, qid), p.show_queue()
    p.stop()
    p.restart()
    lines = wait_queue(p, qid)
    assert lines, p.show_queue()
    assert "later@remote.example" in p.show_queue()
    assert HELD in p.show_queue()
    # And after a kill too.
    p.kill_all()
    p.restart()
    assert wait_queue(p, qid), p.show_queue()
    p.ctl("queue", "remove", qid, check=True)
    p.stop()
    p.restart()
    assert wait_queue(p, qid, present=False) == [], p.show_queue()


# --- bounces -------------------------------------------------------------------


def queue_stopped(p):
    """SIGSTOP the queue role: storaged still accepts and commits, but
    nothing is delivered until it goes on."""
    pid = p.role_pids()["queue"]
    os.kill(pid, signal.SIGSTOP)
    return pid


def accept_for_doomed(p, mid, rcpt, mail_from=ALICE, params="",
                      rparams="", body=b"original body\r\n"):
    data = message(mid, frm=mail_from, to=rcpt, body=body)
    with SMTPClient(p.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<%s>%s" % (mail_from, params))
        assert code == 250, (code, text)
        code, text = c.cmd("RCPT TO:<%s>%s" % (rcpt, rparams))
        assert code == 250, (code, text)
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert code == 250, (code, text)
        return QUEUED_RE.match(text[-1]).group(1), data


def bounce_setup(p, mid, doomed, **kw):
    """Accepts a message for the account doomed with delivery stopped,
    deletes the account, lets delivery go on: the recipient fails for
    good."""
    p.add_account(doomed, PASSWORD)
    pid = queue_stopped(p)
    try:
        qid, data = accept_for_doomed(p, mid, doomed, **kw)
        p.ctl("account", "del", doomed, check=True)
    finally:
        os.kill(pid, signal.SIGCONT)
    return qid, data


def dsn_parts(raw):
    added, rest = split_trace(raw)
    msg = email.message_from_bytes(rest, policy=email.policy.compat32)
    return added, msg


def test_permanent_failure_bounces_to_sender(pm):
    mid = mark()
    doomed = "doomed1@example.test"
    qid, data = bounce_setup(pm, mid, doomed,
                             params=" RET=FULL ENVID=env-314",
                             rparams=" ORCPT=rfc822;list@example.test")
    found = pm.find_messages(ALICE, mid, timeout=15)
    assert len(found) == 1, "no bounce in the sender's INBOX"
    raw = found[0]
    added, msg = dsn_parts(raw)
    assert added["return-path"] == ["<>"], added
    assert msg["From"] and "MAILER-DAEMON@mail.example.test" in msg["From"]
    assert msg["To"] and ALICE in msg["To"]
    assert msg["Auto-Submitted"] and \
        msg["Auto-Submitted"].startswith("auto-replied")
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = msg.get_payload()
    assert len(parts) >= 2, parts
    assert parts[0].get_content_type() == "text/plain"
    assert doomed in parts[0].get_payload(decode=True).decode()
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status"
    # message/delivery-status: per-message fields, a blank line, then
    # per-recipient fields.
    if status.is_multipart():
        text = "\n".join(b.as_string() for b in status.get_payload())
    else:
        text = status.get_payload(decode=True).decode()
    assert re.search(r"(?im)^Reporting-MTA: dns; ?mail\.example\.test",
                     text), text
    assert re.search(r"(?im)^Original-Envelope-Id: env-314", text), text
    assert re.search(r"(?im)^Final-Recipient: rfc822; ?%s" % doomed,
                     text), text
    assert re.search(r"(?im)^Original-Recipient: rfc822; ?"
                     r"list@example\.test", text), text
    assert re.search(r"(?im)^Arrival-Date: \S", text), text
    assert re.search(r"(?im)^Action: failed", text), text
    assert re.search(r"(?im)^Status: 5\.\d+\.\d+", text), text
    # RET=FULL: the whole original message comes back.
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[2].get_content_type() == "message/rfc822"
    assert b"original body" in raw
    assert mid.encode() in raw
    # The failed entry is gone from the queue; the bounce was delivered.
    assert wait_queue(pm, qid, present=False) == [], pm.show_queue()


def test_bounce_with_ret_hdrs_has_no_body(pm):
    mid = mark()
    doomed = "doomed2@example.test"
    bounce_setup(pm, mid, doomed, params=" RET=HDRS",
                 body=b"secret body text\r\n")
    found = pm.find_messages(ALICE, mid, timeout=15)
    assert len(found) == 1
    added, msg = dsn_parts(found[0])
    parts = msg.get_payload()
    assert parts[-1].get_content_type() == "text/rfc822-headers", \
        [p.get_content_type() for p in parts]
    assert b"secret body text" not in found[0]


def test_no_bounce_for_null_sender_or_notify_never(pm):
    # Both fail for good; neither may produce a bounce.  A third,
    # ordinary one shows that bounces run.
    mid_null, mid_never, mid_ok = mark(), mark(), mark()
    for d in ("doomed3@example.test", "doomed4@example.test",
              "doomed5@example.test"):
        pm.add_account(d, PASSWORD)
    pid = queue_stopped(pm)
    try:
        accept_for_doomed(pm, mid_null, "doomed3@example.test",
                          mail_from="")
        accept_for_doomed(pm, mid_never, "doomed4@example.test",
                          rparams=" NOTIFY=NEVER")
        accept_for_doomed(pm, mid_ok, "doomed5@example.test",
                          rparams=" NOTIFY=FAILURE")
        for d in ("doomed3@example.test", "doomed4@example.test",
                  "doomed5@example.test"):
            pm.ctl("account", "del", d, check=True)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert len(pm.find_messages(ALICE, mid_ok, timeout=15)) == 1
    time.sleep(0.5)
    assert pm.find_messages(ALICE, mid_never, timeout=0) == []
    # A null sender cannot be answered at all: no DSN anywhere.
    for who in (ALICE, BOB):
        assert pm.find_messages(who, mid_null, timeout=0) == []


def test_bounce_to_a_remote_sender_is_held(pm):
    """The DSN is queued like any other message: to a remote sender it
    waits, held, in the queue."""
    mid = mark()
    doomed = "doomed6@example.test"
    bounce_setup(pm, mid, doomed, mail_from="far@remote.example")
    deadline = time.time() + 15 * TIME_SCALE
    def held_bounce(out):
        # The original shows far@ as its sender until it is bounced.
        return any("far@remote.example" in line and HELD in line
                   for line in out.splitlines())
    while time.time() < deadline:
        out = pm.show_queue()
        if held_bounce(out):
            break
        time.sleep(0.1)
    assert held_bounce(out), out
    for line in out.splitlines():
        m = re.search(r"\b([0-9a-f]{16})\b", line)
        if m and "far@remote.example" in line:
            pm.ctl("queue", "remove", m.group(1))
