"""mbsync (Debian's isync) against Postern: a generated 500-message
Maildir with varied MIME (nested multiparts, 8-bit, encoded-words,
attachments, quoted-printable) is pushed up over IMAPS, flags are
changed on both sides, synced again, then pulled into a fresh Maildir:
every message comes back byte-identical, with the flags merged."""
import email.message
import email.policy
import email.utils
import os
import random
import re
import shutil
import subprocess

import pytest

from conftest import imap_client, imap_deliver, imap_fetch

MBSYNC = shutil.which("mbsync")
USER = "sync@example.test"
PASSWORD = "sync-secret-1"
N = 500
SUB = "Lists/Dev"      # the last 50 go there, the rest to INBOX

pytestmark = pytest.mark.skipif(MBSYNC is None,
                                reason="mbsync (isync) is not installed")

LETTERS = {"D": "\\draft", "F": "\\flagged", "R": "\\answered",
           "S": "\\seen", "T": "\\deleted"}

WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda "
         "mu nu xi omicron pi rho sigma tau upsilon phi chi psi omega "
         "Gr\u00fc\u00dfe caf\u00e9 na\u00efve \u65e5\u672c "
         "\u0417\u0434\u0440\u0430\u0432\u0441\u0442\u0432\u0443\u0439").split()


def text(rng, lines, ascii_only=False):
    words = [w for w in WORDS if not ascii_only or w.isascii()]
    return "".join(" ".join(rng.choice(words)
                            for _ in range(rng.randint(3, 14))) + "\n"
                   for _ in range(lines))


def make_message(i, rng):
    kind = i % 8
    m = email.message.EmailMessage(policy=email.policy.default)
    names = ["Ana", "J\u00fcrgen M\u00fcller", "\u674e\u96f7",
             "Zo\u00eb O'Brien", "plain person"]
    m["From"] = email.utils.formataddr((names[i % len(names)],
                                        "sender%d@example.net" % (i % 37)))
    m["To"] = "%s <%s>" % ("Sync User", USER)
    if i % 6 == 0:
        m["Cc"] = "list-%d@lists.example.org" % (i % 5)
    subj = ["Status report %d", "Re: Caf\u00e9 meeting %d",
            "\u00dcberpr\u00fcfung Nummer %d", "Lunch plans %d",
            "\u65e5\u672c\u8a9e\u306e\u4ef6\u540d %d"][i % 5]
    m["Subject"] = subj % i
    m["Date"] = email.utils.format_datetime(
        email.utils.datetime.datetime(2025, 1 + i % 12, 1 + i % 28,
                                      i % 24, i % 60, 0,
                                      tzinfo=email.utils.datetime.timezone(
                                          email.utils.datetime.timedelta(
                                              hours=(i % 5) - 2))))
    m["Message-ID"] = "<mbsync-%d@test.example>" % i
    if i % 4 == 1 and i > 0:
        m["In-Reply-To"] = "<mbsync-%d@test.example>" % (i - 1)
        m["References"] = " ".join("<mbsync-%d@test.example>" % k
                                   for k in range(max(0, i - 12), i))
    if kind == 0:
        m.set_content(text(rng, rng.randint(1, 30), ascii_only=True))
    elif kind == 1:
        m.set_content(text(rng, rng.randint(1, 30)), cte="8bit")
    elif kind == 2:
        m.set_content(text(rng, rng.randint(1, 10)),
                      cte="quoted-printable")
    elif kind == 3:
        m.set_content(text(rng, 5))
        m.add_alternative("<html><body><p>%s</p></body></html>\n"
                          % text(rng, 3), subtype="html")
    elif kind == 4:
        m.set_content(text(rng, 4, ascii_only=True))
        m.add_attachment(rng.randbytes(rng.randint(100, 20000)),
                         maintype="application", subtype="octet-stream",
                         filename="data-%d.bin" % i)
    elif kind == 5:
        # mixed [ alternative [ plain, related [ html, image ] ],
        #         pdf, message/rfc822 ]
        m.set_content(text(rng, 3))
        m.add_alternative("<html><body><img src=\"cid:img%d\">%s"
                          "</body></html>\n" % (i, text(rng, 2)),
                          subtype="html")
        html = m.get_payload()[1]
        html.add_related(rng.randbytes(500), maintype="image",
                         subtype="png", cid="<img%d>" % i)
        m.make_mixed()
        m.add_attachment(b"%PDF-1.4\n" + rng.randbytes(3000),
                         maintype="application", subtype="pdf",
                         filename="r\u00e9sum\u00e9 %d.pdf" % i)
        inner = email.message.EmailMessage(policy=email.policy.default)
        inner["From"] = "inner@example.org"
        inner["Subject"] = "Inner \u00e9 %d" % i
        inner["Message-ID"] = "<inner-%d@test.example>" % i
        inner.set_content(text(rng, 3), cte="8bit")
        m.add_attachment(inner)
    elif kind == 6:
        m.set_content(text(rng, 2, ascii_only=True))
        for k in range(rng.randint(2, 4)):
            m.add_attachment(text(rng, 20).encode("utf-8"),
                             maintype="text", subtype="plain",
                             filename="notes-%d.txt" % k)
    else:
        m["X-Long-Header"] = " ".join("token%d" % k for k in range(60))
        m.set_content(("long line " * 100 + "\n") * 3, cte="8bit")
    data = m.as_bytes(policy=email.policy.default.clone(linesep="\n"))
    assert b"\r" not in data
    return data


def generate():
    random.seed(20261201)   # multipart boundaries come from random
    rng = random.Random(500)
    return [make_message(i, rng) for i in range(N)]


def initial_flags(i):
    f = ""
    if i % 13 == 0:
        f += "D"
    if i % 7 == 0:
        f += "F"
    if i % 11 == 0:
        f += "R"
    if i % 5 == 0:
        f += "S"
    return f


def folder_of(i):
    return SUB if i >= N - 50 else "INBOX"


def maildir_path(root, folder):
    return os.path.join(root, folder)


def write_maildir(root, messages):
    for folder in ("INBOX", SUB):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(maildir_path(root, folder), sub),
                        exist_ok=True)
    for i, data in enumerate(messages):
        name = "1700000000.M%dP1.test:2,%s" % (i, initial_flags(i))
        with open(os.path.join(maildir_path(root, folder_of(i)), "cur",
                               name), "wb") as f:
            f.write(data)


def msgid(data):
    head = data.split(b"\n\n", 1)[0]
    return re.search(rb"(?im)^Message-ID:\s*<mbsync-(\d+)@", head)


def read_maildir(root):
    """{message number: (folder, path, bytes, flag letters)}."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        if os.path.basename(dirpath) not in ("cur", "new"):
            continue
        folder = os.path.relpath(os.path.dirname(dirpath), root)
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                data = f.read()
            m = msgid(data)
            if not m:
                continue
            i = int(m.group(1))
            assert i not in out, ("twice", i, path, out[i][1])
            flags = name.split(":2,", 1)[1] if ":2," in name else ""
            out[i] = (folder, path, data, flags)
    return out


def set_flags(path, flags):
    base = path.split(":2,", 1)[0]
    new = base + ":2," + "".join(sorted(set(flags)))
    if new != path:
        os.rename(path, new)


def config(tmp, p, near, name):
    text = """IMAPAccount far
Host localhost
Port %d
User %s
Pass %s
SSLType IMAPS
CertificateFile %s
PipelineDepth 50

IMAPStore far
Account far

MaildirStore near
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel sync
Far :far:
Near :near:
Patterns INBOX Lists/Dev
Create Both
SyncState *
""" % (p.ports["imaps"], USER, PASSWORD, p.cert, near, near)
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def mbsync(conf):
    r = subprocess.run([MBSYNC, "-c", conf, "-a"], capture_output=True,
                       timeout=300, env=dict(os.environ, HOME="/nonexistent"))
    assert r.returncode == 0, (r.returncode, r.stdout.decode()[-3000:],
                               r.stderr.decode()[-3000:])
    return r


def server_state(p):
    """{message number: (folder, BODY[], flags set)} over IMAP."""
    c = imap_client(p, USER, PASSWORD)
    out = {}
    for folder in ("INBOX", SUB):
        c.ok('EXAMINE "%s"' % folder)
        for _, it in imap_fetch(c, "1:* (FLAGS BODY.PEEK[])"):
            m = msgid(it["BODY[]"].replace(b"\r\n", b"\n"))
            if not m:
                assert b"<smtp-" in it["BODY[]"], it["BODY[]"][:300]
                continue
            i = int(m.group(1))
            assert i not in out, ("twice on the server", i)
            out[i] = (folder, it["BODY[]"],
                      set(f.lower() for f in it["FLAGS"]))
    c.close()
    return out


def strip_tuid(data):
    """The message without the one X-TUID header field mbsync (isync
    1.4) puts in the header of every message it copies, to find it
    again; everything else must be byte-identical."""
    nl = b"\r\n" if b"\r\n" in data[:2000] else b"\n"
    head, sep, body = data.partition(nl + nl)
    lines = head.split(nl)
    kept = [ln for ln in lines if not ln.startswith(b"X-TUID: ")]
    assert len(lines) - len(kept) <= 1, head
    return nl.join(kept) + sep + body


def letters_to_flags(letters):
    return set(LETTERS[x] for x in letters if x in LETTERS)


def test_mbsync_round_trip(imap, tmp_path):
    p = imap
    p.add_account(USER, PASSWORD)
    messages = generate()
    # Deterministic: the same bytes every run.
    assert generate()[123] == messages[123]
    near = str(tmp_path / "near")
    write_maildir(near, messages)
    conf = config(str(tmp_path), p, near, "mbsyncrc")

    # 1. Push everything up.
    mbsync(conf)
    srv = server_state(p)
    assert sorted(srv) == list(range(N))
    for i, data in enumerate(messages):
        folder, body, flags = srv[i]
        assert folder == folder_of(i), i
        # The server holds exactly what was sent (CRLF on the wire).
        assert strip_tuid(body) == data.replace(b"\n", b"\r\n"), i
        assert flags == letters_to_flags(initial_flags(i)), (i, flags)

    # 2. Change flags on both sides; some on the same message.
    expect = {i: set(initial_flags(i)) for i in range(N)}
    local = read_maildir(near)
    assert sorted(local) == list(range(N))
    for i, (folder, path, data, letters) in local.items():
        fl = set(letters)
        if i % 9 == 1:
            fl.add("S")
        if i % 17 == 2:
            fl.add("F")
        if i % 10 == 0:
            fl.discard("S")
        if fl != set(letters):
            set_flags(path, fl)
            expect[i] = fl
    c = imap_client(p, USER, PASSWORD)
    for folder in ("INBOX", SUB):
        c.ok('SELECT "%s"' % folder)
        for seq, it in imap_fetch(c, "1:* (UID BODY.PEEK[HEADER.FIELDS "
                                  "(MESSAGE-ID)])"):
            hdr = list(v for k, v in it.items() if k.startswith("BODY["))[0]
            i = int(re.search(rb"mbsync-(\d+)@", hdr).group(1))
            uid = int(it["UID"])
            if i % 19 == 3:
                c.ok("UID STORE %d +FLAGS.SILENT (\\Flagged)" % uid)
                expect[i].add("F")
            if i % 23 == 4:
                c.ok("UID STORE %d +FLAGS.SILENT (\\Answered)" % uid)
                expect[i].add("R")
            # (Never the same flag both ways on one message: mbsync
            # has no rule for that.)
            if i % 10 == 5 and i % 9 != 1:
                c.ok("UID STORE %d -FLAGS.SILENT (\\Seen)" % uid)
                expect[i].discard("S")
            if i % 31 == 7 and i % 10 != 0:
                c.ok("UID STORE %d +FLAGS.SILENT (\\Seen \\Draft)" % uid)
                expect[i] |= {"S", "D"}
    c.close()
    # Messages changed on both sides exist.
    assert any(i % 9 == 1 and i % 19 == 3 for i in range(N))

    # 3. Sync again: both sides merge.
    mbsync(conf)
    local = read_maildir(near)
    srv = server_state(p)
    for i in range(N):
        assert set(local[i][3]) == expect[i], (i, local[i][3], expect[i])
        assert srv[i][2] == letters_to_flags(expect[i]), (i, srv[i][2],
                                                          expect[i])
        assert strip_tuid(local[i][2]) == messages[i]

    # 4. Mail delivered over SMTP meanwhile; then pull into a fresh
    # Maildir: byte-identical, flags merged.
    smtp = [(b"From: far@example.org\r\nTo: %s\r\nSubject: by smtp %d\r\n"
             b"Message-ID: <smtp-%d@test.example>\r\n\r\nline\r\n\r\n"
             b"another line %d\r\n" % (USER.encode(), k, k, k))
            for k in range(3)]
    imap_deliver(p, smtp, to=USER)
    fresh = str(tmp_path / "fresh")
    os.makedirs(fresh)
    conf2 = config(str(tmp_path), p, fresh, "mbsyncrc2")
    mbsync(conf2)
    pulled = read_maildir(fresh)
    assert sorted(pulled) == list(range(N))
    for i, data in enumerate(messages):
        folder, path, got, letters = pulled[i]
        assert folder == folder_of(i), (i, folder)
        assert strip_tuid(got) == data, i
        assert set(letters) == expect[i], (i, letters, expect[i])

    # The delivered ones as posternctl message show has them (with
    # the lines added at delivery), in Maildir's line ends.
    shown = [p.message_show(USER, "INBOX", u)
             for u in p.message_uids(USER, "INBOX")]
    shown = {re.search(rb"smtp-(\d+)@", m).group(1): m for m in shown
             if b"<smtp-" in m}
    assert len(shown) == 3
    got = {}
    for dirpath, dirs, files in os.walk(os.path.join(fresh, "INBOX")):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                data = f.read()
            m = re.search(rb"<smtp-(\d+)@", data)
            if m and os.path.basename(dirpath) in ("cur", "new"):
                got[m.group(1)] = data
    assert set(got) == set(shown)
    for k, data in got.items():
        assert strip_tuid(data) == shown[k].replace(b"\r\n", b"\n"), k

    # 5. A sync with nothing changed changes nothing, and nothing was
    # uploaded twice.
    mbsync(conf)
    assert read_maildir(near).keys() == local.keys()
    srv = server_state(p)
    assert sorted(srv) == list(range(N))
