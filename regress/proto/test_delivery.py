"""Local delivery and bounces, as storaged files them: one copy per
account however many of the message's recipients reach it, one blob for
every copy, the rows beside it (placement, change log, full-text
index), and RFC 3464 reports for what fails for good, read back with
posternctl.

One daemon serves the module; every test marks its messages with a
Message-ID of its own."""
import base64
import hashlib
import os
import re
import signal
import smtplib
import sqlite3
import threading
import time
import uuid

import pytest

from conftest import (IMAP_LISTENERS, TIME_SCALE, header_value, imap_login,
                      run_together, split_trace)

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
    con.close()
    # The index is a file of its own, which a thread fills a moment later.
    con = sqlite3.connect("file:%s?mode=ro" %
                          os.path.join(pm.statedir, "postern-fts.db"),
                          uri=True)
    con.execute("PRAGMA busy_timeout = 5000")
    deadline = time.time() + 5 * TIME_SCALE
    while True:
        hits = con.execute("SELECT rowid FROM messages_fts "
                           "WHERE messages_fts MATCH 'zebrafish'").fetchall()
        if (mesg,) in hits or time.time() > deadline:
            break
        time.sleep(0.05)
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


# --- attachments stored once ------------------------------------------

ATTACHMENT = os.urandom(100 * 1024)


def with_attachment(mid, subject, to, payload=ATTACHMENT):
    enc = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    body = (b"--b1\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
            b"See the attachment.\r\n"
            b"--b1\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"\r\n" + enc +
            b"--b1--\r\n")
    extra = (b"MIME-Version: 1.0\r\n"
             b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n")
    return message(mid, subject=subject, body=body, extra=extra, to=to), enc


def blob_path(p, h):
    return os.path.join(p.statedir, "blobs", h)


def stored(p, mid):
    """(message id, blob, [(start, length, blob)]) of each row of mid."""
    con = db(p)
    rows = con.execute("SELECT id, blob FROM messages WHERE message_id = ?",
                       (mid.strip("<>"),)).fetchall()
    out = []
    for mesg, blob in rows:
        parts = con.execute("SELECT start, length, blob FROM message_parts "
                            "WHERE message_id = ? ORDER BY start",
                            (mesg,)).fetchall()
        out.append((mesg, blob, parts))
    con.close()
    return out


def files_holding(p, needle):
    d = os.path.join(p.statedir, "blobs")
    n = 0
    for name in os.listdir(d):
        with open(os.path.join(d, name), "rb") as f:
            if needle in f.read():
                n += 1
    return n


def wait_gone(path, timeout=10.0):
    deadline = time.time() + timeout * TIME_SCALE
    while os.path.exists(path) and time.time() < deadline:
        time.sleep(0.05)
    return not os.path.exists(path)


def imap_uids(m, mid):
    typ, data = m.uid("SEARCH", None, "HEADER", "Message-ID", mid)
    assert typ == "OK"
    return [u.decode() for u in data[0].split()]


def imap_expunge(p, account, mid, count=1):
    m = imap_login(p, user=account, password=PASSWORD)
    try:
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        uids = imap_uids(m, mid)
        assert len(uids) == count, uids
        typ, _ = m.uid("STORE", ",".join(uids), "+FLAGS", "(\\Deleted)")
        assert typ == "OK"
        typ, _ = m.expunge()
        assert typ == "OK"
    finally:
        m.logout()


def imap_body(p, account, uid):
    m = imap_login(p, user=account, password=PASSWORD)
    try:
        m.select("INBOX", readonly=True)
        typ, data = m.uid("FETCH", str(uid), "(RFC822.SIZE)")
        assert typ == "OK"
        size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0]).group(1))
        typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
        assert typ == "OK"
        return data[0][1], size
    finally:
        m.logout()


def test_attachment_stored_once(postern_factory):
    p = postern_factory(listeners=IMAP_LISTENERS)
    for user in ("alice", "bob"):
        p.add_account("%s@example.test" % user, PASSWORD)
    one, two = msgid(), msgid()
    data1, enc = with_attachment(one, "first", b"alice@example.test")
    data2, _ = with_attachment(two, "second, another subject",
                               b"bob@example.test")
    send(p, "sender@example.net", ["alice@example.test"], data1)
    send(p, "other@example.net", ["bob@example.test"], data2)
    shown1 = p.find_messages("alice@example.test", one)[0]
    shown2 = p.find_messages("bob@example.test", two)[0]
    assert split_trace(shown1)[1] == data1
    assert split_trace(shown2)[1] == data2
    wait_queue_empty(p)

    (id1, skel1, parts1), = stored(p, one)
    (id2, skel2, parts2), = stored(p, two)
    assert len(parts1) == 1 and len(parts2) == 1
    part = parts1[0][2]
    assert parts2[0][2] == part and skel1 != skel2
    start, length, _ = parts1[0]
    assert length >= 100 * 1024
    con = db(p)
    prefix1, prefix2 = (bytes(con.execute("SELECT prefix FROM messages "
                                          "WHERE id = ?", (i,)).fetchone()[0])
                        for i in (id1, id2))
    con.close()
    with open(blob_path(p, part), "rb") as f:
        pbytes = f.read()
    whole1 = shown1[len(prefix1):]
    assert len(pbytes) == length and pbytes == whole1[start:start + length]
    assert enc.startswith(pbytes)
    # The skeletons hold the rest of each message, without the attachment.
    for skel, shown, prefix, (s0, _, _) in ((skel1, shown1, prefix1,
                                             parts1[0]),
                                            (skel2, shown2, prefix2,
                                             parts2[0])):
        whole = shown[len(prefix):]
        with open(blob_path(p, skel), "rb") as f:
            assert f.read() == whole[:s0] + whole[s0 + length:]
    con = db(p)
    blobs = dict((h, (s, r)) for h, s, r in
                 con.execute("SELECT hash, size, refs FROM blobs"))
    size1 = con.execute("SELECT size FROM messages WHERE id = ?",
                        (id1,)).fetchone()[0]
    con.close()
    assert blobs[part] == (length, 2)
    assert blobs[skel1][1] == 1 and blobs[skel2][1] == 1
    assert sum(s for s, _ in blobs.values()) < length + 8192
    # One file in /blobs holds the attachment's bytes, once the queue's
    # copies of the whole messages are collected.
    deadline = time.time() + 10 * TIME_SCALE
    while files_holding(p, enc[1000:3000]) != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert files_holding(p, enc[1000:3000]) == 1
    assert size1 == len(shown1)

    # The start-up sweep keeps every piece a row names.
    p.stop()
    p.restart()
    assert p.find_messages("alice@example.test", one)[0] == shown1
    assert os.path.exists(blob_path(p, part))

    # IMAP reads the same bytes as posternctl.
    uid1 = p.message_uids("alice@example.test")[0]
    body, size = imap_body(p, "alice@example.test", uid1)
    assert body == shown1 and size == len(shown1)

    # APPEND shares it too, and keeps no copy of the upload; a COPY
    # into the mailbox holding the message makes a second row that
    # names the same pieces.
    three = msgid()
    data3, _ = with_attachment(three, "appended", b"alice@example.test")
    m = imap_login(p, user="alice@example.test", password=PASSWORD)
    try:
        typ, _ = m.append("INBOX", None, None, data3)
        assert typ == "OK"
        m.select("INBOX")
        (uid3,) = imap_uids(m, three)
        typ, _ = m.uid("COPY", uid3, "INBOX")
        assert typ == "OK"
        uids3 = imap_uids(m, three)
        assert len(uids3) == 2
        for u in uids3:
            typ, data = m.uid("FETCH", u, "(BODY.PEEK[])")
            assert typ == "OK" and data[0][1] == data3
    finally:
        m.logout()
    rows3 = stored(p, three)
    assert len(rows3) == 2 and rows3[0][1:] == rows3[1][1:]
    assert [x[2] for x in rows3[0][2]] == [part]
    assert wait_gone(blob_path(p, hashlib.sha256(data3).hexdigest()))
    con = db(p)
    assert con.execute("SELECT refs FROM blobs WHERE hash = ?",
                       (part,)).fetchone()[0] == 4
    con.close()
    imap_expunge(p, "alice@example.test", three, count=2)
    assert wait_gone(blob_path(p, rows3[0][1]))

    # One deleted: the attachment stays for the other.
    imap_expunge(p, "alice@example.test", one)
    assert wait_gone(blob_path(p, skel1))
    assert os.path.exists(blob_path(p, part))
    con = db(p)
    assert con.execute("SELECT refs FROM blobs WHERE hash = ?",
                       (part,)).fetchone()[0] == 1
    con.close()
    assert p.find_messages("bob@example.test", two)[0] == shown2
    # Both deleted: it goes.
    imap_expunge(p, "bob@example.test", two)
    assert wait_gone(blob_path(p, part))
    assert wait_gone(blob_path(p, skel2))
    con = db(p)
    assert con.execute("SELECT count(*) FROM blobs WHERE hash IN (?, ?, ?)",
                       (part, skel1, skel2)).fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM message_parts").fetchone()[0] \
        == 0
    con.close()


def test_small_attachment_stored_whole(pm):
    mid = msgid()
    data, _ = with_attachment(mid, "small", b"carol@example.test",
                              payload=os.urandom(4 * 1024))
    send(pm, "sender@example.net", ["carol@example.test"], data)
    shown = pm.find_messages("carol@example.test", mid)[0]
    assert split_trace(shown)[1] == data
    (mesg, blob, parts), = stored(pm, mid)
    assert parts == []
    con = db(pm)
    prefix = bytes(con.execute("SELECT prefix FROM messages WHERE id = ?",
                               (mesg,)).fetchone()[0])
    con.close()
    with open(blob_path(pm, blob), "rb") as f:
        assert f.read() == shown[len(prefix):]


def test_attachment_shared_by_recipients_and_account_delete(pm):
    pm.add_account("temp2@example.test", PASSWORD)
    mid = msgid()
    data, enc = with_attachment(mid, "to two", b"temp2@example.test")
    send(pm, "sender@example.net", ["temp2@example.test",
                                    "carol@example.test"], data)
    for account in ("temp2@example.test", "carol@example.test"):
        assert split_trace(pm.find_messages(account, mid)[0])[1] == data
    wait_queue_empty(pm)
    rows = stored(pm, mid)
    assert len(rows) == 2
    assert rows[0][1] == rows[1][1] and rows[0][2] == rows[1][2]
    part = rows[0][2][0][2]
    con = db(pm)
    assert con.execute("SELECT refs FROM blobs WHERE hash = ?",
                       (part,)).fetchone()[0] == 2
    con.close()
    pm.ctl("account", "del", "temp2@example.test", check=True)
    con = db(pm)
    assert con.execute("SELECT refs FROM blobs WHERE hash = ?",
                       (part,)).fetchone()[0] == 1
    con.close()
    assert split_trace(pm.find_messages("carol@example.test",
                                        mid)[0])[1] == data


def test_attachment_concurrent_deliveries(pm):
    payload = os.urandom(64 * 1024)
    mids = [msgid() for _ in range(6)]
    datas = [with_attachment(mid, "concurrent %d" % i, b"bob@example.test",
                             payload=payload)[0]
             for i, mid in enumerate(mids)]
    errors = []

    def one(data):
        try:
            send(pm, "sender@example.net", ["bob@example.test"], data)
        except Exception as e:
            errors.append(e)
    threads = [threading.Thread(target=one, args=(d,)) for d in datas]
    run_together(threads)
    assert not errors, errors
    for mid, data in zip(mids, datas):
        assert split_trace(pm.find_messages("bob@example.test",
                                            mid)[0])[1] == data
    wait_queue_empty(pm)
    parts = set()
    for mid in mids:
        (_, _, p), = stored(pm, mid)
        assert len(p) == 1
        parts.add(p[0][2])
    assert len(parts) == 1
    con = db(pm)
    assert con.execute("SELECT refs FROM blobs WHERE hash = ?",
                       (parts.pop(),)).fetchone()[0] == 6
    con.close()
