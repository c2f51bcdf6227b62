"""Shared harness for protocol tests: start the real posternd as root,
with full privilege separation, on free loopback ports and a temp state
directory, and talk to it with real clients.

Tests use the `postern` fixture (a started daemon with the default
listeners) or `postern_factory` to start one with their own config.
"""
import os
import pwd
import signal
import socket
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


def ensure_users():
    for name in (USER, STORAGE_USER):
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--home-dir", "/nonexistent",
                            "--shell", "/usr/sbin/nologin", name],
                           check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

    def logtext(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, needle, timeout=10.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.logtext():
                return
            if self.proc.poll() is not None and needle not in self.logtext():
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
