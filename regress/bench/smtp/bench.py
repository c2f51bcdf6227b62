"""SMTP benchmark: Postern against Postfix and OpenSMTPD on loopback.

For every cell of the matrix (sessions x message size) each server is
started fresh as a private instance on its own 127.0.0.1 port with its
own spool under one temp dir, loaded by smtpload (kept sessions, one
command at a time), and then watched until its mailboxes hold every
message it acknowledged.  The table gives accepted and delivered
messages per second, each peer against Postern, and peak memory.

Run it through ./run (or `make bench`) as root.  See ../README.md.
"""
import argparse
import os
import pwd
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
# What the benchmarks share: processes, cgroups, users, packages.
from benchlib import (ADDR, DOMAIN, FSYNC_EVENTS, MAIL_USER,  # noqa: E402
                      START_TIMEOUT, STOP_TIMEOUT, BenchBase, BenchError,
                      PssSampler, Server, apt_install, build_load,
                      check_peers, dpkg_installed, drive, drop_to,
                      ensure_user, env_options, int_list, posternd_roles,
                      run, say, tail, tree_hwm_kb, vmhwm_kb, wait_banner)

# Debian builds smtpd with these user names (upstream: _smtpd, _smtpq).
OPENSMTPD_USERS = ("opensmtpd", "opensmtpq")
PEERS = ("postern", "postfix", "opensmtpd")
GOAL_CELL = (50, 4096)
GOAL_RATIO = 1.5

# ---- setup: packages, load generator ---------------------------------


def install_postfix():
    """Postfix from Debian, with debconf's "No configuration" so that
    the package neither writes /etc/postfix/main.cf nor starts a system
    instance; ours run with their own config directories."""
    if dpkg_installed("postfix"):
        return
    say("installing postfix (No configuration: no system instance)")
    subprocess.run(["debconf-set-selections"], check=True, text=True,
                   input="postfix postfix/main_mailer_type select "
                   "No configuration\n")
    apt_install("postfix")
    # Should the package have started one anyway, leave it alone: ours
    # use their own queue directories and ports.


def fetch_opensmtpd(cache):
    """OpenSMTPD conflicts with postfix as a package (both provide
    mail-transport-agent), so its .deb is only unpacked into a private
    tree; its shared libraries are ordinary packages."""
    tree = os.path.join(cache, "opensmtpd-root")
    smtpd = os.path.join(tree, "usr", "sbin", "smtpd")
    if os.path.exists(smtpd):
        return tree
    os.makedirs(cache, exist_ok=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    libs = ["libevent-2.1-7", "libssl3", "libdb5.3", "libpam0g",
            "zlib1g", "libcrypt1"]
    missing = [p for p in libs if not dpkg_installed(p)]
    debs = [f for f in os.listdir(cache) if f.startswith("opensmtpd_")
            and f.endswith(".deb")]
    if missing or not debs:
        say("fetching opensmtpd from Debian's archive")
        run(["apt-get", "update", "-q"], env=env, check=False)
    if missing:
        run(["apt-get", "install", "-y", "-q", "--no-install-recommends"]
            + missing, env=env)
    if not debs:
        # _apt cannot write into a root-only temp dir: download as root.
        run(["apt-get", "download", "-q", "opensmtpd"], cwd=cache,
            env=env)
        debs = [f for f in os.listdir(cache)
                if f.startswith("opensmtpd_") and f.endswith(".deb")]
        if not debs:
            raise BenchError("apt-get download opensmtpd gave no .deb")
    tmp = tree + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    run(["dpkg-deb", "-x", os.path.join(cache, sorted(debs)[-1]), tmp])
    os.rename(tmp, tree)
    return tree


def build_smtpload(outdir):
    return build_load(HERE, "smtpload", outdir)


def count_maildir(base):
    """Messages in every Maildir under base (new/ and cur/)."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(base):
        leaf = os.path.basename(dirpath)
        if leaf in ("new", "cur"):
            n += len(filenames)
            dirnames[:] = []
    return n


class Peer(Server):
    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def delivered(self):
        raise NotImplementedError

    def peak_memory_kb(self):
        if self.proc is None or self.proc.poll() is not None:
            return None
        return tree_hwm_kb(self.proc.pid)


class Postern(Peer):
    """The daemon under test, from the tree's build directory."""
    name = "postern"

    def start(self):
        b = self.bench
        self.start_posternd(
            "listen on %s port %d smtp",
            ["limit sessions-per-client %d" % (b.max_sessions + 50),
             "limit sessions %d" % (b.max_sessions + 100)])
        ok, why = wait_banner(b.smtpload, self.port, self.proc, 5,
                              self.logpath)
        if not ok:
            raise BenchError("SMTP does not answer yet (%s)" % why)
        for i in range(b.users):
            self.add_account("user%d@%s" % (i, DOMAIN),
                             "bench-password-%d" % i)

    def stop(self):
        self.stop_proc()

    def peak_memory_kb(self):
        if self.proc is None or self.proc.poll() is not None:
            return None
        return tree_hwm_kb(self.proc.pid, "posternd")

    def role_hwm_kb(self):
        """VmHWM of each posternd process, by its title's role."""
        return posternd_roles(self.pids(), vmhwm_kb)

    def delivered(self):
        return postern_delivered_count(self.state, self.storage_pw)


# Delivered messages: storaged files each delivered message as a row of
# mailbox_messages (one per mailbox it is in, schema in
# storaged/store_db.c), in the same transaction that marks its queue
# recipient delivered.  Nothing but delivery adds rows in this run.
POSTERN_DELIVERED_SQL = "SELECT count(*) FROM mailbox_messages"


def postern_delivered_count(state, storage_pw):
    """Messages delivered into Postern's mailboxes, or None if unknown.
    Runs sqlite3 as the storage user, so that no file in the state dir
    ends up owned by root."""
    db = os.path.join(state, "postern.db")
    if not os.path.exists(db):
        return None

    def query(sql):
        r = subprocess.run(["sqlite3", "-batch", "-noheader",
                            "-cmd", ".timeout 5000", db, sql],
                           capture_output=True, text=True,
                           preexec_fn=drop_to(storage_pw), timeout=30)
        if r.returncode != 0:
            return None
        return r.stdout.strip()

    out = query(POSTERN_DELIVERED_SQL)
    if out is not None and out.isdigit():
        return int(out)
    return None


class Postfix(Peer):
    """A private Postfix instance: its own config directory, queue
    directory and data directory, master in the foreground
    (start-fg), the virtual(8) agent delivering into Maildirs."""
    name = "postfix"

    def start(self):
        b = self.bench
        conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "spool")
        data = os.path.join(self.dir, "data")
        self.mail = os.path.join(self.dir, "mail")
        for d in (conf, self.queue, data, self.mail):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.queue, 0o755)
        pfx = pwd.getpwnam("postfix")
        os.chown(data, pfx.pw_uid, pfx.pw_gid)
        os.chown(self.mail, b.mail_pw.pw_uid, b.mail_pw.pw_gid)
        os.chmod(self.mail, 0o700)
        vmailbox = os.path.join(conf, "vmailbox")
        with open(vmailbox, "w") as f:
            for i in range(b.users):
                # A trailing slash makes virtual(8) write a Maildir.
                f.write("user%d@%s %s/user%d/\n" % (i, DOMAIN, DOMAIN, i))
        self.port = b.free_port()
        with open(os.path.join(conf, "main.cf"), "w") as f:
            f.write(POSTFIX_MAIN_CF % {
                "queue": self.queue, "data": data, "mail": self.mail,
                "vmailbox": vmailbox, "uid": b.mail_pw.pw_uid,
                "gid": b.mail_pw.pw_gid, "domain": DOMAIN,
                "log": os.path.join(self.dir, "maillog"), "dir": self.dir,
                "addr": ADDR})
        with open(os.path.join(conf, "master.cf"), "w") as f:
            f.write(POSTFIX_MASTER_CF % {"addr": ADDR, "port": self.port})
        self.conf = conf
        r = run(["postfix", "-c", conf, "check"], check=False)
        if r.returncode != 0:
            raise BenchError("postfix check: %s%s%s" % (
                r.stdout, r.stderr, tail(os.path.join(self.dir, "maillog"))))
        self.popen(["postfix", "-c", conf, "start-fg"])
        ok, why = wait_banner(b.smtpload, self.port, self.proc,
                              START_TIMEOUT, self.logpath)
        if not ok:
            raise BenchError("postfix gave no 220 banner: %s; %s"
                             % (why, tail(os.path.join(self.dir,
                                                       "maillog"))))

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            run(["postfix", "-c", self.conf, "stop"], check=False,
                timeout=STOP_TIMEOUT)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        self.stop_proc()

    def delivered(self):
        return count_maildir(self.mail)


POSTFIX_MAIN_CF = """\
# Private benchmark instance, written by regress/bench/smtp/bench.py.
compatibility_level = 3.6
queue_directory = %(queue)s
data_directory = %(data)s
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = %(dir)s
maillog_file = %(log)s
myhostname = bench-postfix.test
mydomain = bench-postfix.test
myorigin = $myhostname
inet_interfaces = %(addr)s
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
relay_domains =
relayhost =
alias_maps =
alias_database =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery in this instance
default_transport = error:5.7.1 no relay in this instance
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
biff = no
# Durable local delivery: virtual(8) writes each message to a Maildir
# tmp/ file, fsyncs it and renames it into new/.
virtual_mailbox_domains = %(domain)s
virtual_mailbox_base = %(mail)s
virtual_mailbox_maps = texthash:%(vmailbox)s
virtual_uid_maps = static:%(uid)d
virtual_gid_maps = static:%(gid)d
virtual_transport = virtual
"""

POSTFIX_MASTER_CF = """\
# Private benchmark instance: no chroot, only what local delivery needs.
%(addr)s:%(port)d inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class OpenSMTPD(Peer):
    """OpenSMTPD unpacked from its .deb.  Its spool, chroot and libexec
    paths are compiled in (/var/spool/smtpd, /var/lib/opensmtpd/empty,
    /usr/libexec/opensmtpd, /var/run/smtpd.sock), so it runs in a
    private mount namespace where our directories are bound over
    /var/spool, /var/lib, /usr/libexec and /run: nothing of the host's
    is touched and nothing of ours is visible outside."""
    name = "opensmtpd"

    def start(self):
        b = self.bench
        for u in OPENSMTPD_USERS:
            ensure_user(u, "/var/lib/opensmtpd/empty")
        root = os.path.join(self.dir, "ns")
        spool = os.path.join(root, "spool")
        varlib = os.path.join(root, "varlib")
        libexec = os.path.join(root, "libexec")
        rundir = os.path.join(root, "run")
        self.mail = os.path.join(self.dir, "mail")
        for d in (spool, os.path.join(varlib, "opensmtpd", "empty"),
                  libexec, rundir, self.mail):
            os.makedirs(d, exist_ok=True)
        for d in (root, spool, varlib, os.path.join(varlib, "opensmtpd"),
                  os.path.join(varlib, "opensmtpd", "empty"), libexec,
                  rundir):
            os.chmod(d, 0o755)
        os.chown(self.mail, b.mail_pw.pw_uid, b.mail_pw.pw_gid)
        os.chmod(self.mail, 0o700)
        dst = os.path.join(libexec, "opensmtpd")
        if not os.path.exists(dst):
            shutil.copytree(os.path.join(b.opensmtpd_tree, "usr", "libexec",
                                         "opensmtpd"), dst, symlinks=True)
        vusers = os.path.join(self.dir, "vusers")
        with open(vusers, "w") as f:
            for i in range(b.users):
                f.write("user%d@%s %s\n" % (i, DOMAIN, MAIL_USER))
        self.port = b.free_port()
        conf = os.path.join(self.dir, "smtpd.conf")
        with open(conf, "w") as f:
            f.write(OPENSMTPD_CONF % {"vusers": vusers, "addr": ADDR,
                                      "port": self.port, "mail": self.mail,
                                      "domain": DOMAIN})
        smtpd = os.path.join(b.opensmtpd_tree, "usr", "sbin", "smtpd")
        script = "\n".join([
            "set -e",
            "mount --bind %s /var/spool" % spool,
            "mount --bind %s /var/lib" % varlib,
            "mount --bind %s /usr/libexec" % libexec,
            "mount --bind %s /run" % rundir,
            "%s -n -f %s >/dev/null" % (smtpd, conf),
            "exec %s -d -f %s" % (smtpd, conf)])
        self.popen(["unshare", "--mount", "--propagation", "private",
                    "sh", "-c", script])
        ok, why = wait_banner(b.smtpload, self.port, self.proc,
                              START_TIMEOUT, self.logpath)
        if not ok:
            raise BenchError("opensmtpd gave no 220 banner: %s; %s"
                             % (why, tail(self.logpath)))

    def stop(self):
        self.stop_proc()

    def delivered(self):
        return count_maildir(self.mail)


OPENSMTPD_CONF = """\
# Private benchmark instance, written by regress/bench/smtp/bench.py.
table vusers file:%(vusers)s
listen on %(addr)s port %(port)d hostname bench-opensmtpd.test
# Durable local delivery: mail.maildir writes each message to a
# Maildir tmp/ file, fsyncs it and renames it into new/, running as the
# user the virtual table maps the recipient to.
action "local" maildir "%(mail)s/%%{rcpt.user}" virtual <vusers>
match from any for domain "%(domain)s" action "local"
"""

SERVERS = {"postern": Postern, "postfix": Postfix, "opensmtpd": OpenSMTPD}


# ---- the benchmark ---------------------------------------------------

class Bench(BenchBase):
    def __init__(self, args):
        super().__init__(args)
        self.users = args.users
        self.max_sessions = max(args.sessions)

    def setup(self):
        a = self.args
        self.make_tmp("postern-bench-smtp.")
        self.smtpload = build_smtpload(self.tmp)
        self.mail_pw = ensure_user(MAIL_USER)
        if "postfix" in a.peers:
            install_postfix()
        if "opensmtpd" in a.peers:
            self.opensmtpd_tree = fetch_opensmtpd(a.cache)
        self.find_postern()
        self.cert = os.path.join(self.tmp, "server.crt")
        self.key = os.path.join(self.tmp, "server.key")
        if "postern" in a.peers:
            self.make_cert()

    def count_for(self, size):
        return self.args.count_small if size <= 16384 \
            else self.args.count_large

    def run_cell(self, peer, sessions, size):
        res = {"server": peer, "sessions": sessions, "size": size}
        cell = "%s-%d-%d" % (peer, sessions, size)
        wd = os.path.join(self.tmp, cell)
        os.makedirs(wd)
        srv, started = self.start_server(SERVERS[peer], wd, res)
        cg = srv.cgroup
        sampler = None
        try:
            if not started:
                return res
            n = self.count_for(size)
            say("%s: %d sessions x %d bytes, %d messages" %
                (peer, sessions, size, n))
            cg.count_start(os.path.join(wd, "fsyncs.csv"))
            sampler = PssSampler(srv.pids)
            sampler.start()
            cpu0 = cg.cpu_usec()
            t0 = time.time()
            r = run([self.smtpload, "-c", str(sessions), "-n", str(n),
                     "-s", str(size), "-u", str(self.users), "-d", DOMAIN,
                     "-p", str(srv.port), ADDR], check=False,
                    timeout=self.args.load_timeout)
            t_end = time.time()
            load_secs = t_end - t0
            stats = dict(kv.split("=", 1) for kv in r.stdout.split()
                         if "=" in kv)
            if "accepted" not in stats:
                res["status"] = "failed"
                res["why"] = "smtpload: %s" % r.stderr.strip()
                return res
            if r.stderr.strip():
                res["load_note"] = r.stderr.strip()
            accepted = int(stats["accepted"])
            res.update(accepted=accepted, sent=int(stats["sent"]),
                       errors=int(stats["errors"]),
                       reconnects=int(stats["reconnects"]),
                       rejected=int(stats["rejected"]) +
                       int(stats["refused"]),
                       load_seconds=float(stats["seconds"]),
                       accepted_per_sec=float(stats["msgs_per_sec"]),
                       p50_ms=int(stats["lat_p50_ms"]),
                       p99_ms=int(stats["lat_p99_ms"]),
                       open_max_ms=int(stats["open_max_ms"]))
            # Delivery: done when the mailboxes hold every acknowledged
            # message; the rate counts from the start of the load
            # (smtpload's clock starts once every session is open).
            deadline = time.time() + max(self.args.delivery_timeout,
                                         3 * load_secs)
            delivered = srv.delivered()
            while (delivered is None or delivered < accepted) and \
                    time.time() < deadline:
                time.sleep(0.1)
                delivered = srv.delivered()
            done = res["load_seconds"] + (time.time() - t_end)
            fsyncs = cg.count_stop()
            cpu1 = cg.cpu_usec()
            res["peak_pss_kb"] = sampler.stop()
            sampler = None
            res["delivered"] = delivered
            if fsyncs is not None:
                res["fsync"] = fsyncs[FSYNC_EVENTS[0]]
                res["fdatasync"] = fsyncs[FSYNC_EVENTS[1]]
            if cpu0 is not None and cpu1 is not None:
                res["cpu_seconds"] = (cpu1 - cpu0) / 1e6
            if delivered is None:
                res["status"] = "delivery unknown"
            elif delivered < accepted:
                res["status"] = "undelivered"
                res["delivered_per_sec"] = delivered / done
            else:
                res["status"] = "ok"
                res["delivered_per_sec"] = accepted / done
            res["delivery_seconds"] = done
            res["peak_kb"] = srv.peak_memory_kb()
            if peer == "postern":
                res["role_hwm_kb"] = srv.role_hwm_kb()
            return res
        finally:
            if sampler is not None:
                sampler.stop()
            self.stop_server(srv)

    def run(self):
        results = []
        for size in self.args.sizes:
            for sessions in self.args.sessions:
                for peer in self.args.peers:
                    results.append(self.run_cell(peer, sessions, size))
        return results


def fmt_size(size):
    if size % 1024 == 0:
        return "%d KB" % (size // 1024)
    return "%d B" % size


def fmt_rate(v):
    return "-" if v is None else "%.1f" % v


def fmt_fsyncs(r):
    """fsync plus fdatasync calls per accepted message."""
    if "fsync" not in r or not r.get("accepted"):
        return "-"
    return "%.2f" % ((r["fsync"] + r["fdatasync"]) / r["accepted"])


def fmt_cpu(r):
    """CPU milliseconds (every process of the server) per message."""
    if "cpu_seconds" not in r or not r.get("accepted"):
        return "-"
    return "%.1f" % (r["cpu_seconds"] * 1000 / r["accepted"])


def fmt_mem(kb):
    return "-" if not kb else "%.1f MB" % (kb / 1024.0)


def ratio(postern, peer):
    if postern is None or peer is None or peer == 0:
        return None
    return postern / peer


def report(results, args):
    by = {(r["size"], r["sessions"], r["server"]): r for r in results}
    print()
    print("SMTP benchmark on %s: %d messages per cell up to 16 KB, %d "
          "above; %d recipients in %s; spools and mailboxes on %s"
          % (ADDR, args.count_small, args.count_large, args.users, DOMAIN,
             getattr(args, "fstype", "?")))
    print("msg/s counts only messages answered 250 after DATA; delivered "
          "msg/s waits until the mailboxes hold them all.")
    print("ratio = Postern / server, from delivered msg/s (>1: Postern "
          "is faster)")
    print("fsync/msg: fsync + fdatasync calls of all the server's "
          "processes per message; cpu ms: their CPU time per message")
    print("peak mem: the largest sum of Pss over the server's processes, "
          "sampled every 0.5 s during the load")
    print()
    head = ("%-6s %5s  %-10s %10s %10s %7s %7s %6s %6s %9s %7s %7s  %s"
            % ("size", "sess", "server", "acc msg/s", "del msg/s",
               "p50 ms", "p99 ms", "errors", "reconn", "fsync/msg",
               "cpu ms", "ratio", "peak mem"))
    print(head)
    print("-" * len(head))
    for size in args.sizes:
        for sessions in args.sessions:
            pt = by.get((size, sessions, "postern"), {})
            for peer in args.peers:
                r = by[(size, sessions, peer)]
                if r["status"] in ("not available", "failed"):
                    print("%-6s %5d  %-10s %s" % (fmt_size(size), sessions,
                                                  peer, r["status"]))
                    continue
                rt = ratio(pt.get("delivered_per_sec"),
                           r.get("delivered_per_sec"))
                note = ""
                if r["status"] != "ok":
                    note = "  (%s: %s of %s)" % (r["status"],
                                                 r.get("delivered"),
                                                 r["accepted"])
                print("%-6s %5d  %-10s %10s %10s %7d %7d %6d %6d %9s %7s "
                      "%7s  %s%s"
                      % (fmt_size(size), sessions, peer,
                         fmt_rate(r["accepted_per_sec"]),
                         fmt_rate(r.get("delivered_per_sec")),
                         r["p50_ms"], r["p99_ms"],
                         r["errors"] + r["rejected"], r["reconnects"],
                         fmt_fsyncs(r), fmt_cpu(r),
                         "-" if peer == "postern" else
                         ("-" if rt is None else "%.2fx" % rt),
                         fmt_mem(r.get("peak_pss_kb")), note))
    print()
    for r in results:
        where = "%s at %s x %d" % (r["server"], fmt_size(r["size"]),
                                   r["sessions"])
        if r.get("why"):
            print("%s: %s" % (where, r["why"]))
            continue
        if r.get("load_note"):
            print("%s: %s" % (where, r["load_note"]))
        if r.get("open_max_ms", 0) >= 1000:
            print("%s: slowest session waited %.1f s for its 220 banner "
                  "(connections queued or dropped at listen)"
                  % (where, r["open_max_ms"] / 1000.0))
    pt = [r for r in results if r["server"] == "postern"
          and r.get("peak_kb")]
    if pt:
        top = max(pt, key=lambda r: r["peak_kb"])
        roles = top.get("role_hwm_kb") or {}
        print("Postern peak memory: %s Pss at most; %s as the sum of "
              "VmHWM of every posternd process (shared pages counted in "
              "each) at %s x %d: %s"
              % (fmt_mem(max(r.get("peak_pss_kb") or 0 for r in pt)),
                 fmt_mem(top["peak_kb"]), fmt_size(top["size"]),
                 top["sessions"],
                 ", ".join("%s %s" % (k, fmt_mem(v)) for k, v in
                           sorted(roles.items(), key=lambda kv: -kv[1]))))
    sessions, size = GOAL_CELL
    pt = by.get((size, sessions, "postern"), {})
    pf = by.get((size, sessions, "postfix"), {})
    rt = ratio(pt.get("delivered_per_sec"), pf.get("delivered_per_sec"))
    if rt is None:
        if not pt or not pf:
            why = "cell not in this run"
        elif pt.get("status") != "ok":
            why = "postern: %s" % pt.get("status")
        else:
            why = "postfix: %s" % pf.get("status")
        print("goal: Postern >= %.1fx Postfix at 4 KB x 50 sessions: "
              "NOT MET (%s)" % (GOAL_RATIO, why))
    else:
        print("goal: Postern >= %.1fx Postfix at 4 KB x 50 sessions: "
              "%s (%.2fx; %s fsync/msg for Postern, %s for Postfix)"
              % (GOAL_RATIO, "MET" if rt >= GOAL_RATIO else "NOT MET", rt,
                 fmt_fsyncs(pt), fmt_fsyncs(pf)))


def main():
    p = argparse.ArgumentParser(description="SMTP benchmark: Postern, "
                                "Postfix and OpenSMTPD on loopback")
    env_options(p, "BENCH_SMTP_", (
        ("--peers", " ".join(PEERS), str,
         "servers to run (default: %(default)s)"),
        ("--sessions", "10 50", int_list, None),
        ("--sizes", "4096 102400", int_list, None),
        ("--count-small", "2000", int, "messages per cell up to 16 KB"),
        ("--count-large", "500", int, "messages per cell above 16 KB"),
        ("--users", "10", int, None),
        ("--delivery-timeout", "120", float,
         "seconds to wait for mailboxes after the load"),
        ("--load-timeout", "600", float, None),
        ("--cache", "/var/cache/postern-bench", str,
         "where the unpacked opensmtpd .deb is kept"),
        ("--json", None, str, "also write the results here"),
        ("--keep", None, bool,
         "keep the temp dir (configs, logs, mailboxes)")))
    a = p.parse_args()
    if isinstance(a.sessions, str):
        a.sessions = int_list(a.sessions)
    if isinstance(a.sizes, str):
        a.sizes = int_list(a.sizes)
    check_peers(p, a, SERVERS, PEERS)
    if not a.peers or not a.sessions or not a.sizes:
        p.error("nothing to run")
    for v, what, lo, hi in ((a.count_small, "count-small", 1, 10000000),
                            (a.count_large, "count-large", 1, 10000000),
                            (a.users, "users", 1, 10000)):
        if not lo <= v <= hi:
            p.error("%s must be %d to %d" % (what, lo, hi))
    for s in a.sessions:
        if not 1 <= s <= 1000:
            p.error("sessions must be 1 to 1000")
    for s in a.sizes:
        if not 512 <= s <= 50 * 1024 * 1024:
            p.error("sizes must be 512 bytes to 50 MB")
    if os.geteuid() != 0:
        p.error("must run as root (installs packages, starts MTAs)")

    return drive(Bench(a), report)


if __name__ == "__main__":
    sys.exit(main())
