"""Smuggling-immune framing: a bare CR, a bare LF or a NUL, in a command
or in DATA, never ends a message and never splits one in two.  A command
holding one gets 500 5.5.2; a message holding one is refused with a 5xx
once its real end (CRLF.CRLF) has been read, and nothing of it is
queued.  Every published SMTP-smuggling end-of-data pattern has its own
case."""
import uuid

import pytest

from conftest import QUEUED_RE, SMTPClient

PASSWORD = "Basalt-Kestrel-4417-unlikely"
# What a message with a bare CR, bare LF or NUL gets at its end.
REFUSED = (550, "5.6.0")


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory()
    p.add_account("alice@example.test", PASSWORD)
    p.add_account("bob@example.test", PASSWORD)
    return p


def marker():
    return "smuggle-%s" % uuid.uuid4().hex


def sentinel(p, c=None):
    """Sends a message to alice and bob and waits for both: anything
    queued before it has been delivered by then."""
    mark = marker()
    data = ("Subject: sentinel\r\nMessage-ID: <%s@x>\r\n\r\nok\r\n"
            % mark).encode()
    own = c is None
    if own:
        c = SMTPClient(p.ports["smtp"])
        c.ehlo()
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
    assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
    assert c.cmd("DATA")[0] == 354
    c.send(data + b".\r\n")
    code, text = c.reply()
    assert code == 250 and QUEUED_RE.match(text[-1]), (code, text)
    if own:
        c.close()
    for who in ("alice", "bob"):
        assert len(p.find_messages("%s@example.test" % who, mark)) == 1


def nothing_stored(p, mark):
    for who in ("alice", "bob"):
        found = p.find_messages("%s@example.test" % who, mark, timeout=0)
        assert found == [], (who, found)


def still_in_step(c):
    """After the one reply, the session has no replies left over: the
    next command's answer is its own (VRFY: 252), or the server hung
    up."""
    try:
        code, text = c.cmd("VRFY someone")
    except (EOFError, ConnectionError):
        return False
    assert code == 252, ("a left-over reply", code, text)
    return True


# The end-of-data look-alikes of the SMTP smuggling research (SEC
# Consult, 2023) and their relatives with NUL.
PATTERNS = [
    b"\n.\n",
    b"\n.\r\n",
    b"\r.\r",
    b"\r\n.\r",
    b"\r\n.\n",
    b"\r.\r\n",
    b"\r.\n",
    b"\n.\r",
    b"\r\n.\x00\r\n",
    b"\r\n\x00.\r\n",
    b"\n\r.\r\n",
    b"\r\n.\r\r\n",
    b"\r\n\n.\r\n",
]


@pytest.mark.parametrize("pattern", PATTERNS, ids=[repr(p)[2:-1]
                                                   for p in PATTERNS])
def test_smuggling_pattern(pm, pattern):
    mark = marker()
    head = ("From: <sender@example.net>\r\nTo: <alice@example.test>\r\n"
            "Subject: carrier %s\r\n\r\nfirst part\r\n" % mark).encode()
    smuggled = ("MAIL FROM:<admin@example.test>\r\n"
                "RCPT TO:<bob@example.test>\r\n"
                "DATA\r\n"
                "From: <admin@example.test>\r\n"
                "Subject: smuggled %s\r\n\r\n"
                "smuggled body\r\n" % mark).encode()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(head + b"text before" + pattern + smuggled + b".\r\n")
        code, text = c.reply()
        # One reply for the whole thing, and a refusal.
        assert (code, text[0][:5]) == REFUSED, (code, text)
        assert not c.buf, ("more replies", c.buf)
        if still_in_step(c):
            sentinel(pm, c)
        else:
            sentinel(pm)
    nothing_stored(pm, mark)


@pytest.mark.parametrize("bad", [b"bare\nLF", b"bare\rCR", b"NUL\x00byte",
                                 b"trailing CR\r", b"\n", b"\x00"],
                         ids=["lf", "cr", "nul", "cr-before-crlf",
                              "lone-lf", "lone-nul"])
def test_bare_byte_in_data_refused(pm, bad):
    mark = marker()
    data = ("Subject: %s\r\n\r\nline one\r\n" % mark).encode() + bad + \
        b"\r\nline three\r\n"
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert (code, text[0][:5]) == REFUSED, (code, text)
        if still_in_step(c):
            sentinel(pm, c)
        else:
            sentinel(pm)
    nothing_stored(pm, mark)


def test_bare_byte_in_header(pm):
    mark = marker()
    data = ("Subject: %s\r\nX-Evil: a\nb\r\n\r\nbody\r\n" % mark).encode()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert (code, text[0][:5]) == REFUSED, (code, text)
    sentinel(pm)
    nothing_stored(pm, mark)


@pytest.mark.parametrize("line", [
    b"NOOP\nNOOP\r\n",
    b"NOOP\rNOOP\r\n",
    b"NO\x00OP\r\n",
    b"MAIL FROM:<sender@example.net>\nRCPT TO:<bob@example.test>\r\n",
    b"MAIL FROM:<sender@example.net>\x00\r\n",
    b"RSET\r\r\n",
    b"\n\r\n",
], ids=["lf", "cr", "nul", "lf-mail-rcpt", "nul-mail", "cr-crlf", "lf-crlf"])
def test_bare_byte_in_command(pm, line):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.send(line)
        code, text = c.reply()
        assert (code, text[0][:5]) == (500, "5.5.2"), (code, text)
        assert still_in_step(c)
        # No transaction was opened by any part of the line.
        code, text = c.cmd("RCPT TO:<bob@example.test>")
        assert code == 503, (code, text)


def test_bare_lf_in_rcpt_inside_transaction(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        c.send(b"RCPT TO:<alice@example.test>\nRCPT TO:<bob@example.test>"
               b"\r\n")
        code, text = c.reply()
        assert (code, text[0][:5]) == (500, "5.5.2"), (code, text)
        # Neither recipient was added.
        code, text = c.cmd("DATA")
        assert code in (503, 554), (code, text)


def test_smuggling_after_pipelined_envelope(pm):
    """The same attack with the whole envelope pipelined in one write."""
    mark = marker()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.net>\r\n"
               b"RCPT TO:<alice@example.test>\r\n"
               b"DATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
        c.send(("Subject: %s\r\n\r\nx\n.\nMAIL FROM:<a@example.test>\r\n"
                "RCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled "
                "%s\r\n\r\n.\r\n" % (mark, mark)).encode())
        code, text = c.reply()
        assert (code, text[0][:5]) == REFUSED, (code, text)
        assert not c.buf
    sentinel(pm)
    nothing_stored(pm, mark)


@pytest.mark.parametrize("body", ["7BIT", "BINARYMIME"])
def test_smuggling_pattern_in_bdat(pm, body):
    """BDAT is framed by its length: a dot pattern inside a chunk can
    never end it.  A 7bit or 8bitmime message with a bare LF is refused
    like one sent with DATA; BODY=BINARYMIME takes it as data, stored
    exactly as sent, as one message."""
    mark = marker()
    data = ("Subject: %s\r\n\r\nbefore\n.\nMAIL FROM:<a@example.test>\r\n"
            "RCPT TO:<bob@example.test>\r\nDATA\r\nafter\r\n"
            % mark).encode()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net> BODY=%s" % body)[0] \
            == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        c.send(b"BDAT %d LAST\r\n" % len(data) + data)
        code, text = c.reply()
        assert not c.buf
        assert still_in_step(c)
    sentinel(pm)
    assert pm.find_messages("bob@example.test", mark, timeout=0) == []
    found = pm.find_messages("alice@example.test", mark, timeout=0)
    if body == "BINARYMIME":
        assert code == 250 and QUEUED_RE.match(text[-1]), (code, text)
        assert len(found) == 1
        assert found[0].endswith(data)
    else:
        assert (code, text[0][:5]) == REFUSED, (code, text)
        assert found == []


def test_binarymime_needs_bdat(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net> BODY=BINARYMIME")[0] \
            == 250
        assert c.cmd("RCPT TO:<alice@example.test>")[0] == 250
        code, text = c.cmd("DATA")
        assert (code, text[0][:5]) == (503, "5.5.1"), (code, text)
