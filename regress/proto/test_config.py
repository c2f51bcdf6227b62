"""postern.conf(5): `posternd -n -f FILE` accepts good configs with
"configuration OK" and refuses bad ones with "file:line: message" and
exit status 1, whatever else is on the line."""
import os
import signal
import socket
import subprocess

import pytest

import conftest

POSTERND = conftest.POSTERND


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return conftest.make_cert(str(d))


def check(path):
    r = subprocess.run([POSTERND, "-n", "-f", str(path)],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def write(tmp_path, text, name="postern.conf"):
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def full_config(crt, key):
    return """\
# Every directive, as a deployment would write it.
tlsdir = "%s"
hostname "mail.example.org"
state directory "/var/postern"
empty directory "/var/empty"
control socket "/var/run/postern.sock"
user "_postern"
storage user "_posterns"
certificate "%s"
key "%s"
domain "example.org"
domain "Example.NET"		# case does not matter
listen on 127.0.0.1 port 2525 smtp
listen on ::1 port 2525 smtp allow plaintext
listen on * port 587 submission
listen on localhost port 465 submissions certificate "%s" key "%s"
listen port 2526 smtp
limit smtp-line-length 8K
limit message-size 50M
limit recipients 200
limit sessions 500
limit sessions-per-client 20
limit idle-timeout 10m
limit data-timeout 900s
limit bad-commands 10
limit auth-failures 5
limit auth-lockout 1h
limit imap-line-length 64K
limit imap-literal-size 1G
""" % (os.path.dirname(crt), crt, key, crt, key)


def test_full_config_ok(tmp_path, tls):
    rc, out = check(write(tmp_path, full_config(*tls)))
    assert rc == 0, out
    assert "configuration OK" in out


def test_empty_config_ok(tmp_path):
    rc, out = check(write(tmp_path, "# nothing but defaults\n\n"))
    assert (rc, out.strip()) == (0, "configuration OK")


def test_macros_and_no_final_newline(tmp_path, tls):
    crt, key = tls
    text = ('crt = "%s"\nkey_file = "%s"\nsmtp_at = "on 127.0.0.1 port 2525"\n'
            'certificate $crt\nkey $key_file# no blank before a comment\n'
            'listen $smtp_at smtp\n'
            'lo = 127.0.0.1\nlisten on $lo port 2526 smtp# comment\n'
            'listen port 2587 submission' % (crt, key))
    rc, out = check(write(tmp_path, text))
    assert (rc, out.strip()) == (0, "configuration OK")


def test_missing_file(tmp_path):
    path = tmp_path / "nonexistent.conf"
    rc, out = check(path)
    assert rc == 1
    assert "%s: No such file or directory" % path in out
    assert "configuration OK" not in out


# (config lines, line number of the error, message).  The good lines
# around each bad one make sure the line number is the bad line's.
HEAD = 'hostname "mail.example.org"\n# a comment\n'
BAD = [
    ("unknown_keyword", HEAD + "frobnicate yes\n", 3,
     "unknown keyword frobnicate"),
    ("syntax_error", HEAD + "listen on 127.0.0.1 port 2525 smtp bogus\n", 3,
     'syntax error at "bogus"'),
    ("missing_argument", HEAD + "domain\n", 3,
     "syntax error at end of line"),
    ("port_zero", HEAD + "listen port 0 smtp\n", 3,
     "port 0 is too small (use 1 to 65535)"),
    ("port_too_large", HEAD + "listen port 70000 smtp\n", 3,
     "port 70000 is too large (use 1 to 65535)"),
    ("port_not_number", HEAD + "listen port abc smtp\n", 3,
     "port abc is invalid (use 1 to 65535)"),
    ("bad_address", HEAD + "listen on 300.1.1.1 port 2525 smtp\n", 3,
     "bad address 300.1.1.1"),
    ("bad_ipv6_address", HEAD + "listen on ::1::2 smtp\n", 3,
     "bad address ::1::2"),
    ("duplicate_listener",
     HEAD + "listen on 127.0.0.1 port 2525 smtp\n"
     "listen on 127.0.0.1 port 2525 smtp\n", 4,
     "duplicate listener 127.0.0.1 port 2525 "
     "(clashes with 127.0.0.1 port 2525 on line 3)"),
    ("wildcard_clash",
     HEAD + "listen on 127.0.0.1 port 2525 smtp\n"
     "listen on * port 2525 smtp\n", 4,
     "duplicate listener * port 2525 "
     "(clashes with 127.0.0.1 port 2525 on line 3)"),
    ("kind_unknown", HEAD + "listen port 2525 gopher\n", 3,
     "unknown listener kind gopher"),
    ("kind_not_built", HEAD + "listen port 8080 jmap\n", 3,
     "listener kind jmap is not available in this version"),
    ("missing_cert", HEAD + 'certificate "/nonexistent/postern.crt"\n', 3,
     "cannot open certificate /nonexistent/postern.crt: "
     "No such file or directory"),
    ("missing_key", HEAD + 'key "/nonexistent/postern.key"\n', 3,
     "cannot open key /nonexistent/postern.key: No such file or directory"),
    ("cert_is_directory", HEAD + 'certificate "/"\n', 3,
     "certificate / is not a regular file"),
    ("listener_missing_key",
     HEAD + 'listen port 2525 smtp key "/nonexistent.key"\n', 3,
     "cannot open key /nonexistent.key: No such file or directory"),
    ("submission_without_cert", HEAD + "listen port 2587 submission\n", 3,
     "submission listener needs a certificate and key"),
    ("submissions_without_cert", HEAD + "listen submissions\n", 3,
     "submissions listener needs a certificate and key"),
    ("limit_unknown", HEAD + "limit frobs 10\n", 3, "unknown limit frobs"),
    ("limit_too_small", HEAD + "limit message-size 100\n", 3,
     "limit message-size 100 out of range (1024 to 1073741824)"),
    ("limit_too_large", HEAD + "limit message-size 2G\n", 3,
     "limit message-size 2G out of range (1024 to 1073741824)"),
    ("limit_huge_number", HEAD + "limit recipients 99999999999999999999\n", 3,
     "limit recipients 99999999999999999999 out of range (1 to 100000)"),
    ("limit_bad_size_suffix", HEAD + "limit message-size 10X\n", 3,
     'limit message-size: bad size suffix "X" (use K, M or G)'),
    ("limit_bad_time_suffix", HEAD + "limit idle-timeout 5d\n", 3,
     'limit idle-timeout: bad time suffix "d" (use s, m or h)'),
    ("limit_count_with_suffix", HEAD + "limit recipients 1K\n", 3,
     'limit recipients takes a plain number, not "1K"'),
    ("limit_twice",
     HEAD + "limit recipients 10\nlimit recipients 20\n", 4,
     "limit recipients given twice (first on line 3)"),
    ("hostname_empty", 'hostname ""\n', 1, "hostname is empty"),
    ("hostname_too_long", 'hostname "%s"\n' % ".".join(["a" * 63] * 5), 1,
     "hostname too long (more than 255 bytes)"),
    ("hostname_invalid", 'hostname "mail_server"\n', 1,
     'invalid hostname "mail_server"'),
    ("hostname_twice", HEAD + 'hostname "other.example.org"\n', 3,
     "hostname given twice (first on line 1)"),
    ("statedir_relative", HEAD + 'state directory "var/postern"\n', 3,
     "state directory must be an absolute path"),
    ("emptydir_relative", HEAD + 'empty directory "empty"\n', 3,
     "empty directory must be an absolute path"),
    ("socket_relative", HEAD + 'control socket "postern.sock"\n', 3,
     "control socket must be an absolute path"),
    ("duplicate_domain",
     HEAD + 'domain "example.org"\ndomain "EXAMPLE.org"\n', 4,
     "duplicate domain example.org"),
    ("invalid_domain", HEAD + 'domain "exa mple.org"\n', 3,
     'invalid domain name "exa mple.org"'),
    ("domain_hyphen", HEAD + 'domain "-example.org"\n', 3,
     'invalid domain name "-example.org"'),
    ("unterminated_string", HEAD + 'domain "example.org\n', 3,
     "unterminated string"),
    ("line_too_long", HEAD + "# " + "x" * 3000 + "\n", 3,
     "line too long (more than 2048 bytes)"),
    ("same_users", HEAD + 'user "_postern"\nstorage user "_postern"\n', 4,
     "user and storage user must be different (both are _postern)"),
    ("user_invalid", HEAD + 'user "bad user"\n', 3,
     'invalid user name "bad user"'),
    ("undefined_macro", HEAD + "listen on $nowhere smtp\n", 3,
     "macro $nowhere is not defined"),
    ("control_character", HEAD + "listen\x01 smtp\n", 3,
     "unexpected character 0x01"),
]


@pytest.mark.parametrize("name,text,line,message", BAD,
                         ids=[b[0] for b in BAD])
def test_bad_config(tmp_path, name, text, line, message):
    path = write(tmp_path, text)
    rc, out = check(path)
    assert rc == 1, out
    assert "%s:%d: %s\n" % (path, line, message) in out, out
    assert "configuration OK" not in out


def test_listener_cert_needs_key(tmp_path, tls):
    crt, key = tls
    path = write(tmp_path, HEAD + 'listen port 2587 submission '
                 'certificate "%s"\n' % crt)
    rc, out = check(path)
    assert rc == 1
    assert "%s:3: listener has a certificate but no key\n" % path in out


def test_global_cert_without_key(tmp_path, tls):
    crt, key = tls
    path = write(tmp_path, HEAD + 'certificate "%s"\n' % crt)
    rc, out = check(path)
    assert rc == 1
    assert "%s:3: certificate without key\n" % path in out


def test_listener_own_cert_is_enough(tmp_path, tls):
    crt, key = tls
    rc, out = check(write(tmp_path, 'listen port 2465 submissions '
                          'certificate "%s" key "%s"\n' % (crt, key)))
    assert (rc, out.strip()) == (0, "configuration OK")


def test_every_error_is_reported(tmp_path):
    path = write(tmp_path, "bogus\nlisten port 0 smtp\n"
                 'hostname ""\nlimit recipients 0\n')
    rc, out = check(path)
    assert rc == 1
    expected = ["%s:1: unknown keyword bogus" % path,
                "%s:2: port 0 is too small (use 1 to 65535)" % path,
                "%s:3: hostname is empty" % path,
                "%s:4: limit recipients 0 out of range (1 to 100000)"
                % path]
    got = [l.split(": ", 1)[1] for l in out.splitlines() if ": " in l]
    assert got == expected


def test_binary_garbage_is_refused(tmp_path):
    path = write(tmp_path, b"\x00\xff\xfe listen \x80\n")
    rc, out = check(path)
    assert rc == 1
    assert "%s:1: unexpected character 0x00" % path in out


def test_shipped_example_is_valid(tmp_path, tls):
    """etc/postern.conf, with this host's test certificate, parses."""
    crt, key = tls
    with open(os.path.join(conftest.ROOT, "etc", "postern.conf")) as f:
        text = f.read()
    assert 'certificate "/etc/ssl/mail.example.org.crt"' in text
    text = text.replace("/etc/ssl/mail.example.org.crt", crt)
    text = text.replace("/etc/ssl/private/mail.example.org.key", key)
    rc, out = check(write(tmp_path, text))
    assert (rc, out.strip()) == (0, "configuration OK")


def accepts(port):
    """The daemon bound the port the config named (the SMTP dialogue
    itself is test_smtp*'s business)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        return True


def test_daemon_refuses_bad_config(tmp_path):
    """Without -n, a bad file stops start-up with the same error."""
    path = write(tmp_path, HEAD + "listen port 0 smtp\n")
    r = subprocess.run([POSTERND, "-d", "-f", str(path)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "%s:3: port 0 is too small (use 1 to 65535)" % path in r.stderr


def test_daemon_serves_configured_listener(postern_factory):
    """Macros and limits reach a running daemon; the listener answers."""
    port = conftest.free_port()
    p = postern_factory(listeners=[], config_extra=(
        'loop = "127.0.0.1"\n'
        "listen on $loop port %d smtp\n"
        "limit message-size 20M\nlimit idle-timeout 2m\n" % port))
    assert accepts(port)


def test_reload_with_bad_config_keeps_running(postern_factory):
    p = postern_factory()
    port = p.ports["smtp"]
    good = p.config_text()
    p.write_config(text=good + "limit recipients 0\n")
    bad_line = good.count("\n") + 1
    os.kill(p.proc.pid, signal.SIGHUP)
    p.wait_log("%s:%d: limit recipients 0 out of range (1 to 100000)"
               % (p.conf, bad_line))
    p.wait_log("keeping the running configuration")
    assert p.proc.poll() is None
    assert accepts(port)
