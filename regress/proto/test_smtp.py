"""smtpd dialogues: every command and ESMTP extension of RFC 5321,
1870, 2034, 2920, 3030, 3461, 6152 and 6531 on the smtp listener, and
what lands in the mailbox, byte for byte, read back with posternctl.

One daemon serves the whole module: every test marks its messages with
a Message-ID of its own and looks for that."""
import base64
import re
import smtplib
import uuid

import pytest

from conftest import QUEUED_RE, SMTPClient, header_value, split_trace

PASSWORD = "Topaz-Lantern-9135-unlikely"
HOST = "mail.example.test"
DEFAULT_SIZE = 35 * 1024 * 1024
EHLO_KEYWORDS = {"PIPELINING", "8BITMIME", "SMTPUTF8", "DSN",
                 "ENHANCEDSTATUSCODES", "CHUNKING"}
ENH = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}( |$)")


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory()
    for user in ("alice", "bob", "carol"):
        p.add_account("%s@example.test" % user, PASSWORD)
    return p


def msgid():
    return "<%s@client.example.net>" % uuid.uuid4().hex


def message(mid, subject="test", body=b"Hello.\r\n", extra=b""):
    return (b"From: Sender <sender@example.net>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: " + mid.encode() + b"\r\n" + extra +
            b"\r\n" + body)


def delivered_once(p, account, mid):
    """The one message with this Message-ID in the account's INBOX,
    without the trace fields added on delivery."""
    found = p.find_messages(account, mid)
    assert len(found) == 1, (account, mid, len(found))
    return split_trace(found[0])


def queued(reply):
    code, text = reply
    assert code == 250, reply
    m = QUEUED_RE.match(text[-1])
    assert m, reply
    return m.group(1)


# --- greeting, EHLO, HELO ------------------------------------------


def test_greeting(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        assert c.greeting == (220, ["%s ESMTP Postern" % HOST])


def test_ehlo_keywords_before_and_after_starttls(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        code, lines = c.cmd("EHLO client.example.net")
        assert code == 250
        assert lines[0].split()[0] == HOST, lines
        kw = [l.upper() for l in lines[1:]]
        assert EHLO_KEYWORDS <= set(kw), kw
        assert "SIZE %d" % DEFAULT_SIZE in kw, kw
        assert "STARTTLS" in kw, kw
        # AUTH belongs to the submission listeners only.
        assert not [k for k in kw if k.startswith("AUTH")], kw
        c.starttls()
        kw = c.ehlo()
        assert EHLO_KEYWORDS <= set(kw), kw
        assert "STARTTLS" not in kw, kw
        assert not [k for k in kw if k.startswith("AUTH")], kw


def test_ehlo_needs_a_domain(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        code, text = c.cmd("EHLO")
        assert code == 501 and text[0].startswith("5.5.4"), (code, text)


def test_helo_then_mail(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        code, text = c.cmd("HELO client.example.net")
        assert code == 250 and text[0].split()[0] == HOST, (code, text)
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    added, rest = delivered_once(pm, "alice@example.test", mid)
    assert rest == data


# --- a plain message, byte for byte, with its trace fields -----------


def test_smtplib_message_byte_for_byte_with_trace(pm):
    mid = msgid()
    data = message(mid, body=b"Line one.\r\n\r\nLine three, tab\there.\r\n"
                   b" leading space\r\ntrailing space \r\n")
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example.net")
        assert s.mail("sender@example.net")[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        code, resp = s.data(data)
    assert code == 250, resp
    assert QUEUED_RE.match(resp.decode()), resp
    added, rest = delivered_once(pm, "alice@example.test", mid)
    assert rest == data
    assert added["return-path"] == ["<sender@example.net>"], added
    assert [v.lower() for v in added["delivered-to"]] == \
        ["alice@example.test"], added
    assert len(added["received"]) == 1, added
    received = added["received"][0]
    assert "client.example.net" in received, received
    assert HOST in received, received
    assert "127.0.0.1" in received, received


def test_several_recipients_get_the_same_bytes(pm):
    mid = msgid()
    data = message(mid)
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example.net")
        refused = s.sendmail("sender@example.net",
                             ["alice@example.test", "bob@example.test",
                              "carol@example.test"], data)
        assert refused == {}
    for user in ("alice", "bob", "carol"):
        added, rest = delivered_once(pm, "%s@example.test" % user, mid)
        assert rest == data, user
        assert [v.lower() for v in added["delivered-to"]] == \
            ["%s@example.test" % user]


def test_duplicate_rcpt_delivers_once(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert c.cmd("RCPT TO:<Bob@Example.TEST>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    # Another message after it, so a late duplicate would have arrived.
    later = msgid()
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.sendmail("sender@example.net", ["bob@example.test"],
                   message(later))
    delivered_once(pm, "bob@example.test", later)
    delivered_once(pm, "bob@example.test", mid)


def test_several_messages_in_one_session(pm):
    mids = [msgid() for _ in range(3)]
    ids = set()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        for mid in mids:
            assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
            assert c.cmd("RCPT TO:<carol@example.test>")[0] == 250
            assert c.cmd("DATA")[0] == 354
            c.send(message(mid) + b".\r\n")
            ids.add(queued(c.reply()))
    assert len(ids) == 3, ids
    for mid in mids:
        assert delivered_once(pm, "carol@example.test", mid)[1] == \
            message(mid)


def test_null_sender(pm):
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        queued(c.reply())
    added, rest = delivered_once(pm, "alice@example.test", mid)
    assert added["return-path"] == ["<>"], added


# --- DATA: dot-unstuffing, 8BITMIME, SMTPUTF8 ------------------------


def test_dot_unstuffing(pm):
    mid = msgid()
    sent_body = (b".leading dot stuffed\r\n"
                 b"..\r\n"
                 b"...three\r\n"
                 b"middle . dot\r\n"
                 b". \r\n")
    want_body = (b"leading dot stuffed\r\n"
                 b".\r\n"
                 b"..three\r\n"
                 b"middle . dot\r\n"
                 b" \r\n")
    # A stuffed dot is dropped: ".leading" stands for "leading".
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid, body=sent_body) + b".\r\n")
        queued(c.reply())
    assert delivered_once(pm, "alice@example.test", mid)[1] == \
        message(mid, body=want_body)


def test_smtplib_stuffs_and_we_unstuff(pm):
    mid = msgid()
    data = message(mid, body=b".\r\n..\r\n.x\r\nend\r\n")
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.sendmail("sender@example.net", ["alice@example.test"], data)
    assert delivered_once(pm, "alice@example.test", mid)[1] == data


def test_empty_body(pm):
    mid = msgid()
    data = message(mid, body=b"")
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    assert delivered_once(pm, "alice@example.test", mid)[1] == data


def test_8bitmime_body_kept_byte_for_byte(pm):
    mid = msgid()
    body = "Grüße aus Köln, ½ € — 日本語\r\n".encode("utf-8") + \
        bytes(range(0x80, 0x100)) + b"\r\n"
    data = message(mid, body=body,
                   extra=b"MIME-Version: 1.0\r\n"
                   b"Content-Type: text/plain; charset=utf-8\r\n"
                   b"Content-Transfer-Encoding: 8bit\r\n")
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net> BODY=8BITMIME")[0] \
            == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    assert delivered_once(pm, "alice@example.test", mid)[1] == data


def test_body_7bit_param_accepted(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net> BODY=7BIT")[0] == 250
        assert c.cmd("RSET")[0] == 250
        code, text = c.cmd("MAIL FROM:<sender@example.net> BODY=9BIT")
        assert (code, text[0][:5]) == (501, "5.5.4"), (code, text)


def test_smtputf8(pm):
    mid = msgid()
    data = ("From: Jörg <jörg@exämple.net>\r\n"
            "To: alice@example.test\r\n"
            "Subject: Ünïcødé\r\n"
            "Message-ID: %s\r\n\r\nHallo.\r\n" % mid).encode("utf-8")
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<jörg@exämple.net> SMTPUTF8")
        assert code == 250, (code, text)
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    added, rest = delivered_once(pm, "alice@example.test", mid)
    assert rest == data
    assert added["return-path"] == ["<jörg@exämple.net>"], added


def test_non_ascii_address_without_smtputf8(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<jörg@exämple.net>")
        assert (code, text[0][:5]) == (553, "5.6.7"), (code, text)


# --- SIZE and DSN parameters ----------------------------------------


def test_size_param(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net> SIZE=1000")[0] == 250
        assert c.cmd("RSET")[0] == 250
        code, text = c.cmd("MAIL FROM:<sender@example.net> SIZE=abc")
        assert (code, text[0][:5]) == (501, "5.5.4"), (code, text)
        code, text = c.cmd("MAIL FROM:<sender@example.net> SIZE=%d"
                           % (DEFAULT_SIZE + 1))
        assert (code, text[0][:5]) == (552, "5.3.4"), (code, text)


def test_dsn_params(pm):
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<sender@example.net> RET=HDRS "
                           "ENVID=QQ314159+2Bx")
        assert code == 250, (code, text)
        code, text = c.cmd("RCPT TO:<alice@example.test> "
                           "NOTIFY=SUCCESS,FAILURE "
                           "ORCPT=rfc822;alice+2Bdsn@example.test")
        assert code == 250, (code, text)
        code, text = c.cmd("RCPT TO:<bob@example.test> NOTIFY=NEVER")
        assert code == 250, (code, text)
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        queued(c.reply())
    delivered_once(pm, "alice@example.test", mid)
    delivered_once(pm, "bob@example.test", mid)


@pytest.mark.parametrize("line,code,enh", [
    ("MAIL FROM:<sender@example.net> RET=NONE", 501, "5.5.4"),
    ("MAIL FROM:<sender@example.net> ENVID=", 501, "5.5.4"),
    ("MAIL FROM:<sender@example.net> FROB=1", 555, "5.5.4"),
    ("MAIL FROM:sender@example.net", 501, "5.1.7"),
    ("MAIL FROM:<sender@@example.net>", 501, "5.1.7"),
    ("MAIL TO:<sender@example.net>", 501, "5.5.4"),
])
def test_mail_bad_params(pm, line, code, enh):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        got = c.cmd(line)
        assert (got[0], got[1][0][:5]) == (code, enh), got
        # The session goes on: no transaction was started.
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250


@pytest.mark.parametrize("line,code,enh", [
    ("RCPT TO:<alice@example.test> NOTIFY=NEVER,SUCCESS", 501, "5.5.4"),
    ("RCPT TO:<alice@example.test> NOTIFY=SOMETIMES", 501, "5.5.4"),
    ("RCPT TO:<alice@example.test> ORCPT=alice@example.test", 501,
     "5.5.4"),
    ("RCPT TO:<alice@example.test> FROB", 555, "5.5.4"),
    ("RCPT TO:alice@example.test", 501, "5.1.3"),
    ("RCPT TO:<>", 501, "5.1.3"),
    ("RCPT FROM:<alice@example.test>", 501, "5.5.4"),
])
def test_rcpt_bad_params(pm, line, code, enh):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        got = c.cmd(line)
        assert (got[0], got[1][0][:5]) == (code, enh), got
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250


# --- BDAT (CHUNKING) -------------------------------------------------


def bdat_send(c, chunks):
    """Sends each chunk with its own BDAT command, the last with LAST;
    returns the reply to the last one."""
    for i, chunk in enumerate(chunks):
        last = " LAST" if i == len(chunks) - 1 else ""
        c.send(b"BDAT %d%s\r\n" % (len(chunk), last.encode()) + chunk)
        reply = c.reply()
        if last:
            return reply
        assert reply[0] == 250, reply


def test_bdat_chunks_kept_verbatim(pm):
    mid = msgid()
    # No dot-stuffing with BDAT: a lone dot line and CRLF.CRLF are data.
    data = message(mid, body=b"first\r\n.\r\n..two dots stay\r\nend\r\n")
    chunks = [data[:7], data[7:50], data[50:]]
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        queued(bdat_send(c, chunks))
    assert delivered_once(pm, "bob@example.test", mid)[1] == data


def test_bdat_empty_last_chunk(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        queued(bdat_send(c, [data, b""]))
    assert delivered_once(pm, "bob@example.test", mid)[1] == data


def test_bdat_pipelined_with_envelope(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.net>\r\n"
               b"RCPT TO:<carol@example.test>\r\n"
               b"BDAT %d LAST\r\n" % len(data) + data)
        assert c.reply()[0] == 250
        assert c.reply()[0] == 250
        queued(c.reply())
    assert delivered_once(pm, "carol@example.test", mid)[1] == data


def test_bdat_without_rcpt(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        c.send(b"BDAT 5 LAST\r\nhello")
        code, text = c.reply()
        # RFC 5321 3.3: 503 or 554 "no valid recipients".
        assert code in (503, 554) and text[0].startswith("5.5.1"), \
            (code, text)
        # The chunk was read and dropped: the session is still in step.
        assert c.cmd("NOOP")[0] == 250


def test_bdat_bad_syntax(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        code, text = c.cmd("BDAT x")
        assert code == 501 and text[0].startswith("5.5.4"), (code, text)


def test_data_after_bdat_is_refused(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        c.send(b"BDAT 4\r\nabcd")
        assert c.reply()[0] == 250
        code, text = c.cmd("DATA")
        assert code == 503 and text[0].startswith("5.5.1"), (code, text)


# --- RSET, NOOP, HELP, VRFY, EXPN, QUIT, sequencing -------------------


def test_rset_drops_the_transaction(pm):
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        code, text = c.cmd("RSET")
        assert code == 250 and text[0].startswith("2.0.0"), (code, text)
        code, text = c.cmd("DATA")
        assert code == 503 and text[0].startswith("5.5.1"), (code, text)
        # A new transaction after RSET works, and only its recipient
        # gets the message.
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        queued(c.reply())
    delivered_once(pm, "bob@example.test", mid)
    assert pm.find_messages("alice@example.test", mid, timeout=0) == []


def test_rset_during_bdat_drops_the_chunks(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        c.send(b"BDAT %d\r\n" % len(data) + data)
        assert c.reply()[0] == 250
        assert c.cmd("RSET")[0] == 250
        code, text = c.cmd("BDAT 0 LAST")
        assert code == 503, (code, text)
        sentinel = msgid()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(sentinel) + b".\r\n")
        queued(c.reply())
    delivered_once(pm, "alice@example.test", sentinel)
    assert pm.find_messages("alice@example.test", mid, timeout=0) == []


def test_noop_help_vrfy_expn_quit(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("NOOP")
        assert code == 250 and text[0].startswith("2.0.0"), (code, text)
        code, text = c.cmd("NOOP ignored argument")
        assert code == 250, (code, text)
        code, text = c.cmd("HELP")
        assert code == 214, (code, text)
        code, text = c.cmd("VRFY alice@example.test")
        assert code == 252 and text[0].startswith("2."), (code, text)
        code, text = c.cmd("VRFY nobody@example.test")
        assert code == 252, (code, text)
        code, text = c.cmd("EXPN staff@example.test")
        assert code == 502 and text[0].startswith("5.5.1"), (code, text)
        code, text = c.cmd("QUIT")
        assert code == 221 and text[0].startswith("2.0.0"), (code, text)
        assert c.closed()


def test_commands_are_case_insensitive(pm):
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        assert c.cmd("ehlo client.example.net")[0] == 250
        assert c.cmd("mail from:<sender@example.net>")[0] == 250
        assert c.cmd("rcpt to:<carol@example.test>")[0] == 250
        assert c.cmd("data")[0] == 354
        c.send(message(mid) + b".\r\n")
        queued(c.reply())
        assert c.cmd("quit")[0] == 221
    delivered_once(pm, "carol@example.test", mid)


@pytest.mark.parametrize("setup,line,code", [
    ([], "MAIL FROM:<sender@example.net>", 503),
    (["EHLO client.example.net"], "RCPT TO:<alice@example.test>", 503),
    (["EHLO client.example.net"], "DATA", 503),
    (["EHLO client.example.net", "MAIL FROM:<sender@example.net>"],
     "DATA", 554),
    (["EHLO client.example.net", "MAIL FROM:<sender@example.net>"],
     "MAIL FROM:<sender@example.net>", 503),
    (["EHLO client.example.net"], "BDAT 0 LAST", 503),
])
def test_bad_sequence(pm, setup, line, code):
    with SMTPClient(pm.ports["smtp"]) as c:
        for s in setup:
            assert c.cmd(s)[0] == 250, s
        got = c.cmd(line)
        # RFC 5321 3.3: DATA with no recipient may get 503 or 554.
        codes = (503, 554) if code == 554 else (code,)
        assert got[0] in codes and got[1][0].startswith("5.5.1"), got


def test_unknown_command(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("FROBNICATE now")
        assert code == 500 and text[0].startswith("5.5.1"), (code, text)
        assert c.cmd("NOOP")[0] == 250


def test_ehlo_resets_the_transaction(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        c.ehlo()
        code, text = c.cmd("DATA")
        assert code == 503, (code, text)


# --- PIPELINING and ENHANCEDSTATUSCODES --------------------------------


def test_pipelining_in_order(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        # One write: the envelope, with a refused recipient in between.
        c.send(b"MAIL FROM:<sender@example.net>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"RCPT TO:<bob@example.test>\r\n"
               b"DATA\r\n")
        codes = [c.reply()[0] for _ in range(5)]
        assert codes == [250, 250, 550, 250, 354], codes
        # Data, then the next transaction, in one write as well.
        c.send(data + b".\r\nRSET\r\nNOOP\r\nQUIT\r\n")
        queued(c.reply())
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 221]
    delivered_once(pm, "alice@example.test", mid)
    delivered_once(pm, "bob@example.test", mid)


def test_pipelined_data_refused_without_recipients(pm):
    """DATA pipelined after recipients that were all refused: 554 (or
    503), and what follows is read as commands, not queued."""
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.net>\r\n"
               b"RCPT TO:<nobody@example.test>\r\n"
               b"DATA\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 550
        code, text = c.reply()
        assert code in (503, 554) and text[0][:2] == "5.", (code, text)
        c.send(message(mid) + b".\r\n")
        c.cmd("RSET")
    assert "nobody" not in pm.show_queue()


def test_enhanced_status_codes_on_every_reply(pm):
    """RFC 2034: every reply but the greeting and EHLO/HELO's carries
    an enhanced status code."""
    mid = msgid()
    dialogue = ["EHLO client.example.net", "NOOP", "HELP",
                "VRFY alice@example.test", "EXPN x", "FROB",
                "RCPT TO:<alice@example.test>",
                "MAIL FROM:<sender@example.net>",
                "RCPT TO:<nobody@example.test>",
                "RCPT TO:<someone@remote.example>",
                "RCPT TO:<alice@example.test>", "RSET",
                "MAIL FROM:<sender@example.net>",
                "RCPT TO:<alice@example.test>"]
    with SMTPClient(pm.ports["smtp"]) as c:
        for line in dialogue:
            code, text = c.cmd(line)
            if line.startswith("EHLO"):
                continue
            assert ENH.match(text[0]), (line, code, text)
            assert int(text[0][0]) == code // 100, (line, code, text)
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        code, text = c.reply()
        assert ENH.match(text[0]), (code, text)
        code, text = c.cmd("QUIT")
        assert ENH.match(text[0]), (code, text)


# --- STARTTLS ----------------------------------------------------------


def test_starttls_then_mail(pm):
    mid = msgid()
    data = message(mid)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.starttls()
        # The session starts over after TLS: no MAIL before EHLO again.
        code, text = c.cmd("MAIL FROM:<sender@example.net>")
        assert code == 503, (code, text)
        c.ehlo()
        code, text = c.cmd("STARTTLS")
        assert code == 503 and text[0].startswith("5.5.1"), (code, text)
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        queued(c.reply())
    assert delivered_once(pm, "alice@example.test", mid)[1] == data


def test_starttls_with_smtplib(pm):
    mid = msgid()
    data = message(mid)
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.ehlo("client.example.net")
        code, _ = s.starttls(context=ctx)
        assert code == 220
        s.ehlo("client.example.net")
        assert s.sock.version() in ("TLSv1.2", "TLSv1.3")
        s.sendmail("sender@example.net", ["alice@example.test"], data)
    assert delivered_once(pm, "alice@example.test", mid)[1] == data


def test_starttls_with_pipelined_command_is_refused_or_dropped(pm):
    """A command pipelined after STARTTLS must not be run inside the TLS
    session (CVE-2011-0411 style injection)."""
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<injected@example.net>\r\n")
        code, text = c.reply()
        if code == 220:
            # The plaintext after STARTTLS was dropped; TLS then works
            # and no injected transaction is open.
            c.buf = b""
            c._wrap()
            c.ehlo()
            code, text = c.cmd("RCPT TO:<alice@example.test>")
            assert code == 503, (code, text)
        else:
            assert code >= 500, (code, text)


def test_header_value_helper_sanity(pm):
    """The reader used by every test above sees Message-ID."""
    mid = msgid()
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=10) as s:
        s.sendmail("sender@example.net", ["carol@example.test"],
                   message(mid))
    added, rest = delivered_once(pm, "carol@example.test", mid)
    assert header_value(rest, "Message-ID") == mid


# --- trace header protocol names (RFC 3848) and a big message ---------------


@pytest.mark.parametrize("how,proto", [("helo", "SMTP"), ("ehlo", "ESMTP"),
                                       ("starttls", "ESMTPS")])
def test_received_names_the_protocol(pm, how, proto):
    mid = msgid()
    with SMTPClient(pm.ports["smtp"]) as c:
        if how == "helo":
            assert c.cmd("HELO client.example.net")[0] == 250
        else:
            c.ehlo()
        if how == "starttls":
            c.starttls()
            c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<carol@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        qid = queued(c.reply())
    added, rest = delivered_once(pm, "carol@example.test", mid)
    received = " ".join(added["received"][0].split())
    assert re.search(r"\bwith %s\b" % proto, received), received
    assert qid in received or re.search(r"\bid [0-9a-f]{16}\b", received), \
        received


def test_big_message_byte_for_byte(pm):
    """A megabyte in lines of many lengths up to 998, streamed in one
    write: back-pressure and buffering keep every byte."""
    mid = msgid()
    lines = []
    n = 0
    while sum(len(l) for l in lines) < 1024 * 1024:
        n += 1
        lines.append(b"%d " % n + b"abcdefghij" * ((n * 37) % 99) + b"\r\n")
    data = message(mid, body=b"".join(lines))
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=60) as s:
        s.sendmail("sender@example.net", ["bob@example.test"], data)
    assert delivered_once(pm, "bob@example.test", mid)[1] == data


def multipart(mid, attachment, text="See the attachment.", boundary="b1"):
    b64 = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (b"From: <sender@example.net>\r\n"
            b"To: alice@example.test\r\n"
            b"Subject: attachment\r\n"
            b"Message-ID: " + mid.encode() + b"\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"" +
            boundary.encode() + b"\"\r\n\r\n"
            b"preamble\r\n"
            b"--" + boundary.encode() + b"\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" +
            text.encode() + b"\r\n"
            b"--" + boundary.encode() + b"\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 +
            b"--" + boundary.encode() + b"--\r\n"
            b"epilogue\r\n")


def test_attachments_byte_for_byte(pm):
    """Messages sharing a large attachment, which the store keeps once,
    each come back exactly as sent, to every recipient."""
    attachment = bytes((i * 7 + i // 251) % 256 for i in range(64 * 1024))
    sent = {}
    for i, (text, boundary) in enumerate([("first", "b1"),
                                          ("second", "other-boundary"),
                                          ("first", "b1")]):
        mid = msgid()
        sent[mid] = multipart(mid, attachment, text, boundary)
        with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=30) as s:
            s.sendmail("sender@example.net",
                       ["alice@example.test", "bob@example.test"], sent[mid])
    for mid, data in sent.items():
        for who in ("alice@example.test", "bob@example.test"):
            assert delivered_once(pm, who, mid)[1] == data, (who, mid)


def test_nested_message_byte_for_byte(pm):
    mid = msgid()
    inner = multipart("<inner@x>", b"\x00\x01" * 20000, "inner", "in")
    data = (b"From: <sender@example.net>\r\nSubject: forward\r\n"
            b"Message-ID: " + mid.encode() + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=out\r\n\r\n"
            b"--out\r\nContent-Type: text/plain\r\n\r\nfwd\r\n"
            b"--out\r\nContent-Type: message/rfc822\r\n\r\n" + inner +
            b"--out--\r\n")
    with smtplib.SMTP("127.0.0.1", pm.ports["smtp"], timeout=30) as s:
        s.sendmail("sender@example.net", ["carol@example.test"], data)
    assert delivered_once(pm, "carol@example.test", mid)[1] == data
