"""IMAP sessions end to end: posternd with smtp, imap and imaps
listeners, mail delivered over SMTP, read with imaplib and with a raw
client for the framing cases imaplib cannot make (literals, limits)."""
import imaplib
import re
import smtplib
import time

import pytest

from conftest import IMAPClient, free_port, tls_context

USER = "alice@example.test"
PASSWORD = "alice-secret-1"


def deliver(p, subject, body="hello\r\n", to=USER, extra="", wait=True):
    before = len(p.message_uids(to)) if wait else 0
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"]) as s:
        s.sendmail("bob@example.net", [to],
                   "From: Bob <bob@example.net>\r\nTo: %s\r\n"
                   "Subject: %s\r\n%s\r\n%s" % (to, subject, extra, body))
    if wait:
        p.wait_messages(to, before + 1)


@pytest.fixture(scope="module")
def imap_server(module_factory):
    plain = free_port()
    p = module_factory(listeners=["smtp", "imap", "imaps"],
                       config_extra="listen on 127.0.0.1 port %d imap "
                       "allow plaintext\n" % plain)
    p.ports["plain"] = plain
    p.add_account(USER, PASSWORD)
    p.add_account("carol@example.test", "carol-secret-1")
    return p


def imaps(p, user=USER, password=PASSWORD):
    m = imaplib.IMAP4_SSL("127.0.0.1", p.ports["imaps"],
                          ssl_context=tls_context())
    m.login(user, password)
    return m


class Raw(IMAPClient):
    """IMAPClient with the tag given to each command; cmd returns every
    line up to and including the tagged one."""

    def cmd(self, tag, text):
        self.send("%s %s\r\n" % (tag, text))
        return self.until(tag)


def noop_until(r, tag, pred, tries=50):
    """NOOP until a line satisfies pred: storaged's change events go
    out just after its answer to the session that made the change."""
    for i in range(tries):
        out = r.cmd("%s%d" % (tag, i), "NOOP")
        if any(pred(ln) for ln in out):
            return out
        time.sleep(0.05)
    raise AssertionError("never seen: %r" % out)


def test_capability_and_starttls(imap_server):
    p = imap_server
    r = Raw(p.ports["imap"])
    assert r.greeting.startswith("* OK [CAPABILITY IMAP4rev2 IMAP4rev1")
    assert "STARTTLS" in r.greeting and "LOGINDISABLED" in r.greeting
    assert "AUTH=PLAIN" not in r.greeting
    out = r.cmd("a1", "LOGIN %s %s" % (USER, PASSWORD))
    assert out[-1].startswith("a1 NO [PRIVACYREQUIRED]")
    # Bytes after STARTTLS in clear are dropped, never run.
    r.send("a2 STARTTLS\r\na3 LOGIN %s %s\r\n" % (USER, PASSWORD))
    assert r.until("a2")[-1].startswith("a2 OK")
    r.starttls_wrap()
    caps = r.cmd("a4", "CAPABILITY")
    assert "AUTH=PLAIN" in caps[0] and "STARTTLS" not in caps[0]
    out = r.cmd("a5", "LOGIN %s %s" % (USER, PASSWORD))
    assert out[-1].startswith("a5 OK [CAPABILITY")
    assert r.cmd("a6", "LOGOUT")[0] == "* BYE Logging out"


def test_plaintext_listener_and_sasl_ir(imap_server):
    p = imap_server
    r = Raw(p.ports["plain"])
    assert "AUTH=PLAIN SASL-IR" in r.greeting
    import base64
    ir = base64.b64encode(b"\0%s\0%s" % (USER.encode(),
                                          PASSWORD.encode())).decode()
    assert r.cmd("a1", "AUTHENTICATE PLAIN " + ir)[-1].startswith("a1 OK")
    r.close()
    r = Raw(p.ports["plain"])
    r.send("b1 AUTHENTICATE PLAIN\r\n")
    assert r.line() == "+ "
    r.send(ir + "\r\n")
    assert r.until("b1")[-1].startswith("b1 OK")
    r.close()


def test_bad_password_delayed(imap_server):
    p = imap_server
    m = imaplib.IMAP4_SSL("127.0.0.1", p.ports["imaps"],
                          ssl_context=tls_context())
    t = time.time()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        m.login(USER, "wrong")
    assert time.time() - t >= 0.9
    m.shutdown()


def test_fetch_store_search(imap_server):
    p = imap_server
    deliver(p, "first", "one two three\r\n")
    deliver(p, "second", "four five six\r\n")
    m = imaps(p)
    typ, data = m.select("INBOX")
    assert typ == "OK" and int(data[0]) >= 2
    n = int(data[0])
    typ, data = m.fetch("%d" % (n - 1), "(FLAGS ENVELOPE RFC822.SIZE)")
    assert typ == "OK" and b"first" in data[0]
    typ, data = m.fetch("%d" % (n - 1), "(BODY.PEEK[TEXT] BODY[HEADER."
                        "FIELDS (SUBJECT)])")
    assert data[0][1] == b"one two three\r\n"
    assert data[1][1].startswith(b"Subject: first")
    typ, data = m.fetch("%d" % (n - 1), "(FLAGS)")
    assert b"\\Seen" in data[0]
    typ, data = m.search(None, "TEXT", "five")
    assert data[0] == str(n).encode()
    typ, data = m.uid("SEARCH", "SUBJECT", "second")
    assert len(data[0].split()) == 1
    typ, data = m.store("%d" % n, "+FLAGS", "(\\Flagged $Work)")
    assert b"\\Flagged" in data[0] and b"$work" in data[0].lower()
    typ, data = m.search(None, "KEYWORD", "$Work")
    assert data[0] == str(n).encode()
    typ, data = m.fetch("%d" % n, "(BODY.PEEK[]<0.10>)")
    assert data[0][0].endswith(b"BODY[]<0> {10}")
    m.logout()


def test_idle_sees_delivery(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a1", "LOGIN %s %s" % (USER, PASSWORD))
    out = r.cmd("a2", "SELECT INBOX")
    exists = int([ln for ln in out if ln.endswith(" EXISTS")][0].split()[1])
    r.send("a3 IDLE\r\n")
    assert r.line().startswith("+ ")
    deliver(p, "while idle", wait=False)
    assert r.line() == "* %d EXISTS" % (exists + 1)
    r.send("DONE\r\n")
    assert r.until("a3")[-1].startswith("a3 OK")
    r.close()


def test_two_sessions_see_each_other(imap_server):
    p = imap_server
    deliver(p, "shared one")
    deliver(p, "shared two")
    a = Raw(p.ports["imaps"], tls=True)
    b = Raw(p.ports["imaps"], tls=True)
    for r in (a, b):
        r.cmd("x", "LOGIN %s %s" % (USER, PASSWORD))
        out = r.cmd("y", "SELECT INBOX")
    n = int([ln for ln in out if ln.endswith(" EXISTS")][0].split()[1])
    a.cmd("s1", "STORE %d +FLAGS (\\Deleted)" % n)
    noop_until(b, "n1", lambda ln: re.match(
        r"\* %d FETCH \(.*\\Deleted" % n, ln))
    a.cmd("e1", "EXPUNGE")
    noop_until(b, "n2", lambda ln: ln == "* %d EXPUNGE" % n)
    # A non-UID FETCH does not hear of an expunge; NOOP does.
    a.cmd("s2", "STORE 1 +FLAGS (\\Deleted)")
    a.cmd("e2", "EXPUNGE")
    time.sleep(0.2)
    out = b.cmd("f1", "FETCH 1 (UID)")
    assert not any(ln.endswith(" EXPUNGE") for ln in out)
    out = b.cmd("n3", "NOOP")
    assert "* 1 EXPUNGE" in out
    # IDLE hears another session's flag change at once.
    b.send("i1 IDLE\r\n")
    assert b.line().startswith("+ ")
    a.cmd("s3", "STORE 1 +FLAGS (\\Answered)")
    assert re.match(r"\* 1 FETCH \(UID \d+ FLAGS \(.*\\Answered", b.line())
    b.send("DONE\r\n")
    assert b.until("i1")[-1].startswith("i1 OK")
    a.close()
    b.close()


def test_qresync_vanished_earlier(imap_server):
    p = imap_server
    for i in range(3):
        deliver(p, "qr %d" % i)
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    assert "* ENABLED QRESYNC" in r.cmd("b", "ENABLE QRESYNC")
    out = r.cmd("c", "SELECT INBOX")
    uv = int(re.search(r"UIDVALIDITY (\d+)", "\n".join(out)).group(1))
    hms = int(re.search(r"HIGHESTMODSEQ (\d+)", "\n".join(out)).group(1))
    out = r.cmd("d", "UID SEARCH SUBJECT \"qr 1\"")
    uid = int(out[0].split()[-1])
    r.cmd("e", "UID STORE %d +FLAGS (\\Deleted)" % uid)
    out = r.cmd("f", "UID EXPUNGE %d" % uid)
    assert "* VANISHED %d" % uid in out
    r.cmd("g", "UNSELECT")
    out = r.cmd("h", "SELECT INBOX (QRESYNC (%d %d))" % (uv, hms))
    assert "* VANISHED (EARLIER) %d" % uid in out
    assert out[-1].startswith("h OK [READ-WRITE]")
    r.close()


def test_limits_and_bad_input(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    # A line past imap-line-length: BAD, and the session goes on.
    r.send("b NOOP " + "x" * (70 * 1024) + "\r\n")
    assert " BAD " in r.line()
    assert r.cmd("c", "NOOP")[-1] == "c OK NOOP completed"
    # A synchronizing literal too large: NO before any byte, no "+".
    r.send("d LOGIN {999999999}\r\n")
    assert r.line().startswith("d NO [TOOBIG]")
    assert r.cmd("e", "NOOP")[-1] == "e OK NOOP completed"
    # Non-synchronizing: refused, its bytes skipped, then on.
    r.send("f SELECT {100000+}\r\n" + "y" * 100000 + "\r\n")
    assert r.line().startswith("f NO [TOOBIG]")
    assert r.cmd("g", "NOOP")[-1] == "g OK NOOP completed"
    # Nesting past the bound, unknown commands, no tag.
    assert " BAD " in r.cmd("h", "SEARCH " + "(" * 40 + "ALL" + ")" * 40)[-1]
    assert r.cmd("i", "FROB")[-1].startswith("i BAD")
    r.send("\r\n")
    assert r.line().startswith("* BAD")
    r.cmd("j", "SELECT INBOX")
    assert r.cmd("k", "FETCH 99999 FLAGS")[-1].startswith("k BAD")
    assert r.cmd("l", "FETCH 1 (BODY[1.X])")[-1].startswith("l BAD")
    # A literal in a command, and LITERAL+.
    r.send("m STATUS {5}\r\n")
    assert r.line().startswith("+ ")
    r.send("INBOX (MESSAGES)\r\n")
    out = r.until("m")
    assert out[0].startswith('* STATUS "INBOX" (MESSAGES ')
    r.send("n STATUS {5+}\r\nINBOX (UIDNEXT)\r\n")
    assert r.until("n")[-1].startswith("n OK")
    r.close()


def test_append_multiappend(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    r.cmd("b", "CREATE Work/Projects")
    msg1 = "From: a@b\r\nSubject: m1\r\n\r\none\r\n"
    msg2 = "From: a@b\r\nSubject: m2\r\n\r\ntwo\r\n"
    r.send("c APPEND Work/Projects (\\Seen) {%d+}\r\n%s (\\Flagged) "
           "\"01-Dec-2026 10:00:00 +0100\" {%d+}\r\n%s\r\n"
           % (len(msg1), msg1, len(msg2), msg2))
    out = r.until("c")
    assert re.match(r"c OK \[APPENDUID \d+ 1:2\]", out[-1])
    r.send("d APPEND Work/Projects {%d}\r\n" % len(msg1))
    assert r.line().startswith("+ ")
    r.send(msg1 + "\r\n")
    assert re.match(r"d OK \[APPENDUID \d+ 3\]", r.until("d")[-1])
    # imap-literal-size is 64M by default.
    r.send("e APPEND Work/Projects {%d}\r\n" % (65 * 1024 * 1024))
    assert r.line().startswith("e NO [TOOBIG]")
    out = r.cmd("f", "STATUS Work/Projects (MESSAGES UNSEEN SIZE)")
    assert "MESSAGES 3 UNSEEN 2 SIZE %d" % (len(msg1) * 2 + len(msg2)) \
        in out[0]
    out = r.cmd("g", "EXAMINE Work/Projects")
    assert out[-1].startswith("g OK [READ-ONLY]")
    out = r.cmd("h", "FETCH 2 (FLAGS INTERNALDATE)")
    assert '\\Flagged' in out[0] and "01-Dec-2026 09:00:00 +0000" in out[0]
    assert r.cmd("i", "STORE 1 +FLAGS (\\Deleted)")[-1].startswith("i NO")
    r.close()


def test_search_esearch_searchres_move(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    r.cmd("b", "CREATE Moved")
    r.cmd("c", "SELECT Work/Projects")
    out = r.cmd("d", "SEARCH RETURN (MIN MAX COUNT ALL) ALL")
    assert out[0] == '* ESEARCH (TAG "d") MIN 1 MAX 3 COUNT 3 ALL 1:3'
    out = r.cmd("e", "UID SEARCH RETURN (SAVE) SUBJECT m1")
    assert out == ["e OK UID SEARCH completed"]
    out = r.cmd("f", "UID FETCH $ (UID)")
    assert len([ln for ln in out if ln.startswith("* ")]) == 2
    out = r.cmd("g", "UID MOVE $ Moved")
    assert any(ln.startswith("* OK [COPYUID ") for ln in out)
    assert len([ln for ln in out if ln.endswith(" EXPUNGE")]) == 2
    assert out[-1].startswith("g OK")
    out = r.cmd("h", "SEARCH ALL")
    assert out[0] == "* SEARCH 1"
    out = r.cmd("i", "STATUS Moved (MESSAGES)")
    assert "MESSAGES 2" in out[0]
    r.close()


def test_list_extended(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    out = r.cmd("b", 'LIST "" "%"')
    assert '* LIST (\\HasChildren) "/" "Work"' in out
    assert any(ln.endswith('"Sent"') and "\\Sent" in ln for ln in out)
    assert not any("Projects" in ln for ln in out)
    out = r.cmd("c", 'LIST "" "*" RETURN (STATUS (MESSAGES))')
    assert any(ln.startswith('* STATUS "Work/Projects" (MESSAGES') for ln in out)
    r.cmd("d", "SUBSCRIBE Work/Projects")
    out = r.cmd("e", 'LIST (SUBSCRIBED) "" "*"')
    assert any("Work/Projects" in ln and "\\Subscribed" in ln for ln in out)
    out = r.cmd("f", 'LSUB "" "Work/*"')
    assert '* LSUB () "/" "Work/Projects"' in out
    out = r.cmd("g", 'LIST "" ""')
    assert out[0] == '* LIST (\\Noselect) "/" ""'
    out = r.cmd("h", "NAMESPACE")
    assert out[0] == '* NAMESPACE (("" "/")) NIL NIL'
    r.close()


def test_condstore_qresync_fetch(imap_server):
    p = imap_server
    for i in range(3):
        deliver(p, "cs %d" % i, to="carol@example.test")
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN carol@example.test carol-secret-1")
    r.cmd("b", "ENABLE QRESYNC")
    out = r.cmd("c", "SELECT INBOX")
    hms = int(re.search(r"HIGHESTMODSEQ (\d+)", "\n".join(out)).group(1))
    out = r.cmd("d", "FETCH 1:* (UID MODSEQ)")
    m1 = int(re.search(r"MODSEQ \((\d+)\)", out[0]).group(1))
    out = r.cmd("e", "STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % m1)
    assert out[-1] == "e OK STORE completed"
    assert re.match(r"\* 1 FETCH \(UID \d+ FLAGS \(\\Seen\) MODSEQ", out[0])
    # Flags left as they were still come back (RFC 9051 6.4.6).
    out = r.cmd("e2", "STORE 1 +FLAGS (\\Seen)")
    assert re.match(r"\* 1 FETCH \(UID \d+ FLAGS \(\\Seen\)", out[0])
    out = r.cmd("f", "STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % m1)
    assert out[-1] == "f OK [MODIFIED 1] Conditional STORE failed"
    out = r.cmd("g", "FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % hms)
    assert len([ln for ln in out if ln.startswith("* ")]) == 1
    uid3 = int(re.search(r"UID (\d+)", r.cmd("h", "FETCH 3 UID")[0]).group(1))
    r.cmd("i", "UID STORE %d +FLAGS.SILENT (\\Deleted)" % uid3)
    r.cmd("j", "UID EXPUNGE %d" % uid3)
    out = r.cmd("k", "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % hms)
    assert "* VANISHED (EARLIER) %d" % uid3 in out
    assert out[-1] == "k OK UID FETCH completed"
    out = r.cmd("l", "UID SEARCH MODSEQ %d" % hms)
    assert re.match(r"\* SEARCH \d+ \(MODSEQ \d+\)", out[0])
    r.close()


def test_binary_and_mailbox_admin(imap_server):
    p = imap_server
    import base64 as b64
    payload = bytes(range(256)) * 4
    msg = ("From: a@b\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=xx\r\n\r\n--xx\r\n"
           "Content-Type: text/plain\r\n\r\nhi\r\n--xx\r\n"
           "Content-Type: application/octet-stream\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--xx--\r\n"
           % b64.encodebytes(payload).decode().replace("\n", "\r\n"))
    m = imaps(p)
    assert m.create("Bin")[0] == "OK"
    assert m.append("Bin", None, None, msg.encode())[0] == "OK"
    m.select("Bin")
    typ, data = m.fetch("1", "(BINARY.PEEK[2] BINARY.SIZE[2])")
    assert typ == "OK" and data[0][1] == payload
    assert b"BINARY.SIZE[2] 1024" in data[1]
    typ, data = m.fetch("1", "(BODYSTRUCTURE)")
    assert b'"MIXED"' in data[0].upper()
    assert m.rename("Bin", "Bin2")[0] == "OK"
    typ, data = m.list('""', "Bin*")
    assert data == [b'(\\HasNoChildren) "/" "Bin2"']
    m.unselect()
    assert m.delete("Bin2")[0] == "OK"
    typ, data = m.delete("INBOX")
    assert typ == "NO"
    typ, data = m.select("Nope")
    assert typ == "NO" and b"NONEXISTENT" in data[0]
    m.logout()


def test_sort_thread_copy_close(imap_server):
    p = imap_server
    dave = "dave@example.test"
    p.add_account(dave, "dave-secret-1")
    deliver(p, "bravo", to=dave, extra="Message-ID: <a@x>\r\n")
    deliver(p, "Re: bravo", to=dave,
            extra="Message-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\n"
            "References: <a@x>\r\n")
    deliver(p, "alpha", to=dave, extra="Message-ID: <c@x>\r\n")
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s dave-secret-1" % dave)
    r.cmd("b", "SELECT INBOX")
    out = r.cmd("c", "SORT (SUBJECT) UTF-8 ALL")
    assert out[0] == "* SORT 3 1 2"
    # Ties keep ascending order: only the key is reversed (RFC 5256).
    out = r.cmd("d", "SORT (REVERSE SUBJECT) UTF-8 ALL")
    assert out[0] == "* SORT 1 2 3"
    out = r.cmd("d2", "UID SORT (SUBJECT) UTF-8 NOT SUBJECT bravo")
    assert re.match(r"\* SORT \d+$", out[0])
    out = r.cmd("e", "THREAD REFERENCES UTF-8 ALL")
    assert out[0] == "* THREAD (1 2)(3)"
    out = r.cmd("f", "THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert out[0].startswith("* THREAD ")
    out = r.cmd("g", "COPY 1 Nowhere")
    assert out[-1].startswith("g NO [TRYCREATE]")
    out = r.cmd("h", "COPY 1:2 INBOX")
    assert re.match(r"h OK \[COPYUID \d+ 1:2 4:5\]", out[-1])
    assert "* 5 EXISTS" in out
    r.cmd("i", "STORE 4:5 +FLAGS (\\Deleted)")
    assert r.cmd("j", "CLOSE")[-1] == "j OK CLOSE completed"
    out = r.cmd("k", "STATUS INBOX (MESSAGES DELETED)")
    assert "MESSAGES 3 DELETED 0" in out[0]
    assert r.cmd("l", "FETCH 1 FLAGS")[-1].startswith("l BAD")
    r.close()


def test_pipelining_and_rev1_items(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    # Several commands in one packet are answered in order.
    r.send("a LOGIN %s %s\r\nb SELECT INBOX\r\nc FETCH 1 (RFC822.HEADER)\r\n"
           "d FETCH 1 (RFC822.TEXT RFC822.SIZE)\r\ne NOOP\r\n"
           % (USER, PASSWORD))
    out = r.until("e")
    tags = [ln.split()[0] for ln in out if not ln.startswith("*")]
    assert tags == ["a", "b", "c", "d", "e"]
    assert any("RFC822.HEADER {" in ln for ln in out)
    assert any("RFC822.TEXT {" in ln for ln in out)
    assert any(ln == "* 0 RECENT" for ln in out)
    out = r.cmd("f", "ID (\"name\" \"test\")")
    assert out[0].startswith('* ID ("name" "Postern"')
    assert r.cmd("g", "CHECK")[-1] == "g OK CHECK completed"
    r.close()


def test_utf8_and_mutf7_names(imap_server):
    p = imap_server
    r = Raw(p.ports["imaps"], tls=True)
    r.cmd("a", "LOGIN %s %s" % (USER, PASSWORD))
    assert r.cmd("b", "CREATE \"&AMQ-rger\"")[-1].startswith("b OK")
    out = r.cmd("c", "LIST \"\" \"&AMQ-*\"")
    assert '* LIST (\\HasNoChildren) "/" "&AMQ-rger"' in out
    assert r.cmd("d", "CREATE \"&AMQ\"")[-1].startswith("d NO")
    assert "* ENABLED UTF8=ACCEPT" in r.cmd("e", "ENABLE UTF8=ACCEPT")
    r.send("f LIST \"\" \"\xc3\x84*\"\r\n".encode("latin-1"))
    out = r.until("f")
    assert '* LIST (\\HasNoChildren) "/" "\xc3\x84rger"' in out
    r.close()


def test_auth_lockout(module_factory):
    p = module_factory(listeners=["smtp", "imaps"],
                       config_extra="limit auth-failures 2\n"
                       "limit auth-lockout 1h\n")
    p.add_account(USER, PASSWORD)
    r = Raw(p.ports["imaps"], tls=True)
    for t in ("a", "b"):
        assert r.cmd(t, "LOGIN %s wrong" % USER)[-1].startswith(
            t + " NO [AUTHENTICATIONFAILED]")
    out = r.cmd("c", "LOGIN %s %s" % (USER, PASSWORD))
    assert out[-1].startswith("c NO [UNAVAILABLE]")
    r.close()
