"""storaged: the store it makes and keeps.  Each test drives the real
daemon (posternctl through the control role) and then reads the SQLite
files the way an administrator would, from a copy, after a stop."""
import ctypes
import hashlib
import os
import pwd
import re
import smtplib
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import (POSTERNCTL, START_TIMEOUT, STORAGE_USER, db_copy,
                      db_to_storage_user, fts_ids)

SCHEMA_VERSION = 4      # what this posternd knows; bump with a migration
PASSWORD = "Obsidian-Walrus-9137-nowhere"
OTHER_PASSWORD = "Copper-Lantern-5521-nowhere"
DEFAULT_MAILBOXES = {
    ("INBOX", None), ("Drafts", "\\Drafts"), ("Sent", "\\Sent"),
    ("Junk", "\\Junk"), ("Trash", "\\Trash"), ("Archive", "\\Archive"),
}
ARGON2 = ctypes.CDLL("libargon2.so.1")
ARGON2.argon2id_verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p,
                                   ctypes.c_size_t]
ARGON2.argon2id_hash_encoded.argtypes = [
    ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_char_p,
    ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_size_t,
    ctypes.c_char_p, ctypes.c_size_t]


def argon2id_matches(encoded, password):
    pw = password.encode()
    return ARGON2.argon2id_verify(encoded.encode(), pw, len(pw)) == 0


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout.splitlines()


def fail(r):
    """The request failed with one line; the line without the prefix."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("posternctl: "), r.stderr
    return lines[0][len("posternctl: "):]


def stopped(p):
    p.stop()
    assert p.proc.returncode == 0, p.logtext()


def restart(p):
    """Starts a stopped daemon again; its log is appended to."""
    seen = p.logtext().count("startup complete")
    p.start(wait=False)
    deadline = time.time() + START_TIMEOUT
    while p.logtext().count("startup complete") == seen:
        assert p.proc.poll() is None, p.logtext()
        assert time.time() < deadline, p.logtext()
        time.sleep(0.05)


def snapshot(p):
    """A connection to a copy of the store (database and its WAL)."""
    return sqlite3.connect(db_copy(p))


def state_bytes(p):
    """Every byte under the state directory, for a search."""
    out = b""
    for top, _, files in os.walk(p.statedir):
        for name in files:
            with open(os.path.join(top, name), "rb") as f:
                out += f.read()
    return out


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def prepared_store(postern_factory, sql):
    """A daemon not yet started, with a store made by sql."""
    p = postern_factory(start=False)
    pw = pwd.getpwnam(STORAGE_USER)
    os.mkdir(p.statedir, 0o700)
    os.chown(p.statedir, pw.pw_uid, pw.pw_gid)
    db = os.path.join(p.statedir, "postern.db")
    conn = sqlite3.connect(db)
    conn.executescript(sql)
    conn.commit()
    conn.close()
    os.chown(db, pw.pw_uid, pw.pw_gid)
    return p, db


def refused(p, needle):
    p.start(wait=False)
    try:
        rc = p.proc.wait(START_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise AssertionError("posternd did not stop:\n" + p.logtext())
    assert rc != 0
    assert needle in p.logtext(), p.logtext()
    assert "startup complete" not in p.logtext()


# --- a new store ------------------------------------------------------


def test_new_store(postern_factory):
    p = postern_factory(domains=["example.test", "second.test"])
    stopped(p)
    pw = pwd.getpwnam(STORAGE_USER)
    db = os.path.join(p.statedir, "postern.db")
    st = os.stat(db)
    assert st.st_uid == pw.pw_uid
    # WAL is recorded in the header: file format versions 2 and 2.
    with open(db, "rb") as f:
        header = f.read(20)
    assert header[:16] == b"SQLite format 3\0"
    assert header[18:20] == b"\x02\x02"
    blobs = os.stat(os.path.join(p.statedir, "blobs"))
    assert blobs.st_uid == pw.pw_uid and (blobs.st_mode & 0o777) == 0o700
    conn = snapshot(p)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() \
        == [(SCHEMA_VERSION,)]
    assert [r[0] for r in conn.execute(
        "SELECT name FROM domains ORDER BY name")] == ["example.test",
                                                        "second.test"]
    # Every table that holds user data carries the account.
    for table in ("addresses", "aliases", "mailboxes"):
        cols = [r[1] for r in conn.execute("PRAGMA table_info(%s)" % table)]
        assert "account_id" in cols, table
    assert "storaged: /postern.db: migrated to schema version %d" \
        % SCHEMA_VERSION in p.logtext()


def test_account_rows_and_password_hash(postern):
    p = postern
    ok(p.ctl("account", "add", "Alice@Example.TEST", input=PASSWORD + "\n"))
    assert ok(p.ctl("account", "list")) == ["Alice@example.test"]
    stopped(p)
    conn = snapshot(p)
    rows = conn.execute("SELECT id, address, password FROM accounts") \
        .fetchall()
    assert len(rows) == 1
    account_id, address, encoded = rows[0]
    assert address == "Alice@example.test"
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2id_matches(encoded, PASSWORD)
    assert not argon2id_matches(encoded, OTHER_PASSWORD)
    assert conn.execute("SELECT account_id, address FROM addresses") \
        .fetchall() == [(account_id, "Alice@example.test")]
    boxes = conn.execute("SELECT account_id, name, special_use, uidvalidity,"
                         " uidnext, subscribed FROM mailboxes").fetchall()
    assert {(b[1], b[2]) for b in boxes} == DEFAULT_MAILBOXES
    for b in boxes:
        assert b[0] == account_id and b[3] > 0 and b[4] == 1 and b[5] == 1
    # The clear text is nowhere: not in the store, not in the log.
    assert PASSWORD.encode() not in state_bytes(p)
    assert PASSWORD not in p.logtext()


def test_passwd_replaces_the_hash(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    ok(p.ctl("account", "passwd", "ALICE@example.test",
             input=OTHER_PASSWORD + "\n"))
    assert fail(p.ctl("account", "passwd", "bob@example.test",
                      input=OTHER_PASSWORD + "\n")) \
        == "no account bob@example.test"
    stopped(p)
    (encoded,) = snapshot(p).execute(
        "SELECT password FROM accounts").fetchone()
    assert argon2id_matches(encoded, OTHER_PASSWORD)
    assert not argon2id_matches(encoded, PASSWORD)
    data = state_bytes(p)
    assert PASSWORD.encode() not in data
    assert OTHER_PASSWORD.encode() not in data
    assert OTHER_PASSWORD not in p.logtext()


def test_addresses_compare_without_case(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    assert fail(p.ctl("account", "add", "ALICE@EXAMPLE.TEST",
                      input=PASSWORD + "\n")) \
        == "account ALICE@example.test exists"
    assert fail(p.ctl("alias", "add", "Alice@Example.Test",
                      "bob@remote.test")) \
        == "alias Alice@example.test would shadow account alice@example.test"
    ok(p.ctl("alias", "add", "info@example.test", "alice@example.test"))
    assert fail(p.ctl("account", "add", "INFO@example.test",
                      input=PASSWORD + "\n")) \
        == "address INFO@example.test is an alias"
    assert fail(p.ctl("alias", "add", "info@EXAMPLE.test",
                      "ALICE@example.test")) \
        == "alias info@example.test -> ALICE@example.test exists"
    assert fail(p.ctl("alias", "add", "x@remote.test", "alice@example.test")) \
        == "domain remote.test is not a local domain"


def test_account_delete_takes_its_rows(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    p.add_account("bob@example.test", PASSWORD)
    ok(p.ctl("alias", "add", "team@example.test", "alice@example.test"))
    ok(p.ctl("alias", "add", "team@example.test", "bob@example.test"))
    ok(p.ctl("alias", "add", "team@example.test", "carol@remote.test"))
    ok(p.ctl("account", "del", "alice@example.test"))
    assert ok(p.ctl("alias", "list")) == [
        "team@example.test -> bob@example.test",
        "team@example.test -> carol@remote.test"]
    stopped(p)
    conn = snapshot(p)
    assert [r[0] for r in conn.execute("SELECT address FROM accounts")] \
        == ["bob@example.test"]
    (bob,) = conn.execute("SELECT id FROM accounts").fetchone()
    for table in ("addresses", "mailboxes"):
        ids = {r[0] for r in conn.execute("SELECT account_id FROM %s"
                                          % table)}
        assert ids == {bob}, table
    assert conn.execute("SELECT count(*) FROM mailboxes").fetchone()[0] == 6


def test_account_delete_empties_its_index_rows(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    p.add_account("bob@example.test", PASSWORD)
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as s:
        for rcpt in ("alice@example.test", "alice@example.test",
                     "bob@example.test"):
            s.sendmail("x@example.net", [rcpt], b"Subject: hi\r\n\r\n"
                       b"indexed words\r\n")
    p.wait_messages("alice@example.test", 2)
    p.wait_messages("bob@example.test", 1)
    assert len(fts_ids(p, count=3)) == 3
    ok(p.ctl("account", "del", "alice@example.test"))
    assert len(fts_ids(p, count=1)) == 1
    stopped(p)
    conn = snapshot(p)
    left = sorted(r[0] for r in conn.execute("SELECT id FROM messages"))
    assert len(left) == 1
    assert fts_ids(p) == left


def test_index_catches_up_after_a_kill(postern):
    """Index jobs live in memory only: killed before the indexer ran
    them, storaged finds at start what the index lacks."""
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as s:
        for i in range(20):
            s.sendmail("x@example.net", ["alice@example.test"],
                       b"Subject: %d\r\n\r\nwords %d\r\n" % (i, i))
    p.wait_messages("alice@example.test", 20)
    p.kill_all()
    p.log.close()
    p.restart()
    conn = snapshot(p)
    ids = sorted(r[0] for r in conn.execute("SELECT id FROM messages"))
    assert len(ids) == 20
    assert fts_ids(p, count=20) == ids


def test_alias_made_before_its_account_follows_it(postern):
    p = postern
    ok(p.ctl("alias", "add", "sales@example.test", "dave@example.test"))
    p.add_account("dave@example.test", PASSWORD)
    ok(p.ctl("account", "del", "dave@example.test"))
    assert ok(p.ctl("alias", "list")) == []


def test_catch_all_alias(postern):
    p = postern
    p.add_account("alice@example.test", PASSWORD)
    ok(p.ctl("alias", "add", "@Example.TEST", "alice@example.test"))
    assert ok(p.ctl("alias", "list")) == ["@example.test -> alice@example.test"]
    assert fail(p.ctl("alias", "add", "@example.test",
                      "Alice@example.test")) \
        == "alias @example.test -> Alice@example.test exists"
    assert fail(p.ctl("alias", "add", "@remote.test", "alice@example.test")) \
        == "domain remote.test is not a local domain"
    r = p.ctl("alias", "add", "@", "alice@example.test")
    assert r.returncode != 0 and "invalid address" in r.stderr, r.stderr
    r = p.ctl("alias", "add", "@exa_mple.test", "alice@example.test")
    assert r.returncode != 0 and "invalid address" in r.stderr, r.stderr
    ok(p.ctl("alias", "del", "@example.test"))
    assert ok(p.ctl("alias", "list")) == []


def test_domain_delete_rules(postern):
    p = postern
    assert fail(p.ctl("domain", "del", "example.test")) \
        == "domain example.test is set in %s" % p.conf
    ok(p.ctl("domain", "add", "Other.Test"))
    assert fail(p.ctl("domain", "add", "other.test")) \
        == "domain other.test exists"
    p.add_account("alice@other.test", PASSWORD)
    ok(p.ctl("alias", "add", "a@other.test", "alice@other.test"))
    assert fail(p.ctl("domain", "del", "other.test")) \
        == ("domain other.test still has 1 account and 1 alias: "
            "delete them first")
    ok(p.ctl("account", "del", "alice@other.test"))
    ok(p.ctl("domain", "del", "OTHER.test"))
    assert fail(p.ctl("domain", "del", "other.test")) \
        == "no domain other.test"
    assert ok(p.ctl("domain", "list")) == ["example.test"]
    assert fail(p.ctl("account", "add", "x@other.test",
                      input=PASSWORD + "\n")) \
        == "domain other.test is not a local domain"


def test_reload_adds_config_domains(postern):
    p = postern
    p.domains = ["example.test", "added.test"]
    p.write_config()
    ok(p.ctl("reload"))
    p.wait_log("storaged: domain added.test added from")
    assert ok(p.ctl("domain", "list")) == ["added.test", "example.test"]
    assert fail(p.ctl("domain", "del", "added.test")) \
        == "domain added.test is set in %s" % p.conf


def test_restart_keeps_the_store(postern):
    p = postern
    ok(p.ctl("domain", "add", "kept.test"))
    p.add_account("alice@kept.test", PASSWORD)
    ok(p.ctl("alias", "add", "root@kept.test", "alice@kept.test"))
    stopped(p)
    restart(p)
    assert ok(p.ctl("domain", "list")) == ["example.test", "kept.test"]
    assert ok(p.ctl("account", "list")) == ["alice@kept.test"]
    assert ok(p.ctl("alias", "list")) == ["root@kept.test -> alice@kept.test"]
    assert p.logtext().count("migrated to schema version") == SCHEMA_VERSION
    stopped(p)
    assert snapshot(p).execute("SELECT count(*) FROM mailboxes") \
        .fetchone()[0] == 6


def test_concurrent_account_adds(postern):
    """Hashing runs in the pool: many adds at once all land, each with
    its own salt, and a list is answered meanwhile."""
    p = postern
    n = 8
    procs = [subprocess.Popen([POSTERNCTL, "-s", p.sock, "account", "add",
                               "user%d@example.test" % i],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for i in range(n)]
    for i, proc in enumerate(procs):
        proc.stdin.write("%s-%d\n" % (PASSWORD, i))
        proc.stdin.close()
    assert ok(p.ctl("domain", "list")) == ["example.test"]
    for proc in procs:
        assert proc.wait(60) == 0, proc.stderr.read()
    assert sorted(ok(p.ctl("account", "list"))) \
        == sorted("user%d@example.test" % i for i in range(n))
    stopped(p)
    rows = snapshot(p).execute("SELECT address, password FROM accounts") \
        .fetchall()
    salts = set()
    for address, encoded in rows:
        i = int(address[len("user"):address.index("@")])
        assert argon2id_matches(encoded, "%s-%d" % (PASSWORD, i))
        salts.add(encoded.split("$")[4])
    assert len(salts) == n


# --- acceptance: the spool, the blobs, the group commit ----------------


def send_one(p, rcpt, body):
    with smtplib.SMTP("127.0.0.1", p.ports["smtp"], timeout=30) as s:
        s.ehlo("client.example.net")
        s.sendmail("someone@example.net", [rcpt], body)


def as_storage_user(path):
    pw = pwd.getpwnam(STORAGE_USER)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def test_start_up_clears_what_a_crash_left(postern_factory):
    """Spool files never acknowledged, blobs nobody names and queue
    entries whose blob never reached the disk go at start-up; what is
    referenced stays."""
    p = postern_factory(listeners=["smtp"])
    p.add_account("alice@example.test", PASSWORD)
    body = b"Subject: kept\r\n\r\nkept body\r\n"
    send_one(p, "alice@example.test", body)
    p.wait_messages("alice@example.test", 1)
    stopped(p)
    blobs = os.path.join(p.statedir, "blobs")
    spool = os.path.join(p.statedir, "spool")
    kept = os.listdir(blobs)
    assert len(kept) == 1 and os.listdir(spool) == []
    for path, data in ((os.path.join(spool, "00000000deadbeef"), b"half"),
                       (os.path.join(blobs, "ab" * 32), b"nobody"),
                       (os.path.join(blobs, "README"), b"not a blob")):
        with open(path, "wb") as f:
            f.write(data)
        as_storage_user(path)
    db = os.path.join(p.statedir, "postern.db")
    conn = sqlite3.connect(db)
    # 0x1234: its blob's name never made it; 0x1235: its bytes did not.
    torn = os.path.join(blobs, "ef" * 32)
    with open(torn, "wb") as f:
        f.write(b"\0" * 10)
    as_storage_user(torn)
    conn.executescript("""
        INSERT INTO blobs VALUES ('%s', 10, 1);
        INSERT INTO queue VALUES (4660, '%s', 'lost@example.net', 0, 0, 0,
            '', '', '127.0.0.1', 'client', 1700000000);
        INSERT INTO queue_rcpts (queue_id, idx, address, kind, notify,
            orcpt, status) VALUES (4660, 0, 'alice@example.test', 0, 0,
            '', 0);
        INSERT INTO blobs VALUES ('%s', 10, 1);
        INSERT INTO queue VALUES (4661, '%s', 'torn@example.net', 0, 0, 0,
            '', '', '127.0.0.1', 'client', %d);
        INSERT INTO queue_rcpts (queue_id, idx, address, kind, notify,
            orcpt, status) VALUES (4661, 0, 'alice@example.test', 0, 0,
            '', 0);
    """ % ("cd" * 32, "cd" * 32, "ef" * 32, "ef" * 32, int(time.time())))
    conn.commit()
    conn.close()
    db_to_storage_user(p)
    restart(p)
    log = p.logtext()
    assert "storaged: /spool: removed 1 unfinished message" in log, log
    assert "storaged: /blobs: removed 1 unreferenced blob" in log, log
    assert "storaged: /blobs/README: not a blob, left alone" in log, log
    for qid in ("0000000000001234", "0000000000001235"):
        assert "queue entry %s: its message never reached the disk and " \
            "was never acknowledged; removed" % qid in log, log
    assert os.listdir(spool) == []
    assert sorted(os.listdir(blobs)) == sorted(kept + ["README"])
    assert p.wait_messages("alice@example.test", 1)[0].endswith(body)
    stopped(p)
    conn = snapshot(p)
    assert conn.execute("SELECT count(*) FROM queue").fetchone()[0] == 0
    assert conn.execute("SELECT hash FROM blobs").fetchall() == \
        [(kept[0],)]


def test_group_commit_shares_flushes(postern_factory):
    """Messages committed at the same moment share one batch, and each
    is acknowledged with its own queue id."""
    p = postern_factory(listeners=["smtp"])
    p.add_account("alice@example.test", PASSWORD)
    p.add_account("bob@example.test", PASSWORD)
    sessions = 20
    shared = 0
    for attempt in range(5):
        go = threading.Barrier(sessions)
        ids, errors = [], []

        def session(n):
            try:
                with smtplib.SMTP("127.0.0.1", p.ports["smtp"],
                                  timeout=30) as s:
                    s.ehlo("client.example.net")
                    s.mail("someone@example.net")
                    s.rcpt("alice@example.test")
                    s.rcpt("bob@example.test")
                    code, _ = s.docmd("DATA")
                    assert code == 354
                    s.send(b"Subject: same\r\n\r\nsame body\r\n")
                    go.wait()
                    s.send(b".\r\n")
                    code, text = s.getreply()
                    assert code == 250, (code, text)
                    ids.append(re.search(rb"queued as ([0-9a-f]{16})",
                                         text).group(1))
            except Exception as e:
                errors.append(repr(e))

        threads = [threading.Thread(target=session, args=(n,))
                   for n in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        assert len(set(ids)) == sessions
        sizes = [int(m.group(2)) for m in re.finditer(
            r"group commit: (\d+) of (\d+) messages", p.logtext())]
        shared = max(sizes)
        if shared > 1:
            break
    assert shared > 1, "no two commits shared a batch in 5 tries"
    total = sessions * (attempt + 1)
    p.wait_messages("alice@example.test", total, timeout=30)
    p.wait_messages("bob@example.test", total, timeout=30)
    stopped(p)
    conn = snapshot(p)
    # Each message (its own trace header) is one blob, which both of its
    # delivered rows name; the queue is empty again.
    assert conn.execute("SELECT count(*), min(refs), max(refs) "
                        "FROM blobs").fetchone() == (total, 2, 2)
    assert conn.execute("SELECT count(*) FROM queue").fetchone()[0] == 0
    assert len(os.listdir(os.path.join(p.statedir, "blobs"))) == total


def test_queue_load_streams_a_long_queue(postern_factory):
    """More entries than one pass of QUEUE_LOAD sends reach queue, and
    queue remove takes one away with its blob."""
    p = postern_factory(listeners=["smtp"])
    stopped(p)
    blobs = os.path.join(p.statedir, "blobs")
    n = 300
    rows = []
    for i in range(n):
        data = b"Subject: held %d\r\n\r\nheld\r\n" % i
        h = hashlib.sha256(data).hexdigest()
        path = os.path.join(blobs, h)
        with open(path, "wb") as f:
            f.write(data)
        as_storage_user(path)
        qid = 0x1000 + i
        rows.append("INSERT INTO blobs VALUES ('%s', %d, 1);" % (h, len(data)))
        rows.append("INSERT INTO queue VALUES (%d, '%s', 'a@example.test', "
                    "0, 0, 0, '', 'a@example.test', '127.0.0.1', 'c', "
                    "%d);" % (qid, h, int(time.time())))
        rows.append("INSERT INTO queue_rcpts (queue_id, idx, address, kind, "
                    "notify, orcpt, status) VALUES (%d, 0, "
                    "'r%d@remote.example', 1, 0, '', 1);" % (qid, i))
    db = os.path.join(p.statedir, "postern.db")
    conn = sqlite3.connect(db)
    conn.executescript("\n".join(rows))
    conn.commit()
    conn.close()
    db_to_storage_user(p)
    restart(p)
    p.wait_log("queue: %d messages" % n)
    shown = ok(p.ctl("show", "queue"))
    for i in range(n):
        assert any("r%d@remote.example" % i in line for line in shown), i
    qid = "%016x" % 0x1000
    h = hashlib.sha256(b"Subject: held 0\r\n\r\nheld\r\n").hexdigest()
    ok(p.ctl("queue", "remove", qid))
    assert fail(p.ctl("queue", "remove", qid)) != ""
    assert not os.path.exists(os.path.join(blobs, h))
    assert len(os.listdir(blobs)) == n - 1
    stopped(p)
    conn = snapshot(p)
    assert conn.execute("SELECT count(*) FROM queue").fetchone()[0] == n - 1
    assert conn.execute("SELECT count(*) FROM blobs").fetchone()[0] == n - 1


# --- stores of earlier versions ---------------------------------------

# Migration 1 as released, to make a store of schema version 1.
SCHEMA_1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version (version) VALUES (1);
CREATE TABLE domains (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE COLLATE NOCASE,
  created INTEGER NOT NULL);
CREATE TABLE accounts (
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id),
  address TEXT NOT NULL UNIQUE COLLATE NOCASE,
  password TEXT NOT NULL,
  created INTEGER NOT NULL);
CREATE INDEX accounts_domain ON accounts(domain_id);
CREATE TABLE addresses (
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  address TEXT NOT NULL UNIQUE COLLATE NOCASE);
CREATE INDEX addresses_account ON addresses(account_id);
CREATE TABLE aliases (
  id INTEGER PRIMARY KEY,
  domain_id INTEGER NOT NULL REFERENCES domains(id),
  alias TEXT NOT NULL COLLATE NOCASE,
  target TEXT NOT NULL COLLATE NOCASE,
  account_id INTEGER REFERENCES accounts(id) ON DELETE CASCADE,
  UNIQUE (alias, target));
CREATE INDEX aliases_domain ON aliases(domain_id);
CREATE INDEX aliases_account ON aliases(account_id);
CREATE INDEX aliases_target ON aliases(target);
CREATE TABLE mailboxes (
  id INTEGER PRIMARY KEY,
  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  special_use TEXT,
  uidvalidity INTEGER NOT NULL,
  uidnext INTEGER NOT NULL DEFAULT 1,
  highestmodseq INTEGER NOT NULL DEFAULT 1,
  subscribed INTEGER NOT NULL DEFAULT 1,
  UNIQUE (account_id, name));
"""


def argon2id_hash(password):
    out = ctypes.create_string_buffer(128)
    pw = password.encode()
    salt = b"0123456789abcdef"
    assert ARGON2.argon2id_hash_encoded(2, 19456, 1, pw, len(pw), salt,
                                        len(salt), 32, out, len(out)) == 0
    return out.value.decode()


def test_migration_from_schema_1(postern_factory):
    """A store of the first release comes up to date with its rows."""
    encoded = argon2id_hash(PASSWORD)
    rows = ["INSERT INTO domains VALUES (1, 'example.test', 1700000000);",
            "INSERT INTO domains VALUES (2, 'old.test', 1700000001);",
            "INSERT INTO accounts VALUES (7, 2, 'Carol@old.test', '%s', "
            "1700000002);" % encoded,
            "INSERT INTO addresses VALUES (7, 'Carol@old.test');",
            "INSERT INTO addresses VALUES (7, 'c@old.test');",
            "INSERT INTO aliases VALUES (1, 2, 'boss@old.test', "
            "'Carol@old.test', 7);"]
    for i, (name, use) in enumerate(sorted(DEFAULT_MAILBOXES,
                                           key=lambda m: m[0])):
        rows.append("INSERT INTO mailboxes (id, account_id, name, "
                    "special_use, uidvalidity, uidnext) VALUES (%d, 7, "
                    "'%s', %s, 1700000002, 5);"
                    % (i + 1, name, "NULL" if use is None else
                       "'%s'" % use.replace("'", "''")))
    p, db = prepared_store(postern_factory, SCHEMA_1 + "\n".join(rows))
    before = snapshot_rows(sqlite3.connect(db))
    p.start()
    assert "storaged: /postern.db: migrated to schema version 2" \
        in p.logtext()
    assert "migrated to schema version 1" not in p.logtext()
    assert ok(p.ctl("domain", "list")) == ["example.test", "old.test"]
    assert ok(p.ctl("account", "list")) == ["Carol@old.test"]
    assert ok(p.ctl("alias", "list")) == ["boss@old.test -> Carol@old.test"]
    # The old rows still work: an alias to a new account follows it.
    ok(p.ctl("alias", "add", "new@old.test", "Carol@old.test"))
    stopped(p)
    conn = snapshot(p)
    assert conn.execute("SELECT version FROM schema_version").fetchall() \
        == [(SCHEMA_VERSION,)]
    after = snapshot_rows(conn)
    for table, got in before.items():
        assert set(got) <= set(after[table]), table
    # The first release wrote no clean-shutdown file: its last stop
    # may have been a crash, so UIDs and MODSEQs move on (posternd.8).
    assert "did not stop cleanly" in p.logtext()
    assert conn.execute("SELECT password, modseq FROM accounts "
                        "WHERE id = 7").fetchone() == (encoded, 1 + 16384)
    assert set(conn.execute("SELECT uidnext, highestmodseq FROM mailboxes "
                            "WHERE account_id = 7").fetchall()) == \
        {(5 + 16384, 1 + 16384)}
    assert argon2id_matches(encoded, PASSWORD)
    tables = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"blobs", "queue", "queue_rcpts", "messages",
            "mailbox_messages", "keywords", "changes"} <= tables
    for table in ("blobs", "queue", "queue_rcpts", "messages"):
        assert conn.execute("SELECT count(*) FROM %s" % table) \
            .fetchone()[0] == 0, table


def snapshot_rows(conn):
    """Every row of the schema-1 tables, as tuples of the first columns
    (not the counters, which a first start moves on)."""
    out = {}
    for table, cols in (("domains", "id, name, created"),
                        ("accounts", "id, domain_id, address, password, "
                         "created"),
                        ("addresses", "account_id, address"),
                        ("aliases", "id, domain_id, alias, target, "
                         "account_id"),
                        ("mailboxes", "id, account_id, name, special_use, "
                         "uidvalidity, subscribed")):
        out[table] = conn.execute("SELECT %s FROM %s" % (cols, table)) \
            .fetchall()
    return out


# --- stores storaged must not touch -------------------------------------


def test_newer_schema_is_refused(postern_factory):
    p, db = prepared_store(postern_factory, """
        CREATE TABLE schema_version (version INTEGER NOT NULL);
        INSERT INTO schema_version VALUES (99);
        CREATE TABLE future (x TEXT);
        INSERT INTO future VALUES ('kept');
    """)
    before = sha256(db)
    refused(p, "storaged: /postern.db: schema version 99 is newer than this "
            "posternd knows (%d); refusing to start" % SCHEMA_VERSION)
    assert sha256(db) == before
    assert sorted(os.listdir(p.statedir)) == ["postern.db"]


def test_failed_migration_leaves_the_store(postern_factory):
    # A table in the way makes migration 1 fail half-way.
    p, db = prepared_store(postern_factory, """
        CREATE TABLE domains (name TEXT);
        INSERT INTO domains VALUES ('precious.test');
    """)
    before = sha256(db)
    refused(p, "storaged: /postern.db: migration 1 failed: table domains "
            "already exists; the store is left at schema version 0")
    assert sha256(db) == before
    assert sorted(os.listdir(p.statedir)) == ["postern.db"]
    conn = sqlite3.connect("file:%s?mode=ro&immutable=1" % db, uri=True)
    assert [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")] == ["domains"]


def test_wal_checkpoint_inside_the_sandbox(postern):
    """Enough commits for SQLite's automatic checkpoint (1000 WAL pages)
    to run after the sandbox is on; a forbidden call would kill
    storaged and with it the daemon."""
    p = postern
    db = os.path.join(p.statedir, "postern.db")
    before = os.stat(db).st_size
    for i in range(400):
        ok(p.ctl("alias", "add", "a%d@example.test" % i,
                 "someone%d@remote.test" % i))
    assert os.stat(db).st_size > before
    assert p.proc.poll() is None
    assert len(ok(p.ctl("alias", "list"))) == 400
    stopped(p)
