"""posternctl and the control role: every verb against the real daemon,
bad input from the command line and from raw clients, non-root callers,
and where a password must never show up."""
import os
import re
import socket
import sqlite3
import struct
import subprocess
import threading
import time

import pytest

from conftest import POSTERNCTL, ROLES, ROOT, run_together, send_raw

PASSWORD = "Quartz-Zebra-7351-unlikely"
NEW_PASSWORD = "Marble-Heron-2468-unlikely"


def imsg_types():
    """name -> number, in the order of the X-macro list."""
    with open(os.path.join(ROOT, "lib", "imsg_types.h")) as f:
        text = f.read()
    names = re.findall(r"^\s*X\((IMSG_\w+)\)", text, re.M)
    return {name: i for i, name in enumerate(names)}


T = imsg_types()
HDR = struct.Struct("=IHHII")


def one_line(r):
    """The command failed with exactly one line on stderr."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert r.stdout == ""
    return lines[0]


def still_up(p):
    r = p.ctl("show", "status")
    assert r.returncode == 0, r.stderr
    assert p.proc.poll() is None


def lines(r):
    assert r.returncode == 0, (r.returncode, r.stderr)
    return r.stdout.splitlines()


# --- the verb table and the man page --------------------------------


def man_verbs():
    """The .It Cm lines of posternctl(8), as posternctl help prints them."""
    verbs = []
    with open(os.path.join(ROOT, "man", "posternctl.8")) as f:
        for line in f:
            if not line.startswith(".It Cm "):
                continue
            words, toks = [], line.split()[2:]
            i = 0
            while i < len(toks):
                if toks[i] == "Ar":
                    pass
                elif toks[i] == "Op":
                    words.append("[%s]" % toks[i + 2])
                    i += 2
                else:
                    words.append(toks[i])
                i += 1
            verbs.append(" ".join(words))
    return verbs


def test_help_lists_the_man_page_verbs():
    r = subprocess.run([POSTERNCTL, "help"], capture_output=True, text=True)
    assert r.returncode == 0
    helped = [l.strip() for l in r.stdout.splitlines()
              if l.startswith("\t")]
    assert helped == man_verbs()
    assert "account passwd address" in helped
    assert "alias del alias [target]" in helped


def test_man_page_is_lint_clean():
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning",
                        os.path.join(ROOT, "man", "posternctl.8")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# --- every verb ---------------------------------------------------------


def test_show_status_lists_every_process(postern):
    out = lines(postern.ctl("show", "status"))
    assert out[0].split() == ["PROCESS", "PID", "STATE", "UPTIME"]
    rows = {l.split()[0]: l.split() for l in out[1:]}
    assert sorted(rows) == sorted(["parent"] + ROLES)
    assert len(out) == 9
    pids = postern.role_pids()
    assert int(rows["parent"][1]) == postern.proc.pid
    for role in ROLES:
        assert int(rows[role][1]) == pids[role], role
        assert rows[role][2] == "running"


def test_domain_round_trip(postern):
    p = postern
    assert lines(p.ctl("domain", "list")) == ["example.test"]
    assert lines(p.ctl("domain", "add", "second.test")) == []
    assert sorted(lines(p.ctl("domain", "list"))) == ["example.test",
                                                     "second.test"]
    assert "exists" in one_line(p.ctl("domain", "add", "second.test"))
    assert lines(p.ctl("domain", "del", "second.test")) == []
    assert lines(p.ctl("domain", "list")) == ["example.test"]
    line = one_line(p.ctl("domain", "del", "second.test"))
    assert line.startswith("posternctl: ") and "second.test" in line


def test_account_round_trip(postern):
    p = postern
    r = p.ctl("account", "add", "alice@example.test", input=PASSWORD + "\n")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    p.add_account("bob@example.test", NEW_PASSWORD)
    assert lines(p.ctl("account", "list")) == ["alice@example.test",
                                               "bob@example.test"]
    line = one_line(p.ctl("account", "add", "alice@example.test",
                          input="other\n"))
    assert "alice@example.test" in line and "exists" in line
    assert lines(p.ctl("account", "del", "alice@example.test")) == []
    assert lines(p.ctl("account", "list")) == ["bob@example.test"]
    line = one_line(p.ctl("account", "del", "alice@example.test"))
    assert line.startswith("posternctl: ") and "alice@example.test" in line
    line = one_line(p.ctl("account", "add", "carol@elsewhere.test",
                          input="pw\n"))
    assert "elsewhere.test" in line
    still_up(p)


def argon2_hashes(statedir):
    """Every argon2 hash stored anywhere in the state dir's databases."""
    found = set()
    for name in os.listdir(statedir):
        if not name.endswith(".db"):
            continue
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(statedir,
                                                                name),
                             uri=True)
        try:
            for (table,) in db.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"):
                for row in db.execute('SELECT * FROM "%s"' % table):
                    for v in row:
                        if isinstance(v, str) and v.startswith("$argon2"):
                            found.add(v)
        finally:
            db.close()
    return found


def test_passwd_changes_the_hash(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    before = argon2_hashes(p.statedir)
    assert len(before) == 1
    r = p.ctl("account", "passwd", "alice@example.test",
              input=NEW_PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    after = argon2_hashes(p.statedir)
    assert len(after) == 1 and after != before
    line = one_line(p.ctl("account", "passwd", "nobody@example.test",
                          input="pw\n"))
    assert "nobody@example.test" in line
    assert argon2_hashes(p.statedir) == after


def test_alias_round_trip(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    p.add_account("bob@example.test", PASSWORD)
    assert lines(p.ctl("alias", "list")) == []
    for target in ("alice@example.test", "bob@example.test"):
        assert lines(p.ctl("alias", "add", "team@example.test",
                           target)) == []
    listed = lines(p.ctl("alias", "list"))
    assert len(listed) == 2
    assert all("team@example.test" in l for l in listed)
    assert any("alice@example.test" in l for l in listed)
    assert any("bob@example.test" in l for l in listed)
    assert lines(p.ctl("alias", "del", "team@example.test",
                       "alice@example.test")) == []
    listed = lines(p.ctl("alias", "list"))
    assert len(listed) == 1 and "bob@example.test" in listed[0]
    assert lines(p.ctl("alias", "add", "team@example.test",
                       "alice@example.test")) == []
    assert lines(p.ctl("alias", "del", "team@example.test")) == []
    assert lines(p.ctl("alias", "list")) == []
    line = one_line(p.ctl("alias", "add", "team@remote.test",
                          "alice@example.test"))
    assert "remote.test" in line
    still_up(p)


def test_log_brief_and_verbose(postern):
    p = postern
    assert lines(p.ctl("log", "brief")) == []
    p.wait_log("storaged: log brief")
    assert "control: log brief" in p.logtext()
    assert lines(p.ctl("log", "verbose")) == []
    p.wait_log("storaged: log verbose")
    assert "control: log verbose" in p.logtext()


def test_reload(postern):
    p = postern
    assert lines(p.ctl("reload")) == []
    p.wait_log("configuration reloaded")
    good = open(p.conf).read()
    with open(p.conf, "a") as f:
        f.write("frobnicate yes\n")
    nlines = len(good.splitlines()) + 1
    line = one_line(p.ctl("reload"))
    assert re.match(r"posternctl: %s:%d: " % (re.escape(p.conf), nlines),
                    line), line
    still_up(p)
    p.write_config()
    assert lines(p.ctl("reload")) == []


def test_stop(postern):
    p = postern
    r = p.ctl("stop")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r
    assert p.wait_exit(10) == 0
    assert not os.path.exists(p.sock)
    line = one_line(p.ctl("show", "status"))
    assert line == "posternctl: %s: No such file or directory" % p.sock


# --- bad input from the command line --------------------------------


@pytest.mark.parametrize("args,expect", [
    ((), "usage: posternctl"),
    (("frobnicate",), "usage: posternctl"),
    (("show",), "usage: posternctl"),
    (("show", "status", "now"), "usage: posternctl [-s socket] show status"),
    (("domain", "add"), "usage: posternctl [-s socket] domain add name"),
    (("alias", "add", "a@example.test"),
     "usage: posternctl [-s socket] alias add alias target"),
    (("alias", "del", "a@example.test", "b@example.test", "c@x.test"),
     "usage: posternctl [-s socket] alias del alias [target]"),
    (("account", "add", "alice"),
     'posternctl: invalid address "alice": address must be local@domain'),
    (("account", "del", "alice@-bad.test"), "posternctl: invalid address"),
    (("account", "add", "al..ice@example.test"),
     "posternctl: invalid address"),
    (("account", "add", "al ice@example.test"),
     "posternctl: invalid address"),
    (("alias", "add", "a@example.test", "b@exa_mple.test"),
     "posternctl: invalid address"),
    (("domain", "add", "-bad.test"), "posternctl: invalid domain"),
    (("domain", "add", "a" * 64 + ".test"), "longer than 63"),
    (("domain", "add", "ctl\x1b[1m.test"), "control character"),
    (("account", "add", "x" * 65 + "@example.test"), "longer than 64"),
    (("show", "queue", "all"), "usage: posternctl [-s socket] show queue"),
    (("queue", "remove"), "usage: posternctl [-s socket] queue remove id"),
    (("queue", "remove", "xyz"),
     'posternctl: invalid queue id "xyz": queue id must be 16 hex digits'),
    (("queue", "remove", "0123456789abcde"), "16 hex digits"),
    (("queue", "remove", "0123456789abcdef0"), "16 hex digits"),
    (("queue", "remove", "0123456789abcdeg"), "16 hex digits"),
    (("queue", "remove", "0x23456789abcdef"), "16 hex digits"),
    (("queue", "schedule"),
     "usage: posternctl [-s socket] queue schedule id"),
    (("queue", "schedule", "everything"), "posternctl: invalid queue id"),
    (("queue", "schedule", "all", "now"),
     "usage: posternctl [-s socket] queue schedule"),
    (("mailbox", "list"), "usage: posternctl [-s socket] mailbox list"),
    (("mailbox", "list", "alice"), "posternctl: invalid address"),
    (("message", "list", "alice@example.test"),
     "usage: posternctl [-s socket] message list account mailbox"),
    (("message", "list", "alice@example.test", ""),
     "posternctl: invalid mailbox"),
    (("message", "list", "alice@example.test", "IN\x1bBOX"),
     "control character"),
    (("message", "list", "alice@example.test", "m" * 256),
     "longer than 255"),
    (("message", "show", "alice@example.test", "INBOX"),
     "usage: posternctl [-s socket] message show account mailbox uid"),
    (("message", "show", "alice@example.test", "INBOX", "0"),
     'posternctl: invalid uid "0": uid must be a number from 1 to '
     '4294967295'),
    (("message", "show", "alice@example.test", "INBOX", "4294967296"),
     "posternctl: invalid uid"),
    (("message", "show", "alice@example.test", "INBOX", "-1"),
     "posternctl: invalid uid"),
    (("message", "show", "alice@example.test", "INBOX", "12x"),
     "posternctl: invalid uid"),
    (("message", "show", "alice@example.test", "INBOX", " 7"),
     "posternctl: invalid uid"),
])
def test_bad_arguments_do_not_connect(postern, args, expect):
    p = postern
    before = p.logtext().count(": connected")
    line = one_line(p.ctl(*args))
    assert line.startswith(("usage: posternctl", "posternctl: ")), line
    assert expect in line, line
    assert "\x1b" not in line
    assert p.logtext().count(": connected") == before
    still_up(p)


@pytest.mark.parametrize("password,expect", [
    ("\n", "empty password"),
    ("", "empty password"),
    ("x" * 1025 + "\n", "longer than 1024 bytes"),
    ("a\0b\n", "NUL byte"),
])
def test_bad_password(postern, password, expect):
    line = one_line(postern.ctl("account", "add", "alice@example.test",
                                input=password))
    assert expect in line, line
    assert lines(postern.ctl("account", "list")) == []


def test_password_is_the_first_line_only(postern):
    p = postern
    p.ctl("account", "add", "alice@example.test",
          input=PASSWORD + "\r\nsecond line\n", check=True)
    before = argon2_hashes(p.statedir)
    p.ctl("account", "passwd", "alice@example.test", input=PASSWORD,
          check=True)
    assert len(argon2_hashes(p.statedir)) == 1
    assert argon2_hashes(p.statedir) != before


# --- who may ask ------------------------------------------------------


def test_non_root_is_refused(postern):
    p = postern
    line = one_line(p.ctl("show", "status", user="nobody"))
    assert line == "posternctl: %s: Permission denied" % p.sock
    # The second wall: even with the socket open to all, control checks.
    os.chmod(p.sock, 0o666)
    try:
        line = one_line(p.ctl("account", "add", "eve@example.test",
                              input="pw\n", user="nobody"))
        assert line == "posternctl: permission denied"
        line = one_line(p.ctl("stop", user="nobody"))
        assert line == "posternctl: permission denied"
    finally:
        os.chmod(p.sock, 0o600)
    assert "uid 65534 refused" in p.logtext()
    assert lines(p.ctl("account", "list")) == []
    still_up(p)


def test_password_never_in_argv_log_or_state(postern):
    p = postern
    cmd = [POSTERNCTL, "-s", p.sock, "account", "add", "alice@example.test"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        if PASSWORD.encode() in f.read():
                            seen.append(pid)
                except OSError:
                    pass
            time.sleep(0.01)

    t = threading.Thread(target=watch)
    t.start()
    try:
        time.sleep(0.3)
        out, err = proc.communicate(PASSWORD.encode() + b"\n", timeout=30)
        time.sleep(0.2)
    finally:
        stop.set()
        t.join()
    assert proc.returncode == 0, err
    assert seen == []
    assert lines(p.ctl("account", "list")) == ["alice@example.test"]
    p.ctl("account", "passwd", "alice@example.test",
          input=NEW_PASSWORD + "\n", check=True)

    def assert_nowhere():
        for secret in (PASSWORD, NEW_PASSWORD):
            assert secret not in p.logtext()
            for root, _, files in os.walk(p.statedir):
                for name in files:
                    with open(os.path.join(root, name), "rb") as f:
                        assert secret.encode() not in f.read(), name
    assert_nowhere()
    p.ctl("stop", check=True)
    assert p.wait_exit(10) == 0
    assert_nowhere()


# --- the queue's verbs ------------------------------------------------


def test_empty_queue(postern):
    p = postern
    assert lines(p.ctl("show", "queue")) == []
    assert lines(p.ctl("queue", "schedule", "all")) == []


@pytest.mark.parametrize("verb", ["remove", "schedule"])
def test_unknown_queue_id(postern, verb):
    p = postern
    line = one_line(p.ctl("queue", verb, "0123456789ABCDEF"))
    assert line == \
        "posternctl: no such message in the queue: 0123456789abcdef"
    still_up(p)


def control_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.role_pids()["control"]))


def test_message_show_passes_the_blob_and_leaks_nothing(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    data = (b"Subject: fd test\r\nMessage-ID: <fd-test@example.net>\r\n"
            b"\r\nbody\r\n")
    assert send_raw(p.ports["smtp"], "bob@example.net",
                    ["alice@example.test"], data + b".\r\n")[0] == 250
    raw = p.find_messages("alice@example.test", b"<fd-test@example.net>")
    assert len(raw) == 1
    uid = p.message_uids("alice@example.test", "INBOX")[0]
    r = subprocess.run([POSTERNCTL, "-s", p.sock, "message", "show",
                        "alice@example.test", "INBOX", str(uid)],
                       capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(data), r.stdout
    assert r.stdout.startswith(b"Return-Path: <bob@example.net>\r\n")
    one = one_line(p.ctl("message", "show", "alice@example.test", "INBOX",
                         str(uid + 1)))
    assert one.startswith("posternctl: "), one
    # Clients that leave before their descriptor is relayed, or never
    # read it: control keeps none of them open.
    before = control_fds(p)
    payload = s("alice@example.test") + s("INBOX") + struct.pack("=I", uid)
    for _ in range(20):
        c = Raw(p.sock)
        assert c.hello() == ("IMSG_CTL_OK", b"")
        c.send("IMSG_CTL_MESSAGE_SHOW", payload)
        c.close()
    for _ in range(5):
        c = Raw(p.sock)
        assert c.hello() == ("IMSG_CTL_OK", b"")
        c.send("IMSG_CTL_MESSAGE_SHOW", payload)
        assert c.recv()[0] == "IMSG_CTL_OK"
        c.close()
    still_up(p)
    deadline = time.time() + 5
    while control_fds(p) > before and time.time() < deadline:
        time.sleep(0.05)
    assert control_fds(p) <= before


# --- raw clients: the control role's own checks ---------------------


class Raw:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""

    def send(self, type_, payload=b"", length=None, peerid=0):
        n = HDR.size + len(payload) if length is None else length
        self.s.sendall(HDR.pack(T[type_], n, 0, peerid, os.getpid())
                       + payload)

    def hello(self, version=1):
        self.send("IMSG_CTL_HELLO", struct.pack("=I", version))
        return self.recv()

    def recv(self):
        """(type name, payload), or None when the daemon hangs up."""
        while len(self.buf) < HDR.size or \
                len(self.buf) < HDR.unpack(self.buf[:HDR.size])[1]:
            try:
                chunk = self.s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        type_, n = HDR.unpack(self.buf[:HDR.size])[:2]
        payload, self.buf = self.buf[HDR.size:n], self.buf[n:]
        names = {v: k for k, v in T.items()}
        return names[type_], payload

    def close(self):
        self.s.close()


def s(text):
    b = text.encode()
    return struct.pack("=I", len(b)) + b + b"\0"


def fail_text(reply):
    assert reply is not None and reply[0] == "IMSG_CTL_FAIL", reply
    return reply[1][4:-1].decode()


def test_version_mismatch(postern):
    c = Raw(postern.sock)
    assert fail_text(c.hello(99)) == \
        "protocol version mismatch (posternctl 99, daemon 1)"
    assert c.recv() is None
    still_up(postern)


@pytest.mark.parametrize("dialogue", [
    "request before hello",
    "oversize header",
    "short header length",
    "malformed hello",
    "trailing bytes",
    "missing password",
    "not a request",
    "two hellos",
    "show queue with an argument",
    "message show without its uid",
    "queue remove without its id",
])
def test_broken_client_is_dropped_alone(postern, dialogue):
    p = postern
    bystander = Raw(p.sock)
    assert bystander.hello() == ("IMSG_CTL_OK", b"")
    c = Raw(p.sock)
    if dialogue == "request before hello":
        c.send("IMSG_CTL_DOMAIN_LIST")
    elif dialogue == "oversize header":
        c.hello()
        c.send("IMSG_CTL_DOMAIN_LIST", length=60000)
    elif dialogue == "short header length":
        c.hello()
        c.send("IMSG_CTL_DOMAIN_LIST", length=3)
    elif dialogue == "malformed hello":
        c.send("IMSG_CTL_HELLO", b"\1\0")
    elif dialogue == "trailing bytes":
        c.hello()
        c.send("IMSG_CTL_DOMAIN_ADD", s("x.test") + b"junk")
    elif dialogue == "missing password":
        c.hello()
        c.send("IMSG_CTL_ACCOUNT_ADD", s("alice@example.test"))
    elif dialogue == "not a request":
        c.hello()
        c.send("IMSG_CTL_OK")
    elif dialogue == "two hellos":
        c.hello()
        c.send("IMSG_CTL_HELLO", struct.pack("=I", 1))
    elif dialogue == "show queue with an argument":
        c.hello()
        c.send("IMSG_CTL_SHOW_QUEUE", s("all"))
    elif dialogue == "message show without its uid":
        c.hello()
        c.send("IMSG_CTL_MESSAGE_SHOW", s("alice@example.test") + s("INBOX"))
    elif dialogue == "queue remove without its id":
        c.hello()
        c.send("IMSG_CTL_QUEUE_REMOVE")
    assert c.recv() is None
    c.close()
    # The other client, and the daemon, carry on.
    bystander.send("IMSG_CTL_DOMAIN_LIST")
    assert bystander.recv() == ("IMSG_CTL_ITEM", s("example.test"))
    assert bystander.recv() == ("IMSG_CTL_END", b"")
    assert "dropped" in p.logtext()
    assert lines(p.ctl("domain", "list")) == ["example.test"]


@pytest.mark.parametrize("type_,payload,expect", [
    ("IMSG_CTL_DOMAIN_ADD", s("bad_domain.test"), "invalid domain: "),
    ("IMSG_CTL_DOMAIN_ADD", s(""), "invalid domain: empty domain"),
    ("IMSG_CTL_ACCOUNT_DEL", s("no-at-sign"), "invalid address: "),
    ("IMSG_CTL_ACCOUNT_DEL", s("a\x01b@example.test"),
     "invalid address: control character"),
    ("IMSG_CTL_ACCOUNT_ADD", s("alice@example.test") + s(""),
     "invalid password: empty password"),
    ("IMSG_CTL_ALIAS_ADD", s("a@example.test") + s(""),
     "invalid address: "),
    ("IMSG_CTL_ACCOUNT_DEL", s("x" * 400 + "@example.test"),
     "invalid address: address longer than 320 bytes"),
    ("IMSG_CTL_QUEUE_REMOVE", s("xyz"),
     "invalid queue id: queue id must be 16 hex digits"),
    ("IMSG_CTL_QUEUE_REMOVE", s("all"), "invalid queue id: "),
    ("IMSG_CTL_QUEUE_SCHEDULE", s("0123456789abcdef ="),
     "invalid queue id: "),
    ("IMSG_CTL_QUEUE_SCHEDULE", s("0123456789abcd\x01f"),
     "invalid queue id: control character"),
    ("IMSG_CTL_MAILBOX_LIST", s("alice"), "invalid address: "),
    ("IMSG_CTL_MESSAGE_LIST", s("alice@example.test") + s(""),
     "invalid mailbox: empty mailbox"),
    ("IMSG_CTL_MESSAGE_LIST", s("alice@example.test") + s("IN\nBOX"),
     "invalid mailbox: control character"),
    ("IMSG_CTL_MESSAGE_SHOW",
     s("alice@example.test") + s("INBOX") + struct.pack("=I", 0),
     "invalid uid: "),
    ("IMSG_CTL_MESSAGE_SHOW",
     s("alice") + s("INBOX") + struct.pack("=I", 1),
     "invalid address: "),
])
def test_control_checks_syntax_itself(postern, type_, payload, expect):
    c = Raw(postern.sock)
    assert c.hello() == ("IMSG_CTL_OK", b"")
    c.send(type_, payload)
    assert fail_text(c.recv()).startswith(expect)
    # A refused request leaves the client usable.
    c.send("IMSG_CTL_ACCOUNT_LIST")
    assert c.recv() == ("IMSG_CTL_END", b"")
    c.close()


def test_client_gone_before_its_reply(postern):
    p = postern
    c = Raw(p.sock)
    assert c.hello() == ("IMSG_CTL_OK", b"")
    c.send("IMSG_CTL_ACCOUNT_ADD", s("alice@example.test") + s(PASSWORD))
    c.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        if lines(p.ctl("account", "list")) == ["alice@example.test"]:
            break
        time.sleep(0.1)
    assert lines(p.ctl("account", "list")) == ["alice@example.test"]
    still_up(p)


def test_many_clients_at_once(postern):
    p = postern
    results = [None] * 16

    def run(i):
        results[i] = p.ctl("show", "status")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    run_together(threads)
    for r in results:
        assert r.returncode == 0 and len(r.stdout.splitlines()) == 9, r
    idle = [Raw(p.sock) for _ in range(8)]
    for c in idle:
        assert c.hello() == ("IMSG_CTL_OK", b"")
    still_up(p)
    for c in idle:
        c.close()
