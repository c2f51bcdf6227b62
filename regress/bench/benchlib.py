"""What the benchmarks share: processes, cgroups, memory, users,
packages, the Postern instance and the driver's frame.

Imported by imap/bench.py and smtp/bench.py, which put this folder on
sys.path.  See README.md.
"""
import argparse
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(
    os.path.abspath(__file__)), "..", ".."))
ADDR = "127.0.0.1"
DOMAIN = "bench.test"
MAIL_USER = "_benchmail"	# owns the peers' mailboxes
POSTERN_USER = "_postern"
POSTERN_STORAGE_USER = "_posterns"

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def say(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


class Interrupted(BaseException):
    pass


def on_signal(signo, frame):
    raise Interrupted("signal %d" % signo)


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise BenchError("%s failed (%d): %s%s" % (" ".join(cmd),
                         r.returncode, r.stdout, r.stderr))
    return r



# ---- setup: packages, users, load generators ------------------------

def dpkg_installed(pkg):
    r = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return r.returncode == 0 and "install ok installed" in r.stdout


def apt_install(pkg):
    """apt-get install pkg, after an apt-get update if the first try
    fails (a stale package list)."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends",
           pkg]
    if run(cmd, check=False, env=env).returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(cmd, env=env)


def ensure_user(name, home="/nonexistent"):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    say("creating system user %s" % name)
    run(["useradd", "--system", "--no-create-home", "--home-dir", home,
         "--shell", "/usr/sbin/nologin", name])
    return pwd.getpwnam(name)


def drop_to(pw):
    """preexec_fn: the child runs as pw's user, without groups."""
    def f():
        os.setgid(pw.pw_gid)
        os.setgroups([])
        os.setuid(pw.pw_uid)
    return f


def build_load(srcdir, name, outdir, libs=()):
    """Compiles srcdir/NAME.c with loadlib.c (beside this file) into
    outdir/NAME."""
    exe = os.path.join(outdir, name)
    here = os.path.dirname(os.path.abspath(__file__))
    run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-Wextra", "-Werror",
         "-pthread", "-I", here, "-o", exe,
         os.path.join(srcdir, name + ".c"),
         os.path.join(here, "loadlib.c")] + list(libs))
    return exe


def kv(text):
    """key=value pairs of a load generator's output, numbers as such."""
    out = {}
    for word in text.split():
        if "=" in word:
            k, v = word.split("=", 1)
            try:
                out[k] = float(v) if "." in v else int(v)
            except ValueError:
                out[k] = v
    return out


def env_options(p, prefix, options):
    """Adds argparse options whose defaults the environment may set,
    in PREFIX and the option's name in capitals (with prefix
    BENCH_SMTP_, --count-small: BENCH_SMTP_COUNT_SMALL).  options: of
    (option, default, type, help); an int or float default is converted
    at once, bool makes a flag that any value sets, any other type is
    applied by argparse."""
    for flag, default, typ, text in options:
        v = os.environ.get(prefix + flag[2:].upper().replace("-", "_"),
                           default)
        if typ is bool:
            p.add_argument(flag, action="store_true", default=bool(v),
                           help=text)
        elif typ in (int, float):
            p.add_argument(flag, type=typ, default=typ(v), help=text)
        else:
            p.add_argument(flag, type=typ, default=v, help=text)


def int_list(text):
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError("%r: not a list of numbers" % text)


# ---- process helpers -------------------------------------------------

def children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def proc_kb(pid, name, key):
    """The KB figure of the line key (as "VmHWM:") of /proc/PID/name,
    or 0 if the process or the line is gone."""
    try:
        with open("/proc/%d/%s" % (pid, name)) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def vmhwm_kb(pid):
    return proc_kb(pid, "status", "VmHWM:")


def tree_hwm_kb(pid, name=None):
    """Sum of VmHWM over pid and its descendants (only those whose
    command line starts with name, when given)."""
    total = 0
    for p in process_tree(pid):
        if name is not None:
            try:
                with open("/proc/%d/cmdline" % p, "rb") as f:
                    cmd = f.read().split(b"\0")[0].decode("utf-8",
                                                           "replace")
            except OSError:
                continue
            if not os.path.basename(cmd.split(" ")[0]).startswith(name) \
                    and not cmd.startswith(name):
                continue
        total += vmhwm_kb(p)
    return total


def mem_kb(pids):
    """(sum of Pss, sum of Rss) in KB over pids, from smaps_rollup."""
    pss = rss = 0
    for p in pids:
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1])
                    elif line.startswith("Rss:"):
                        rss += int(line.split()[1])
        except OSError:
            pass
    return pss, rss


def posternd_roles(pids, kb):
    """kb(pid) summed over the posternd processes among pids, by the
    role their title names."""
    roles = {}
    for p in pids:
        try:
            with open("/proc/%d/cmdline" % p, "rb") as f:
                cmd = f.read().decode("utf-8", "replace").replace("\0",
                                                                  " ")
        except OSError:
            continue
        if not cmd.startswith("posternd: "):
            continue
        role = cmd[len("posternd: "):].split()[0]
        roles[role] = roles.get(role, 0) + kb(p)
    return roles


def pss_kb(pid):
    """Proportional set size: shared pages split between their users."""
    return proc_kb(pid, "smaps_rollup", "Pss:")


class PssSampler(threading.Thread):
    """Samples the sum of Pss over a set of processes every interval
    seconds and keeps the largest: the peak memory of a server made of
    many processes, without counting a shared page once per process."""

    def __init__(self, pids, interval=0.5):
        super().__init__(daemon=True)
        self.pids = pids
        self.interval = interval
        self.peak = 0
        self.halt = threading.Event()

    def run(self):
        while True:
            total = sum(pss_kb(p) for p in self.pids())
            self.peak = max(self.peak, total)
            if self.halt.wait(self.interval):
                return

    def stop(self):
        self.halt.set()
        self.join()
        return self.peak or None


def kill_tree(pid):
    for p in reversed(process_tree(pid)):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_banner(load, port, proc, timeout, logpath, name=None):
    """Runs `load -P` (a check for the server's greeting) until it
    passes: (True, its output), or (False, the last output) after
    timeout seconds.  BenchError if proc exits meanwhile."""
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        r = run([load, "-P", "-p", str(port), ADDR], check=False)
        if r.returncode == 0:
            return True, r.stdout.strip()
        last = r.stdout.strip()
        if proc is not None and proc.poll() is not None:
            raise BenchError("%sexited (%s) while starting: %s" %
                             (name + " " if name else "",
                              proc.returncode, tail(logpath)))
        time.sleep(0.2)
    return False, last


def tail(path, lines=8):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])


def loadavg():
    """The 1-minute load average: other work on the machine shows here."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None



FSYNC_EVENTS = ("syscalls:sys_enter_fsync", "syscalls:sys_enter_fdatasync")


def cgroup2_root():
    """Where cgroup v2 is mounted (alone or beside v1), or None."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return None


class Cgroup:
    """A cgroup v2 directory holding every process of one server, so
    that its fsyncs (perf's syscall tracepoints, filtered to the
    cgroup) and its CPU time (cpu.stat) can be counted whatever
    processes it forks.  Without cgroup v2 or perf both are None."""

    def __init__(self, name):
        self.path = None
        root = cgroup2_root()
        if root is None:
            return
        path = os.path.join(root, name)
        try:
            os.mkdir(path)
        except OSError as e:
            say("no cgroup %s (%s): fsyncs and CPU not counted"
                % (path, e))
            return
        self.root = root
        self.path = path
        self.name = name
        self.perf = None

    def enter(self):
        """preexec_fn: moves the child about to exec into the cgroup."""
        if self.path is not None:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write("0")

    def cpu_usec(self):
        if self.path is None:
            return None
        try:
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v)
        except (OSError, ValueError):
            pass
        return None

    def pids(self):
        if self.path is None:
            return []
        try:
            with open(os.path.join(self.path, "cgroup.procs")) as f:
                return [int(x) for x in f.read().split()]
        except OSError:
            return []

    def count_start(self, outpath):
        """Starts counting the cgroup's fsync and fdatasync calls."""
        self.perf_out = outpath
        if self.path is None or shutil.which("perf") is None:
            return
        cmd = ["perf", "stat", "-a", "-x", ",", "-o", outpath]
        for ev in FSYNC_EVENTS:
            cmd += ["-e", ev]
        cmd += ["-G", ",".join([self.name] * len(FSYNC_EVENTS))]
        self.perf = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     start_new_session=True)
        time.sleep(0.3)		# perf opens its events
        if self.perf.poll() is not None:
            say("perf stat failed: fsyncs not counted: %s"
                % self.perf.stderr.read().decode("utf-8", "replace")
                .strip())
            self.perf = None

    def count_stop(self):
        """Stops counting: {event: count}, or None."""
        if self.perf is None:
            return None
        self.perf.send_signal(signal.SIGINT)
        try:
            self.perf.wait(10)
        except subprocess.TimeoutExpired:
            self.perf.kill()
            self.perf.wait()
        self.perf = None
        counts = {}
        try:
            with open(self.perf_out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) > 2 and fields[2] in FSYNC_EVENTS \
                            and fields[0].isdigit():
                        counts[fields[2]] = int(fields[0])
        except OSError:
            return None
        return counts if len(counts) == len(FSYNC_EVENTS) else None

    def remove(self):
        if self.perf is not None:
            self.perf.kill()
            self.perf.wait()
            self.perf = None
        if self.path is None:
            return
        deadline = time.time() + 10
        while self.pids() and time.time() < deadline:
            try:
                with open(os.path.join(self.path, "cgroup.kill"),
                          "w") as f:
                    f.write("1")
            except OSError:
                for p in self.pids():
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(0.1)
        try:
            os.rmdir(self.path)
        except OSError as e:
            say("cgroup %s left behind: %s" % (self.path, e))
        self.path = None


# ---- the servers -----------------------------------------------------

class Server:
    """One private server instance: its process (a session leader, in
    its cgroup) and its log."""
    name = "?"

    def __init__(self, bench, workdir, cgroup):
        self.bench = bench
        self.dir = workdir
        self.cgroup = cgroup
        self.port = None
        self.proc = None
        self.log = None
        self.logpath = os.path.join(workdir, "server.log")

    def pids(self):
        """Every process of the server now."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        return self.cgroup.pids() or process_tree(self.proc.pid)

    def popen(self, cmd, **kw):
        self.log = open(self.logpath, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True,
                                     preexec_fn=self.cgroup.enter, **kw)

    def stop_proc(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                say("%s did not stop on SIGTERM: killing it" % self.name)
        # Leave nothing behind, whatever happened.
        kill_tree(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None

    def start_posternd(self, listen, limits):
        """Writes a postern.conf with the listener and limit lines
        given, starts posternd -d on it and waits for its "startup
        complete".  Sets state, sock, port and storage_pw."""
        b = self.bench
        if not os.access(b.posternd, os.X_OK):
            raise BenchError("%s missing: build first" % b.posternd)
        ensure_user(POSTERN_USER)
        self.storage_pw = ensure_user(POSTERN_STORAGE_USER)
        self.state = os.path.join(self.dir, "state")
        empty = os.path.join(self.dir, "empty")
        os.makedirs(empty, exist_ok=True)
        os.chmod(empty, 0o755)
        self.sock = os.path.join(self.dir, "postern.sock")
        self.port = b.free_port()
        conf = os.path.join(self.dir, "postern.conf")
        with open(conf, "w") as f:
            f.write("\n".join([
                'hostname "bench-postern.test"',
                'state directory "%s"' % self.state,
                'empty directory "%s"' % empty,
                'control socket "%s"' % self.sock,
                'user "%s"' % POSTERN_USER,
                'storage user "%s"' % POSTERN_STORAGE_USER,
                'certificate "%s"' % b.cert,
                'key "%s"' % b.key,
                'domain "%s"' % DOMAIN,
                listen % (ADDR, self.port)]
                # Every load session comes from 127.0.0.1.
                + limits + [""]))
        self.popen([b.posternd, "-d", "-f", conf])
        deadline = time.time() + START_TIMEOUT
        while "startup complete" not in tail(self.logpath, 1000):
            if self.proc.poll() is not None:
                raise BenchError("posternd exited (%d) while starting: %s"
                                 % (self.proc.returncode,
                                    tail(self.logpath)))
            if time.time() > deadline:
                raise BenchError("no \"startup complete\" from posternd "
                                 "in %ds: %s" % (START_TIMEOUT,
                                                 tail(self.logpath)))
            time.sleep(0.05)

    def add_account(self, login, password):
        r = run([self.bench.posternctl, "-s", self.sock, "account", "add",
                 login], check=False, input=password + "\n", timeout=60)
        if r.returncode != 0:
            raise BenchError("posternctl account add failed: %s%s"
                             % (r.stdout, r.stderr))


# ---- the driver ------------------------------------------------------

class BenchBase:
    """The run: its temp dir, ports, Postern build and certificate, and
    the servers to stop whatever happens."""

    def __init__(self, args):
        self.args = args
        self.running = []
        self.ports = set()

    def free_port(self):
        import socket
        while True:
            s = socket.socket()
            s.bind((ADDR, 0))
            port = s.getsockname()[1]
            s.close()
            if port not in self.ports:
                self.ports.add(port)
                return port

    def make_tmp(self, prefix):
        """The temp dir (self.tmp), and its file system in args.fstype:
        an fsync on tmpfs is free, so the figures would not be
        durable."""
        a = self.args
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        # The peers' delivery users must get through to their mail dirs.
        os.chmod(self.tmp, 0o755)
        say("working in %s" % self.tmp)
        a.fstype = run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.tmp],
                       check=False).stdout.strip() or "?"
        if a.fstype in ("tmpfs", "ramfs"):
            say("warning: %s is on %s, where fsync costs nothing"
                % (self.tmp, a.fstype))

    def find_postern(self):
        """posternd and posternctl of POSTERN_BUILD, else BUILD, else
        ./build."""
        build = os.environ.get("POSTERN_BUILD") or \
            os.environ.get("BUILD") or "build"
        if not os.path.isabs(build):
            build = os.path.join(ROOT, build)
        self.posternd = os.path.join(build, "posternd")
        self.posternctl = os.path.join(build, "posternctl")
        if "postern" in self.args.peers:
            say("postern from %s" % build)
        return build

    def make_cert(self):
        """A self-signed certificate for Postern's listener."""
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
             "-nodes", "-keyout", self.key, "-out", self.cert,
             "-days", "30", "-subj", "/CN=bench-postern.test"])
        os.chmod(self.key, 0o600)

    def start_server(self, cls, workdir, res):
        """A cls server in workdir, in a cgroup of its own, started:
        the server (to give to stop_server whatever happens), and
        whether it started; if not, res says why."""
        cg = Cgroup("%s-%s" % (os.path.basename(self.tmp),
                               os.path.basename(workdir)))
        srv = cls(self, workdir, cg)
        self.running.append(srv)
        try:
            srv.start()
        except BenchError as e:
            res["status"] = "not available"
            res["why"] = str(e)
            say("%s not available: %s" % (srv.name, e))
            return srv, False
        return srv, True

    def stop_server(self, srv):
        srv.stop()
        srv.cgroup.remove()
        self.running.remove(srv)

    def cleanup(self):
        for srv in list(self.running):
            try:
                srv.stop()
                srv.cgroup.remove()
            except BaseException as e:
                say("stopping %s: %s" % (srv.name, e))
            self.running.remove(srv)
        if getattr(self, "tmp", None) is None:
            return
        if self.args.keep:
            say("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def check_peers(p, a, servers, known):
    """Splits args.peers (commas or blanks) and checks each name."""
    a.peers = a.peers.replace(",", " ").split()
    for peer in a.peers:
        if peer not in servers:
            p.error("unknown server %r (known: %s)" % (peer,
                                                      ", ".join(known)))


def drive(bench, report, ok=lambda results: True):
    """Sets the run up and runs it, stopping every server on an error,
    Ctrl-C, SIGTERM or SIGHUP; then reports and writes the JSON.  The
    exit status: 0, or 1 (an error, or not ok(results)), or 130."""
    import json
    a = bench.args
    for signo in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, on_signal)
    try:
        bench.setup()
        results = bench.run()
    except Interrupted as e:
        say("interrupted (%s): stopping every server" % e)
        return 130
    except BenchError as e:
        say(str(e))
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        bench.cleanup()
    report(results, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if ok(results) else 1
