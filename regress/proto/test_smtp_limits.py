"""Every smtpd limit of postern.conf(5), set small, with the exact reply
it gives: line length, message size (announced, at MAIL and while
streaming), recipients, sessions in total and per client address, idle
and DATA timeouts, bad commands."""
import time
import uuid

import pytest

from conftest import QUEUED_RE, TIME_SCALE, SMTPClient

PASSWORD = "Garnet-Plover-5082-unlikely"
ALICE = "alice@example.test"
LINE_MAX = 512
SIZE_MAX = 4096
RCPT_MAX = 3
IDLE = 2
DATA_TIMEOUT = 4
BAD_MAX = 3

LIMITS = """\
limit smtp-line-length %d
limit message-size %d
limit recipients %d
limit idle-timeout %ds
limit data-timeout %ds
limit bad-commands %d
""" % (LINE_MAX, SIZE_MAX, RCPT_MAX, IDLE, DATA_TIMEOUT, BAD_MAX)


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory(config_extra=LIMITS, listeners=["smtp"])
    for u in ("alice", "bob", "carol", "dave"):
        p.add_account("%s@example.test" % u, PASSWORD)
    return p


def mark():
    return "lim-%s" % uuid.uuid4().hex


def message(m, size=0):
    """A message marked m, of at least size bytes when size is given."""
    head = ("Subject: %s\r\nMessage-ID: <%s@x>\r\n\r\n" % (m, m)).encode()
    if not size:
        return head + b"ok\r\n"
    line = b"0123456789" * 7 + b"\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


def open_txn(c, rcpts=(ALICE,)):
    assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
    for r in rcpts:
        assert c.cmd("RCPT TO:<%s>" % r)[0] == 250


def sentinel(p):
    m = mark()
    with SMTPClient(p.ports["smtp"]) as c:
        c.ehlo()
        open_txn(c)
        assert c.cmd("DATA")[0] == 354
        c.send(message(m) + b".\r\n")
        code, text = c.reply()
        assert code == 250 and QUEUED_RE.match(text[-1]), (code, text)
    assert len(p.find_messages(ALICE, m)) == 1


def nothing_stored(p, m, account=ALICE):
    sentinel(p)
    assert p.find_messages(account, m, timeout=0) == []


def in_step(c, may_close=False):
    """The next command gets its own answer: nothing was left over.
    With may_close, the server may have hung up instead."""
    try:
        code, text = c.cmd("VRFY x")
    except (EOFError, ConnectionError):
        if may_close:
            return
        raise
    assert code == 252, ("left-over reply", code, text)


# --- line length -------------------------------------------------------------


def test_command_at_the_line_limit(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        # LINE_MAX bytes with the CRLF.
        line = "NOOP " + "x" * (LINE_MAX - 7)
        assert len(line) + 2 == LINE_MAX
        code, text = c.cmd(line)
        assert code == 250, (code, text)


@pytest.mark.parametrize("length", [LINE_MAX + 1, 600, 4000, 100000])
def test_command_too_long(pm, length):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("NOOP " + "x" * (length - 7))
        assert (code, text[0][:5]) == (500, "5.5.2"), (code, text)
        # The rest of the line was dropped, not read as a command.
        in_step(c, may_close=length > 10000)


def test_long_rcpt_does_not_add_a_recipient(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        code, text = c.cmd("RCPT TO:<%s> %s" % (ALICE, "X" * 600))
        assert (code, text[0][:5]) == (500, "5.5.2"), (code, text)
        code, text = c.cmd("DATA")
        assert code in (503, 554), (code, text)


def test_message_line_too_long(pm):
    m = mark()
    data = ("Subject: %s\r\n\r\n" % m).encode() + b"y" * (LINE_MAX + 100) + \
        b"\r\n"
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        open_txn(c)
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        # Refused once the whole message is read, with the line rule's
        # code.
        assert (code, text[0][:5]) == (500, "5.5.2"), (code, text)
        assert not c.buf
        in_step(c)
    nothing_stored(pm, m)


# --- message size --------------------------------------------------------------


def test_size_announced(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        assert "SIZE %d" % SIZE_MAX in c.ehlo()


def test_size_param_over_the_limit(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        code, text = c.cmd("MAIL FROM:<sender@example.net> SIZE=%d"
                           % (SIZE_MAX + 1))
        assert (code, text[0][:5]) == (552, "5.3.4"), (code, text)
        code, text = c.cmd("MAIL FROM:<sender@example.net> SIZE=%d"
                           % SIZE_MAX)
        assert code == 250, (code, text)


def test_message_under_the_limit_accepted(pm):
    m = mark()
    data = message(m, SIZE_MAX // 2)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        open_txn(c)
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert code == 250, (code, text)
    assert pm.find_messages(ALICE, m)[0].endswith(data)


@pytest.mark.parametrize("size", [SIZE_MAX + 100, 10 * SIZE_MAX, 300000])
def test_message_too_big_while_streaming(pm, size):
    m = mark()
    data = message(m, size)
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        # SIZE= said nothing (or a lie): the limit holds while streaming.
        assert c.cmd("MAIL FROM:<sender@example.net> SIZE=100")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % ALICE)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(data + b".\r\n")
        code, text = c.reply()
        assert (code, text[0][:5]) == (552, "5.3.4"), (code, text)
        assert not c.buf
        in_step(c)
    nothing_stored(pm, m)


def test_message_too_big_in_bdat(pm):
    m = mark()
    data = message(m, SIZE_MAX * 3)
    half = len(data) // 2
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        open_txn(c)
        c.send(b"BDAT %d\r\n" % half + data[:half])
        first = c.reply()
        c.send(b"BDAT %d LAST\r\n" % (len(data) - half) + data[half:])
        last = c.reply()
        assert first[0] == 552 or last[0] == 552, (first, last)
        for r in (first, last):
            if r[0] != 250:
                assert (r[0], r[1][0][:5]) in ((552, "5.3.4"),
                                               (503, "5.5.1")), r
        in_step(c)
    nothing_stored(pm, m)


# --- recipients ---------------------------------------------------------------


def test_recipients_limit(pm):
    m = mark()
    users = ["alice", "bob", "carol", "dave"]
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        for u in users[:RCPT_MAX]:
            assert c.cmd("RCPT TO:<%s@example.test>" % u)[0] == 250
        code, text = c.cmd("RCPT TO:<%s@example.test>" % users[RCPT_MAX])
        assert (code, text[0][:5]) == (452, "4.5.3"), (code, text)
        # Refused ones do not count: still the same answer.
        code, text = c.cmd("RCPT TO:<dave+again@example.test>")
        assert (code, text[0][:5]) == (452, "4.5.3"), (code, text)
        assert c.cmd("DATA")[0] == 354
        c.send(message(m) + b".\r\n")
        assert c.reply()[0] == 250
    for u in users[:RCPT_MAX]:
        assert len(pm.find_messages("%s@example.test" % u, m)) == 1
    assert pm.find_messages("dave@example.test", m, timeout=0) == []


def test_refused_recipients_do_not_count(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        for i in range(RCPT_MAX + 2):
            assert c.cmd("RCPT TO:<nobody%d@example.test>" % i)[0] == 550
        for u in ("alice", "bob", "carol"):
            assert c.cmd("RCPT TO:<%s@example.test>" % u)[0] == 250


def test_recipients_limit_resets_per_transaction(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        for _ in range(2):
            assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
            for u in ("alice", "bob", "carol"):
                assert c.cmd("RCPT TO:<%s@example.test>" % u)[0] == 250
            assert c.cmd("RSET")[0] == 250


# --- timeouts ---------------------------------------------------------------


@pytest.mark.parametrize("when", ["greeting", "ehlo", "transaction"])
def test_idle_timeout(pm, when):
    with SMTPClient(pm.ports["smtp"], timeout=20) as c:
        if when != "greeting":
            c.ehlo()
        if when == "transaction":
            open_txn(c)
        t = time.monotonic()
        code, text = c.reply()
        waited = time.monotonic() - t
        assert (code, text[0][:5]) == (421, "4.4.2"), (code, text)
        assert IDLE * 0.8 <= waited <= (IDLE + 3) * TIME_SCALE, waited
        assert c.closed()


def test_activity_resets_idle_timer(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        t = time.monotonic()
        while time.monotonic() - t < IDLE * 2:
            assert c.cmd("NOOP")[0] == 250
            time.sleep(IDLE / 3)


def test_idle_timeout_during_data(pm):
    m = mark()
    with SMTPClient(pm.ports["smtp"], timeout=20) as c:
        c.ehlo()
        open_txn(c)
        assert c.cmd("DATA")[0] == 354
        c.send(("Subject: %s\r\n\r\npartial" % m).encode())
        code, text = c.reply()
        assert code == 421 and text[0][:4] == "4.4.", (code, text)
        assert c.closed()
    nothing_stored(pm, m)


def test_data_timeout(pm):
    """A client that trickles its message, never idle for long, is still
    cut off when the whole transfer takes too long."""
    m = mark()
    with SMTPClient(pm.ports["smtp"], timeout=20) as c:
        c.ehlo()
        open_txn(c)
        assert c.cmd("DATA")[0] == 354
        c.send(("Subject: %s\r\n\r\n" % m).encode())
        t = time.monotonic()
        got = None
        c.sock.settimeout(IDLE / 4)
        while time.monotonic() - t < (DATA_TIMEOUT + 4) * TIME_SCALE:
            try:
                c.send(b"trickle line\r\n")
            except (BrokenPipeError, ConnectionError):
                break
            try:
                got = c.reply()
                break
            except OSError:
                pass
        waited = time.monotonic() - t
        c.sock.settimeout(5)
        if got is None:
            got = c.reply()
        code, text = got
        assert code == 421 and text[0][:4] == "4.4.", (code, text)
        assert DATA_TIMEOUT * 0.8 <= waited, waited
        assert c.closed()
    nothing_stored(pm, m)


# --- bad commands ---------------------------------------------------------------


def test_bad_commands_close_the_session(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        replies = []
        for i in range(BAD_MAX + 2):
            try:
                replies.append(c.cmd("BOGUS%d" % i))
            except (EOFError, ConnectionError):
                break
            if replies[-1][0] == 421:
                break
        codes = [r[0] for r in replies]
        # BAD_MAX refusals are answered, then the session is closed.
        assert codes[:BAD_MAX] == [500] * BAD_MAX, replies
        assert codes[BAD_MAX:] == [421], replies
        assert replies[-1][1][0][:2] == "4.", replies
        assert c.closed()


def test_good_commands_do_not_count(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        for i in range(BAD_MAX - 1):
            assert c.cmd("BOGUS")[0] == 500
        for i in range(10):
            assert c.cmd("NOOP")[0] == 250
        assert c.cmd("RSET")[0] == 250


def test_bad_syntax_counts_as_bad_command(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        codes = []
        for i in range(BAD_MAX + 2):
            try:
                codes.append(c.cmd("MAIL FROM:broken")[0])
            except (EOFError, ConnectionError):
                break
            if codes[-1] == 421:
                break
        assert codes[-1] == 421, codes
        assert len(codes) <= BAD_MAX + 1, codes


# --- sessions --------------------------------------------------------------------


SESSIONS = 4
PER_CLIENT = 2


@pytest.fixture(scope="module")
def sessions_pm(module_factory):
    p = module_factory(config_extra="limit sessions %d\n"
                       "limit sessions-per-client %d\n"
                       % (SESSIONS, PER_CLIENT), listeners=["smtp"])
    p.add_account(ALICE, PASSWORD)
    return p


def wait_free(p, source="127.0.0.1", tries=50):
    """Waits until the server has seen earlier sessions go."""
    for _ in range(tries):
        with SMTPClient(p.ports["smtp"], source=source) as c:
            if c.greeting[0] == 220:
                return
        time.sleep(0.1)
    raise AssertionError("sessions never freed")


def test_sessions_per_client(sessions_pm):
    p = sessions_pm
    wait_free(p)
    held = [SMTPClient(p.ports["smtp"]) for _ in range(PER_CLIENT)]
    try:
        assert [c.greeting[0] for c in held] == [220] * PER_CLIENT
        with SMTPClient(p.ports["smtp"]) as c:
            code, text = c.greeting
            assert (code, text[0][:5]) == (421, "4.7.0"), (code, text)
            assert c.closed()
        # Another client address is not held back.
        with SMTPClient(p.ports["smtp"], source="127.0.0.2") as c:
            assert c.greeting[0] == 220
            c.ehlo()
    finally:
        for c in held:
            c.close()
    wait_free(p)


def test_sessions_total(sessions_pm):
    p = sessions_pm
    wait_free(p)
    sources = ["127.0.0.%d" % (10 + i // PER_CLIENT)
               for i in range(SESSIONS)]
    held = [SMTPClient(p.ports["smtp"], source=s) for s in sources]
    try:
        assert [c.greeting[0] for c in held] == [220] * SESSIONS
        with SMTPClient(p.ports["smtp"], source="127.0.0.99") as c:
            code, text = c.greeting
            assert (code, text[0][:5]) == (421, "4.7.0"), (code, text)
            assert c.closed()
        # One goes, and a new one is let in.
        held.pop().cmd("QUIT")
        wait_free(p, source="127.0.0.99")
    finally:
        for c in held:
            c.close()


def test_refused_session_sends_nothing_more(sessions_pm):
    """A session refused at the door is not served even if the client
    talks on."""
    p = sessions_pm
    wait_free(p)
    held = [SMTPClient(p.ports["smtp"]) for _ in range(PER_CLIENT)]
    try:
        with SMTPClient(p.ports["smtp"], greet=False) as c:
            c.send(b"EHLO x\r\nMAIL FROM:<a@example.net>\r\n")
            code, text = c.reply()
            assert code == 421, (code, text)
            assert c.closed()
            assert b"250" not in c.buf
    finally:
        for c in held:
            c.close()
