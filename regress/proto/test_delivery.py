"""Local delivery and bounces, as storaged files them: one copy per
account however many of the message's recipients reach it, one blob for
every copy, the rows beside it (placement, change log, full-text
index), and RFC 3464 reports for what fails for good, read back with
posternctl.

One daemon serves the module; every test marks its messages with a
Message-ID of its own."""
import os
import re
import signal
import smtplib
import sqlite3
import time
import uuid

import pytest

from conftest import TIME_SCALE, header_value, split_trace

PASSWORD = "Topaz-Lantern-9135-unlikely"
HOST = "mail.example.test"


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory()
    for user in ("alice", "bob", "carol"):
        p.add_account("%s@example.test" % user, PASSWORD)
    p.ctl("alias", "add", "team@example.test", "alice@example.test",
          check=True)
    p.ctl("alias", "add", "team@example.test", "bob@example.test",
          check=True)
    return p


def msgid():
    return "<%s@client.example.net>" % uuid.uuid4().hex


def message(mid, subject="test", body=b"Hello.\r\n", extra=b"",
            to=b"alice@example.test"):
    return (b"From: Sender <sender@example.net>\r\n"
            b"To: " + to + b"\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: " + mid.encode() + b"\r\n" + extra +
            b"\r\n" + body)


def send(p, sender, rcpts, data, mail_options=(), rcpt_options=()):
    s = smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30 * TIME_SCALE)
    try:
        s.ehlo("client.example.net")
        refused = s.sendmail(sender, rcpts, data, list(mail_options),
                             list(rcpt_options))
        assert not refused, refused
    finally:
        s.quit()


def db(p):
    con = sqlite3.connect("file:%s?mode=ro" %
                          os.path.join(p.statedir, "postern.db"), uri=True)
    con.execute("PRAGMA busy_timeout = 5000")
    return con


def wait_queue_empty(p, timeout=10.0):
    deadline = time.time() + timeout * TIME_SCALE
    while time.time() < deadline:
        con = db(p)
        n = con.execute("SELECT count(*) FROM queue").fetchone()[0]
        con.close()
        if n == 0:
            return
        time.sleep(0.05)
    raise AssertionError("queue still holds entries:\n" + p.show_queue())


def test_delivered_byte_for_byte(pm):
    mid = msgid()
    data = message(mid, body=b"Line one.\r\n\r\n..dot\r\nend\r\n")
    send(pm, "sender@example.net", ["alice@example.test"], data)
    found = pm.find_messages("alice@example.test", mid)
    assert len(found) == 1
    raw = found[0]
    assert raw.startswith(b"Return-Path: <sender@example.net>\r\n"
                          b"Delivered-To: alice@example.test\r\n"
                          b"Received: ")
    added, rest = split_trace(raw)
    assert added["return-path"] == ["<sender@example.net>"]
    assert added["delivered-to"] == ["alice@example.test"]
    assert len(added["received"]) == 1
    # smtplib dot-stuffs; what is stored is unstuffed again.
    assert rest == data


def test_one_copy_per_account_one_blob(pm):
    mid = msgid()
    data = message(mid, subject="many")
    send(pm, "sender@example.net",
         ["alice@example.test", "alice+tag@example.test",
          "team@example.test", "bob@example.test", "carol@example.test"],
         data)
    for account in ("alice@example.test", "bob@example.test",
                    "carol@example.test"):
        found = pm.find_messages(account, mid)
        time.sleep(0.2)
        found = pm.find_messages(account, mid)
        assert len(found) == 1, (account, len(found))
        assert split_trace(found[0])[1] == data
    wait_queue_empty(pm)
    con = db(pm)
    rows = con.execute("SELECT m.blob, count(*), b.refs FROM messages m "
                       "JOIN blobs b ON b.hash = m.blob "
                       "WHERE m.message_id = ? GROUP BY m.blob",
                       (mid.strip("<>"),)).fetchall()
    con.close()
    # One blob, named by the three rows and nothing else.
    assert len(rows) == 1, rows
    blob, n, refs = rows[0]
    assert n == 3 and refs == 3
    assert os.path.exists(os.path.join(pm.statedir, "blobs", blob))


def test_rows_beside_the_message(pm):
    mid = msgid()
    data = message(mid, subject="searchable words",
                   body=b"the quick brown zebrafish\r\n")
    send(pm, "sender@example.net", ["carol@example.test"], data)
    pm.find_messages("carol@example.test", mid)
    con = db(pm)
    (mesg, acct, size, subject, from_addr, preview, prefix) = con.execute(
        "SELECT id, account_id, size, subject, from_addr, preview, prefix "
        "FROM messages WHERE message_id = ?", (mid.strip("<>"),)).fetchone()
    assert subject == "searchable words"
    assert from_addr == "sender@example.net"
    assert "zebrafish" in preview
    uid, modseq = con.execute("SELECT uid, modseq FROM mailbox_messages "
                              "WHERE message_id = ?", (mesg,)).fetchone()
    uidnext, highest = con.execute(
        "SELECT uidnext, highestmodseq FROM mailboxes "
        "WHERE account_id = ? AND name = 'INBOX'", (acct,)).fetchone()
    assert uidnext == uid + 1 and highest >= modseq
    assert con.execute("SELECT modseq FROM accounts WHERE id = ?",
                       (acct,)).fetchone()[0] >= modseq
    assert con.execute("SELECT count(*) FROM changes WHERE account_id = ? "
                       "AND kind = 'Email' AND object_id = ? AND op = 1",
                       (acct, mesg)).fetchone()[0] == 1
    hits = con.execute("SELECT rowid FROM messages_fts "
                       "WHERE messages_fts MATCH 'zebrafish'").fetchall()
    assert (mesg,) in hits
    con.close()
    shown = pm.message_show("carol@example.test", "INBOX", uid)
    assert len(shown) == size and shown.startswith(bytes(prefix))


def test_lists(pm):
    mid = msgid()
    send(pm, "sender@example.net", ["bob@example.test"],
         message(mid, subject="listed\there", to=b"bob@example.test"))
    pm.find_messages("bob@example.test", mid)
    r = pm.ctl("mailbox", "list", "bob@example.test", check=True)
    lines = [l.split() for l in r.stdout.splitlines() if l.strip()]
    names = [l[0] for l in lines]
    assert names[:6] == ["INBOX", "Drafts", "Sent", "Junk", "Trash",
                         "Archive"]
    inbox = lines[0]
    assert int(inbox[1]) >= 1 and int(inbox[2]) == int(inbox[1])
    r = pm.ctl("message", "list", "bob@example.test", "INBOX", check=True)
    rows = [l.split(" ", 4) for l in r.stdout.splitlines() if l.strip()]
    uids = [int(row[0]) for row in rows]
    assert uids == sorted(uids)
    # A tab in the subject is shown as a space.
    row = [row for row in rows if row[-1] == "listed here"][-1]
    assert row[3] == "sender@example.net"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", row[2])
    r = pm.ctl("message", "list", "bob@example.test", "Nowhere")
    assert r.returncode != 0 and "no such mailbox: Nowhere" in r.stderr
    r = pm.ctl("mailbox", "list", "nobody@example.test")
    assert r.returncode != 0 and \
        "no such account: nobody@example.test" in r.stderr
    r = pm.ctl_bytes("message", "show", "bob@example.test", "INBOX",
                     "99999")
    assert r.returncode != 0 and b"no such message: 99999" in r.stderr
    # INBOX is any case.
    assert pm.message_uids("bob@example.test", "inbox") == uids


def unparseable(mid, fields=1001):
    """A message storaged accepts but cannot parse: more header fields
    than lib/mime.h allows, so delivery fails for good."""
    extra = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(fields))
    return message(mid, subject="doomed", extra=extra)


def dsns_for(p, account, mid, count=1):
    found = p.find_messages(account, mid.strip("<>"), count=count)
    return [m for m in found if b"MAILER-DAEMON@" in m]


def test_bounce_report_headers(pm):
    mid = msgid()
    send(pm, "carol@example.test", ["alice@example.test"], unparseable(mid),
         mail_options=["ENVID=env-42"],
         rcpt_options=["NOTIFY=FAILURE",
                       "ORCPT=rfc822;Alice@example.test"])
    found = dsns_for(pm, "carol@example.test", mid)
    assert len(found) == 1
    dsn = found[0]
    added, rest = split_trace(dsn)
    assert added["return-path"] == ["<>"]
    assert header_value(rest, "From") == \
        "Mail Delivery System <MAILER-DAEMON@%s>" % HOST
    assert header_value(rest, "To") == "<carol@example.test>"
    assert header_value(rest, "Subject") == \
        "Undelivered Mail Returned to Sender"
    assert header_value(rest, "Auto-Submitted") == "auto-replied"
    assert header_value(rest, "Message-ID")
    assert header_value(rest, "Date")
    ct = header_value(rest, "Content-Type")
    assert "multipart/report" in ct and "report-type=delivery-status" in ct
    assert b"Content-Type: message/delivery-status\r\n" in rest
    assert b"Reporting-MTA: dns; %s\r\n" % HOST.encode() in rest
    assert b"Original-Envelope-Id: env-42\r\n" in rest
    assert b"Arrival-Date: " in rest
    assert b"Original-Recipient: rfc822; Alice@example.test\r\n" in rest
    assert b"Final-Recipient: rfc822; alice@example.test\r\n" in rest
    assert b"Action: failed\r\n" in rest
    assert b"Status: 5.6.0\r\n" in rest
    assert b"Diagnostic-Code: smtp; 550 5.6.0 " in rest
    # RET not given: the original's header only.
    assert b"Content-Type: text/rfc822-headers\r\n" in rest
    assert b"Message-ID: " + mid.encode() + b"\r\n" in rest
    assert b"X-Filler-1000: x\r\n" in rest
    assert b"\r\nHello.\r\n" not in rest
    # The failed recipient got nothing, and the queue is empty again.
    assert not [m for m in pm.fetch_all("alice@example.test").values()
                if mid.encode() in m]
    wait_queue_empty(pm)


def test_bounce_report_full(pm):
    """A recipient that is gone by the time of delivery: queue is
    stopped while its account is deleted."""
    pm.add_account("gone@example.test", PASSWORD)
    mid = msgid()
    data = message(mid, subject="too late", to=b"gone@example.test")
    queue = pm.role_pids()["queue"]
    os.kill(queue, signal.SIGSTOP)
    try:
        send(pm, "carol@example.test", ["gone@example.test"], data,
             mail_options=["RET=FULL"])
        pm.ctl("account", "del", "gone@example.test", check=True)
    finally:
        os.kill(queue, signal.SIGCONT)
    found = dsns_for(pm, "carol@example.test", mid)
    assert len(found) == 1
    rest = split_trace(found[0])[1]
    assert b"Final-Recipient: rfc822; gone@example.test\r\n" in rest
    assert b"Status: 5.1.1\r\n" in rest
    assert b"Content-Type: message/rfc822\r\n" in rest
    # The original as it was queued: its trace field, then the bytes.
    assert data in rest
    wait_queue_empty(pm)


def test_no_report_when_not_wanted(pm):
    never, null = msgid(), msgid()
    send(pm, "carol@example.test", ["alice@example.test"],
         unparseable(never), rcpt_options=["NOTIFY=NEVER"])
    send(pm, "", ["alice@example.test"], unparseable(null))
    # A later message shows the earlier ones have been dealt with.
    wait_queue_empty(pm)
    time.sleep(0.5)
    for mid in (never, null):
        assert not [m for m in pm.fetch_all("carol@example.test").values()
                    if mid.strip("<>").encode() in m]
        assert not [m for m in pm.fetch_all("alice@example.test").values()
                    if mid.encode() in m]
    assert "bounced" in pm.logtext()


def test_storaged_never_killed(pm):
    log = pm.logtext()
    assert "SIGSYS" not in log and "signal 31" not in log
    assert "storaged: " in log and "died" not in log


def test_account_delete_drops_blob_references(pm):
    pm.add_account("temp@example.test", PASSWORD)
    alone, shared = msgid(), msgid()
    send(pm, "sender@example.net", ["temp@example.test"],
         message(alone, to=b"temp@example.test"))
    send(pm, "sender@example.net", ["temp@example.test", "bob@example.test"],
         message(shared, to=b"temp@example.test"))
    pm.find_messages("temp@example.test", alone)
    pm.find_messages("temp@example.test", shared)
    pm.find_messages("bob@example.test", shared)
    wait_queue_empty(pm)
    con = db(pm)
    blobs = {}
    for mid in (alone, shared):
        blobs[mid] = con.execute("SELECT DISTINCT blob FROM messages "
                                 "WHERE message_id = ?",
                                 (mid.strip("<>"),)).fetchone()[0]
    con.close()
    pm.ctl("account", "del", "temp@example.test", check=True)
    con = db(pm)
    refs = dict(con.execute("SELECT hash, refs FROM blobs").fetchall())
    con.close()
    assert blobs[alone] not in refs
    assert not os.path.exists(os.path.join(pm.statedir, "blobs",
                                           blobs[alone]))
    assert refs[blobs[shared]] == 1
    assert os.path.exists(os.path.join(pm.statedir, "blobs",
                                       blobs[shared]))
