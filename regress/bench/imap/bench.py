"""IMAP benchmark: Postern against Dovecot on loopback.

Each server is started as a private instance on its own 127.0.0.1 port
with its own state under one temp dir, one server at a time, and given
the same generated messages.  Then, in this order on the same
instance: SEARCH TEXT over a 10,000-message mailbox (c), 1,000 idle
authenticated sessions in IDLE and the memory they cost (b), and the
client mix over 10 and 50 sessions (a).  imapload (C, built here) is
the client for all of it.

Run it through ./run (or `make bench`) as root.  See ../README.md.
"""
import argparse
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
# What the benchmarks share: processes, cgroups, users, packages.
from benchlib import (ADDR, DOMAIN, MAIL_USER, START_TIMEOUT,  # noqa: E402
                      BenchBase, BenchError, PssSampler, Server,
                      apt_install, build_load, check_peers, dpkg_installed,
                      drive, drop_to, ensure_user, env_options, int_list,
                      kv, loadavg, mem_kb, posternd_roles, run, say, tail,
                      wait_banner)

PEERS = ("postern", "dovecot")
LOGIN_FMT = "user%d@" + DOMAIN
PASS_FMT = "bench-password-%d"
SEARCH_USER = 100	# user100@bench.test holds the search mailbox
SEARCHES = ('TEXT "quetzal"', 'TEXT "zebrafish"', 'TEXT "meeting"',
            'TEXT "xyzzy-not-there"')
GOAL_THROUGHPUT = 1.0	# Postern's ops/s at least Dovecot's
GOAL_MEMORY = 0.1	# Postern's idle memory at most a tenth of Dovecot's


def install_dovecot():
    """Debian's dovecot-imapd.  Its postinst may start a system
    instance (on 143 and 993, with /etc/dovecot): ours use their own
    config, base_dir and port, and leave it alone."""
    if dpkg_installed("dovecot-imapd"):
        return
    say("installing dovecot-imapd")
    apt_install("dovecot-imapd")


def build_imapload(outdir):
    return build_load(HERE, "imapload", outdir, ["-lm"])


class Peer(Server):
    def wait_greeting(self):
        ok, last = wait_banner(self.bench.imapload, self.port, self.proc,
                               START_TIMEOUT, self.logpath, self.name)
        if not ok:
            raise BenchError("%s gave no * OK greeting: %s"
                             % (self.name, last))

    def stop(self):
        self.stop_proc()

    def preload(self, first, users, count):
        """Fills the INBOX of accounts first .. first + users - 1."""
        raise NotImplementedError

    def notes(self):
        return []


class Postern(Peer):
    """The build under test, with one imap listener that allows
    plaintext LOGIN (loopback only), as Dovecot's ssl = no."""
    name = "postern"

    def start(self):
        b = self.bench
        limit = b.args.idle + max(b.args.sessions) + 100
        self.start_posternd("listen on %s port %d imap allow plaintext",
                            ["limit sessions %d" % limit,
                             "limit sessions-per-client %d" % limit])
        self.wait_greeting()
        for i in b.accounts():
            self.add_account(LOGIN_FMT % i, PASS_FMT % i)

    def preload(self, first, users, count):
        return self.bench.imapload_run(
            ["-A", str(count), "-c", "4", "-o", str(first), "-u",
             str(users)], self.port)

    def notes(self):
        out = []
        bad = [ln for ln in tail(self.logpath, 100000).split(" | ")
               if "fatal" in ln or "error" in ln.lower()
               or "exited" in ln]
        if bad:
            out.append("posternd log: %d problem lines, e.g. %s"
                       % (len(bad), bad[0][:200]))
        return out

    def role_mem(self):
        """Pss of each posternd process by role, in KB."""
        return posternd_roles(self.pids(), lambda p: mem_kb([p])[0])


DOVECOT_CONF = """\
# Private benchmark instance, written by regress/bench/imap/bench.py.
# Nothing else of Dovecot's is read: no /etc/dovecot includes.
base_dir = %(dir)s/run
state_dir = %(dir)s/state
instance_name = bench-%(port)d
log_path = %(dir)s/dovecot.log
protocols = imap
listen = %(addr)s
# Plaintext LOGIN on loopback, as Postern's "allow plaintext".
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
# Maildir, one per user; fsync behaviour left at its default
# (mail_fsync = optimized: a saved message is fsynced before its
# APPEND is answered, index files are not).
mail_location = maildir:%(dir)s/mail/%%n
mail_uid = %(mailuser)s
mail_gid = %(mailuser)s
first_valid_uid = 1
# Room for the idle sessions plus the mix (defaults: 100 processes
# per service, 1000 clients, 10 sessions per user and address).
default_process_limit = %(limit)d
default_client_limit = %(clients)d
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %(dir)s/passwd
}
userdb {
  driver = static
  args = uid=%(mailuser)s gid=%(mailuser)s home=%(dir)s/mail/%%n
}
service imap-login {
  inet_listener imap {
    address = %(addr)s
    port = %(port)d
  }
  inet_listener imaps {
    port = 0
  }
}
service imap {
  process_limit = %(limit)d
}
protocol imap {
  mail_max_userip_connections = %(limit)d
}
"""


class Dovecot(Peer):
    """Debian's Dovecot, a private instance: its own config (nothing
    from /etc/dovecot), base_dir, state_dir, log and Maildirs, master
    in the foreground (-F)."""
    name = "dovecot"

    def start(self):
        b = self.bench
        self.mail = os.path.join(self.dir, "mail")
        for d in ("run", "state"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.makedirs(self.mail, exist_ok=True)
        os.chown(self.mail, b.mail_pw.pw_uid, b.mail_pw.pw_gid)
        os.chmod(self.mail, 0o700)
        with open(os.path.join(self.dir, "passwd"), "w") as f:
            for i in b.accounts():
                f.write("%s:{PLAIN}%s\n" % (LOGIN_FMT % i, PASS_FMT % i))
        self.port = b.free_port()
        limit = b.args.idle + max(b.args.sessions) + 100
        self.conf = os.path.join(self.dir, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(DOVECOT_CONF % {"dir": self.dir, "addr": ADDR,
                                    "port": self.port, "mailuser": MAIL_USER,
                                    "limit": limit, "clients": 2 * limit})
        r = run(["dovecot", "-c", self.conf, "-n"], check=False)
        if r.returncode != 0:
            raise BenchError("dovecot -n: %s%s" % (r.stdout, r.stderr))
        self.popen(["dovecot", "-F", "-c", self.conf])
        self.wait_greeting()

    def preload(self, first, users, count):
        """Maildir files written as a delivery agent would (not
        fsynced: the preload is not measured); Dovecot indexes them
        at the warm-up."""
        return self.bench.imapload_run(
            ["-W", str(count), "-o", str(first), "-u", str(users),
             self.mail], None, preexec_fn=drop_to(self.bench.mail_pw))

    def notes(self):
        log = os.path.join(self.dir, "dovecot.log")
        out = []
        try:
            with open(log, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return out
        ino = [ln for ln in lines if "Inotify instance limit" in ln]
        if ino:
            out.append("%d imap processes hit the kernel's "
                       "inotify instance limit (fs.inotify."
                       "max_user_instances, left as it is) and poll "
                       "their mailbox instead" % len(ino))
        bad = [ln for ln in lines if ("Error" in ln or "Fatal" in ln or
               "Panic" in ln) and "Inotify" not in ln]
        if bad:
            out.append("dovecot.log: %d errors, e.g. %s"
                       % (len(bad), bad[0][:200]))
        return out


SERVERS = {"postern": Postern, "dovecot": Dovecot}


class Bench(BenchBase):
    def accounts(self):
        return list(range(self.args.users)) + [SEARCH_USER]

    def setup(self):
        a = self.args
        # 1,000 sessions and more: the client's descriptors, and the
        # servers' (they inherit this limit; Dovecot's master raises its
        # children's to what their client_limit needs).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = a.idle + max(a.sessions) + 1000
        if hard != resource.RLIM_INFINITY and hard < want:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            except (ValueError, OSError) as e:
                raise BenchError("RLIMIT_NOFILE %d is below the %d the "
                                 "idle sessions need: %s" % (hard, want, e))
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.make_tmp("postern-bench-imap.")
        self.imapload = build_imapload(self.tmp)
        self.mail_pw = ensure_user(MAIL_USER)
        if "dovecot" in a.peers:
            install_dovecot()
            a.dovecot_version = run(["dovecot", "--version"],
                                    check=False).stdout.strip()
        self.find_postern()
        if "postern" in a.peers:
            self.cert = os.path.join(self.tmp, "server.crt")
            self.key = os.path.join(self.tmp, "server.key")
            self.make_cert()

    def imapload_run(self, opts, port, timeout=None, **kw):
        cmd = [self.imapload] + opts
        if port is not None:
            cmd += ["-p", str(port), ADDR]
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout or self.args.step_timeout, **kw)
        return r

    def step(self, srv, what, opts, timeout=None, **kw):
        t0 = time.time()
        r = self.imapload_run(opts, srv.port, timeout, **kw)
        if r.returncode != 0:
            raise BenchError("%s: %s failed (%d): %s %s" %
                             (srv.name, what, r.returncode,
                              r.stdout.strip()[-300:],
                              r.stderr.strip()[-500:]))
        say("%s: %s done in %.1f s" % (srv.name, what, time.time() - t0))
        return r

    def idle(self, srv, res):
        """Opens the idle sessions and measures what they cost."""
        a = self.args
        time.sleep(1)
        before = mem_kb(srv.pids())
        nbefore = len(srv.pids())
        roles0 = srv.role_mem() if srv.name == "postern" else None
        p = subprocess.Popen([self.imapload, "-I", str(a.idle), "-c", "8",
                              "-u", str(a.users), "-p", str(srv.port),
                              ADDR], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        try:
            line = p.stdout.readline()
            ready = kv(line)
            if "idle_ready" not in ready:
                raise BenchError("%s: idle sessions: %s %s" %
                                 (srv.name, line, p.stderr.read()))
            say("%s: %d idle sessions open (%d failed) in %.1f s" %
                (srv.name, ready["idle_ready"], ready["failed"],
                 ready["seconds"]))
            # Let logins finish their work (Dovecot's login processes
            # exit, Postern's password hashing returns its memory).
            time.sleep(a.settle)
            after = mem_kb(srv.pids())
            nafter = len(srv.pids())
            roles1 = srv.role_mem() if srv.name == "postern" else None
            p.stdin.write("\n")
            p.stdin.flush()
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        # The mix comes next: let the server finish closing the idle
        # sessions (Dovecot reaps 1,000 processes) before it starts.
        deadline = time.time() + 60
        while len(srv.pids()) > nbefore + 2 and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        alive = kv(out).get("idle_alive", 0)
        n = ready["idle_ready"]
        res["idle"] = {
            "sessions": a.idle, "ready": n, "failed": ready["failed"],
            "alive": alive, "open_seconds": ready["seconds"],
            "pss_before_kb": before[0], "pss_after_kb": after[0],
            "rss_before_kb": before[1], "rss_after_kb": after[1],
            "procs_before": nbefore, "procs_after": nafter,
            "pss_per_session_kb": (after[0] - before[0]) / n if n else None,
            "rss_per_session_kb": (after[1] - before[1]) / n if n else None,
        }
        if roles0 is not None:
            res["idle"]["roles_before_kb"] = roles0
            res["idle"]["roles_after_kb"] = roles1
        if err.strip():
            res["idle"]["note"] = err.strip()[-300:]

    def mix(self, srv, res, sessions):
        a = self.args
        sampler = PssSampler(srv.pids)
        sampler.start()
        cpu0 = srv.cgroup.cpu_usec()
        try:
            r = self.imapload_run(["-M", "-c", str(sessions), "-t",
                                   str(a.duration), "-u", str(a.users)],
                                  srv.port, timeout=a.duration + 300)
        finally:
            peak = sampler.stop()
        cpu1 = srv.cgroup.cpu_usec()
        m = kv(r.stdout)
        if "ops_per_sec" not in m:
            raise BenchError("%s: mix of %d sessions: %s %s" %
                             (srv.name, sessions, r.stdout, r.stderr))
        m["peak_pss_kb"] = peak
        m["loadavg"] = loadavg()
        if m.get("ready", sessions) < sessions:
            m["note"] = "only %d of %d sessions logged in; " % (
                m["ready"], sessions)
        if cpu0 is not None and cpu1 is not None:
            m["cpu_seconds"] = (cpu1 - cpu0) / 1e6
        if r.stderr.strip():
            m["note"] = m.get("note", "") + r.stderr.strip()[-300:]
        res["mix"][sessions] = m
        say("%s: %d sessions: %.1f ops/s" % (srv.name, sessions,
                                              m["ops_per_sec"]))

    def run_server(self, peer):
        a = self.args
        res = {"server": peer, "mix": {}}
        wd = os.path.join(self.tmp, peer)
        os.makedirs(wd)
        os.chmod(wd, 0o755)
        srv, started = self.start_server(SERVERS[peer], wd, res)
        try:
            if not started:
                return res
            res["status"] = "ok"
            t0 = time.time()
            for what, first, users, count in (
                    ("preload", 0, a.users, a.messages),
                    ("search preload", SEARCH_USER, 1, a.search_messages)):
                r = srv.preload(first, users, count)
                if r.returncode != 0:
                    raise BenchError("%s: %s failed: %s %s" % (
                        peer, what, r.stdout.strip(), r.stderr.strip()))
                res.setdefault("preload", []).append(kv(r.stdout))
            res["preload_seconds"] = time.time() - t0
            say("%s: %d + %d messages loaded in %.1f s" % (
                peer, a.users * a.messages, a.search_messages,
                res["preload_seconds"]))
            r = self.step(srv, "warm-up", ["-X", "-u", str(a.users)])
            res["warm_seconds"] = kv(r.stdout.splitlines()[-1])["seconds"]
            r = self.step(srv, "search warm-up",
                          ["-X", "-o", str(SEARCH_USER), "-u", "1"])
            res["search_warm_seconds"] = kv(
                r.stdout.splitlines()[-1])["seconds"]
            opts = ["-o", str(SEARCH_USER), "-r", str(a.search_runs)]
            for s in SEARCHES:
                opts += ["-S", s]
            r = self.step(srv, "SEARCH TEXT", opts,
                          timeout=a.step_timeout * 4)
            lines = r.stdout.splitlines()
            res["search_messages"] = kv(lines[0]).get("messages")
            res["search"] = [kv(ln) for ln in lines[1:]]
            self.idle(srv, res)
            for sessions in a.sessions:
                self.mix(srv, res, sessions)
            res["notes"] = srv.notes()
            return res
        except BenchError as e:
            res["status"] = "failed"
            res["why"] = str(e)
            res["notes"] = srv.notes()
            say(str(e))
            return res
        finally:
            self.stop_server(srv)

    def run(self):
        return [self.run_server(peer) for peer in self.args.peers]


def ratio(x, y):
    if x is None or y is None or y == 0:
        return None
    return x / y


def fmt(v, f="%.1f"):
    return "-" if v is None else f % v


def report(results, args):
    by = {r["server"]: r for r in results}
    pt, dv = by.get("postern", {}), by.get("dovecot", {})
    print()
    print("IMAP benchmark on %s, one server at a time; state on %s; "
          "Dovecot %s" % (ADDR, args.fstype,
                          getattr(args, "dovecot_version", "-")))
    print("accounts user0..user%d@%s with %d messages each, user%d with "
          "%d for SEARCH; the same generated messages for both servers"
          % (args.users - 1, DOMAIN, args.messages, SEARCH_USER,
             args.search_messages))
    for r in results:
        if r.get("status") != "ok":
            print("%s: %s: %s" % (r["server"], r.get("status"),
                                  r.get("why")))
    print()
    print("(a) client mix, %d s per cell: ops/s counts operations "
          "answered OK (an EXPUNGE operation is STORE + EXPUNGE)"
          % args.duration)
    print("cpu ms: the server's CPU time per operation; load: the "
          "machine's 1-minute load average after the cell (2 cores)")
    head = "%5s  %-8s %9s %6s %6s %7s %5s %8s  %s" % (
        "sess", "server", "ops/s", "NO/BAD", "broken", "cpu ms", "load",
        "ratio", "p50 ms: select flags hdrs body store append expunge "
        "search")
    print(head)
    print("-" * len(head))
    names = ("select", "fetch_flags", "fetch_headers", "fetch_body",
             "store", "append", "expunge", "search")
    for sessions in args.sessions:
        pm = pt.get("mix", {}).get(sessions, {})
        for r in results:
            m = r.get("mix", {}).get(sessions)
            if not m:
                print("%5d  %-8s %s" % (sessions, r["server"],
                                        r.get("status", "-")))
                continue
            rt = ratio(pm.get("ops_per_sec"), m["ops_per_sec"])
            cpu = (m["cpu_seconds"] * 1000 / m["ops"]
                   if m.get("cpu_seconds") is not None and m["ops"]
                   else None)
            print("%5d  %-8s %9.1f %6d %6d %7s %5s %8s  %s" % (
                sessions, r["server"], m["ops_per_sec"],
                m["no"] + m["bad"], m["errors"], fmt(cpu, "%.2f"),
                fmt(m.get("loadavg")),
                "-" if r["server"] == "postern" else fmt(rt, "%.2fx"),
                " ".join(fmt(m.get(n + "_p50_ms"), "%.1f") for n in names)))
    print()
    print("(b) %d idle sessions (LOGIN, SELECT INBOX, IDLE), memory of "
          "every process of the server before and after, per session"
          % args.idle)
    head = "%-8s %6s %6s %6s %11s %11s %10s %10s %8s" % (
        "server", "ready", "alive", "procs", "Pss before", "Pss after",
        "Pss/sess", "Rss/sess", "ratio")
    print(head)
    print("-" * len(head))
    pi = pt.get("idle", {})
    for r in results:
        i = r.get("idle")
        if not i:
            print("%-8s %s" % (r["server"], r.get("status", "-")))
            continue
        rt = ratio(pi.get("pss_per_session_kb"), i["pss_per_session_kb"])
        print("%-8s %6d %6d %6d %8.1f MB %8.1f MB %7.1f KB %7.1f KB %8s" % (
            r["server"], i["ready"], i["alive"], i["procs_after"],
            i["pss_before_kb"] / 1024.0, i["pss_after_kb"] / 1024.0,
            i["pss_per_session_kb"], i["rss_per_session_kb"],
            "-" if r["server"] == "postern" else fmt(rt, "%.3fx")))
    if pi.get("roles_after_kb"):
        print("Postern Pss by role, before -> after: " + ", ".join(
            "%s %.1f -> %.1f MB" % (k, pi["roles_before_kb"].get(k, 0)
                                    / 1024.0, v / 1024.0)
            for k, v in sorted(pi["roles_after_kb"].items(),
                               key=lambda kv: -kv[1])))
    print()
    print("(c) SEARCH over the %d-message mailbox, %d runs each after a "
          "warm-up (Dovecot as installed: no FTS plugin, so it reads "
          "every message)" % (args.search_messages, args.search_runs))
    head = "%-24s %-8s %8s %10s %10s %10s" % (
        "criteria", "server", "matches", "first ms", "median ms", "max ms")
    print(head)
    print("-" * len(head))
    for i, crit in enumerate(SEARCHES):
        for r in results:
            s = [x for x in r.get("search", []) if x.get("search") == i]
            if not s:
                continue
            s = s[0]
            print("%-24s %-8s %8d %10.2f %10.2f %10.2f" % (
                crit, r["server"], s["matches"], s["first_ms"],
                s["median_ms"], s["max_ms"]))
    print()
    for r in results:
        for n in r.get("notes", []):
            print("%s: %s" % (r["server"], n))
        for sessions, m in sorted(r.get("mix", {}).items()):
            if m.get("note"):
                print("%s, mix of %d: %s" % (r["server"], sessions,
                                             m["note"]))
        if r.get("idle", {}).get("note"):
            print("%s, idle: %s" % (r["server"], r["idle"]["note"]))
    for r in results:
        if "preload_seconds" in r:
            print("%s: preload %.1f s (%s), warm-up %.1f s + %.1f s" % (
                r["server"], r["preload_seconds"],
                "APPEND over 4 sessions" if r["server"] == "postern"
                else "Maildir files written directly",
                r["warm_seconds"], r["search_warm_seconds"]))
    print()
    goal_lines(pt, dv, args)


def goal_lines(pt, dv, args):
    for sessions in args.sessions:
        a = pt.get("mix", {}).get(sessions, {}).get("ops_per_sec")
        b = dv.get("mix", {}).get(sessions, {}).get("ops_per_sec")
        rt = ratio(a, b)
        if rt is None:
            print("goal: Postern ops/s >= Dovecot's at %d sessions: NOT MET "
                  "(no figure: postern %s, dovecot %s)" %
                  (sessions, pt.get("status", "not run"),
                   dv.get("status", "not run")))
            continue
        print("goal: Postern ops/s >= Dovecot's at %d sessions: %s "
              "(%.1f vs %.1f ops/s, %.2fx)" %
              (sessions, "MET" if rt >= GOAL_THROUGHPUT else "NOT MET",
               a, b, rt))
    a = pt.get("idle", {}).get("pss_per_session_kb")
    b = dv.get("idle", {}).get("pss_per_session_kb")
    rt = ratio(a, b)
    if rt is None:
        print("goal: Postern idle memory <= 1/10 of Dovecot's: NOT MET "
              "(no figure)")
    else:
        okp = pt["idle"]["alive"] == args.idle
        okd = dv["idle"]["alive"] == args.idle
        why = "%.1f KB vs %.1f KB Pss per session, %.3fx" % (a, b, rt)
        if not (okp and okd):
            why += "; not every session stayed open"
        print("goal: Postern idle memory <= 1/10 of Dovecot's: %s (%s)" % (
            "MET" if rt <= GOAL_MEMORY and okp and okd else "NOT MET",
            why))


def main():
    p = argparse.ArgumentParser(description="IMAP benchmark: Postern and "
                                "Dovecot on loopback")
    env_options(p, "BENCH_IMAP_", (
        ("--peers", " ".join(PEERS), str, None),
        ("--sessions", "10 50", int_list, "client mix sessions per cell"),
        ("--duration", "20", int, "seconds per mix cell"),
        ("--users", "10", int, None),
        ("--messages", "1000", int, "messages per account before the mix"),
        ("--search-messages", "10000", int, None),
        ("--search-runs", "5", int, None),
        ("--idle", "1000", int, "idle IDLE sessions"),
        ("--settle", "5", float, "seconds between the last idle login and "
         "the memory reading"),
        ("--step-timeout", "900", float, None),
        ("--json", None, str, None),
        ("--keep", None, bool, None)))
    a = p.parse_args()
    if isinstance(a.sessions, str):
        a.sessions = int_list(a.sessions)
    check_peers(p, a, SERVERS, PEERS)
    if not a.peers or not a.sessions:
        p.error("nothing to run")
    for v, what, lo, hi in ((a.duration, "duration", 1, 3600),
                            (a.users, "users", 1, SEARCH_USER),
                            (a.messages, "messages", 1, 1000000),
                            (a.search_messages, "search-messages", 1,
                             1000000),
                            (a.search_runs, "search-runs", 1, 1000),
                            (a.idle, "idle", 1, 10000)):
        if not lo <= v <= hi:
            p.error("%s must be %d to %d" % (what, lo, hi))
    for s in a.sessions:
        if not 1 <= s <= 1000:
            p.error("sessions must be 1 to 1000")
    if os.geteuid() != 0:
        p.error("must run as root (installs packages, starts servers)")

    return drive(Bench(a), report,
                 lambda results: all(r.get("status") == "ok"
                                     for r in results))


if __name__ == "__main__":
    sys.exit(main())
