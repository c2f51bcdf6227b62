"""Privilege separation as a user (or an attacker) would find it: every
role its own process, chrooted, unprivileged and under seccomp; a role
that dies for any reason takes the whole daemon down, leaving nothing
behind; SIGTERM stops cleanly; SIGHUP reloads or keeps the running
configuration; and posternd refuses to start in an unsafe setup.
"""
import os
import pwd
import re
import signal
import subprocess
import time

import pytest

from conftest import POSTERND, ROLES, STORAGE_USER, USER

# How long a stop may take, from the event that causes it to the exit.
STOP_LIMIT = 2.0 * float(os.environ.get("POSTERN_TIME_SCALE", "1"))


def status_fields(pid):
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return fields


def proc_stat(pid):
    """(ppid, pgrp) from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[1]), int(rest[2])


def is_running(pid):
    """True if pid is a live (not zombie) process."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def group_members(pgid):
    """Live processes in the process group the daemon was started in."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if proc_stat(int(entry))[1] == pgid and is_running(int(entry)):
                members.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return members


def wait_exit_within(p, limit):
    """The daemon's exit status, or None if it still runs after limit."""
    try:
        return p.proc.wait(limit)
    except subprocess.TimeoutExpired:
        return None


def assert_all_gone(p, pids):
    """No role process and nothing in the daemon's process group."""
    deadline = time.time() + 1.0
    while time.time() < deadline:
        left = [pid for pid in pids if is_running(pid)]
        left += group_members(p.proc.pid)
        if not left:
            return
        time.sleep(0.05)
    raise AssertionError("processes left behind: %r\n%s"
                         % (sorted(set(left)), p.logtext()))


# (a) every role: its own process, unprivileged, chrooted, sandboxed.

def test_roles_are_separate_confined_processes(postern):
    pids = postern.role_pids()
    assert sorted(pids) == sorted(ROLES), postern.logtext()
    assert len(set(pids.values())) == len(ROLES)
    assert postern.proc.pid not in pids.values()

    parent_exe = os.stat("/proc/%d/exe" % postern.proc.pid)
    assert os.path.realpath("/proc/%d/exe" % postern.proc.pid) == \
        os.path.realpath(POSTERND)
    user = pwd.getpwnam(USER)
    storage = pwd.getpwnam(STORAGE_USER)
    assert user.pw_uid != storage.pw_uid
    emptydir = os.path.realpath(postern.emptydir)
    statedir = os.path.realpath(postern.statedir)

    for role, pid in pids.items():
        ppid, _ = proc_stat(pid)
        assert ppid == postern.proc.pid, role
        exe = os.stat("/proc/%d/exe" % pid)
        assert (exe.st_dev, exe.st_ino) == \
            (parent_exe.st_dev, parent_exe.st_ino), role
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            title = f.read().split(b"\0")[0].decode()
        assert title == "posternd: %s" % role

        st = status_fields(pid)
        want = storage if role == "storaged" else user
        uids = st["Uid"].split()
        gids = st["Gid"].split()
        assert uids == [str(want.pw_uid)] * 4, (role, uids)
        assert gids == [str(want.pw_gid)] * 4, (role, gids)
        assert st["Groups"].split() == [str(want.pw_gid)], role
        assert st["Seccomp"] == "2", (role, st["Seccomp"])
        assert st["NoNewPrivs"] == "1", role
        # No capability left after the uid change.
        assert int(st["CapEff"], 16) == 0, role
        assert int(st["CapPrm"], 16) == 0, role

        root = os.readlink("/proc/%d/root" % pid)
        assert root != "/", role
        assert root == (statedir if role == "storaged" else emptydir), \
            (role, root)
        # The working directory is inside the chroot.
        assert os.readlink("/proc/%d/cwd" % pid) == root, role

    # The parent alone keeps root, outside any chroot or sandbox.
    st = status_fields(postern.proc.pid)
    assert st["Uid"].split()[1] == "0"
    assert os.readlink("/proc/%d/root" % postern.proc.pid) == "/"
    assert st["Seccomp"] == "0"


def test_empty_and_state_dirs_are_locked_down(postern):
    st = os.stat(postern.emptydir)
    assert st.st_uid == 0
    assert st.st_mode & 0o022 == 0
    assert os.listdir(postern.emptydir) == []
    st = os.stat(postern.statedir)
    assert st.st_uid == pwd.getpwnam(STORAGE_USER).pw_uid
    assert st.st_mode & 0o777 == 0o700
    st = os.stat(postern.sock)
    assert st.st_uid == 0
    assert st.st_mode & 0o077 == 0


# (b) a forbidden system call kills the role and stops the daemon.

@pytest.mark.parametrize("role", ROLES)
def test_sandbox_kills_forbidden_syscall(postern_factory, role):
    p = postern_factory(env={"POSTERN_SANDBOX_SELFTEST": role}, start=False)
    p.start(wait=False)
    seen = set()
    marker = "%s: sandbox self-test" % role
    deadline = time.time() + float(os.environ.get(
        "POSTERN_START_TIMEOUT", "20"))
    while marker not in p.logtext():
        seen.update(p.role_pids().values())
        assert time.time() < deadline, "no self-test:\n" + p.logtext()
        assert p.proc.poll() is None or marker in p.logtext(), \
            "exited before the self-test:\n" + p.logtext()
        time.sleep(0.01)
    seen.update(p.role_pids().values())
    rc = wait_exit_within(p, STOP_LIMIT)
    log = p.logtext()
    assert rc is not None, "still running %.1fs after the forbidden call:" \
        "\n%s" % (STOP_LIMIT, log)
    assert rc != 0, log
    assert re.search(r"\b%s \(pid \d+\) terminated by signal 31\b" % role,
                     log), log
    assert "forbidden call returned" not in log
    assert_all_gone(p, seen)
    assert not os.path.exists(p.sock)


# (c) any role killed: the whole daemon stops, loudly and completely.

@pytest.mark.parametrize("role", ROLES)
def test_sigkill_of_a_role_stops_everything(postern, role):
    pids = postern.role_pids()
    assert sorted(pids) == sorted(ROLES)
    os.kill(pids[role], signal.SIGKILL)
    rc = wait_exit_within(postern, STOP_LIMIT)
    log = postern.logtext()
    assert rc is not None, "still running %.1fs after SIGKILL of %s:\n%s" \
        % (STOP_LIMIT, role, log)
    assert rc != 0, log
    assert "%s (pid %d) terminated by signal 9" % (role, pids[role]) in log
    assert_all_gone(postern, pids.values())
    assert not os.path.exists(postern.sock)


# (d) SIGTERM: a clean stop.

def test_sigterm_stops_cleanly(postern):
    pids = postern.role_pids()
    assert sorted(pids) == sorted(ROLES)
    assert os.path.exists(postern.sock)
    postern.proc.send_signal(signal.SIGTERM)
    rc = wait_exit_within(postern, STOP_LIMIT)
    log = postern.logtext()
    assert rc == 0, "exit %r after SIGTERM:\n%s" % (rc, log)
    assert_all_gone(postern, pids.values())
    assert not os.path.exists(postern.sock)
    assert "stopped" in log
    assert "on error" not in log
    assert "terminated by signal" not in log
    assert "lost channel" not in log


def test_sigterm_repeatedly_clean(postern_factory):
    """A clean stop is not a race that is won most of the time."""
    for _ in range(3):
        p = postern_factory()
        p.proc.send_signal(signal.SIGTERM)
        rc = wait_exit_within(p, STOP_LIMIT)
        assert rc == 0, p.logtext()
        assert not os.path.exists(p.sock)


# (e) SIGHUP: a broken config is refused, a good one taken.

def test_sighup_reload(postern):
    pids = postern.role_pids()
    good = postern.config_text()

    broken = good + 'domain "unterminated\nlisten on nowhere\n'
    postern.write_config(text=broken)
    postern.proc.send_signal(signal.SIGHUP)
    postern.wait_log("keeping the running configuration")
    log = postern.logtext()
    assert re.search(re.escape(postern.conf) + r":\d+: ", log), log
    assert "configuration reloaded" not in log
    time.sleep(0.2)
    assert postern.proc.poll() is None, postern.logtext()
    assert postern.role_pids() == pids

    postern.domains.append("new.example.test")
    postern.write_config()
    postern.proc.send_signal(signal.SIGHUP)
    postern.wait_log("configuration reloaded")
    time.sleep(0.2)
    assert postern.proc.poll() is None, postern.logtext()
    assert postern.role_pids() == pids
    log = postern.logtext()
    assert log.count("keeping the running configuration") == 1


# (f) posternd refuses to start unsafely.

def test_refuses_non_root(postern_factory):
    p = postern_factory(start=False)
    pw = pwd.getpwnam(USER)
    os.chmod(p.conf, 0o644)

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    r = subprocess.run([POSTERND, "-d", "-f", p.conf], capture_output=True,
                       text=True, timeout=10, preexec_fn=drop)
    assert r.returncode != 0
    assert "need root privileges" in r.stderr, r.stderr
    assert not os.path.exists(p.sock)
    assert not os.path.exists(p.statedir)


@pytest.mark.parametrize("owner,mode", [("root", 0o700),
                                        (STORAGE_USER, 0o750),
                                        (STORAGE_USER, 0o777),
                                        (USER, 0o700)])
def test_refuses_bad_state_dir(postern_factory, owner, mode):
    p = postern_factory(start=False)
    os.mkdir(p.statedir)
    pw = pwd.getpwnam(owner)
    os.chown(p.statedir, pw.pw_uid, pw.pw_gid)
    os.chmod(p.statedir, mode)
    p.start(wait=False)
    rc = p.wait_exit(10)
    log = p.logtext()
    assert rc is not None and rc != 0, log
    assert "state directory %s must be owned by %s and mode 0700" \
        % (p.statedir, STORAGE_USER) in log, log
    assert not os.path.exists(p.sock)
    assert group_members(p.proc.pid) == []


def test_refuses_writable_empty_dir(postern_factory):
    p = postern_factory(start=False)
    os.mkdir(p.emptydir)
    os.chmod(p.emptydir, 0o777)
    p.start(wait=False)
    rc = p.wait_exit(10)
    log = p.logtext()
    assert rc is not None and rc != 0, log
    assert "%s must be a directory owned by root" % p.emptydir in log, log
    assert not os.path.exists(p.sock)
