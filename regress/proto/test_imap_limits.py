"""Bounded input: a command line past imap-line-length gets BAD, a
literal past it or an APPEND past imap-literal-size gets NO before any
of its bytes is read (no "+" continuation), parenthesis depth and
sequence-set size are bounded, malformed and unknown commands get a
tagged BAD, and in every case the session goes on.  Past bad-commands
BADs the session is closed."""
import os
import re
import time

import pytest

from conftest import IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER, imap_client

LINE = 128 * 1024
LITERAL = 16 * 1024


@pytest.fixture(scope="module")
def limits(module_factory):
    p = module_factory(listeners=IMAP_LISTENERS,
                       config_extra="limit imap-line-length 128K\n"
                                    "limit imap-literal-size 16K\n"
                                    "limit bad-commands 1000\n")
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    return p


@pytest.fixture
def c(limits):
    cl = imap_client(limits)
    yield cl
    cl.close()


def goes_on(c):
    t, _ = c.cmd("NOOP")
    assert t.endswith("OK NOOP completed") or " OK " in t, t


def test_line_too_long(c):
    c.send("a NOOP " + "x" * (LINE + 10) + "\r\n")
    ln = c.line()
    assert re.match(r"(a|\*) BAD", ln), ln
    goes_on(c)
    # Sent in pieces, slowly: the same.
    c.send("b SELECT ")
    for i in range(4):
        c.send("y" * (LINE // 3))
        time.sleep(0.05)
    c.send("\r\n")
    ln = c.line()
    assert re.match(r"(b|\*) BAD", ln), ln
    goes_on(c)
    # Many small tokens.
    c.send("c FETCH 1 (" + "FLAGS " * (LINE // 6 + 10) + ")\r\n")
    ln = c.line()
    assert re.match(r"(c|\*) BAD", ln), ln
    goes_on(c)
    # Just under the limit is a command like any other.
    c.ok("SELECT INBOX")
    t, _ = c.cmd("SEARCH OR SUBJECT " + "z" * (LINE - 200) + " ALL")
    assert t.split()[1] in ("OK", "NO"), t
    goes_on(c)


def test_line_too_long_before_login(limits):
    c = imap_client(limits, user=None)
    c.send("a LOGIN " + "x" * (LINE + 10) + " y\r\n")
    assert re.match(r"(a|\*) BAD", c.line())
    c.login()
    c.close()


def test_literal_too_long_for_a_command(c):
    # A synchronizing literal in a command past imap-line-length: NO at
    # once, no continuation; the client then sends no bytes.
    c.send("a SELECT {%d}\r\n" % (LINE + 1))
    ln = c.line()
    assert ln.startswith("a NO"), ln
    goes_on(c)
    c.send("b LOGIN {%d}\r\n" % (10 ** 15))
    ln = c.line()
    assert ln.startswith("b NO") or ln.startswith("b BAD"), ln
    goes_on(c)
    # Longer than any number.
    c.send("c SELECT {%s}\r\n" % ("9" * 40))
    ln = c.line()
    assert ln.startswith("c NO") or ln.startswith("c BAD"), ln
    goes_on(c)
    # A literal that fits.
    c.send("d SELECT {5}\r\n")
    assert c.line().startswith("+")
    c.send("INBOX\r\n")
    assert c.until("d")[-1].startswith("d OK")


def test_append_too_big(c):
    c.ok("CREATE Big")
    c.send("a APPEND Big {%d}\r\n" % (LITERAL + 1))
    ln = c.line()
    assert ln.startswith("a NO") and "[TOOBIG]" in ln, ln
    goes_on(c)
    c.send("b APPEND Big (\\Seen) {%d}\r\n" % (10 ** 12))
    ln = c.line()
    assert ln.startswith("b NO") and "[TOOBIG]" in ln, ln
    goes_on(c)
    # Exactly the limit is accepted.
    m = b"Subject: at the limit\r\n\r\n"
    m += b"x" * (LITERAL - len(m) - 2) + b"\r\n"
    assert len(m) == LITERAL
    c.send("c APPEND Big {%d}\r\n" % len(m))
    assert c.line().startswith("+")
    c.send(m + b"\r\n")
    assert c.until("c")[-1].startswith("c OK")
    # A non-synchronizing one too big: NO, its bytes skipped, then on.
    big = b"y" * (LITERAL + 100)
    c.send(b"d APPEND Big {%d+}\r\n%s\r\n" % (len(big), big))
    ln = c.line()
    assert ln.startswith("d NO") and "[TOOBIG]" in ln, ln
    goes_on(c)
    out = c.ok("STATUS Big (MESSAGES)")
    assert "MESSAGES 1" in out[0]
    # The second of a MULTIAPPEND too big: NO before its bytes.
    small = b"Subject: s\r\n\r\ns\r\n"
    c.send(b"e APPEND Big {%d}\r\n" % len(small))
    assert c.line().startswith("+")
    c.send(small + b" {%d}\r\n" % (LITERAL + 1))
    ln = c.line()
    assert ln.startswith("e NO") and "[TOOBIG]" in ln, ln
    goes_on(c)


def test_paren_depth(c):
    c.ok("SELECT INBOX")
    t, _ = c.cmd("SEARCH " + "(" * 20 + "ALL" + ")" * 20)
    assert t.split()[1] == "OK", t
    for depth in (40, 1000, 20000):
        t, _ = c.cmd("SEARCH " + "(" * depth + "ALL" + ")" * depth)
        assert t.split()[1] == "BAD", (depth, t)
        goes_on(c)
    # Unbalanced, deep.
    c.refused("SEARCH " + "(" * 5000, "BAD")
    c.refused("FETCH 1 " + "(" * 5000, "BAD")
    c.refused("LIST " + "(" * 5000, "BAD")
    # A long chain of NOT or OR needs no parentheses: answered.
    t, _ = c.cmd("SEARCH " + "NOT " * 200 + "ALL")
    assert t.split()[1] in ("OK", "BAD"), t
    t, _ = c.cmd("SEARCH " + "OR ALL " * 200 + "ALL")
    assert t.split()[1] in ("OK", "BAD"), t
    goes_on(c)


@pytest.fixture(scope="module")
def many(limits):
    """A mailbox of 4096 messages, made by APPEND and doubling COPYs."""
    c = imap_client(limits)
    c.ok("CREATE Many")
    m = b"Subject: many\r\n\r\nm\r\n"
    c.send(b"a APPEND Many {%d+}\r\n%s\r\n" % (len(m), m))
    assert c.until("a")[-1].startswith("a OK")
    c.ok("SELECT Many")
    for i in range(12):
        c.ok("COPY 1:* Many")
    c.ok("NOOP")
    out = c.ok("STATUS Many (MESSAGES)")
    assert "MESSAGES 4096" in out[0], out
    c.close()
    return limits


def test_huge_sequence_sets(many):
    c = imap_client(many, select="Many")
    uids = [int(x) for x in c.ok("UID SEARCH ALL")[0].split()[2:]]
    assert len(uids) == 4096
    odd = uids[::2]
    # 2048 ranges: more than one request to storaged holds.
    t, out = c.cmd("UID STORE %s +FLAGS.SILENT ($Odd)"
                   % ",".join(str(u) for u in odd))
    assert t.split()[1] == "OK", t
    out = c.ok("UID SEARCH KEYWORD $Odd")
    assert [int(x) for x in out[0].split()[2:]] == odd
    out = c.ok("FETCH %s (UID)" % ",".join(str(i) for i in
                                            range(2, 4097, 2)))
    fetched = [int(re.search(r"UID (\d+)", ln).group(1)) for ln in out
               if " FETCH " in ln]
    assert fetched == uids[1::2]
    # Past the bound on ranges (8192): BAD, and on.
    t, _ = c.cmd("UID FETCH %s (UID)" % ",".join(
        "%d" % (i * 2 + 1) for i in range(9000)))
    assert t.split()[1] == "BAD", t
    goes_on(c)
    # Sets that are large but few ranges are fine.
    out = c.ok("UID FETCH 1:4294967295 (UID)")
    assert len([ln for ln in out if " FETCH " in ln]) == 4096
    out = c.ok("SEARCH 1:4096 NOT 2:4095")
    assert out[0] == "* SEARCH 1 4096"
    # Numbers past 32 bits, zero.
    for bad in ("FETCH 4294967296 (UID)", "UID FETCH 99999999999999999999 "
                "(UID)", "FETCH 0:3 (UID)", "UID FETCH 1:0x10 (UID)",
                "FETCH 5000 (UID)"):
        t, _ = c.cmd(bad)
        assert t.split()[1] == "BAD", (bad, t)
    goes_on(c)
    c.close()


MALFORMED = [
    "SELECT",
    'SELECT "unterminated',
    "SELECT INBOX extra",
    "FETCH 1 (FLAGS",
    "FETCH 1 FLAGS)",
    "FETCH",
    "FETCH * BODY[HEADER.FIELDS ()]",
    "FETCH 1 BODY[]<>",
    "STORE 1 +FLAGS (\\Seen",
    "STORE 1",
    "UID FROB 1",
    "UID",
    "NOOP extra",
    "LIST",
    "LIST \"\"",
    "STATUS INBOX",
    "STATUS INBOX (MESSAGES",
    "CREATE \"a\" \"b\"",
    "COPY 1",
    "SEARCH",
    "APPEND",
    "LOGOUT now",
    "ENABLE",
    "EXPUNGE 1",
    "CLOSE x",
    "IDLE x",
    "SELECT \"bad\\qescape\"",
    "FETCH 1:* FLAGS\x00",
    "FROB",
    "XYZZY 1 2 3",
    "LOGIN a b",
    "AUTHENTICATE PLAIN AAAA",
]


@pytest.mark.parametrize("cmd", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_command(c, cmd):
    c.ok("SELECT INBOX")
    tag = c.tag()
    c.send(tag.encode() + b" " + cmd.encode("latin-1") + b"\r\n")
    ln = c.line()
    while ln.startswith("* ") and not ln.startswith("* BAD"):
        ln = c.line()
    assert ln.startswith(tag + " BAD") or ln.startswith("* BAD"), (cmd, ln)
    goes_on(c)
    c.ok("NOOP")


def test_bad_tags_and_empty_lines(c):
    for line in ("", " ", "+ NOOP", "a*b NOOP", "(a) NOOP", "a", "a ",
                 "\"a\" NOOP", "a%b NOOP",
                 "a\x7fb NOOP"):
        c.send(line.encode("latin-1") + b"\r\n")
        ln = c.line()
        assert " BAD" in ln[:120] and not ln.split()[1] == "OK", (line, ln)
        goes_on(c)


def test_eight_bit_and_bare_lf(c):
    c.send(b"a SELECT \xff\xfe\r\n")
    ln = c.line()
    assert ln.startswith("a BAD") or ln.startswith("a NO"), ln
    goes_on(c)
    # A bare LF ends a line for some servers; either way the session
    # answers and goes on.
    c.send(b"b NOOP\n")
    c.send(b"c NOOP\r\n")
    c.send(b"d NOOP\r\n")
    lines = c.until("d")
    assert lines[-1].startswith("d OK"), lines


def test_too_many_bad_commands(module_factory):
    p = module_factory(listeners=["imaps"],
                       config_extra="limit bad-commands 3\n")
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    for i in range(3):
        c.refused("FROB", "BAD")
    c.send("z FROB\r\n")
    ln = c.line()
    assert ln.startswith("* BYE"), ln
    assert c.closed()


VERBS = ["FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH",
         "COPY", "UID COPY", "MOVE", "UID MOVE", "EXPUNGE", "UID EXPUNGE",
         "SORT", "UID SORT", "THREAD", "UID THREAD", "STATUS", "LIST",
         "LSUB", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME",
         "SUBSCRIBE", "UNSUBSCRIBE", "APPEND", "ENABLE", "ID", "NOOP",
         "CHECK", "NAMESPACE", "CAPABILITY", "UNSELECT", "FROB"]
PIECES = ["1", "*", "1:*", "2:4", "0", "4294967295", "4294967296", "$",
          "(", ")", "[", "]", "<0.5>", "BODY[", "BODY[]", "BODY.PEEK[1.2]",
          "BINARY[1]", "FLAGS", "+FLAGS", "-FLAGS.SILENT", "(\\Seen)",
          "\\Deleted", "$kw", "INBOX", "Fuzz", '"quoted"', '"\\"', '""',
          "NIL", "ALL", "OR", "NOT", "SUBJECT", "HEADER", "UTF-8",
          "(CHANGEDSINCE 1)", "(UNCHANGEDSINCE 0)", "RETURN", "(MIN MAX)",
          "REFERENCES", "(DATE)", "01-Jan-2024", "MODSEQ", "ENVELOPE",
          "BODYSTRUCTURE", "{3+}\r\nabc", "~{2+}\r\nab", "\xff", "%", "&",
          "&AGE-", "(MESSAGES UIDNEXT)", "HIGHESTMODSEQ", "UID", "~",
          "((((((", "))))", "12345678901234567890", "-1", "1,2,3"]


def test_random_commands(limits):
    """Commands made at random of IMAP's pieces: each gets its tagged
    answer and the session and imapd go on."""
    rng = __import__("random").Random(int(os.environ.get("IMAP_FUZZ_SEED", "9051")))
    c = imap_client(limits)
    c.ok("CREATE Fuzz")
    m = b"Subject: fuzz\r\n\r\nfuzz\r\n"
    for i in range(3):
        c.send(b"a APPEND Fuzz {%d+}\r\n%s\r\n" % (len(m), m))
        c.until("a")
    c.ok("SELECT Fuzz")
    for n in range(400):
        verb = rng.choice(VERBS)
        args = " ".join(rng.choice(PIECES)
                        for _ in range(rng.randint(0, 6)))
        tag = c.tag()
        c.send(("%s %s %s\r\n" % (tag, verb, args)).encode("latin-1"))
        while True:
            ln = c.line()
            assert not ln.startswith("+"), (verb, args, ln)
            if ln.startswith(tag + " "):
                break
        assert ln.split()[1] in ("OK", "NO", "BAD"), (verb, args, ln)
        if n % 50 == 0:
            c.cmd("CREATE Fuzz")     # a DELETE or RENAME may have hit it
            c.cmd("SELECT Fuzz")
    c.ok("NOOP")
    c.close()
    d = imap_client(limits, select="INBOX")
    d.ok("NOOP")
    d.close()
