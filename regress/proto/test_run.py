"""`make run`: mk/run.sh makes a demo state, starts posternd in the
foreground, creates demo@example.test with a printed password, and
stops cleanly on SIGTERM or Ctrl-C.  The state goes to a temp directory
through POSTERN_RUN_DIR so the tree's own ./run is left alone.
"""
import os
import re
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, POSTERNCTL, ROOT, ensure_users, free_port

# The fixed demo ports documented in the README and posternd(8).
FIXED_PORTS = {"smtp": 2525, "submission": 2587, "submissions": 2465,
               "imap": 2143, "imaps": 2993}
ENV_PORTS = {"smtp": "POSTERN_RUN_SMTP_PORT",
             "submission": "POSTERN_RUN_SUBMISSION_PORT",
             "submissions": "POSTERN_RUN_SUBMISSIONS_PORT",
             "imap": "POSTERN_RUN_IMAP_PORT",
             "imaps": "POSTERN_RUN_IMAPS_PORT"}
START_TIMEOUT = float(os.environ.get("POSTERN_START_TIMEOUT", "20")) + 40


def port_free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


def writers_of(path):
    """Pids of the processes whose stdout is path: posternd and roles."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/fd/1" % entry) == path:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Demo:
    """One `sh mk/run.sh` in the background, with its output in a file."""

    runs = 0

    def __init__(self, rundir, ports):
        self.rundir = rundir
        self.ports = ports
        Demo.runs += 1
        self.outpath = os.path.join(rundir, "run%d.out" % Demo.runs)
        self.out = open(self.outpath, "wb")
        env = dict(os.environ, POSTERN_RUN_DIR=rundir, POSTERN_BUILD=BUILD)
        for kind, port in ports.items():
            env[ENV_PORTS[kind]] = str(port)
        self.proc = subprocess.Popen(["sh", "mk/run.sh"], cwd=ROOT,
                                     stdout=self.out, stderr=self.out,
                                     stdin=subprocess.DEVNULL, env=env,
                                     start_new_session=True)
        self.daemon_pid = None

    def text(self):
        with open(self.outpath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self):
        """Waits for the banner; returns the password it printed."""
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            m = re.search(r"^  password +(\S+)$", self.text(), re.M)
            if m:
                pm = re.search(r"posternd pid (\d+)", self.text())
                if pm:
                    self.daemon_pid = int(pm.group(1))
                return m.group(1)
            if self.proc.poll() is not None:
                raise AssertionError("mk/run.sh exited (%d) before it was "
                                     "ready:\n%s" % (self.proc.returncode,
                                                     self.text()))
            time.sleep(0.1)
        raise AssertionError("mk/run.sh not ready in %ds:\n%s"
                             % (START_TIMEOUT, self.text()))

    def ctl(self, *args):
        return subprocess.run([POSTERNCTL, "-s",
                               os.path.join(self.rundir, "postern.sock")]
                              + list(args), capture_output=True, text=True,
                              timeout=30)

    def stop(self, sig, group=False):
        if group:
            os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            return None

    def cleanup(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        # posternd runs in its own session: find it and its roles by
        # where their output goes.
        for pid in writers_of(self.outpath):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.out.close()


@pytest.fixture
def rundir():
    ensure_users()
    d = tempfile.mkdtemp(prefix="postern-run-")
    os.chmod(d, 0o755)
    return d


@pytest.fixture
def demo_factory(rundir):
    started = []

    def make(ports):
        d = Demo(rundir, ports)
        started.append(d)
        return d

    yield make
    for d in started:
        d.cleanup()


def pick_ports():
    """The fixed ports when they are free, else any free ones."""
    if all(port_free(p) for p in FIXED_PORTS.values()):
        return dict(FIXED_PORTS)
    return {kind: free_port() for kind in FIXED_PORTS}


def smtp_banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(10)
        data = b""
        while b"\n" not in data:
            chunk = s.recv(512)
            if not chunk:
                break
            data += chunk
    return data.decode("ascii", "replace")


def test_demo_starts_serves_and_stops_on_sigterm(demo_factory, rundir):
    ports = pick_ports()
    demo = demo_factory(ports)
    password = demo.wait_ready()

    secret = os.path.join(rundir, "demo.secret")
    with open(secret) as f:
        assert f.read().strip() == password
    assert len(password) == 16
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert "created account demo@example.test" in demo.text()
    text = demo.text()
    for kind, port in ports.items():
        assert re.search(r"^  %s +127\.0\.0\.1 port %d" % (kind, port),
                         text, re.M), text

    r = demo.ctl("show", "status")
    assert r.returncode == 0, r.stderr
    for role in ("parent", "control", "smtpd", "storaged"):
        assert re.search(r"^%s\s+\d+\s+running" % role, r.stdout, re.M), \
            r.stdout

    daemon = demo.daemon_pid
    assert daemon is not None and alive(daemon)
    rc = demo.stop(signal.SIGTERM)
    assert rc == 0, demo.text()
    assert "stopping posternd" in demo.text()
    assert "stopped on error" not in demo.text(), demo.text()
    assert not alive(daemon)
    assert not os.path.exists(os.path.join(rundir, "postern.sock"))


def test_demo_smtp_listener_greets(demo_factory):
    ports = pick_ports()
    demo = demo_factory(ports)
    demo.wait_ready()
    # 2525 when it was free, else the free port the demo got instead.
    banner = smtp_banner(ports["smtp"])
    assert banner.startswith("220 "), banner
    assert "mail.example.test" in banner, banner
    assert demo.stop(signal.SIGTERM) == 0, demo.text()


def test_demo_rerun_reuses_state_and_ctrl_c_stops(demo_factory, rundir):
    ports = pick_ports()
    first = demo_factory(ports)
    password = first.wait_ready()
    assert first.stop(signal.SIGTERM) == 0, first.text()
    with open(os.path.join(rundir, "postern.conf")) as f:
        conf = f.read()
    with open(os.path.join(rundir, "server.crt"), "rb") as f:
        crt = f.read()

    # Ctrl-C in a terminal signals the whole foreground process group.
    second = demo_factory(ports)
    assert second.wait_ready() == password
    assert "created account" not in second.text()
    with open(os.path.join(rundir, "postern.conf")) as f:
        assert f.read() == conf
    with open(os.path.join(rundir, "server.crt"), "rb") as f:
        assert f.read() == crt
    r = second.ctl("show", "status")
    assert r.returncode == 0, r.stderr
    daemon = second.daemon_pid
    assert second.stop(signal.SIGINT, group=True) == 0, second.text()
    assert not alive(daemon)

    # A lost secret: the account stays, with a new password.
    os.unlink(os.path.join(rundir, "demo.secret"))
    third = demo_factory(ports)
    fresh = third.wait_ready()
    assert fresh != password and len(fresh) == 16
    assert "gave demo@example.test a new password" in third.text()
    with open(os.path.join(rundir, "demo.secret")) as f:
        assert f.read().strip() == fresh
    assert third.stop(signal.SIGTERM) == 0, third.text()


def test_demo_refuses_a_broken_config(demo_factory, rundir):
    with open(os.path.join(rundir, "postern.conf"), "w") as f:
        f.write('hostname "mail.example.test"\nlisten on 127.0.0.1 '
                'port 99999 smtp\n')
    demo = demo_factory({})
    rc = demo.proc.wait(30)
    assert rc != 0
    text = demo.text()
    assert re.search(r"postern\.conf:2: ", text), text
    assert "is not valid" in text
    assert not os.path.exists(os.path.join(rundir, "postern.sock"))
