"""IMAP commands other than FETCH, SEARCH and session sync, against one
daemon per module: capabilities and authentication (LOGINDISABLED
before TLS, SASL-IR, lockout), ENABLE, ID, NAMESPACE, SELECT and
EXAMINE, mailbox management, subscriptions, LIST-EXTENDED, LIST-STATUS,
SPECIAL-USE, STATUS, APPEND in its forms, CHECK, CLOSE, UNSELECT,
EXPUNGE, UID EXPUNGE, COPY and MOVE (RFC 9051 and its extensions)."""
import base64
import datetime
import imaplib
import re
import threading
import time

import pytest

from conftest import (IMAP_PASSWORD, IMAP_USER, TIME_SCALE,
                      IMAPClient,
                      imap_append, imap_client, imap_code, imap_count,
                      imap_deliver, imap_login, imap_quote, run_together)

FMT = "%d-%b-%Y %H:%M:%S %z"
SPECIAL = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Junk": "\\Junk",
           "Trash": "\\Trash", "Archive": "\\Archive"}


def msg(subject, body="body\r\n", extra=""):
    return ("From: Bob <bob@example.net>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s.%f@example.net>\r\n%s\r\n%s"
            % (IMAP_USER, subject, re.sub(r"\W", "", subject), time.time(),
               extra, body))


def appenduid(tagged):
    m = re.search(r"\[APPENDUID (\d+) (\d+)\]", tagged)
    assert m, tagged
    return int(m.group(1)), int(m.group(2))


def fill(c, mailbox, n, prefix="m"):
    """n messages APPENDed to mailbox; returns their UIDs."""
    uids = []
    for i in range(n):
        t = imap_append(c, mailbox, msg("%s %d" % (prefix, i)))
        assert " OK " in t, t
        uids.append(appenduid(t)[1])
    return uids


def status(c, mailbox, items):
    out = c.ok("STATUS %s (%s)" % (imap_quote(mailbox), items))
    line = [ln for ln in out if ln.startswith("* STATUS ")]
    assert len(line) == 1, out
    m = re.search(r"\((.*)\)$", line[0])
    words = m.group(1).split()
    return {words[i].upper(): int(words[i + 1])
            for i in range(0, len(words), 2)}


def list_lines(c, args):
    """{name: (attributes upper-cased set, delimiter)} of LIST."""
    out = c.ok("LIST " + args)
    res = {}
    for ln in out:
        m = re.match(r'\* (LIST|LSUB) \(([^)]*)\) (NIL|"[^"]*") '
                     r'(?:"((?:[^"\\]|\\.)*)"|(\S+))(.*)$', ln)
        if m:
            name = m.group(4) if m.group(4) is not None else m.group(5)
            res[name] = (set(a.upper() for a in m.group(2).split()),
                         m.group(3), m.group(6))
    return res, out


def seq_uids(c):
    """The session's view: UIDs in sequence order (SEARCH ALL)."""
    out = c.ok("UID SEARCH ALL")
    line = [ln for ln in out if ln.startswith("* SEARCH")][0]
    return [int(x) for x in line.split()[2:]]


def apply_expunges(uids, untagged):
    """Applies * n EXPUNGE responses, in order, to a sequence list."""
    uids = list(uids)
    for ln in untagged:
        m = re.match(r"\* (\d+) EXPUNGE$", ln)
        if m:
            n = int(m.group(1))
            assert 1 <= n <= len(uids), (ln, uids)
            del uids[n - 1]
    return uids


@pytest.fixture
def c(imap):
    cl = imap_client(imap)
    yield cl
    cl.close()


# --- capabilities and authentication --------------------------------

def caps_of(line):
    m = re.search(r"\[CAPABILITY ([^\]]*)\]", line)
    if m:
        return set(m.group(1).upper().split())
    assert line.startswith("* CAPABILITY "), line
    return set(line[len("* CAPABILITY "):].upper().split())


WANTED = ("IMAP4REV2 IMAP4REV1 LITERAL+ ENABLE IDLE NAMESPACE ID UNSELECT "
          "UIDPLUS MOVE CONDSTORE QRESYNC ESEARCH SEARCHRES LIST-EXTENDED "
          "LIST-STATUS SPECIAL-USE SORT THREAD=REFERENCES "
          "THREAD=ORDEREDSUBJECT BINARY MULTIAPPEND STATUS=SIZE").split()


def test_capability_before_and_after_tls(imap):
    c = IMAPClient(imap.ports["imap"])
    assert c.greeting.startswith("* OK ")
    caps = caps_of(c.greeting)
    for w in WANTED + ["STARTTLS", "LOGINDISABLED"]:
        assert w in caps, (w, c.greeting)
    assert not any(x.startswith("AUTH=") for x in caps)
    out = c.ok("CAPABILITY")
    assert caps_of(out[0]) == caps
    # No login in clear: LOGIN and AUTHENTICATE are refused.
    c.refused("LOGIN %s %s" % (IMAP_USER, IMAP_PASSWORD), "NO")
    t, _ = c.cmd("AUTHENTICATE PLAIN " + base64.b64encode(
        b"\0" + IMAP_USER.encode() + b"\0" + IMAP_PASSWORD.encode()).decode())
    assert t.split()[1] in ("NO", "BAD"), t
    c.ok("STARTTLS")
    c.starttls_wrap()
    caps = caps_of(c.ok("CAPABILITY")[0])
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    assert "AUTH=PLAIN" in caps and "SASL-IR" in caps
    # STARTTLS once more is refused.
    t, _ = c.cmd("STARTTLS")
    assert t.split()[1] in ("NO", "BAD"), t
    c.login()
    caps = caps_of(c.ok("CAPABILITY")[0])
    assert "AUTH=PLAIN" not in caps and "STARTTLS" not in caps
    for w in WANTED:
        assert w in caps
    c.send("z LOGOUT\r\n")
    lines = c.until("z")
    assert lines[0].startswith("* BYE") and lines[-1].startswith("z OK")
    assert c.closed()


def test_imaps_greeting(imap):
    c = IMAPClient(imap.ports["imaps"], tls=True)
    caps = caps_of(c.greeting)
    assert "AUTH=PLAIN" in caps and "SASL-IR" in caps
    assert "STARTTLS" not in caps and "LOGINDISABLED" not in caps
    c.close()


def test_login_imaplib_both_listeners(imap):
    for kind in ("imap", "imaps"):
        m = imap_login(imap, kind=kind)
        typ, data = m.noop()
        assert typ == "OK"
        assert m.logout()[0] == "BYE"


def test_login_quoted_and_literal(imap):
    c = imap_client(imap, user=None)
    tag = c.tag()
    c.send("%s LOGIN {%d}\r\n" % (tag, len(IMAP_USER)))
    assert c.line().startswith("+")
    c.send("%s %s\r\n" % (IMAP_USER, imap_quote(IMAP_PASSWORD)))
    t = c.until(tag)[-1]
    assert t.startswith(tag + " OK"), t
    # Already logged in: LOGIN is not valid in the authenticated state.
    c.refused("LOGIN %s %s" % (IMAP_USER, IMAP_PASSWORD), "BAD")
    c.close()


def test_authenticate_plain(imap):
    ir = base64.b64encode(b"\0" + IMAP_USER.encode() + b"\0" +
                          IMAP_PASSWORD.encode()).decode()
    # SASL-IR.
    c = imap_client(imap, user=None)
    t, _ = c.cmd("AUTHENTICATE PLAIN " + ir)
    assert t.split()[1] == "OK", t
    c.ok("SELECT INBOX")
    c.close()
    # Without an initial response: an empty continuation.
    c = imap_client(imap, user=None)
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send(ir + "\r\n")
    assert c.until("a")[-1].startswith("a OK")
    c.close()
    # Cancelled with "*": BAD (RFC 9051 6.2.2), and the session goes on.
    c = imap_client(imap, user=None)
    c.send("b AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send("*\r\n")
    assert c.until("b")[-1].startswith("b BAD")
    # An authorization identity other than the user's own is refused.
    other = base64.b64encode(b"postmaster@example.test\0" +
                             IMAP_USER.encode() + b"\0" +
                             IMAP_PASSWORD.encode()).decode()
    c.refused("AUTHENTICATE PLAIN " + other, "NO")
    # An unknown mechanism.
    t, _ = c.cmd("AUTHENTICATE X-UNKNOWN")
    assert t.split()[1] in ("NO", "BAD"), t
    t, _ = c.cmd("AUTHENTICATE PLAIN " + ir)
    assert t.split()[1] == "OK", t
    c.close()


def test_authenticate_bad_base64(postern_factory):
    # Its own daemon: this once killed imapd.
    p = postern_factory(listeners=["imaps"])
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p, user=None)
    for bad in ("!!!!", "AAA", "A===", "=AAA"):
        t, _ = c.cmd("AUTHENTICATE PLAIN " + bad)
        assert t.split()[1] == "BAD", (bad, t)
    c.send("a AUTHENTICATE PLAIN\r\n")
    assert c.line().startswith("+")
    c.send("!!!!\r\n")
    assert c.until("a")[-1].startswith("a BAD")
    c.login()
    c.close()


def test_commands_need_login(imap):
    c = imap_client(imap, user=None)
    for cmd in ("SELECT INBOX", "LIST \"\" *", "STATUS INBOX (MESSAGES)",
                "CREATE x", "FETCH 1 FLAGS", "ENABLE CONDSTORE"):
        t, _ = c.cmd(cmd)
        assert t.split()[1] in ("BAD", "NO"), (cmd, t)
    c.ok("NOOP")
    c.ok("CAPABILITY")
    c.close()


def test_wrong_password(imap):
    m = imap_login(imap, login=False)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(IMAP_USER, "not-the-password")
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login("nobody@example.test", IMAP_PASSWORD)
    m.login(IMAP_USER, IMAP_PASSWORD)
    m.logout()


LOCKOUT = int(4 * TIME_SCALE)


def test_lockout(module_factory):
    """auth-failures failed logins lock the client address out, LOGIN
    and AUTHENTICATE alike, for auth-lockout; SMTP's failures count
    apart (posternd.8: IMAP keeps its own count)."""
    p = module_factory(listeners=["imaps", "submissions"],
                       config_extra="limit auth-failures 2\n"
                                    "limit auth-lockout %ds\n" % LOCKOUT)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    # Two failed SMTP logins: IMAP is not locked out by them.
    import smtplib
    from conftest import tls_context
    refused = []

    def smtp_fail():
        s = smtplib.SMTP_SSL("127.0.0.1", p.ports["submissions"],
                             context=tls_context(), timeout=30)
        try:
            s.login(IMAP_USER, "wrong-password")
        except smtplib.SMTPAuthenticationError:
            refused.append(1)
        s.close()

    threads = [threading.Thread(target=smtp_fail) for i in range(2)]
    run_together(threads)
    assert len(refused) == 2
    c = imap_client(p)
    c.close()
    results = []

    def fail():
        c = IMAPClient(p.ports["imaps"], tls=True)
        results.append(c.cmd("LOGIN %s wrong-password" % IMAP_USER)[0])
        c.close()

    threads = [threading.Thread(target=fail) for i in range(2)]
    run_together(threads)
    locked_at = time.time()
    assert all(" NO " in r for r in results), results
    # Locked out now: even the right password is refused, at once.
    c = IMAPClient(p.ports["imaps"], tls=True)
    t, _ = c.cmd("LOGIN %s %s" % (IMAP_USER, IMAP_PASSWORD))
    assert t.split()[1] == "NO" and "[UNAVAILABLE]" in t, t
    ir = base64.b64encode(b"\0" + IMAP_USER.encode() + b"\0" +
                          IMAP_PASSWORD.encode()).decode()
    t, _ = c.cmd("AUTHENTICATE PLAIN " + ir)
    assert t.split()[1] == "NO" and "[UNAVAILABLE]" in t, t
    c.close()
    # The lockout began when the failure was counted, a second or more
    # before its delayed NO.
    time.sleep(max(0, locked_at + LOCKOUT - 0.7 - time.time()))
    c = imap_client(p)
    c.ok("NOOP")
    c.close()


BURST = 30


def test_simultaneous_correct_logins_all_succeed(postern_factory):
    """30 sessions from one address log in at once (a client opening
    many connections behind one NAT), LOGIN and AUTHENTICATE alike, with
    the default auth-failures of 10: all succeed, because an attempt
    beyond the address's slots waits for one rather than being refused
    (postern.conf.5, auth-failures)."""
    p = postern_factory(listeners=["imaps"])
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    ir = base64.b64encode(b"\0" + IMAP_USER.encode() + b"\0" +
                          IMAP_PASSWORD.encode()).decode()
    clients = [IMAPClient(p.ports["imaps"], tls=True) for i in range(BURST)]
    # Five more that give up while in line, or under way.
    quitters = [IMAPClient(p.ports["imaps"], tls=True) for i in range(5)]
    for i, c in enumerate(clients):
        if i % 2:
            c.send("a AUTHENTICATE PLAIN %s\r\n" % ir)
        else:
            c.send("a LOGIN %s %s\r\n" % (imap_quote(IMAP_USER),
                                          imap_quote(IMAP_PASSWORD)))
    for c in quitters:
        c.send("a LOGIN %s %s\r\n" % (imap_quote(IMAP_USER),
                                      imap_quote(IMAP_PASSWORD)))
        c.close()
    tagged = [c.until("a")[-1] for c in clients]
    assert all(t.startswith("a OK ") for t in tagged), tagged
    for c in clients:
        c.ok("SELECT INBOX")
        c.close()
    assert "locked out" not in p.logtext()


def test_simultaneous_wrong_logins_locked_out_at_limit(postern_factory):
    """30 wrong passwords at once from one address: no more than
    auth-failures (10) are checked, each answered NO
    [AUTHENTICATIONFAILED] after the delay; the rest wait in line and
    are turned away with NO [UNAVAILABLE] when the lockout comes, and
    then even the right password is refused."""
    p = postern_factory(listeners=["imaps"])
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    clients = [IMAPClient(p.ports["imaps"], tls=True) for i in range(BURST)]
    for i, c in enumerate(clients):
        c.send("a LOGIN %s wrong-%d\r\n" % (imap_quote(IMAP_USER), i))
    tagged = [c.until("a")[-1] for c in clients]
    failed = [t for t in tagged if t.startswith("a NO [AUTHENTICATIONFAILED]")]
    refused = [t for t in tagged if t.startswith("a NO [UNAVAILABLE]")]
    assert len(failed) == 10 and len(refused) == BURST - 10, tagged
    for c in clients:
        c.close()
    c = IMAPClient(p.ports["imaps"], tls=True)
    t, _ = c.cmd("LOGIN %s %s" % (imap_quote(IMAP_USER),
                                  imap_quote(IMAP_PASSWORD)))
    assert t.split()[1] == "NO" and "[UNAVAILABLE]" in t, t
    c.close()


def test_allow_plaintext_listener(module_factory):
    """A listener marked allow plaintext takes LOGIN and AUTHENTICATE
    without TLS, and says so: no LOGINDISABLED."""
    from conftest import free_port
    plain = free_port()
    p = module_factory(listeners=["imap"],
                       config_extra="listen on 127.0.0.1 port %d imap "
                                    "allow plaintext\n" % plain)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = IMAPClient(plain)
    caps = caps_of(c.greeting)
    assert "LOGINDISABLED" not in caps and "AUTH=PLAIN" in caps, caps
    assert "STARTTLS" in caps
    c.login()
    c.ok("SELECT INBOX")
    c.close()
    m = imaplib.IMAP4("127.0.0.1", plain)
    m.login(IMAP_USER, IMAP_PASSWORD)
    m.logout()
    # The other listener still wants TLS first.
    c = IMAPClient(p.ports["imap"])
    assert "LOGINDISABLED" in caps_of(c.greeting)
    c.close()


# --- ENABLE, ID, NAMESPACE -------------------------------------------

def test_enable(c):
    out = c.ok("ENABLE CONDSTORE")
    assert "* ENABLED CONDSTORE" in out
    # Enabling twice or something unknown says nothing of it.
    out = c.ok("ENABLE CONDSTORE X-NOT-A-THING")
    assert not any("X-NOT-A-THING" in ln for ln in out)
    assert not any("CONDSTORE" in ln for ln in out)
    out = c.ok("ENABLE QRESYNC IMAP4rev2 UTF8=ACCEPT")
    enabled = [ln for ln in out if ln.startswith("* ENABLED")]
    assert len(enabled) == 1
    words = set(enabled[0].upper().split()[2:])
    assert words == {"QRESYNC", "IMAP4REV2", "UTF8=ACCEPT"}, enabled
    c.refused("ENABLE", "BAD")


def test_enable_after_select(c):
    c.ok("SELECT INBOX")
    # RFC 5161 3.1: clients must not, servers need not check; either
    # way the session goes on.
    t, _ = c.cmd("ENABLE CONDSTORE")
    assert t.split()[1] in ("OK", "BAD", "NO"), t
    c.ok("NOOP")


def test_id(imap):
    c = imap_client(imap, user=None)
    out = c.ok('ID ("name" "pytest" "version" "1")')
    ids = [ln for ln in out if ln.startswith("* ID ")]
    assert len(ids) == 1
    assert ids[0] == "* ID NIL" or re.match(r'\* ID \((".*" (".*"|NIL) ?)+\)$',
                                            ids[0]), ids
    out = c.ok("ID NIL")
    assert len([ln for ln in out if ln.startswith("* ID ")]) == 1
    c.refused('ID ("name")', "BAD")
    c.close()


def test_namespace(c):
    out = c.ok("NAMESPACE")
    assert out == ['* NAMESPACE (("" "/")) NIL NIL']


# --- SELECT and EXAMINE ---------------------------------------------

def test_select_responses(c):
    c.ok("CREATE SelTest")
    fill(c, "SelTest", 3, "sel")
    # A keyword in use, which FLAGS must list.
    t = imap_append(c, "SelTest", msg("kw"), flags="\\Seen $Label1")
    uv, uid = appenduid(t)
    tag = c.tag()
    c.send("%s SELECT SelTest\r\n" % tag)
    lines = c.until(tag)
    tagged, out = lines[-1], lines[:-1]
    assert tagged.startswith(tag + " OK [READ-WRITE]"), tagged
    flags = [ln for ln in out if ln.startswith("* FLAGS ")]
    assert len(flags) == 1
    fl = set(flags[0][len("* FLAGS ("):-1].upper().split())
    assert {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN",
            "\\DRAFT"} <= fl, flags
    assert "$LABEL1" in fl, flags
    assert imap_count(out, "EXISTS") == 4
    assert int(imap_code(out, "UIDVALIDITY")) == uv
    assert int(imap_code(out, "UIDNEXT")) == uid + 1
    perm = imap_code(out, "PERMANENTFLAGS")
    assert perm is not None, out
    pf = set(perm.strip("()").upper().split())
    assert {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT",
            "\\*"} <= pf, perm
    hms = imap_code(out, "HIGHESTMODSEQ")
    assert hms is not None and int(hms) > 0, out
    # EXAMINE: read-only, same numbers.
    tag = c.tag()
    c.send("%s EXAMINE SelTest\r\n" % tag)
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK [READ-ONLY]"), lines[-1]
    assert imap_count(lines, "EXISTS") == 4
    assert int(imap_code(lines, "UIDVALIDITY")) == uv
    # Selecting again while selected: the first is closed
    # (RFC 9051 6.3.2: an untagged OK [CLOSED] before the new one).
    tag = c.tag()
    c.send("%s SELECT INBOX\r\n" % tag)
    lines = c.until(tag)
    assert "* OK [CLOSED] " in "\n".join(lines) or \
        any(ln.startswith("* OK [CLOSED]") for ln in lines), lines
    assert lines[-1].startswith(tag + " OK [READ-WRITE]")


def test_select_rev1_recent_unseen(c):
    """RFC 3501 6.3.1 (errata 3032): an IMAP4rev1 client gets RECENT
    (0: no message is ever recent) and, when a message is unseen,
    OK [UNSEEN n] with the first one's number."""
    c.ok("CREATE SelUnseen")
    fill(c, "SelUnseen", 3, "su")
    c.ok("SELECT SelUnseen")
    c.ok("STORE 1 +FLAGS.SILENT (\\Seen)")
    out = c.ok("SELECT SelUnseen")
    assert imap_count(out, "RECENT") == 0, out
    assert imap_code(out, "UNSEEN") == "2", out
    c.ok("STORE 1:* +FLAGS.SILENT (\\Seen)")
    out = c.ok("SELECT SelUnseen")
    assert imap_code(out, "UNSEEN") is None, out


def test_select_rev2_no_recent(imap):
    c = imap_client(imap)
    c.ok("ENABLE IMAP4rev2")
    out = c.ok("SELECT INBOX")
    assert imap_count(out, "RECENT") is None, out
    assert imap_count(out, "EXISTS") is not None
    # IMAP4rev2 lists * LIST for the selected mailbox in SELECT.
    assert any(ln.startswith('* LIST ') and 'INBOX' in ln for ln in out), out
    c.close()


def test_select_condstore_and_errors(c):
    out = c.ok("SELECT INBOX (CONDSTORE)")
    assert imap_code(out, "HIGHESTMODSEQ") is not None
    t, _ = c.cmd("SELECT NoSuchMailbox")
    assert t.split()[1] == "NO" and "[NONEXISTENT]" in t, t
    # A failed SELECT leaves no mailbox selected.
    c.refused("FETCH 1 FLAGS", "BAD")
    c.refused("SELECT", "BAD")
    # INBOX is case-insensitive.
    out = c.ok("EXAMINE inbox")
    assert imap_count(out, "EXISTS") is not None


def test_examine_is_read_only(c):
    c.ok("CREATE RoTest")
    fill(c, "RoTest", 2, "ro")
    c.ok("EXAMINE RoTest")
    c.refused("STORE 1 +FLAGS (\\Deleted)", "NO")
    c.refused("EXPUNGE", "NO")
    # FETCH BODY[] in EXAMINE sets no \Seen.
    c.ok("FETCH 1 BODY[]")
    out = c.ok("FETCH 1 FLAGS")
    assert "\\Seen" not in out[0], out
    out = status(c, "RoTest", "UNSEEN")
    assert out["UNSEEN"] == 2


# --- CREATE, DELETE, RENAME ------------------------------------------

def test_create(c):
    c.ok("CREATE Projects")
    t, _ = c.cmd("CREATE Projects")
    assert t.split()[1] == "NO" and "[ALREADYEXISTS]" in t, t
    c.refused("CREATE INBOX", "NO")
    c.ok("CREATE Deep/er/est")
    res, _ = list_lines(c, '"" "Deep*"')
    assert set(res) == {"Deep", "Deep/er", "Deep/er/est"}, res
    assert "\\HASCHILDREN" in res["Deep"][0]
    assert "\\HASNOCHILDREN" in res["Deep/er/est"][0]
    assert res["Deep"][1] == '"/"'
    # The parents made for it are real mailboxes.
    c.ok("SELECT Deep/er")
    # A trailing separator names the mailbox without it.
    c.ok("CREATE Trailing/")
    res, _ = list_lines(c, '"" "Trailing*"')
    assert list(res) == ["Trailing"], res
    c.refused("CREATE", "BAD")


def test_create_utf7_and_utf8(c):
    # Modified UTF-7 for a client that did not ENABLE UTF8=ACCEPT.
    c.ok('CREATE "Entw&APw-rfe"')
    res, _ = list_lines(c, '"" "Entw*"')
    assert list(res) == ["Entw&APw-rfe"], res
    c2 = IMAPClient(c.sock.getpeername()[1], tls=True)
    c2.login()
    c2.ok("ENABLE UTF8=ACCEPT")
    out = c2.ok('LIST "" "Entw*"')
    assert any("Entw\u00fcrfe".encode().decode("latin-1") in ln
               for ln in out), out
    c2.close()
    # Invalid modified UTF-7 is refused.
    t, _ = c.cmd('CREATE "bad&Jjo"')
    assert t.split()[1] in ("NO", "BAD"), t


def test_delete(c):
    c.ok("CREATE Del1")
    fill(c, "Del1", 2, "del")
    c.ok("DELETE Del1")
    t, _ = c.cmd("SELECT Del1")
    assert "[NONEXISTENT]" in t
    t, _ = c.cmd("DELETE Del1")
    assert t.split()[1] == "NO" and "[NONEXISTENT]" in t, t
    c.refused("DELETE INBOX", "NO")
    # A parent with children (RFC 9051 6.3.4): either refused with
    # HASCHILDREN, or its messages go and it becomes \Noselect, and then
    # deleting it again fails.
    c.ok("CREATE DelP/Child")
    fill(c, "DelP", 1, "delp")
    t, _ = c.cmd("DELETE DelP")
    if t.split()[1] == "NO":
        assert "[HASCHILDREN]" in t, t
        assert status(c, "DelP", "MESSAGES")["MESSAGES"] == 1
        c.ok("DELETE DelP/Child")
        c.ok("DELETE DelP")
    else:
        assert t.split()[1] == "OK", t
        res, _ = list_lines(c, '"" "DelP*"')
        assert "\\NOSELECT" in res["DelP"][0], res
        assert "DelP/Child" in res
        c.refused("SELECT DelP", "NO")
        c.refused("DELETE DelP", "NO")
        c.ok("DELETE DelP/Child")
    res, _ = list_lines(c, '"" "DelP*"')
    assert "DelP/Child" not in res and "DelP" not in res, res
    # Deleting the selected mailbox.
    c.ok("CREATE DelSel")
    c.ok("SELECT DelSel")
    c.ok("DELETE DelSel")
    c.ok("NOOP")


def test_rename(c):
    c.ok("CREATE Ren/Sub")
    fill(c, "Ren", 2, "ren")
    fill(c, "Ren/Sub", 1, "rensub")
    st = status(c, "Ren", "MESSAGES UIDVALIDITY")
    c.ok("RENAME Ren Renamed")
    res, _ = list_lines(c, '"" "Ren*"')
    assert set(res) == {"Renamed", "Renamed/Sub"}, res
    assert status(c, "Renamed", "MESSAGES")["MESSAGES"] == 2
    assert status(c, "Renamed/Sub", "MESSAGES")["MESSAGES"] == 1
    t, _ = c.cmd("RENAME Nope Other")
    assert t.split()[1] == "NO" and "[NONEXISTENT]" in t, t
    c.ok("CREATE Taken")
    t, _ = c.cmd("RENAME Renamed Taken")
    assert t.split()[1] == "NO" and "[ALREADYEXISTS]" in t, t
    # Into a new hierarchy: parents are made.
    c.ok("RENAME Renamed/Sub New/Parent/Sub")
    res, _ = list_lines(c, '"" "New*"')
    assert "New/Parent/Sub" in res, res
    assert status(c, "New/Parent/Sub", "MESSAGES")["MESSAGES"] == 1
    assert st["MESSAGES"] == 2


def test_rename_inbox(imap):
    imap.add_account("renin@example.test", "renin-secret-1")
    c = imap_client(imap, "renin@example.test", "renin-secret-1")
    fill(c, "INBOX", 3, "inb")
    c.ok("CREATE INBOX/Child")
    c.ok("RENAME INBOX OldInbox")
    # The messages moved; INBOX is still there, empty; its children stay.
    assert status(c, "OldInbox", "MESSAGES")["MESSAGES"] == 3
    assert status(c, "INBOX", "MESSAGES")["MESSAGES"] == 0
    res, _ = list_lines(c, '"" "*"')
    assert "INBOX" in res and "OldInbox" in res and "INBOX/Child" in res, res
    assert "OldInbox/Child" not in res
    c.ok("SELECT OldInbox")
    out = c.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert sum("Subject: inb" in ln for ln in out) == 3
    # Delivery goes on into INBOX.
    imap_deliver(imap, [msg("after rename")], to="renin@example.test")
    assert status(c, "INBOX", "MESSAGES")["MESSAGES"] == 1
    c.close()


# --- subscriptions and LIST ------------------------------------------

def test_default_mailboxes_special_use(c):
    res, _ = list_lines(c, '"" "*"')
    for name in ("INBOX", "Sent", "Drafts", "Junk", "Trash", "Archive"):
        assert name in res, (name, res)
    for name, use in SPECIAL.items():
        assert use.upper() in res[name][0], (name, res[name])
    assert not any(a in res["INBOX"][0] for a in
                   ("\\SENT", "\\DRAFTS", "\\JUNK", "\\TRASH", "\\ARCHIVE"))
    # The SPECIAL-USE selection option lists only those.
    res, _ = list_lines(c, '(SPECIAL-USE) "" "*"')
    assert set(res) == set(SPECIAL), res
    for name, use in SPECIAL.items():
        assert use.upper() in res[name][0]
    # The SPECIAL-USE return option.
    res, _ = list_lines(c, '"" "%" RETURN (SPECIAL-USE)')
    assert "\\SENT" in res["Sent"][0]
    assert "INBOX" in res


def test_subscribe_lsub(c):
    c.ok("CREATE Sub1/Kid")
    c.ok("SUBSCRIBE Sub1/Kid")
    c.ok("SUBSCRIBE Sub1")
    res, out = list_lines(c, '(SUBSCRIBED) "" "Sub1*"')
    assert set(res) == {"Sub1", "Sub1/Kid"}, out
    assert all("\\SUBSCRIBED" in v[0] for v in res.values())
    out = c.ok('LSUB "" "Sub1*"')
    names = sorted(re.sub(r'.*"/" "?([^"]*)"?$', r"\1", ln) for ln in out
                   if ln.startswith("* LSUB"))
    assert names == ["Sub1", "Sub1/Kid"], out
    c.ok("UNSUBSCRIBE Sub1")
    out = c.ok('LSUB "" "Sub1"')
    assert out == [], out
    # RECURSIVEMATCH: CHILDINFO for the parent of a subscribed child.
    res, out = list_lines(c, '(SUBSCRIBED RECURSIVEMATCH) "" "Sub%"')
    assert "Sub1" in res, out
    assert '("CHILDINFO" ("SUBSCRIBED"))' in res["Sub1"][2].upper() or \
        "CHILDINFO" in res["Sub1"][2].upper(), out
    assert "\\SUBSCRIBED" not in res["Sub1"][0]
    # A subscription outlives its mailbox: \NonExistent \Subscribed.
    c.ok("CREATE Gone")
    c.ok("SUBSCRIBE Gone")
    c.ok("DELETE Gone")
    res, out = list_lines(c, '(SUBSCRIBED) "" "Gone"')
    assert "\\NONEXISTENT" in res["Gone"][0] and \
        "\\SUBSCRIBED" in res["Gone"][0], out
    res, out = list_lines(c, '"" "Gone"')
    assert res == {}, out
    c.ok("UNSUBSCRIBE Gone")
    res, out = list_lines(c, '(SUBSCRIBED) "" "Gone"')
    assert res == {}, out
    # Unsubscribing something not subscribed.
    t, _ = c.cmd("UNSUBSCRIBE NeverSubscribed")
    assert t.split()[1] in ("OK", "NO"), t


def test_lsub_percent_noselect_parent(c):
    """RFC 3501 6.3.9: foo/bar subscribed, foo not: LSUB "%" returns foo
    flagged \\Noselect."""
    c.ok("CREATE LsubP/Kid")
    c.ok("SUBSCRIBE LsubP/Kid")
    out = c.ok('LSUB "" "%"')
    lp = [ln for ln in out if ln.endswith('"LsubP"') or ln.endswith(" LsubP")]
    assert len(lp) == 1 and "\\Noselect" in lp[0], out
    assert not any("LsubP/Kid" in ln for ln in out), out


def test_list_patterns(c):
    c.ok("CREATE Pat/A/X")
    c.ok("CREATE Pat/B")
    res, _ = list_lines(c, '"" "Pat/%"')
    assert set(res) == {"Pat/A", "Pat/B"}, res
    assert "\\HASCHILDREN" in res["Pat/A"][0]
    assert "\\HASNOCHILDREN" in res["Pat/B"][0]
    res, _ = list_lines(c, '"" "Pat/*"')
    assert set(res) == {"Pat/A", "Pat/A/X", "Pat/B"}, res
    # The reference is prefixed to the pattern.
    res, _ = list_lines(c, '"Pat/" "%"')
    assert set(res) == {"Pat/A", "Pat/B"}, res
    # Several patterns (LIST-EXTENDED).
    res, _ = list_lines(c, '"" ("Pat/B" "INBOX")')
    assert set(res) == {"Pat/B", "INBOX"}, res
    # INBOX matches case-insensitively.
    res, _ = list_lines(c, '"" "inbox"')
    assert list(res) == ["INBOX"], res
    # The empty pattern gives the delimiter.
    out = c.ok('LIST "" ""')
    assert out == ['* LIST (\\Noselect) "/" ""'], out
    # Nothing matched.
    assert c.ok('LIST "" "NoSuchName*"') == []
    # RETURN (CHILDREN) and an empty RETURN ().
    res, _ = list_lines(c, '"" "Pat" RETURN (CHILDREN)')
    assert "\\HASCHILDREN" in res["Pat"][0]
    res, _ = list_lines(c, '"" "Pat" RETURN ()')
    assert "Pat" in res
    c.refused('LIST (NOTANOPTION) "" "*"', "BAD")
    c.refused('LIST "" "*" RETURN (NOTANOPTION)', "BAD")
    # RECURSIVEMATCH alone is invalid (RFC 5258 3).
    c.refused('LIST (RECURSIVEMATCH) "" "*"', "BAD")


def test_list_status(c):
    c.ok("CREATE LStat")
    fill(c, "LStat", 2, "ls")
    res, out = list_lines(c, '"" "LStat" RETURN (STATUS (MESSAGES UNSEEN '
                          'UIDNEXT SIZE))')
    assert "LStat" in res
    i = [k for k, ln in enumerate(out) if ln.startswith("* LIST")][0]
    st = out[i + 1]
    assert st.startswith('* STATUS "LStat" ('), out
    assert "MESSAGES 2" in st and "UNSEEN 2" in st and "UIDNEXT" in st, st
    assert "SIZE " in st
    # No STATUS for a \Noselect name, if the server makes them.
    c.ok("CREATE NoSel/Kid")
    t, _ = c.cmd("DELETE NoSel")
    if t.split()[1] == "OK":
        out = c.ok('LIST "" "NoSel" RETURN (STATUS (MESSAGES))')
        assert not any(ln.startswith("* STATUS") for ln in out), out
    # Nor for a pattern that matches nothing.
    out = c.ok('LIST "" "NoSuchName" RETURN (STATUS (MESSAGES))')
    assert out == [], out


# --- STATUS ------------------------------------------------------------

def test_status(c):
    c.ok("CREATE St")
    msgs = [msg("st %d" % i, "x" * (10 * i) + "\r\n") for i in range(3)]
    uids = []
    for i, m in enumerate(msgs):
        flags = ["\\Seen", "\\Deleted", "\\Seen \\Deleted"][i]
        t = imap_append(c, "St", m, flags=flags)
        uv, uid = appenduid(t)
        uids.append(uid)
    st = status(c, "St", "MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE "
                "HIGHESTMODSEQ")
    assert st["MESSAGES"] == 3
    assert st["UIDNEXT"] == uids[-1] + 1
    assert st["UIDVALIDITY"] == uv
    assert st["UNSEEN"] == 1
    assert st["DELETED"] == 2
    assert st["SIZE"] == sum(len(m.encode()) for m in msgs)
    assert st["HIGHESTMODSEQ"] > 0
    t, _ = c.cmd("STATUS NoSuchBox (MESSAGES)")
    assert t.split()[1] == "NO" and "[NONEXISTENT]" in t, t
    c.refused("STATUS St (NOTANITEM)", "BAD")
    c.refused("STATUS St ()", "BAD")
    # IMAP4rev1's RECENT: none is ever recent.
    assert status(c, "St", "RECENT")["RECENT"] == 0
    # HIGHESTMODSEQ grows with a change.
    c.ok("SELECT St")
    c.ok("STORE 1 +FLAGS (\\Flagged)")
    c.ok("UNSELECT")
    assert status(c, "St", "HIGHESTMODSEQ")["HIGHESTMODSEQ"] > \
        st["HIGHESTMODSEQ"]


# --- APPEND ------------------------------------------------------------

def test_append_flags_and_date(c):
    c.ok("CREATE Ap")
    body = msg("dated")
    t = imap_append(c, "Ap", body, flags="\\Seen \\Flagged $Important",
                    date="05-Mar-2021 14:07:09 -0500")
    uv, uid = appenduid(t)
    assert uv == status(c, "Ap", "UIDVALIDITY")["UIDVALIDITY"]
    c.ok("EXAMINE Ap")
    out = c.ok("UID FETCH %d (FLAGS INTERNALDATE RFC822.SIZE)" % uid)
    assert "\\Seen" in out[0] and "\\Flagged" in out[0]
    assert "$important" in out[0].lower()
    m = re.search(r'INTERNALDATE "([^"]*)"', out[0])
    # The same instant; the zone may be the server's.
    got = datetime.datetime.strptime(m.group(1).strip(), FMT)
    assert got == datetime.datetime.strptime("05-Mar-2021 14:07:09 -0500",
                                             FMT), m.group(1)
    assert "RFC822.SIZE %d" % len(body.encode()) in out[0]
    out = c.ok("UID FETCH %d BODY.PEEK[]" % uid)
    assert out[0].encode("latin-1").split(b"}\r\n", 1)[1][:-1] == \
        body.encode()
    # Without a date: about now.
    t = imap_append(c, "Ap", msg("undated"))
    uv, uid2 = appenduid(t)
    assert uid2 > uid
    # No such mailbox.
    t = imap_append(c, "NoSuchBox", msg("nowhere"))
    assert " NO " in t and "[TRYCREATE]" in t, t
    # \Recent may not be set by APPEND (RFC 3501), nor any \unknown flag.
    tag = c.tag()
    c.send("%s APPEND Ap (\\Frob) {3}\r\n" % tag)
    ln = c.line()
    if ln.startswith("+"):
        c.send("abc\r\n")
        ln = c.until(tag)[-1]
    assert ln.split()[1] in ("BAD", "NO"), ln
    c.ok("NOOP")


def test_append_bad_date(c):
    """A date-time that does not parse is a syntax error: BAD."""
    c.ok("CREATE ApDate")
    for date in ("31-Foo-2021 00:00:00 +0000", "1-Jan-2021",
                 "01-Jan-2021 25:00:00 +0000"):
        tag = c.tag()
        c.send('%s APPEND ApDate "%s" {3}\r\n' % (tag, date))
        ln = c.line()
        if ln.startswith("+"):
            c.send("abc\r\n")
            ln = c.until(tag)[-1]
        assert ln.startswith(tag + " BAD"), (date, ln)
    assert status(c, "ApDate", "MESSAGES")["MESSAGES"] == 0


def test_append_to_selected_mailbox(c):
    c.ok("CREATE ApSel")
    fill(c, "ApSel", 1, "aps")
    c.ok("SELECT ApSel")
    tag = c.tag()
    data = msg("appended while selected").encode()
    c.send(b"%s APPEND ApSel {%d+}\r\n%s\r\n" % (tag.encode(), len(data),
                                                  data))
    lines = c.until(tag)
    assert " OK " in lines[-1], lines
    # The EXISTS comes with APPEND or with the next command.
    lines += c.ok("NOOP")
    assert "* 2 EXISTS" in lines, lines
    assert len(c.ok("UID SEARCH ALL")[-1].split()) == 4


def test_append_utf8(c):
    """UTF8=ACCEPT: APPEND's UTF8 (literal8) form (RFC 6855 4)."""
    c.ok("ENABLE UTF8=ACCEPT")
    c.ok("CREATE ApUtf8")
    data = ("From: =?utf-8?q?x?= <x@example.net>\r\n"
            "Subject: Gr\u00fc\u00dfe \u65e5\u672c\r\n\r\nbody\r\n").encode()
    tag = c.tag()
    c.send(b"%s APPEND ApUtf8 UTF8 (~{%d+}\r\n%s)\r\n"
           % (tag.encode(), len(data), data))
    t = c.until(tag)[-1]
    assert t.startswith(tag + " OK"), t
    c.ok("EXAMINE ApUtf8")
    out = c.ok("FETCH 1 BODY.PEEK[]")
    assert out[0].encode("latin-1").endswith(data + b")"), out


def test_create_utf8_name(c):
    """A mailbox name in UTF-8 once UTF8=ACCEPT is enabled."""
    c.ok("ENABLE UTF8=ACCEPT")
    name = "Entw\u00fcrfe \u65e5\u672c"
    c.send(('%s CREATE "%s"\r\n' % ("u1", name)).encode())
    assert c.until("u1")[-1].startswith("u1 OK")
    out = c.ok('LIST "" "Entw*"')
    assert any(name.encode().decode("latin-1") in ln for ln in out), out


def test_accounts_are_apart(imap):
    imap.add_account("apart@example.test", "apart-secret-1")
    a = imap_client(imap)
    a.ok("CREATE Private")
    fill(a, "Private", 1, "priv")
    b = imap_client(imap, "apart@example.test", "apart-secret-1")
    t, _ = b.cmd("SELECT Private")
    assert t.split()[1] == "NO" and "[NONEXISTENT]" in t, t
    b.refused("STATUS Private (MESSAGES)", "NO")
    res, _ = list_lines(b, '"" "*"')
    assert "Private" not in res
    t = imap_append(b, "Private", msg("intruder"))
    assert " NO " in t, t
    assert status(a, "Private", "MESSAGES")["MESSAGES"] == 1
    a.close()
    b.close()


def test_literal_plus_and_minus(c):
    c.ok("CREATE Lit")
    body = msg("literal plus").encode()
    tag = c.tag()
    c.send(b"%s APPEND Lit {%d+}\r\n%s\r\n" % (tag.encode(), len(body),
                                               body))
    lines = c.until(tag)
    assert not any(ln.startswith("+") for ln in lines), lines
    assert lines[-1].startswith(tag + " OK [APPENDUID"), lines
    # LITERAL- (in IMAP4rev2): non-synchronizing up to 4096 bytes, in
    # any command.
    tag = c.tag()
    c.send("%s STATUS {3+}\r\nLit (MESSAGES)\r\n" % tag)
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    assert "MESSAGES 1" in lines[0]
    # A large non-synchronizing literal (LITERAL+ allows any size up to
    # the limits).
    big = msg("big literal", "y" * 200000 + "\r\n").encode()
    tag = c.tag()
    c.send(b"%s APPEND Lit {%d+}\r\n%s\r\n" % (tag.encode(), len(big), big))
    t = c.until(tag)[-1]
    assert t.startswith(tag + " OK"), t
    assert status(c, "Lit", "MESSAGES")["MESSAGES"] == 2
    # A literal8 ~{n} for APPEND (BINARY).
    tag = c.tag()
    data = msg("binary append", "nul\x00 in it\r\n").encode()
    c.send(b"%s APPEND Lit ~{%d}\r\n" % (tag.encode(), len(data)))
    ln = c.line()
    assert ln.startswith("+"), ln
    c.send(data + b"\r\n")
    t = c.until(tag)[-1]
    assert t.startswith(tag + " OK"), t


def test_multiappend(c):
    c.ok("CREATE Multi")
    a, b, d = (msg("multi %d" % i).encode() for i in range(3))
    tag = c.tag()
    c.send(b"%s APPEND Multi (\\Seen) {%d}\r\n" % (tag.encode(), len(a)))
    assert c.line().startswith("+")
    c.send(b"%s (\\Draft) \"01-Jan-2020 00:00:00 +0000\" {%d}\r\n"
           % (a, len(b)))
    assert c.line().startswith("+")
    c.send(b"%s {%d}\r\n" % (b, len(d)))
    assert c.line().startswith("+")
    c.send(d + b"\r\n")
    t = c.until(tag)[-1]
    m = re.match(r"%s OK \[APPENDUID (\d+) (\d+):(\d+)\]" % tag, t)
    assert m, t
    assert int(m.group(3)) - int(m.group(2)) == 2
    c.ok("EXAMINE Multi")
    out = c.ok("FETCH 1:3 (FLAGS INTERNALDATE)")
    assert "\\Seen" in out[0] and "\\Draft" in out[1]
    assert "01-Jan-2020" in out[1]
    assert "\\Draft" not in out[2] and "\\Seen" not in out[2]


def test_multiappend_one_bad(c):
    """A MULTIAPPEND whose second message is too big: NO, and (as
    posternd.8 documents) the first does not stay either."""
    c.ok("CREATE Multi2")
    a = msg("multi2 ok").encode()
    tag = c.tag()
    c.send(b"%s APPEND Multi2 {%d}\r\n" % (tag.encode(), len(a)))
    assert c.line().startswith("+")
    c.send(b"%s {%d}\r\n" % (a, 2 * 1024 * 1024 * 1024))
    t = c.until(tag)[-1]
    assert t.startswith(tag + " NO") or t.startswith(tag + " BAD"), t
    c.ok("NOOP")
    assert status(c, "Multi2", "MESSAGES")["MESSAGES"] == 0


# --- CHECK, CLOSE, UNSELECT, EXPUNGE ----------------------------------

def test_check(c):
    t, _ = c.cmd("CHECK")
    # CHECK needs a selected mailbox.
    assert t.split()[1] == "BAD", t
    c.ok("SELECT INBOX")
    c.ok("CHECK")


def test_close_expunges_silently(c):
    c.ok("CREATE Cl")
    fill(c, "Cl", 4, "cl")
    c.ok("SELECT Cl")
    c.ok("STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("CLOSE")
    assert not any("EXPUNGE" in ln for ln in out), out
    c.refused("FETCH 1 FLAGS", "BAD")
    assert status(c, "Cl", "MESSAGES")["MESSAGES"] == 2
    # CLOSE of an EXAMINEd mailbox expunges nothing.
    c.ok("SELECT Cl")
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXAMINE Cl")
    c.ok("CLOSE")
    assert status(c, "Cl", "MESSAGES")["MESSAGES"] == 2
    c.refused("CLOSE", "BAD")


def test_unselect_keeps_deleted(c):
    c.ok("CREATE Uns")
    fill(c, "Uns", 2, "uns")
    c.ok("SELECT Uns")
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("UNSELECT")
    assert not any("EXPUNGE" in ln for ln in out)
    assert status(c, "Uns", "MESSAGES DELETED") == {"MESSAGES": 2,
                                                     "DELETED": 1}
    c.refused("UNSELECT", "BAD")


def test_expunge(c):
    c.ok("CREATE Ex")
    fill(c, "Ex", 12, "ex")
    c.ok("SELECT Ex")
    before = seq_uids(c)
    c.ok("STORE 3,4,7,11,12 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("EXPUNGE")
    after = apply_expunges(before, out)
    assert after == seq_uids(c)
    assert len(after) == 7
    assert [before[i] for i in (0, 1, 4, 5, 7, 8, 9)] == after
    assert imap_count(out, "EXISTS") is None
    # Nothing to expunge.
    assert not any("EXPUNGE" in ln for ln in c.ok("EXPUNGE"))


def test_uid_expunge(c):
    c.ok("CREATE UEx")
    uids = fill(c, "UEx", 5, "uex")
    c.ok("SELECT UEx")
    c.ok("STORE 1:4 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("UID EXPUNGE %d,%d:%d" % (uids[1], uids[3], uids[4]))
    # Only the \Deleted ones among those named.
    after = apply_expunges(uids, out)
    assert after == [uids[0], uids[2], uids[4]], out
    assert seq_uids(c) == after
    out = c.ok("FETCH 1:* FLAGS")
    assert "\\Deleted" in out[0] and "\\Deleted" in out[1] and \
        "\\Deleted" not in out[2]
    # With QRESYNC enabled the answer is VANISHED.
    c2 = imap_client(imap_port(c))
    c2.ok("ENABLE QRESYNC")
    c2.ok("SELECT UEx")
    out = c2.ok("UID EXPUNGE %d" % uids[0])
    assert "* VANISHED %d" % uids[0] in out, out
    assert not any(ln.endswith(" EXPUNGE") for ln in out)
    c2.close()


class _Port:
    def __init__(self, port):
        self.ports = {"imaps": port}


def imap_port(c):
    return _Port(c.sock.getpeername()[1])


# --- COPY and MOVE -----------------------------------------------------

def test_copy(c):
    c.ok("CREATE CpSrc")
    c.ok("CREATE CpDst")
    src = fill(c, "CpSrc", 4, "cp")
    dst_uv = status(c, "CpDst", "UIDVALIDITY")["UIDVALIDITY"]
    c.ok("SELECT CpSrc")
    c.ok("STORE 2 +FLAGS.SILENT (\\Flagged $Copied)")
    tag = c.tag()
    c.send("%s COPY 2:3 CpDst\r\n" % tag)
    lines = c.until(tag)
    m = re.match(r"%s OK \[COPYUID (\d+) (\S+) (\S+)\]" % tag, lines[-1])
    assert m, lines
    assert int(m.group(1)) == dst_uv
    assert m.group(2) == "%d:%d" % (src[1], src[2]) or \
        m.group(2) == "%d,%d" % (src[1], src[2])
    # The source stays.
    assert status(c, "CpSrc", "MESSAGES")["MESSAGES"] == 4
    assert status(c, "CpDst", "MESSAGES")["MESSAGES"] == 2
    c.ok("EXAMINE CpDst")
    out = c.ok("FETCH 1:2 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert "\\Flagged" in out[0] and "$copied" in out[0].lower()
    assert "cp 1" in out[0] and "cp 2" in out[1]
    dst_uids = seq_uids(c)
    # The destination uid set names the new UIDs, in source order.
    set_ = m.group(3)
    assert set_ in ("%d:%d" % tuple(dst_uids), "%d,%d" % tuple(dst_uids))
    # UID COPY; to a missing mailbox: TRYCREATE.
    c.ok("SELECT CpSrc")
    t, _ = c.cmd("UID COPY %d CpDst" % src[0])
    assert "[COPYUID %d %d " % (dst_uv, src[0]) in t, t
    t, _ = c.cmd("COPY 1 NoSuchBox")
    assert t.split()[1] == "NO" and "[TRYCREATE]" in t, t
    # UIDs that do not exist: OK with nothing copied.
    t, _ = c.cmd("UID COPY 999999 CpDst")
    assert t.split()[1] == "OK", t
    assert status(c, "CpDst", "MESSAGES")["MESSAGES"] == 3


def test_move(c):
    c.ok("CREATE MvSrc")
    c.ok("CREATE MvDst")
    src = fill(c, "MvSrc", 5, "mv")
    dst_uv = status(c, "MvDst", "UIDVALIDITY")["UIDVALIDITY"]
    c.ok("SELECT MvSrc")
    before = seq_uids(c)
    tag = c.tag()
    c.send("%s MOVE 2,4 MvDst\r\n" % tag)
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    cu = [ln for ln in lines if ln.startswith("* OK [COPYUID")]
    assert len(cu) == 1, lines
    m = re.match(r"\* OK \[COPYUID (\d+) (\S+) (\S+)\]", cu[0])
    assert int(m.group(1)) == dst_uv
    assert m.group(2) == "%d,%d" % (src[1], src[3])
    # COPYUID comes before the expunges (RFC 6851 4.3).
    assert lines.index(cu[0]) < min(i for i, ln in enumerate(lines)
                                    if ln.endswith(" EXPUNGE"))
    after = apply_expunges(before, lines)
    assert after == [src[0], src[2], src[4]]
    assert seq_uids(c) == after
    assert status(c, "MvDst", "MESSAGES")["MESSAGES"] == 2
    # UID MOVE with QRESYNC: VANISHED.
    c2 = imap_client(imap_port(c))
    c2.ok("ENABLE QRESYNC")
    c2.ok("SELECT MvSrc")
    tag = c2.tag()
    c2.send("%s UID MOVE %d MvDst\r\n" % (tag, src[4]))
    lines = c2.until(tag)
    assert lines[-1].startswith(tag + " OK"), lines
    assert "* VANISHED %d" % src[4] in lines, lines
    c2.close()
    t, _ = c.cmd("MOVE 1 NoSuchBox")
    assert t.split()[1] == "NO" and "[TRYCREATE]" in t, t
    # Moving into the selected mailbox itself.
    t, _ = c.cmd("MOVE 1 MvSrc")
    assert t.split()[1] in ("OK", "NO"), t
    c.ok("NOOP")


def test_starttls_injection(imap):
    """Commands sent in clear in the same packet as STARTTLS are dropped,
    never run inside the TLS session (CVE-2011-0411 style)."""
    c = IMAPClient(imap.ports["imap"])
    c.send("a STARTTLS\r\nb CREATE Injected\r\n")
    lines = c.until("a")
    assert lines[-1].startswith("a OK"), lines
    c.starttls_wrap()
    c.login()
    t, out = c.cmd("NOOP")
    assert t.split()[1] == "OK" and not any("b " in ln[:2] for ln in out)
    c.refused("STATUS Injected (MESSAGES)", "NO")
    c.close()


def test_idle_in_authenticated_state(c):
    c.send("i IDLE\r\n")
    assert c.line().startswith("+")
    c.send("DONE\r\n")
    assert c.until("i")[-1].startswith("i OK")
    c.ok("NOOP")
