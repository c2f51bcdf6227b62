"""Shared harness for protocol tests: start the real posternd as root,
with full privilege separation, on free loopback ports and a temp state
directory, and talk to it with real clients.

Tests use the `postern` fixture (a started daemon with the default
listeners) or `postern_factory` to start one with their own config.
"""
import base64
import imaplib
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("POSTERN_BUILD", os.path.join(ROOT, "build"))
POSTERND = os.path.join(BUILD, "posternd")
POSTERNCTL = os.path.join(BUILD, "posternctl")
ROLES = ["control", "smtpd", "queue", "imapd", "jmapd", "davd", "storaged"]
USER = "_postern"
STORAGE_USER = "_posterns"
# Sanitizer builds are slower to start.
START_TIMEOUT = float(os.environ.get("POSTERN_START_TIMEOUT", "20"))
# Sanitizer builds are slower at everything.
TIME_SCALE = float(os.environ.get("POSTERN_TIME_SCALE", "1"))


def ensure_users():
    for name in (USER, STORAGE_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", name],
                           check=True)


# Listener ports come from below Linux's ephemeral range (32768 and
# up), so no client socket of a test takes one between its choice and
# the daemon's bind, and each pytest-xdist worker has its own block.
PORT_BLOCK = 1500
_worker = int(re.sub(r"\D", "", os.environ.get("PYTEST_XDIST_WORKER",
                                                "gw0")) or 0) % 8
_port_base = 20000 + _worker * PORT_BLOCK
_port_next = 0


def free_port():
    """A loopback port free now, never one this process handed out."""
    global _port_next
    for _ in range(PORT_BLOCK):
        port = _port_base + _port_next
        _port_next = (_port_next + 1) % PORT_BLOCK
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        return port
    raise RuntimeError("no free port in %d..%d"
                       % (_port_base, _port_base + PORT_BLOCK - 1))


def make_cert(directory):
    """A self-signed certificate for localhost, made with openssl."""
    crt = os.path.join(directory, "server.crt")
    key = os.path.join(directory, "server.key")
    if not os.path.exists(crt):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", key, "-out", crt, "-days", "30",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
    return crt, key


class Postern:
    """One running posternd and what a test needs to talk to it."""

    def __init__(self, tmp, config_extra="", listeners=None, domains=None,
                 env=None, start=True):
        ensure_users()
        self.tmp = tmp
        self.statedir = os.path.join(tmp, "state")
        self.emptydir = os.path.join(tmp, "empty")
        self.sock = os.path.join(tmp, "postern.sock")
        self.conf = os.path.join(tmp, "postern.conf")
        self.logpath = os.path.join(tmp, "posternd.log")
        self.cert, self.key = make_cert(tmp)
        self.ports = {}
        self.proc = None
        self.env = dict(os.environ)
        if env:
            self.env.update(env)
        if listeners is None:
            listeners = ["smtp", "submission", "submissions"]
        self.listeners = listeners
        self.domains = domains if domains is not None else ["example.test"]
        for kind in listeners:
            self.ports[kind] = free_port()
        self.write_config(config_extra)
        if start:
            self.start()

    def config_text(self, extra=""):
        lines = [
            'hostname "mail.example.test"',
            'state directory "%s"' % self.statedir,
            'empty directory "%s"' % self.emptydir,
            'control socket "%s"' % self.sock,
            'user "%s"' % USER,
            'storage user "%s"' % STORAGE_USER,
            'certificate "%s"' % self.cert,
            'key "%s"' % self.key,
        ]
        for d in self.domains:
            lines.append('domain "%s"' % d)
        for kind in self.listeners:
            lines.append("listen on 127.0.0.1 port %d %s"
                         % (self.ports[kind], kind))
        return "\n".join(lines) + "\n" + extra

    def write_config(self, extra="", text=None):
        with open(self.conf, "w") as f:
            f.write(text if text is not None else self.config_text(extra))

    def start(self, wait=True):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([POSTERND, "-d", "-v", "-f", self.conf],
                                     stdout=self.log, stderr=self.log,
                                     env=self.env, start_new_session=True)
        if wait:
            self.wait_log("startup complete", START_TIMEOUT)

    def restart(self):
        """Starts the daemon again on the same state, after it stopped
        or was killed, and waits for this start to complete."""
        if self.proc is not None and self.proc.poll() is None:
            raise AssertionError("posternd still runs")
        log = getattr(self, "log", None)
        if log is not None and not log.closed:
            log.close()
        since = len(self.logtext())
        self.start(wait=False)
        self.wait_log("startup complete", START_TIMEOUT, since=since)

    def kill_all(self):
        """SIGKILL to the daemon's whole process group, and wait until
        every one of its processes is gone."""
        pids = list(self.role_pids().values()) + [self.proc.pid]
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        deadline = time.time() + 10
        for pid in pids:
            while os.path.exists("/proc/%d" % pid) and \
                    time.time() < deadline:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                            break
                except OSError:
                    break
                time.sleep(0.02)
        return pids

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10.0, since=0):
        """Waits for needle in the log, after its first since bytes."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.logtext()[since:]:
                return
            if self.proc.poll() is not None and \
                    needle not in self.logtext()[since:]:
                raise AssertionError("posternd exited (%s) before %r:\n%s"
                                     % (self.proc.returncode, needle,
                                        self.logtext()))
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %r:\n%s"
                             % (needle, self.logtext()))

    def role_pids(self):
        """role name -> pid, read from /proc (children of the parent)."""
        pids = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    cmd = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != self.proc.pid:
                continue
            for role in ROLES:
                if cmd.startswith("posternd: %s" % role):
                    pids[role] = int(entry)
        return pids

    def ctl(self, *args, input=None, user=None, check=False):
        cmd = [POSTERNCTL, "-s", self.sock] + list(args)
        preexec = None
        if user is not None:
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        r = subprocess.run(cmd, input=input, capture_output=True, text=True,
                           timeout=30, preexec_fn=preexec)
        if check and r.returncode != 0:
            raise AssertionError("posternctl %s failed (%d): %s%s"
                                 % (" ".join(args), r.returncode, r.stdout,
                                    r.stderr))
        return r

    def add_account(self, address, password):
        self.ctl("account", "add", address, input=password + "\n",
                 check=True)

    # --- reading delivered mail and the queue back -------------------

    def ctl_bytes(self, *args):
        """posternctl with its output as bytes, line ends untouched."""
        return subprocess.run([POSTERNCTL, "-s", self.sock] + list(args),
                              capture_output=True, timeout=30)

    def mailbox_list(self, account):
        r = self.ctl("mailbox", "list", account, check=True)
        return [line.split()[0] for line in r.stdout.splitlines()
                if line.strip()]

    def message_uids(self, account, mailbox="INBOX"):
        """The UIDs in a mailbox: the first number of each line."""
        r = self.ctl("message", "list", account, mailbox)
        if r.returncode != 0:
            raise AssertionError("message list %s %s: %s"
                                 % (account, mailbox, r.stderr))
        uids = []
        for line in r.stdout.splitlines():
            m = re.match(r"\s*(\d+)\b", line)
            if m:
                uids.append(int(m.group(1)))
        return uids

    def message_show(self, account, mailbox, uid):
        r = self.ctl_bytes("message", "show", account, mailbox, str(uid))
        if r.returncode != 0:
            raise AssertionError("message show %s %s %d: %r"
                                 % (account, mailbox, uid, r.stderr))
        return r.stdout

    def messages(self, account, mailbox="INBOX"):
        """Every message in the mailbox, as message show prints it."""
        return [self.message_show(account, mailbox, uid)
                for uid in self.message_uids(account, mailbox)]

    def wait_messages(self, account, n, mailbox="INBOX", timeout=10.0):
        """Wait until the mailbox holds at least n messages; return all."""
        deadline = time.time() + timeout * TIME_SCALE
        while True:
            uids = self.message_uids(account, mailbox)
            if len(uids) >= n or time.time() > deadline:
                break
            time.sleep(0.05)
        assert len(uids) >= n, ("%s %s holds %d messages, not %d"
                                % (account, mailbox, len(uids), n))
        return [self.message_show(account, mailbox, u) for u in uids]

    def fetch_all(self, account, mailbox="INBOX"):
        """uid -> message of a mailbox, showing only UIDs not seen yet."""
        if not hasattr(self, "_msgcache"):
            self._msgcache = {}
        cache = self._msgcache.setdefault((account, mailbox), {})
        for uid in self.message_uids(account, mailbox):
            if uid not in cache:
                cache[uid] = self.message_show(account, mailbox, uid)
        return cache

    def find_messages(self, account, needle, mailbox="INBOX", count=1,
                      timeout=10.0):
        """Waits until at least count messages of the mailbox contain
        needle (bytes) and returns all that do."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.time() + timeout * TIME_SCALE
        while True:
            found = [raw for uid, raw in
                     sorted(self.fetch_all(account, mailbox).items())
                     if needle in raw]
            if len(found) >= count or time.time() > deadline:
                return found
            time.sleep(0.05)

    def show_queue(self):
        r = self.ctl("show", "queue", check=True)
        return r.stdout

    def wait_exit(self, timeout=5.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait_exit(10) is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Leave nothing behind whatever happened.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.log.close()


def db_files(p, db="postern.db"):
    """The paths of a database in p's state directory: the file itself
    and its -wal and -shm files where they are."""
    return [os.path.join(p.statedir, name)
            for name in sorted(os.listdir(p.statedir))
            if name.startswith(db)]


def db_copy(p, db="postern.db"):
    """Copies a database with its WAL into a new temporary directory;
    returns the path of the copy of the database file."""
    copy = tempfile.mkdtemp(prefix="postern-db-")
    for path in db_files(p, db):
        shutil.copy(path, copy)
    return os.path.join(copy, db)


def db_to_storage_user(p, db="postern.db"):
    """Gives a database and its WAL files (written by the test as root)
    back to storaged's user."""
    pw = pwd.getpwnam(STORAGE_USER)
    for path in db_files(p, db):
        os.chown(path, pw.pw_uid, pw.pw_gid)


def db_to_schema_3(db):
    """Takes away what schema migration 4 made (SEARCH's columns, index,
    table and triggers), leaving a store as schema 3 made it."""
    conn = sqlite3.connect(db)
    conn.executescript("""
        DROP TRIGGER messages_search;
        DROP TRIGGER messages_search_update;
        DROP TRIGGER mailbox_messages_received;
        DROP TABLE message_search;
        DROP INDEX mailbox_messages_search;
        DROP INDEX mailbox_messages_unseen;
        CREATE INDEX mailbox_messages_unseen
          ON mailbox_messages(mailbox_id, uid, flags) WHERE flags & 1 = 0;
        ALTER TABLE mailbox_messages DROP COLUMN received;
        UPDATE schema_version SET version = 3;
    """)
    conn.commit()
    conn.close()


def run_together(threads):
    """Starts the threads, then waits for every one of them to end."""
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def split_trace(raw):
    """Splits a delivered message into the trace header fields added on
    delivery (Return-Path, Delivered-To, Received at the top) and the
    rest, which must be the bytes the client sent.  Returns
    ({lower-case name: [values]}, rest)."""
    added = {}
    pos = 0
    while True:
        m = re.match(rb"(Return-Path|Delivered-To|Received):"
                     rb"((?:[^\r\n]*(?:\r?\n)[ \t])*[^\r\n]*)\r?\n",
                     raw[pos:], re.I)
        if not m:
            break
        name = m.group(1).decode().lower()
        added.setdefault(name, []).append(
            m.group(2).decode("utf-8", "replace").strip())
        pos += m.end()
    return added, raw[pos:]


def header_value(message, name):
    """The first header field called name in the message bytes."""
    head = re.split(rb"\r?\n\r?\n", message, 1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) +
                  rb":[ \t]*((?:[^\r\n]*(?:\r?\n)[ \t])*[^\r\n]*)", head)
    return m.group(1).decode("utf-8", "replace") if m else None


QUEUED_RE = re.compile(r"^2\.0\.0 .*queued as ([0-9a-f]{16})$")


class Client:
    """What SMTPClient and IMAPClient share: close() of their socket
    (self.sock) and a with block that closes it."""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SMTPClient(Client):
    """A raw SMTP client over a socket, for dialogues smtplib will not
    hold: malformed input, pipelining, exact bytes."""

    def __init__(self, port, tls=False, timeout=10.0, greet=True,
                 source=None):
        self.timeout = timeout * TIME_SCALE
        self.sock = socket.create_connection(
            ("127.0.0.1", port), timeout=self.timeout,
            source_address=(source, 0) if source else None)
        self.buf = b""
        if tls:
            self._wrap()
        self.greeting = self.reply() if greet else None

    def _wrap(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; unread %r" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, [text of each line]) of one reply."""
        texts = []
        while True:
            line = self.line()
            assert re.match(r"^[2-5]\d\d[ -]", line) or \
                re.match(r"^[2-5]\d\d$", line), "bad reply line %r" % line
            texts.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                return int(line[:3]), texts

    def cmd(self, line):
        """Sends one command line (CRLF added) and reads its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def ehlo(self, name="client.example.net"):
        code, lines = self.cmd("EHLO " + name)
        assert code == 250, (code, lines)
        return [l.upper() for l in lines[1:]]

    def starttls(self):
        code, lines = self.cmd("STARTTLS")
        assert code == 220, (code, lines)
        assert not self.buf
        self._wrap()

    def auth_plain(self, user, password):
        """AUTH PLAIN with an initial response; returns the reply."""
        token = base64.b64encode(b"\0" + user.encode() + b"\0" +
                                 password.encode()).decode()
        return self.cmd("AUTH PLAIN " + token)

    def auth_login(self, user, password):
        """AUTH LOGIN in three steps; returns the last reply."""
        code, text = self.cmd("AUTH LOGIN")
        if code != 334:
            return code, text
        code, text = self.cmd(base64.b64encode(user.encode()).decode())
        if code != 334:
            return code, text
        return self.cmd(base64.b64encode(password.encode()).decode())

    def closed(self, timeout=5.0):
        """True when the server closes the connection within timeout,
        reading (and dropping) anything it still sends."""
        self.sock.settimeout(timeout * TIME_SCALE)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionError, ssl.SSLError):
            return True
        finally:
            self.sock.settimeout(self.timeout)


def send_raw(port, mail_from, rcpts, data, ehlo=True):
    """One whole transaction with data sent as given (already
    dot-stuffed and ending in CRLF.CRLF).  Returns the final reply."""
    with SMTPClient(port) as c:
        if ehlo:
            c.ehlo()
        code, text = c.cmd("MAIL FROM:<%s>" % mail_from)
        assert code == 250, (code, text)
        for r in rcpts:
            code, text = c.cmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        code, text = c.cmd("DATA")
        assert code == 354, (code, text)
        c.send(data)
        reply = c.reply()
        c.cmd("QUIT")
        return reply


def tls_context():
    """A client context that takes the tests' self-signed certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def submit_session(p, user, password, kind="submission", source=None):
    """An smtplib session on a submission listener, encrypted and
    authenticated as user."""
    port = p.ports[kind]
    src = (source, 0) if source else None
    if kind == "submissions":
        s = smtplib.SMTP_SSL("127.0.0.1", port, timeout=30 * TIME_SCALE,
                             context=tls_context(), source_address=src)
        s.ehlo("client.example.net")
    else:
        s = smtplib.SMTP("127.0.0.1", port, timeout=30 * TIME_SCALE,
                         source_address=src)
        s.ehlo("client.example.net")
        s.starttls(context=tls_context())
        s.ehlo("client.example.net")
    s.login(user, password)
    return s


def _factory():
    started = []

    def make(**kw):
        tmp = tempfile.mkdtemp(prefix="postern-test-")
        os.chmod(tmp, 0o755)
        p = Postern(tmp, **kw)
        started.append(p)
        return p

    return make, started


@pytest.fixture(scope="module")
def module_factory():
    """postern_factory for a daemon shared by the tests of a module."""
    make, started = _factory()
    yield make
    for p in started:
        p.stop()


@pytest.fixture
def postern_factory():
    started = []

    def make(**kw):
        tmp = tempfile.mkdtemp(prefix="postern-test-")
        os.chmod(tmp, 0o755)
        p = Postern(tmp, **kw)
        started.append(p)
        return p

    yield make
    for p in started:
        p.stop()


@pytest.fixture
def postern(postern_factory):
    return postern_factory()


# --- IMAP ------------------------------------------------------------

IMAP_USER = "imap@example.test"
IMAP_PASSWORD = "imap-secret-1"
IMAP_LISTENERS = ["smtp", "submission", "imap", "imaps"]


def imap_login(p, user=IMAP_USER, password=IMAP_PASSWORD, kind="imaps",
               login=True):
    """An imaplib session: IMAP4_SSL on the imaps listener, or IMAP4
    with STARTTLS on the imap one; logged in unless login is False."""
    port = p.ports[kind]
    if kind == "imaps":
        m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=tls_context(),
                              timeout=30 * TIME_SCALE)
    else:
        m = imaplib.IMAP4("127.0.0.1", port, timeout=30 * TIME_SCALE)
        m.starttls(ssl_context=tls_context())
    if login:
        m.login(user, password)
    return m


class IMAPClient(Client):
    """A raw IMAP client for exact bytes, literals, pipelining and
    untagged responses imaplib drops.  Lines are str decoded as
    latin-1 (so .encode("latin-1") gives the bytes back); a line that
    ends in a literal {n} holds the literal's bytes and the rest of the
    line after CRLF, as one str."""

    def __init__(self, port, tls=False, timeout=10.0):
        self.timeout = timeout * TIME_SCALE
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=self.timeout)
        if tls:
            self.starttls_wrap()
        self.buf = b""
        self.ntag = 0
        self.greeting = self.line()

    def starttls_wrap(self):
        self.sock = tls_context().wrap_socket(self.sock,
                                              server_hostname="localhost")
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed; unread %r" % self.buf[:200])
        self.buf += chunk

    def rawline(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def line(self):
        line = self.rawline()
        while True:
            m = re.search(rb"~?\{(\d+)\+?\}$", line)
            if not m:
                return line.decode("latin-1")
            n = int(m.group(1))
            while len(self.buf) < n:
                self._fill()
            line += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            line += self.rawline()

    def tag(self):
        self.ntag += 1
        return "t%d" % self.ntag

    def until(self, tag):
        """Every line up to and including the tagged one."""
        lines = []
        while True:
            ln = self.line()
            lines.append(ln)
            if ln.startswith(tag + " "):
                return lines

    def cmd(self, text, tag=None):
        """Sends one command; returns (tagged line, untagged lines)."""
        tag = tag or self.tag()
        if isinstance(text, bytes):
            self.send(tag.encode() + b" " + text + b"\r\n")
        else:
            self.send("%s %s\r\n" % (tag, text))
        lines = self.until(tag)
        return lines[-1], lines[:-1]

    def ok(self, text):
        """cmd, asserting a tagged OK; returns the untagged lines."""
        tagged, untagged = self.cmd(text)
        assert tagged.split(" ", 2)[1] == "OK", (text, tagged, untagged)
        return untagged

    def refused(self, text, how):
        """cmd, asserting a tagged NO or BAD (how); returns the tagged
        line."""
        tagged, _ = self.cmd(text)
        assert tagged.split()[1] == how, tagged
        return tagged

    def login(self, user=IMAP_USER, password=IMAP_PASSWORD):
        return self.ok("LOGIN %s %s" % (imap_quote(user),
                                         imap_quote(password)))

    def closed(self, timeout=5.0):
        try:
            self.sock.settimeout(timeout * TIME_SCALE)
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionError, ssl.SSLError, OSError) as e:
            if isinstance(e, socket.timeout):
                return False
            return True
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass


def imap_quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def imap_code(untagged, name):
    """The value of an untagged OK response code, e.g. UIDNEXT."""
    for ln in untagged:
        m = re.match(r"\* OK \[%s ?([^\]]*)\]" % name, ln)
        if m:
            return m.group(1)
    return None


def imap_count(untagged, what):
    """The number of an untagged "* N WHAT" response (EXISTS, RECENT
    ...), or None if there is none."""
    for ln in untagged:
        m = re.match(r"\* (\d+) %s$" % what, ln)
        if m:
            return int(m.group(1))
    return None


def imap_expand(s):
    """The numbers of a sequence set of numbers and ranges ("1,3:5"),
    in ascending order."""
    out = []
    for part in s.split(","):
        if ":" in part:
            a, b = (int(x) for x in part.split(":"))
            out.extend(range(min(a, b), max(a, b) + 1))
        else:
            out.append(int(part))
    return sorted(out)


def imap_append(c, mailbox, text, flags="", date=None):
    """APPEND on an IMAPClient with a synchronizing literal; returns the
    tagged line."""
    data = text.encode() if isinstance(text, str) else text
    tag = c.tag()
    head = "%s APPEND %s" % (tag, imap_quote(mailbox))
    if flags is not None and flags != "":
        head += " (%s)" % flags
    if date:
        head += ' "%s"' % date
    c.send("%s {%d}\r\n" % (head, len(data)))
    cont = c.line()
    assert cont.startswith("+"), cont
    c.send(data + b"\r\n")
    return c.until(tag)[-1]


def imap_client(p, user=IMAP_USER, password=IMAP_PASSWORD, select=None,
                kind="imaps"):
    """An IMAPClient over TLS (imaps, or imap with STARTTLS), logged in,
    with select selected if given."""
    if kind == "imaps":
        c = IMAPClient(p.ports[kind], tls=True)
    else:
        c = IMAPClient(p.ports[kind])
        c.ok("STARTTLS")
        c.starttls_wrap()
    if user is not None:
        c.login(user, password)
    if select is not None:
        c.ok("SELECT " + imap_quote(select))
    return c


def imap_deliver(p, messages, to=IMAP_USER, mail_from="bob@example.net",
                 mailbox="INBOX", timeout=10.0):
    """Delivers each message (bytes or str, CRLF line ends) over SMTP
    to one account and waits until its INBOX holds them all."""
    before = len(p.message_uids(to, mailbox))
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"],
                      timeout=30 * TIME_SCALE) as s:
        for msg in messages:
            if isinstance(msg, str):
                msg = msg.encode("utf-8")
            s.sendmail(mail_from, [to], msg)
    p.wait_messages(to, before + len(messages), mailbox, timeout=timeout)


@pytest.fixture(scope="module")
def imap(module_factory):
    """A daemon shared by a module's tests, with smtp, submission, imap
    and imaps listeners and the account IMAP_USER."""
    p = module_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    return p


def imap_parse(s, i=0):
    """Parses one IMAP value of s (a str from IMAPClient) at i: a list
    for a parenthesised list, None for NIL, bytes for a quoted string or
    literal, str for an atom (with any [section]<partial> kept in it).
    Returns (value, index after it)."""
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    if s[i] == "(":
        out = []
        i += 1
        while True:
            while s[i] == " ":
                i += 1
            if s[i] == ")":
                return out, i + 1
            v, i = imap_parse(s, i)
            out.append(v)
    if s[i] == '"':
        j = i + 1
        b = []
        while s[j] != '"':
            if s[j] == "\\":
                j += 1
            b.append(s[j])
            j += 1
        return "".join(b).encode("latin-1"), j + 1
    m = re.compile(r"~?\{(\d+)\+?\}\r\n").match(s, i)
    if m:
        size = int(m.group(1))
        return s[m.end():m.end() + size].encode("latin-1"), m.end() + size
    j = i
    depth = 0
    while j < n:
        ch = s[j]
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0 and ch in " ()":
            break
        j += 1
    atom = s[i:j]
    return (None if atom.upper() == "NIL" else atom), j


def imap_fetch_items(line):
    """(sequence number, {ITEM NAME upper-cased: value}) of one
    untagged FETCH line."""
    m = re.match(r"\* (\d+) FETCH ", line)
    assert m, line
    v, _ = imap_parse(line, m.end())
    items = {}
    for k in range(0, len(v), 2):
        items[v[k].upper()] = v[k + 1]
    return int(m.group(1)), items


def imap_fetch(c, what):
    """Sends FETCH (or UID FETCH, when what starts so) and returns
    [(seq, items)] of its FETCH responses, asserting a tagged OK."""
    out = c.ok(what if what.upper().startswith("UID ") else "FETCH " + what)
    return [imap_fetch_items(ln) for ln in out
            if re.match(r"\* \d+ FETCH ", ln)]


def fts_ids(p, timeout=5.0, count=None):
    """The message ids in the full-text index file, read as it runs;
    with count, polled until there are that many (the indexer runs a
    moment behind)."""
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(
            p.statedir, "postern-fts.db"), uri=True)
        conn.execute("PRAGMA busy_timeout = 5000")
        ids = sorted(r[0] for r in conn.execute(
            "SELECT rowid FROM messages_fts"))
        conn.close()
        if count is None or len(ids) == count or time.time() > deadline:
            return ids
        time.sleep(0.05)
