"""FETCH: FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODYSTRUCTURE,
body sections (HEADER, TEXT, MIME, HEADER.FIELDS and .NOT, part
numbers, partial ranges), BODY.PEEK and \\Seen, BINARY and BINARY.SIZE,
UID and MODSEQ (RFC 9051 6.4.5, RFC 3516, RFC 7162).  BODY[] is
compared byte for byte with what was sent over SMTP and with what
`posternctl message show` prints."""
import base64
import datetime
import email.header
import os
import quopri
import re
import sqlite3
import time

import pytest

from conftest import (IMAP_USER, imap_client, imap_deliver, imap_fetch,
                      imap_fetch_items, split_trace)

CRLF = b"\r\n"

PLAIN = ("Gr\u00fc\u00dfe aus K\u00f6ln, caf\u00e9 = 5\u20ac.\r\n"
         "A long line " + "x" * 90 + "\r\n").encode("utf-8")
PLAIN_QP = quopri.encodestring(PLAIN.replace(CRLF, b"\n")).replace(
    b"\n", CRLF)
HTML = b"<html><body><p>Hello <b>world</b></p></body></html>\r\n"
ATTACH = bytes(range(256)) * 3 + b"\0\0end"
ATTACH_B64 = base64.encodebytes(ATTACH).replace(b"\n", CRLF)
INNER = (b"From: Inner <inner@example.org>\r\n"
         b"Subject: inner message\r\n"
         b"Content-Type: text/plain; charset=us-ascii\r\n"
         b"\r\n"
         b"inner body line 1\r\ninner body line 2\r\n")

HEADER = (b"Return-Path-Not: <x@example.net>\r\n"
          b"From: Bob Example <bob@example.net>\r\n"
          b"Sender: sec@example.net\r\n"
          b"Reply-To: replies@example.net\r\n"
          b"To: Imap User <imap@example.test>, carol@example.test\r\n"
          b"Cc: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.org>\r\n"
          b"Subject: =?utf-8?B?RmV0Y2ggdGVzdCDDpMO2w7w=?=\r\n"
          b"Date: Wed, 01 Jul 2026 12:34:56 +0200\r\n"
          b"Message-ID: <fetch-1@example.net>\r\n"
          b"In-Reply-To: <parent@example.net>\r\n"
          b"X-Folded: first\r\n second\r\n"
          b"MIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n")

PART1_HDR = b"Content-Type: multipart/alternative; boundary=inner\r\n"
PART11_HDR = (b"Content-Type: text/plain; charset=utf-8\r\n"
              b"Content-Transfer-Encoding: quoted-printable\r\n")
PART12_HDR = b"Content-Type: text/html; charset=us-ascii\r\n"
PART2_HDR = (b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
             b"Content-Disposition: attachment; filename=\"data.bin\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n")
PART3_HDR = b"Content-Type: message/rfc822\r\n"

PART1_BODY = (b"--inner\r\n" + PART11_HDR + CRLF + PLAIN_QP +
              b"\r\n--inner\r\n" + PART12_HDR + CRLF + HTML +
              b"\r\n--inner--\r\n")
BODY = (b"This is a multi-part message.\r\n"
        b"--outer\r\n" + PART1_HDR + CRLF + PART1_BODY +
        b"\r\n--outer\r\n" + PART2_HDR + CRLF + ATTACH_B64 +
        b"\r\n--outer\r\n" + PART3_HDR + CRLF + INNER +
        b"\r\n--outer--\r\n")
MESSAGE = HEADER + CRLF + BODY

SIMPLE = (b"From: a@example.net\r\nTo: imap@example.test\r\n"
          b"Subject: simple\r\nMessage-ID: <fetch-simple@example.net>\r\n"
          b"\r\n0123456789abcdefghij\r\n")


@pytest.fixture(scope="module")
def box(imap):
    """INBOX holding MESSAGE and SIMPLE delivered over SMTP; returns
    (daemon, {name: uid})."""
    imap_deliver(imap, [MESSAGE, SIMPLE])
    c = imap_client(imap, select="INBOX")
    uids = {}
    for name, mid in (("mime", "fetch-1"), ("simple", "fetch-simple")):
        out = c.ok('UID SEARCH HEADER Message-ID "<%s@example.net>"' % mid)
        uids[name] = int(out[0].split()[-1])
    c.close()
    return imap, uids


@pytest.fixture
def c(box):
    cl = imap_client(box[0], select="INBOX")
    yield cl
    cl.close()


def ufetch(c, uid, items):
    res = imap_fetch(c, "UID FETCH %d %s" % (uid, items))
    assert len(res) == 1, res
    return res[0][1]


def test_body_matches_delivery_and_message_show(box, c):
    p, uids = box
    uid = uids["mime"]
    it = ufetch(c, uid, "(BODY.PEEK[] RFC822.SIZE UID)")
    body = it["BODY[]"]
    shown = p.message_show(IMAP_USER, "INBOX", uid)
    assert body == shown
    added, rest = split_trace(body)
    assert rest == MESSAGE
    assert "received" in added and "delivered-to" in added
    assert int(it["RFC822.SIZE"]) == len(body)
    assert int(it["UID"]) == uid
    # RFC822 is BODY[] by its old name.
    it = ufetch(c, uids["simple"], "(RFC822.HEADER RFC822.TEXT)")
    assert it["RFC822.TEXT"] == b"0123456789abcdefghij\r\n"
    assert it["RFC822.HEADER"].endswith(SIMPLE.split(b"\r\n\r\n")[0] +
                                        b"\r\n\r\n")


def section(items, start):
    """The one item whose name starts so."""
    keys = [k for k in items if k.startswith(start)]
    assert len(keys) == 1, items
    return items[keys[0]]


def decoded(word):
    """An encoded-word phrase decoded (the server may re-encode)."""
    return str(email.header.make_header(
        email.header.decode_header(word.decode("latin-1"))))


def test_header_and_text(box, c):
    uid = box[1]["mime"]
    it = ufetch(c, uid, "(BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    assert it["BODY[HEADER]"].endswith(HEADER + CRLF)
    assert it["BODY[TEXT]"] == BODY
    # HEADER.FIELDS: the fields asked for, as they are, then a blank
    # line; names are case-insensitive; folded fields whole.
    it = ufetch(c, uid, "BODY.PEEK[HEADER.FIELDS (subject X-FOLDED "
                "x-nothing)]")
    val = section(it, "BODY[HEADER.FIELDS (")
    assert val == (b"Subject: =?utf-8?B?RmV0Y2ggdGVzdCDDpMO2w7w=?=\r\n"
                   b"X-Folded: first\r\n second\r\n\r\n")
    it = ufetch(c, uid, "BODY.PEEK[HEADER.FIELDS.NOT (Received Return-Path "
                "Delivered-To Subject Content-Type X-Folded)]")
    val = section(it, "BODY[HEADER.FIELDS.NOT (")
    want = b"".join(ln + CRLF for ln in HEADER.split(CRLF)[:-1]
                    if not re.match(rb"(?i)(subject|content-type|x-folded"
                                    rb"|received|return-path|delivered-to):",
                                    ln) and not ln.startswith(b" "))
    assert val == want + CRLF, val
    # A header-fields list nothing matches: just the blank line.
    it = ufetch(c, uid, "BODY.PEEK[HEADER.FIELDS (X-Absent)]")
    assert section(it, "BODY[HEADER.FIELDS (") == CRLF


def test_mime_parts(box, c):
    uid = box[1]["mime"]
    it = ufetch(c, uid, "(BODY.PEEK[1] BODY.PEEK[1.1] BODY.PEEK[1.2] "
                "BODY.PEEK[2] BODY.PEEK[3] BODY.PEEK[1.MIME] "
                "BODY.PEEK[1.2.MIME] BODY.PEEK[2.MIME])")
    assert it["BODY[1]"] == PART1_BODY
    assert it["BODY[1.1]"] == PLAIN_QP
    assert it["BODY[1.2]"] == HTML
    assert it["BODY[2]"] == ATTACH_B64
    assert it["BODY[3]"] == INNER
    assert it["BODY[1.MIME]"] == PART1_HDR + CRLF
    assert it["BODY[1.2.MIME]"] == PART12_HDR + CRLF
    assert it["BODY[2.MIME]"] == PART2_HDR + CRLF
    # Inside the message/rfc822 part.
    it = ufetch(c, uid, "(BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] "
                "BODY.PEEK[3.1] BODY.PEEK[3.HEADER.FIELDS (SUBJECT)])")
    inner_h, inner_b = INNER.split(b"\r\n\r\n", 1)
    assert it["BODY[3.HEADER]"] == inner_h + b"\r\n\r\n"
    assert it["BODY[3.TEXT]"] == inner_b
    assert it["BODY[3.1]"] == inner_b
    assert it["BODY[3.HEADER.FIELDS (SUBJECT)]"] == \
        b"Subject: inner message\r\n\r\n"
    # A non-multipart message: part 1 is its body.
    it = ufetch(c, box[1]["simple"], "BODY.PEEK[1]")
    assert it["BODY[1]"] == b"0123456789abcdefghij\r\n"
    # A part that does not exist: empty, or NO; never the wrong bytes.
    tagged, out = c.cmd("UID FETCH %d BODY.PEEK[9]" % uid)
    if tagged.split()[1] == "OK":
        it = imap_fetch_items([ln for ln in out if " FETCH " in ln][0])[1]
        assert it.get("BODY[9]") in (b"", None), it
    else:
        assert tagged.split()[1] == "NO", tagged


def test_partial(box, c):
    uid = box[1]["simple"]
    text = b"0123456789abcdefghij\r\n"
    out = c.ok("UID FETCH %d (BODY.PEEK[TEXT]<0.10>)" % uid)
    assert "BODY[TEXT]<0> {10}" in out[0], out
    it = imap_fetch_items(out[0])[1]
    assert it["BODY[TEXT]<0>"] == text[:10]
    it = ufetch(c, uid, "BODY.PEEK[TEXT]<5.3>")
    assert it["BODY[TEXT]<5>"] == b"567"
    # Past the end: what there is; beyond it: empty.
    it = ufetch(c, uid, "BODY.PEEK[TEXT]<20.100>")
    assert it["BODY[TEXT]<20>"] == b"\r\n"
    it = ufetch(c, uid, "BODY.PEEK[TEXT]<500.10>")
    assert it["BODY[TEXT]<500>"] == b""
    full = ufetch(c, uid, "BODY.PEEK[]")["BODY[]"]
    it = ufetch(c, uid, "BODY.PEEK[]<0.10>")
    assert it["BODY[]<0>"] == full[:10]
    it = ufetch(c, uid, "BINARY.PEEK[1]<2.4>")
    assert it["BINARY[1]<2>"] == b"2345"
    # A partial without its length is a syntax error.
    c.refused("UID FETCH %d BODY.PEEK[TEXT]<5.>" % uid, "BAD")


def test_seen(box):
    p, uids = box
    c = imap_client(p, select="INBOX")
    uid = uids["simple"]
    c.ok("UID STORE %d -FLAGS.SILENT (\\Seen)" % uid)
    ufetch(c, uid, "(BODY.PEEK[TEXT] BINARY.PEEK[1] RFC822.HEADER)")
    assert "\\Seen" not in ufetch(c, uid, "FLAGS")["FLAGS"]
    # BODY[...] sets \Seen and says so in the same response.
    res = imap_fetch(c, "UID FETCH %d BODY[TEXT]" % uid)
    assert "\\Seen" in res[0][1].get("FLAGS", []), res
    assert "\\Seen" in ufetch(c, uid, "FLAGS")["FLAGS"]
    for item in ("BINARY[1]", "RFC822", "RFC822.TEXT", "BODY[HEADER]"):
        c.ok("UID STORE %d -FLAGS.SILENT (\\Seen)" % uid)
        ufetch(c, uid, item)
        assert "\\Seen" in ufetch(c, uid, "FLAGS")["FLAGS"], item
    # EXAMINE: nothing is set.
    c.ok("UID STORE %d -FLAGS.SILENT (\\Seen)" % uid)
    c.ok("EXAMINE INBOX")
    ufetch(c, uid, "BODY[]")
    assert "\\Seen" not in ufetch(c, uid, "FLAGS")["FLAGS"]
    c.close()


def test_binary(box, c):
    uid = box[1]["mime"]
    it = ufetch(c, uid, "(BINARY.PEEK[2] BINARY.SIZE[2] BINARY.PEEK[1.1] "
                "BINARY.SIZE[1.1] BINARY.PEEK[1.2] BINARY.SIZE[1.2])")
    assert it["BINARY[2]"] == ATTACH
    assert int(it["BINARY.SIZE[2]"]) == len(ATTACH)
    assert it["BINARY[1.1]"] == PLAIN
    assert int(it["BINARY.SIZE[1.1]"]) == len(PLAIN)
    assert it["BINARY[1.2]"] == HTML
    assert int(it["BINARY.SIZE[1.2]"]) == len(HTML)
    # Bytes with NUL go as literal8.
    out = c.ok("UID FETCH %d BINARY.PEEK[2]" % uid)
    assert "BINARY[2] ~{%d}" % len(ATTACH) in out[0]


def test_binary_unknown_cte(imap):
    c = imap_client(imap)
    c.ok("CREATE Cte")
    m = (b"From: a@b\r\nSubject: cte\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: text/plain\r\n"
         b"Content-Transfer-Encoding: x-unheard-of\r\n\r\nzzz\r\n")
    c.send(b"a APPEND Cte {%d+}\r\n%s\r\n" % (len(m), m))
    assert c.until("a")[-1].startswith("a OK")
    c.ok("SELECT Cte")
    t, _ = c.cmd("FETCH 1 BINARY.PEEK[1]")
    assert t.split()[1] == "NO" and "[UNKNOWN-CTE]" in t, t
    c.ok("FETCH 1 BODY.PEEK[1]")
    c.close()


def test_envelope(box, c):
    env = ufetch(c, box[1]["mime"], "ENVELOPE")["ENVELOPE"]
    assert env[0] == b"Wed, 01 Jul 2026 12:34:56 +0200"
    assert env[1] == b"=?utf-8?B?RmV0Y2ggdGVzdCDDpMO2w7w=?="
    assert env[2] == [[b"Bob Example", None, b"bob", b"example.net"]]
    assert env[3] == [[None, None, b"sec", b"example.net"]]
    assert env[4] == [[None, None, b"replies", b"example.net"]]
    assert env[5] == [[b"Imap User", None, b"imap", b"example.test"],
                      [None, None, b"carol", b"example.test"]]
    assert len(env[6]) == 1 and env[6][0][1:] == [None, b"jurgen",
                                                  b"example.org"]
    assert decoded(env[6][0][0]) == "J\u00fcrgen"
    assert env[7] is None
    assert env[8] == b"<parent@example.net>"
    assert env[9] == b"<fetch-1@example.net>"
    # Sender and Reply-To default to From (RFC 9051 7.5.2).
    env = ufetch(c, box[1]["simple"], "ENVELOPE")["ENVELOPE"]
    assert env[2] == env[3] == env[4] == [[None, None, b"a",
                                           b"example.net"]]
    assert env[0] is None and env[6] is None and env[8] is None


def test_envelope_groups_and_quoting(imap):
    c = imap_client(imap)
    c.ok("CREATE Env")
    m = (b"From: \"Doe, John \\\"JD\\\"\" <john@example.net>\r\n"
         b"To: undisclosed-recipients:;\r\n"
         b"Cc: Team: a@example.net, b@example.net;\r\n"
         b"Subject: groups\r\n\r\nx\r\n")
    c.send(b"a APPEND Env {%d+}\r\n%s\r\n" % (len(m), m))
    assert c.until("a")[-1].startswith("a OK")
    c.ok("EXAMINE Env")
    env = imap_fetch(c, "1 ENVELOPE")[0][1]["ENVELOPE"]
    assert env[2] == [[b'Doe, John "JD"', None, b"john", b"example.net"]]
    # Groups: (NIL NIL "name" NIL) ... (NIL NIL NIL NIL).
    assert env[5] == [[None, None, b"undisclosed-recipients", None],
                      [None, None, None, None]]
    assert env[6] == [[None, None, b"Team", None],
                      [None, None, b"a", b"example.net"],
                      [None, None, b"b", b"example.net"],
                      [None, None, None, None]]
    c.close()


def test_bodystructure(box, c):
    uid = box[1]["mime"]
    bs = ufetch(c, uid, "BODYSTRUCTURE")["BODYSTRUCTURE"]
    # multipart/mixed: three parts, subtype, then extension data.
    assert len([x for x in bs if isinstance(x, list)]) >= 3
    alt, att, rfc = bs[0], bs[1], bs[2]
    assert bs[3].upper() == b"MIXED"
    assert [x.upper() for x in bs[4]] == [b"BOUNDARY", b"OUTER"]
    # multipart/alternative of text/plain (QP) and text/html.
    plain, html = alt[0], alt[1]
    assert alt[2].upper() == b"ALTERNATIVE"
    assert plain[0].upper() == b"TEXT" and plain[1].upper() == b"PLAIN"
    assert [x.upper() for x in plain[2]] == [b"CHARSET", b"UTF-8"]
    assert plain[5].upper() == b"QUOTED-PRINTABLE"
    assert int(plain[6]) == len(PLAIN_QP)
    assert int(plain[7]) == PLAIN_QP.count(CRLF)
    assert html[1].upper() == b"HTML" and int(html[6]) == len(HTML)
    assert int(html[7]) == 1
    # The attachment: type, name, base64, size; disposition in the
    # extension data.
    assert att[0].upper() == b"APPLICATION"
    assert att[1].upper() == b"OCTET-STREAM"
    assert [x.upper() for x in att[2]] == [b"NAME", b"DATA.BIN"]
    assert att[5].upper() == b"BASE64" and int(att[6]) == len(ATTACH_B64)
    disp = att[8]
    assert disp[0].upper() == b"ATTACHMENT"
    assert [x.upper() for x in disp[1]] == [b"FILENAME", b"DATA.BIN"]
    # message/rfc822: envelope, body structure and lines of its own.
    assert rfc[0].upper() == b"MESSAGE" and rfc[1].upper() == b"RFC822"
    assert int(rfc[6]) == len(INNER)
    assert rfc[7][1] == b"inner message"
    assert rfc[8][0].upper() == b"TEXT"
    assert int(rfc[9]) == INNER.count(CRLF)
    # BODY: the same without extension data.
    b = ufetch(c, uid, "BODY")["BODY"]
    assert b[0][0][0].upper() == b"TEXT"
    assert b[1][0].upper() == b"APPLICATION" and len(b[1]) == 7
    assert b[3].upper() == b"MIXED" and len(b) == 4
    # A non-MIME message: text/plain us-ascii 7bit by default.
    bs = ufetch(c, box[1]["simple"], "BODYSTRUCTURE")["BODYSTRUCTURE"]
    assert bs[0].upper() == b"TEXT" and bs[1].upper() == b"PLAIN"
    assert [x.upper() for x in bs[2]] == [b"CHARSET", b"US-ASCII"]
    assert bs[5].upper() == b"7BIT"
    assert int(bs[6]) == len(b"0123456789abcdefghij\r\n")
    assert int(bs[7]) == 1


def test_flags_internaldate_size_macros(box, c):
    uid = box[1]["simple"]
    c.ok("UID STORE %d FLAGS (\\Flagged $Label)" % uid)
    it = ufetch(c, uid, "(FLAGS INTERNALDATE RFC822.SIZE)")
    assert set(f.lower() for f in it["FLAGS"]) >= {"\\flagged", "$label"}
    date = datetime.datetime.strptime(it["INTERNALDATE"].decode(),
                                      "%d-%b-%Y %H:%M:%S %z")
    assert abs(date.timestamp() - time.time()) < 600
    size = int(it["RFC822.SIZE"])
    assert size == len(ufetch(c, uid, "BODY.PEEK[]")["BODY[]"])
    # FAST, ALL, FULL.
    it = ufetch(c, uid, "FAST")
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE"} <= set(it)
    it = ufetch(c, uid, "ALL")
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"} <= set(it)
    it = ufetch(c, uid, "FULL")
    assert {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE",
            "BODY"} <= set(it)
    c.ok("UID STORE %d -FLAGS (\\Flagged $Label)" % uid)


def test_uid_and_modseq(box, c):
    uid = box[1]["simple"]
    # A UID FETCH always carries UID, even when not asked.
    it = ufetch(c, uid, "FLAGS")
    assert int(it["UID"]) == uid
    it = ufetch(c, uid, "MODSEQ")
    m1 = int(it["MODSEQ"][0])
    c.ok("UID STORE %d +FLAGS.SILENT ($Bumped)" % uid)
    m2 = int(ufetch(c, uid, "MODSEQ")["MODSEQ"][0])
    assert m2 > m1
    # FETCH MODSEQ enables CONDSTORE: FETCH responses now carry MODSEQ.
    res = imap_fetch(c, "UID FETCH %d FLAGS" % uid)
    assert "MODSEQ" in res[0][1], res
    # Sequence ranges, *, and a UID range past the end.
    res = imap_fetch(c, "1:* UID")
    assert [s for s, _ in res] == list(range(1, len(res) + 1))
    res2 = imap_fetch(c, "* UID")
    assert res2[0][0] == len(res)
    res3 = imap_fetch(c, "UID FETCH %d:4294967295 UID" % uid)
    assert int(res3[0][1]["UID"]) == uid
    c.ok("UID STORE %d -FLAGS.SILENT ($Bumped)" % uid)


def test_fetch_errors(box, c):
    for bad in ("1 (FLAGS", "1 BODY[", "1 BODY[HEADER.FIELDS]",
                "1 FROB", "0 FLAGS", "1 BODY[0]", "1 BINARY[HEADER]",
                "a:b FLAGS", "1 BODY[]<1.2.3>", "1"):
        t, _ = c.cmd("FETCH " + bad)
        assert t.split()[1] == "BAD", (bad, t)
    c.ok("NOOP")
    # UID FETCH of UIDs that do not exist: OK with nothing.
    t, out = c.cmd("UID FETCH 4000000000 FLAGS")
    assert t.split()[1] == "OK" and out == [], (t, out)


def test_large_message_body(imap):
    """A body bigger than any buffer comes back whole."""
    c = imap_client(imap)
    c.ok("CREATE Large")
    line = b"".join(b"%07d " % i + b"z" * 70 + b"\r\n" for i in range(40000))
    m = b"From: a@b\r\nSubject: large\r\n\r\n" + line
    c.send(b"a APPEND Large {%d+}\r\n%s\r\n" % (len(m), m))
    assert c.until("a")[-1].startswith("a OK")
    c.ok("EXAMINE Large")
    it = imap_fetch(c, "1 (BODY.PEEK[] BODY.PEEK[TEXT]<1000000.20>)")[0][1]
    assert it["BODY[]"] == m
    assert it["BODY[TEXT]<1000000>"] == line[1000000:1000020]
    c.close()


def test_one_blob_two_recipients(imap):
    """One delivery to two accounts whose added header lines differ in
    length: each sees its own trace lines and the same parts, at the
    right offsets."""
    other = "a-much-longer-address-for-offsets@example.test"
    imap.add_account(other, "other-secret-1")
    m = MESSAGE.replace(b"<fetch-1@example.net>", b"<fetch-two@example.net>")
    before = len(imap.message_uids(other))
    imap_deliver(imap, [m], to=IMAP_USER)
    import smtplib
    with smtplib.SMTP("127.0.0.1", imap.ports["smtp"]) as s:
        s.sendmail("bob@example.net", [IMAP_USER, other],
                   m.replace(b"fetch-two", b"fetch-both"))
    imap.wait_messages(other, before + 1)
    got = {}
    for user, pw in ((IMAP_USER, None), (other, "other-secret-1")):
        c = imap_client(imap, user, pw, select="INBOX") if pw else \
            imap_client(imap, select="INBOX")
        deadline = time.time() + 10
        while True:
            out = c.ok('UID SEARCH HEADER Message-ID "<fetch-both@"')
            ids = out[0].split()[2:]
            if ids or time.time() > deadline:
                break
            time.sleep(0.1)
            c.ok("NOOP")
        assert len(ids) == 1, out
        uid = int(ids[0])
        it = ufetch(c, uid, "(BODY.PEEK[] BODY.PEEK[1.2] BODY.PEEK[2.MIME] "
                    "BINARY.PEEK[2] BODY.PEEK[HEADER.FIELDS (DELIVERED-TO)] "
                    "BODY.PEEK[3.TEXT] RFC822.SIZE)")
        assert it["BODY[1.2]"] == HTML
        assert it["BODY[2.MIME]"] == PART2_HDR + CRLF
        assert it["BINARY[2]"] == ATTACH
        assert it["BODY[3.TEXT]"] == INNER.split(b"\r\n\r\n", 1)[1]
        assert user.encode() in section(it, "BODY[HEADER.FIELDS")
        assert int(it["RFC822.SIZE"]) == len(it["BODY[]"])
        got[user] = it["BODY[]"]
        c.close()
    a, b = (split_trace(got[u])[1] for u in (IMAP_USER, other))
    assert a == b == m.replace(b"fetch-two", b"fetch-both")


def append_raw(c, mailbox, data):
    c.send(b"a APPEND %s {%d+}\r\n%s\r\n" % (mailbox.encode(), len(data),
                                             data))
    t = c.until("a")[-1]
    assert t.startswith("a OK"), t


def nested(depth):
    deep = b"From: a@b\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    for k in range(depth):
        deep += (b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
                 b"--b%d\r\n" % (k, k))
    deep += b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for k in reversed(range(depth)):
        deep += b"--b%d--\r\n" % k
    return deep


def test_odd_messages(imap):
    """Messages with no body, a broken MIME structure or deep nesting:
    FETCH answers sensibly and the session goes on."""
    c = imap_client(imap)
    c.ok("CREATE Odd")
    header_only = b"From: a@b\r\nSubject: header only\r\n"
    append_raw(c, "Odd", header_only)
    unterminated = (b"From: a@b\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
                    b"Content-Type: multipart/mixed; boundary=zz\r\n\r\n"
                    b"--zz\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
                    b"--zz\r\nContent-Type: text/plain\r\n\r\nsecond, "
                    b"never closed\r\n")
    append_raw(c, "Odd", unterminated)
    deep = nested(20)
    append_raw(c, "Odd", deep)
    # Far deeper: stored, or refused with NO; the session goes on.
    c.send(b"a APPEND Odd {%d+}\r\n%s\r\n" % (len(nested(300)),
                                              nested(300)))
    t = c.until("a")[-1]
    assert t.startswith("a OK") or t.startswith("a NO"), t
    c.ok("NOOP")
    nosep = b"no header at all, just text\r\nand more\r\n"
    append_raw(c, "Odd", nosep)
    c.ok("EXAMINE Odd")
    it = imap_fetch(c, "1 (BODY.PEEK[] BODY.PEEK[TEXT] BODY.PEEK[HEADER] "
                    "BODYSTRUCTURE ENVELOPE)")[0][1]
    assert it["BODY[]"] == header_only
    assert it["BODY[TEXT]"] == b""
    assert it["BODY[HEADER]"] == header_only
    assert it["BODYSTRUCTURE"][0].upper() == b"TEXT"
    it = imap_fetch(c, "2 (BODYSTRUCTURE BODY.PEEK[1] BODY.PEEK[2] "
                    "BODY.PEEK[])")[0][1]
    assert it["BODY[]"] == unterminated
    assert it["BODY[1]"] == b"first"
    assert it["BODY[2]"].startswith(b"second, never closed")
    it = imap_fetch(c, "3 (BODYSTRUCTURE BODY.PEEK[] BODY.PEEK[%s])"
                    % ".".join(["1"] * 20))[0][1]
    assert it["BODY[]"] == deep
    assert it["BODY[%s]" % ".".join(["1"] * 20)] == b"bottom"
    it = imap_fetch(c, "4 (BODYSTRUCTURE BODY.PEEK[] ENVELOPE "
                    "BODY.PEEK[TEXT])")[0][1]
    assert it["BODY[]"] == nosep
    c.ok("NOOP")
    c.close()


def test_whole_message_sections_without_the_tree(imap):
    """Sections of the whole message are answered from where the header
    ends, without the mime tree, and a header-only FETCH reads the stored
    skeleton of a message whose large attachment was stored apart: every
    way of asking gives the same bytes, HEADER + TEXT is BODY[]."""
    big = base64.encodebytes(bytes(range(256)) * 400).replace(b"\n", CRLF)
    msgs = {
        # A 100 KB attachment: stored as its own part (store_parts.c).
        "split": (b"From: a@example.net\r\nTo: imap@example.test\r\n"
                  b"Subject: split\r\nMessage-ID: <shallow-split@x>\r\n"
                  b"MIME-Version: 1.0\r\n"
                  b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                  b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
                  b"--b\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Transfer-Encoding: base64\r\n\r\n" + big +
                  b"--b--\r\n"),
        # A header ended by a line that is not a field (malformed).
        "odd": (b"From: a@example.net\r\nSubject: odd\r\n"
                b"Message-ID: <shallow-odd@x>\r\n"
                b"this line is no field\r\nbody\r\n"),
        # No body at all.
        "nobody": (b"From: a@example.net\r\nSubject: nobody\r\n"
                   b"Message-ID: <shallow-nobody@x>\r\n"),
    }
    imap_deliver(imap, list(msgs.values()))
    c = imap_client(imap, select="INBOX")
    for name, raw in msgs.items():
        out = c.ok('UID SEARCH HEADER Message-ID "<shallow-%s@x>"' % name)
        uid = int(out[0].split()[-1])
        whole = ufetch(c, uid, "BODY.PEEK[]")["BODY[]"]
        assert split_trace(whole)[1] == raw
        hdr = ufetch(c, uid, "BODY.PEEK[HEADER]")["BODY[HEADER]"]
        text = ufetch(c, uid, "BODY.PEEK[TEXT]")["BODY[TEXT]"]
        assert hdr + text == whole, name
        fields = section(ufetch(c, uid, "BODY.PEEK[HEADER.FIELDS "
                                "(Subject)]"), "BODY[HEADER.FIELDS (")
        assert fields == b"Subject: %s\r\n\r\n" % name.encode()
        # The same with the tree asked for too (BODYSTRUCTURE).
        it = ufetch(c, uid, "(BODYSTRUCTURE BODY.PEEK[HEADER] "
                    "BODY.PEEK[TEXT] BODY.PEEK[HEADER.FIELDS (Subject)] "
                    "RFC822.SIZE)")
        assert it["BODY[HEADER]"] == hdr and it["BODY[TEXT]"] == text
        assert section(it, "BODY[HEADER.FIELDS (") == fields
        assert int(it["RFC822.SIZE"]) == len(whole)
        it = ufetch(c, uid, "(RFC822.HEADER RFC822.TEXT)")
        assert it["RFC822.HEADER"] == hdr and it["RFC822.TEXT"] == text
    c.close()


def test_many_flags_in_few_answers(imap):
    """FETCH 1:* of flags and sizes over 600 messages, whose answers
    storaged packs many to a message: every message once, in order,
    each with its own flags, size and date."""
    c = imap_client(imap)
    c.ok("CREATE Many")
    want = {}
    for i in range(600):
        kw = "$k%03d-%s" % (i, "x" * (i % 40))
        flags = "(\\Flagged %s)" % kw if i % 3 == 0 else "(%s)" % kw
        body = b"Subject: many %d\r\n\r\n%s\r\n" % (i, b"y" * i)
        c.send(b'a APPEND Many %s "0%d-Jan-2026 10:00:00 +0000" {%d+}\r\n'
               % (flags.encode(), 1 + i % 9, len(body)) + body + CRLF)
        t = c.until("a")[-1]
        assert t.startswith("a OK"), t
        want[i + 1] = (kw, i % 3 == 0, len(body), 1 + i % 9)
    c.ok("SELECT Many")
    res = imap_fetch(c, "1:* (UID FLAGS RFC822.SIZE INTERNALDATE)")
    assert [seq for seq, _ in res] == list(range(1, 601))
    for seq, it in res:
        kw, flagged, size, day = want[seq]
        flags = it["FLAGS"]
        assert kw in flags and ("\\Flagged" in flags) == flagged, (seq, it)
        assert int(it["RFC822.SIZE"]) == size
        assert it["INTERNALDATE"] == b"%02d-Jan-2026 10:00:00 +0000" % day
    c.close()


def parts_stored(p, mid):
    """(start, length) of the parts stored apart of the message row
    whose Message-ID is mid."""
    con = sqlite3.connect("file:%s?mode=ro" %
                          os.path.join(p.statedir, "postern.db"), uri=True)
    con.execute("PRAGMA busy_timeout = 5000")
    rows = con.execute("SELECT p.start, p.length FROM message_parts p "
                       "JOIN messages m ON m.id = p.message_id WHERE "
                       "m.message_id = ? ORDER BY p.start",
                       (mid,)).fetchall()
    con.close()
    return rows


def attachments(mid, leaves):
    """A multipart/mixed message of a short text and the given
    (header, encoded body) leaves, and the (start, end) of each leaf's
    body in it."""
    m = (b"From: a@example.net\r\nTo: imap@example.test\r\n"
         b"Subject: pieces\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=cut\r\n\r\n"
         b"preamble\r\n--cut\r\nContent-Type: text/plain\r\n\r\n"
         b"first words\r\n" % mid.encode())
    spans = []
    for hdr, body in leaves:
        m += b"--cut\r\n" + hdr + CRLF
        spans.append((len(m), len(m) + len(body)))
        m += body + b"\r\n"
    return m + b"--cut--\r\nepilogue\r\n", spans


def b64(data):
    return base64.encodebytes(data).replace(b"\n", CRLF)


def test_large_attachments_read_in_pieces(imap):
    """A message whose three large attachments are stored apart (a
    base64 image, an 8bit octet-stream, a base64 archive) is read back
    from its pieces: every section, partial range across a piece's
    edges, BINARY decoding and a streamed section over several pieces
    give exactly the bytes that were sent."""
    png = bytes((i * 7 + i // 256) & 0xff for i in range(90000))
    octets = b"".join(bytes(range(128 + (k % 100), 228)) + b"%05d\r\n" % k
                      for k in range(500))
    zipped = bytes((i * 31 + 5) % 251 for i in range(140000))
    leaves = [
        (b"Content-Type: image/png\r\nContent-Transfer-Encoding: "
         b"base64\r\n", b64(png)),
        (b"Content-Type: application/octet-stream\r\n"
         b"Content-Disposition: attachment; filename=\"raw.bin\"\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n", octets),
        (b"Content-Type: application/zip\r\nContent-Transfer-Encoding: "
         b"base64\r\n", b64(zipped)),
    ]
    raw, spans = attachments("pieces-3@x", leaves)
    assert 256 * 1024 < len(raw) < 600 * 1024
    imap_deliver(imap, [raw])
    c = imap_client(imap, select="INBOX")
    uid = int(c.ok('UID SEARCH HEADER Message-ID "<pieces-3@x>"')[0]
              .split()[-1])
    cut = parts_stored(imap, "pieces-3@x")
    whole = ufetch(c, uid, "BODY.PEEK[]")["BODY[]"]
    added, rest = split_trace(whole)
    assert rest == raw and "received" in added
    pre = len(whole) - len(raw)
    # Each leaf is its own blob, at the offset of its body (in the blob,
    # which holds the trace lines common to all recipients).
    assert [e - s for s, e in spans] == [n for _, n in cut]
    assert len({at - s for (s, _), (at, _) in zip(spans, cut)}) == 1
    text = raw.split(b"\r\n\r\n", 1)[1]
    it = ufetch(c, uid, "(RFC822.TEXT BODY.PEEK[TEXT] RFC822.SIZE "
                "BODY.PEEK[1] BODYSTRUCTURE)")
    assert it["RFC822.TEXT"] == it["BODY[TEXT]"] == text
    assert int(it["RFC822.SIZE"]) == len(whole)
    assert it["BODY[1]"] == b"first words"
    for n, ((hdr, body), decoded_body) in enumerate(
            zip(leaves, (png, octets, zipped)), 2):
        it = ufetch(c, uid, "(BODY.PEEK[%d] BODY.PEEK[%d.MIME] "
                    "BINARY.PEEK[%d] BINARY.SIZE[%d])" % (n, n, n, n))
        assert it["BODY[%d]" % n] == body
        assert it["BODY[%d.MIME]" % n] == hdr + CRLF
        assert it["BINARY[%d]" % n] == decoded_body
        assert int(it["BINARY.SIZE[%d]" % n]) == len(decoded_body)
        # Across the start and the end of the piece, from inside the
        # section and from the whole message, and all of it with a
        # little of the skeleton on each side.
        it = ufetch(c, uid, "(BODY.PEEK[%d]<%d.20> BODY.PEEK[%d]<0.1>)"
                    % (n, len(body) - 10, n))
        assert it["BODY[%d]<%d>" % (n, len(body) - 10)] == body[-10:]
        assert it["BODY[%d]<0>" % n] == body[:1]
    for s, e in spans:
        for off, ln in ((s - 10, 20), (e - 10, 20), (s - 1, 1), (s, 1),
                        (e - 1, 2), (s - 100, e - s + 200)):
            got = ufetch(c, uid, "BODY.PEEK[]<%d.%d>" % (pre + off, ln))
            assert got["BODY[]<%d>" % (pre + off)] == \
                raw[off:off + ln], (off, ln)
            got = ufetch(c, uid, "BODY.PEEK[TEXT]<%d.%d>" %
                         (off - (len(raw) - len(text)), ln))
            assert got["BODY[TEXT]<%d>" % (off - (len(raw) - len(text)))] \
                == raw[off:off + ln], (off, ln)
    # Larger than the streaming threshold, from the first piece's
    # middle over the second into the third.
    s0, s2 = spans[0][0] + 5000, spans[2][0] + 150000
    assert s2 - s0 > 256 * 1024
    got = ufetch(c, uid, "BODY.PEEK[]<%d.%d>" % (pre + s0, s2 - s0))
    assert got["BODY[]<%d>" % (pre + s0)] == raw[s0:s2]
    # Several sections, some streamed, in one answer.
    it = ufetch(c, uid, "(BODY.PEEK[TEXT] BINARY.PEEK[3] BODY.PEEK[] "
                "BODY.PEEK[4]<100.50>)")
    assert it["BODY[TEXT]"] == text and it["BODY[]"] == whole
    assert it["BINARY[3]"] == octets
    assert it["BODY[4]<100>"] == leaves[2][1][100:150]
    c.close()


def test_many_parts_and_many_messages(imap):
    """A message of more attachments stored apart than are passed one
    by one, and a FETCH of many messages with several each, more
    descriptors than one batch passes: all read back byte for byte."""
    c = imap_client(imap)
    c.ok("CREATE Pieces")
    def leaf(k):
        return (b"Content-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n",
                b64(bytes((i * (k + 3)) & 0xff for i in range(13000))))
    many, spans = attachments("pieces-many@x", [leaf(k) for k in range(12)])
    append_raw(c, "Pieces", many)
    assert len(parts_stored(imap, "pieces-many@x")) == 12
    seven = []
    for j in range(14):
        m, sp = attachments("pieces-7-%d@x" % j,
                            [leaf(j + k) for k in range(7)])
        append_raw(c, "Pieces", m)
        seven.append((m, sp))
    assert len(parts_stored(imap, "pieces-7-13@x")) == 7
    c.ok("EXAMINE Pieces")
    it = imap_fetch(c, "1 (BODY.PEEK[] BODY.PEEK[7] BINARY.PEEK[13] "
                    "BODY.PEEK[]<%d.40>)" % (spans[5][1] - 20))[0][1]
    assert it["BODY[]"] == many
    assert it["BODY[7]"] == leaf(5)[1]
    assert it["BINARY[13]"] == base64.b64decode(leaf(11)[1])
    assert it["BODY[]<%d>" % (spans[5][1] - 20)] == \
        many[spans[5][1] - 20:spans[5][1] + 20]
    res = imap_fetch(c, "1:* (BODY.PEEK[] BODY.PEEK[8])")
    assert [seq for seq, _ in res] == list(range(1, 16))
    for (seq, it), (m, sp) in zip(res, [(many, spans)] + seven):
        assert it["BODY[]"] == m, seq
        assert it["BODY[8]"] == m[sp[6][0]:sp[6][1]], seq
    c.close()


def test_flags_with_and_without_other_keywords(imap):
    """FLAGS come from the system flags alone while the mailbox holds no
    other keyword, and from every keyword once one is set: the same
    answer either way, following each STORE."""
    c = imap_client(imap)
    c.ok("CREATE Kw")
    for flags in ("(\\Seen \\Flagged)", "(\\Draft \\Answered \\Deleted)",
                  "()"):
        body = b"Subject: kw\r\n\r\nx\r\n"
        c.send(b"a APPEND Kw %s {%d+}\r\n" % (flags.encode(), len(body)) +
               body + CRLF)
        assert c.until("a")[-1].startswith("a OK")
    c.ok("SELECT Kw")

    def flags():
        # Another session's change may be told (as an untagged FETCH)
        # at the start of this one: the answer is the last per number.
        got = {seq: sorted(it["FLAGS"])
               for seq, it in imap_fetch(c, "1:* (FLAGS)")}
        return [got[seq] for seq in sorted(got)]

    system = [["\\Flagged", "\\Seen"],
              ["\\Answered", "\\Deleted", "\\Draft"], []]
    assert flags() == system
    other = imap_client(imap, select="Kw")
    other.ok("STORE 2:3 +FLAGS ($Custom)")
    other.close()
    assert flags() == [system[0], sorted(["$custom"] + system[1]),
                       ["$custom"]]
    c.ok("STORE 1:* -FLAGS ($Custom)")
    assert flags() == system
    c.close()


DUP_HEADER = (b"From: a@example.net\r\n"
              b"To: imap@example.test\r\n"
              b"subject: first\r\n"
              b"X-Dup: one\r\n"
              b"X-Dup-Not: other\r\n"
              b"X-DUP: two\r\n"
              b"\tfolded with a tab\r\n"
              b"  and spaces\r\n"
              b"Message-ID: <hf-dup@x>\r\n"
              b"SUBJECT: second\r\n")


def test_header_fields_duplicates_case_and_partial(imap):
    """HEADER.FIELDS gives every instance of a field asked for, in the
    message's order and spelling, folded lines whole; the names match
    whatever their case, quoted or not, and not a longer name that
    starts the same; <partial> cuts the filtered bytes; the same item
    twice, and .NOT beside it, each come right."""
    c = imap_client(imap)
    c.ok("CREATE Hfdup")
    append_raw(c, "Hfdup", DUP_HEADER + CRLF + b"the body\r\n")
    c.ok("EXAMINE Hfdup")
    want = (b"subject: first\r\nX-Dup: one\r\nX-DUP: two\r\n"
            b"\tfolded with a tab\r\n  and spaces\r\nSUBJECT: second\r\n"
            b"\r\n")
    it = imap_fetch(c, '1 (BODY.PEEK[HEADER.FIELDS (Subject "x-dup")])')
    assert section(it[0][1], "BODY[HEADER.FIELDS (") == want
    it = imap_fetch(c, "1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)]<7.12> "
                    "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.5> "
                    "BODY.PEEK[HEADER.FIELDS (SUBJECT)]<500.10>)")[0][1]
    full = b"subject: first\r\nSUBJECT: second\r\n\r\n"
    assert it["BODY[HEADER.FIELDS (SUBJECT)]<7>"] == full[7:19]
    assert it["BODY[HEADER.FIELDS (SUBJECT)]<0>"] == full[:5]
    assert it["BODY[HEADER.FIELDS (SUBJECT)]<500>"] == b""
    it = imap_fetch(c, "1 (BODY.PEEK[HEADER.FIELDS (X-DUP)] "
                    "BODY.PEEK[HEADER.FIELDS.NOT (X-Dup Subject To)] "
                    "BODY.PEEK[HEADER.FIELDS (x-dup)])")[0][1]
    dups = b"X-Dup: one\r\nX-DUP: two\r\n\tfolded with a tab\r\n" \
        b"  and spaces\r\n\r\n"
    assert it["BODY[HEADER.FIELDS (X-DUP)]"] == dups
    assert it["BODY[HEADER.FIELDS (X-DUP)]"] == dups
    assert section(it, "BODY[HEADER.FIELDS.NOT") == (
        b"From: a@example.net\r\nX-Dup-Not: other\r\n"
        b"Message-ID: <hf-dup@x>\r\n\r\n")
    c.close()


def test_header_fields_of_many_messages(imap):
    """The bench's FETCH over more messages than one batch: each message
    answered once, in order, with its own fields (the section parsed
    once serves every message), its own size and the INTERNALDATE its
    APPEND gave, in the full response that ends with the tagged OK."""
    c = imap_client(imap)
    c.ok("CREATE Hfmany")
    n = 75
    raws = []
    for k in range(n):
        raw = (b"From: sender%d@example.net\r\nTo: imap@example.test\r\n"
               b"Cc: cc%d@example.net\r\nSubject: message %d\r\n"
               b"X-Pad: %s\r\nDate: Mon, 02 Mar 2026 10:00:00 +0000\r\n"
               b"Message-ID: <hf-many-%d@x>\r\n\r\nbody %d\r\n" %
               (k, k, k, b"p" * (k * 13), k, k))
        if k % 5 == 0:
            raw = raw.replace(b"Cc: cc%d@example.net\r\n" % k, b"")
        raws.append(raw)
        date = "%02d-%s-%04d %02d:%02d:%02d +0000" % (
            k % 28 + 1, ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul",
                         "Aug", "Sep", "Oct", "Nov", "Dec")[k % 12],
            1999 + k, k % 24, k % 60, (k * 7) % 60)
        c.send(b'a APPEND Hfmany "%s" {%d+}\r\n%s\r\n' %
               (date.encode(), len(raw), raw))
        t = c.until("a")[-1]
        assert t.startswith("a OK"), t
    c.ok("EXAMINE Hfmany")
    out = c.ok("FETCH 1:* (UID FLAGS INTERNALDATE RFC822.SIZE "
               "BODY.PEEK[HEADER.FIELDS (FROM TO CC SUBJECT DATE "
               "MESSAGE-ID)])")
    res = [imap_fetch_items(ln) for ln in out
           if re.match(r"\* \d+ FETCH ", ln)]
    assert [seq for seq, _ in res] == list(range(1, n + 1))
    for k, (seq, it) in enumerate(res):
        raw = raws[k]
        kept = b"".join(ln + CRLF for ln in raw.split(b"\r\n\r\n")[0]
                        .split(CRLF) if not ln.startswith(b"X-Pad"))
        assert section(it, "BODY[HEADER.FIELDS (") == kept + CRLF, seq
        assert int(it["RFC822.SIZE"]) == len(raw), seq
        assert it["INTERNALDATE"].decode() == "%02d-%s-%04d %02d:%02d:%02d " \
            "+0000" % (k % 28 + 1, ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov",
                                    "Dec")[k % 12], 1999 + k, k % 24,
                       k % 60, (k * 7) % 60), seq
    c.close()


def test_header_end_from_mime_json_in_any_order(imap):
    """Where the header ends comes from the root part's offsets in the
    stored mime JSON, not from any nested part's: a row whose JSON has
    its keys in another order (the parts before the root's offsets, the
    root first) or is not compact is still answered right."""
    import json
    c = imap_client(imap)
    c.ok("CREATE Hfjson")
    raws = []
    for k in range(2):
        raw = (b"From: a@example.net\r\nSubject: json %d\r\n"
               b"Message-ID: <hf-json-%d@x>\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
               b"--b\r\nContent-Type: text/plain\r\nX-In-Part: yes\r\n\r\n"
               b"part one\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
               b"part two\r\n--b--\r\n" % (k, k))
        append_raw(c, "Hfjson", raw)
        raws.append(raw)
    c.ok("EXAMINE Hfjson")
    before = imap_fetch(c, "1:2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                        "BODY.PEEK[HEADER.FIELDS (SUBJECT X-IN-PART)])")
    con = sqlite3.connect(os.path.join(imap.statedir, "postern.db"))
    con.execute("PRAGMA busy_timeout = 5000")
    for k in range(2):
        (mid, text), = con.execute(
            "SELECT id, mime FROM messages WHERE message_id = ?",
            ("hf-json-%d@x" % k,)).fetchall()
        doc = json.loads(text)
        root = doc.pop("root")
        offsets = root.pop("offsets")
        root["offsets"] = offsets
        doc = dict([("root", root)] + list(doc.items()))
        if k == 0:
            new = json.dumps(doc, separators=(",", ":"))
            assert new.index('"children"') < new.index('"offsets":[%d,' %
                                                       offsets[0])
        else:
            new = json.dumps(doc, indent=1)
        con.execute("UPDATE messages SET mime = ? WHERE id = ?", (new, mid))
    con.commit()
    con.close()
    after = imap_fetch(c, "1:2 (BODY.PEEK[HEADER] BODY.PEEK[TEXT] "
                       "BODY.PEEK[HEADER.FIELDS (SUBJECT X-IN-PART)])")
    assert after == before
    for (seq, it), raw in zip(after, raws):
        assert split_trace(it["BODY[HEADER]"] + it["BODY[TEXT]"])[1] == raw
        assert section(it, "BODY[HEADER.FIELDS (") == \
            b"Subject: json %d\r\n\r\n" % (seq - 1)
    c.close()


def test_bodies_around_a_streamed_one(imap):
    """A FETCH of bodies over more than a batch, with a message among
    small ones that streams, larger than imapd queues at once (the
    answers after it wait until it is out): every body whole, in
    order, then the tagged OK."""
    c = imap_client(imap)
    c.ok("CREATE Streamed")
    raws = []
    for k in range(45):
        body = (b"line %d of message %d\r\n" % (k, k)) * (60 if k % 7 else 2)
        if k == 20:
            body = b64(bytes((i * 7) & 0xff for i in range(1200 * 1024)))
        raw = (b"From: a@example.net\r\nSubject: streamed %d\r\n"
               b"Message-ID: <streamed-%d@x>\r\n\r\n" % (k, k)) + body
        append_raw(c, "Streamed", raw)
        raws.append(raw)
    c.ok("EXAMINE Streamed")
    res = imap_fetch(c, "1:* (UID BODY.PEEK[] RFC822.SIZE)")
    assert [seq for seq, _ in res] == list(range(1, 46))
    assert len(raws[20]) > 1024 * 1024
    for (seq, it), raw in zip(res, raws):
        assert it["BODY[]"] == raw, seq
        assert int(it["RFC822.SIZE"]) == len(raw), seq
    c.close()
