"""The full-text index under removal: storaged's indexer leaves a
removed message's index row in place, dead, and purges dead rows when
it has been idle a while; SEARCH TEXT and BODY must never find a
message by a removed message's text, not even one that got the removed
message's id (SQLite hands out the highest id again once it is gone).
And the indexer's place below the sessions' threads."""
import os
import sqlite3
import sys
import time

import pytest

from conftest import IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER, \
    TIME_SCALE, db_to_storage_user, imap_append, imap_client


def search(c, criteria):
    out = c.ok("SEARCH " + criteria)
    lines = [ln for ln in out if ln.startswith("* SEARCH")]
    assert len(lines) == 1, (criteria, out)
    return sorted(int(x) for x in lines[0].split()[2:])


def search_soon(c, criteria, want, timeout=5.0):
    """SEARCH until it answers want: the indexer runs a moment behind."""
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        got = search(c, criteria)
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.05)


def query(p, db, sql):
    """Rows of sql on one of p's databases, read while it runs."""
    conn = sqlite3.connect("file:%s?mode=ro" % os.path.join(p.statedir, db),
                           uri=True)
    conn.execute("PRAGMA busy_timeout = 5000")
    rows = conn.execute(sql).fetchall()
    conn.close()
    return rows


def message_ids(p):
    return sorted(r[0] for r in query(p, "postern.db",
                                      "SELECT id FROM messages"))


def index_rows(p):
    return sorted(r[0] for r in query(p, "postern-fts.db",
                                      "SELECT rowid FROM messages_fts"))


def index_rows_soon(p, want, timeout=10.0):
    deadline = time.time() + timeout * TIME_SCALE
    while True:
        got = index_rows(p)
        if got == want or time.time() > deadline:
            return got
        time.sleep(0.1)


def note(subject, body):
    return ("From: a@a.example\r\nTo: %s\r\nSubject: %s\r\n\r\n%s\r\n"
            % (IMAP_USER, subject, body))


def append_ok(c, mailbox, text):
    tagged = imap_append(c, mailbox, text)
    assert tagged.split()[1] == "OK", tagged


def expunge_last(c, seq):
    c.ok("STORE %d +FLAGS.SILENT (\\Deleted)" % seq)
    c.ok("EXPUNGE")


def fts_daemon(postern_factory):
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    return p


def test_expunged_message_leaves_search_where_a_copy_stays(postern_factory):
    """Two rows of the same text (the same blob) in two mailboxes, and a
    COPY sharing the first's row: expunged from every mailbox that holds
    it, the first is found nowhere, the second still is, and the first's
    index row is purged once the indexer is idle."""
    p = fts_daemon(postern_factory)
    c = imap_client(p)
    c.ok("CREATE Other")
    c.ok("CREATE Shelf")
    text = note("tapir", "the quokkaberry harvest, row of its own")
    append_ok(c, "INBOX", text)
    append_ok(c, "Other", text)
    c.ok("SELECT INBOX")
    c.ok("COPY 1 Shelf")
    assert search_soon(c, "TEXT quokkaberry", [1]) == [1]
    assert len(message_ids(p)) == 2
    assert index_rows_soon(p, message_ids(p)) == message_ids(p)

    expunge_last(c, 1)
    assert search(c, "TEXT quokkaberry") == []
    c.ok("SELECT Shelf")
    assert search(c, "TEXT quokkaberry") == [1]
    expunge_last(c, 1)
    assert search(c, "TEXT quokkaberry") == []
    assert search(c, "BODY quokkaberry") == []
    left = message_ids(p)
    assert len(left) == 1
    c.ok("SELECT Other")
    assert search(c, "TEXT quokkaberry") == [1]
    assert search(c, "BODY harvest") == [1]
    assert search(c, "TEXT tapir") == [1]

    # The dead row goes when the indexer has had nothing to do a while.
    assert index_rows_soon(p, left) == left
    assert query(p, "postern-fts.db", "SELECT count(*) FROM dead") == [(0,)]
    assert search(c, "TEXT quokkaberry") == [1]
    c.ok("SELECT INBOX")
    assert search(c, "TEXT quokkaberry") == []
    c.close()


def test_reused_id_never_finds_the_old_text(postern_factory):
    """After the highest message is expunged, the next APPEND gets its
    id; SEARCH finds the new message by its own text as soon as it is
    indexed and never by the old one's: not before the indexer got to
    it, not after, not after a restart, nor through the short-string
    path that reads the stored text."""
    p = fts_daemon(postern_factory)
    c = imap_client(p, select="INBOX")
    append_ok(c, "INBOX", note("keep", "a message that stays"))
    append_ok(c, "INBOX", note("walrus", "walrusberry jam, xq"))
    assert search_soon(c, "TEXT walrusberry", [2]) == [2]
    old = message_ids(p)[-1]

    expunge_last(c, 2)
    append_ok(c, "INBOX", note("pangolin", "pangolin stew"))
    # Right away, whether or not the indexer has seen either change.
    assert search(c, "TEXT walrusberry") == []
    assert search(c, "BODY xq") == []
    assert search(c, "SUBJECT walrus") == []
    assert message_ids(p)[-1] == old, "the id was not reused"
    assert search_soon(c, "TEXT pangolin", [2]) == [2]
    assert search(c, "TEXT walrusberry") == []
    assert search(c, "BODY xq") == []
    assert search(c, "TEXT keep") == [1]

    # Once more, stopped before the indexer gets to the new message.
    expunge_last(c, 2)
    append_ok(c, "INBOX", note("okapi", "okapi stripes"))
    assert message_ids(p)[-1] == old
    assert search(c, "TEXT pangolin") == []
    c.close()
    p.stop()
    p.restart()
    c = imap_client(p, select="INBOX")
    assert search(c, "TEXT pangolin") == []
    assert search(c, "TEXT walrusberry") == []
    assert search_soon(c, "TEXT okapi", [2]) == [2]
    assert search(c, "TEXT pangolin") == []
    assert search(c, "BODY xq") == []
    assert search(c, "TEXT walrusberry") == []
    assert index_rows_soon(p, message_ids(p)) == message_ids(p)
    c.close()


def test_version_2_index_is_kept(postern_factory):
    """An index of the previous version (no prefixes, no dead rows) is
    brought up to date in place, not made anew, and keeps working."""
    p = fts_daemon(postern_factory)
    c = imap_client(p, select="INBOX")
    for i in (1, 2, 3):
        append_ok(c, "INBOX", note("v2 %d" % i, "gnuberry %d" % i))
    assert search_soon(c, "TEXT gnuberry", [1, 2, 3]) == [1, 2, 3]
    c.close()
    p.stop()
    path = os.path.join(p.statedir, "postern-fts.db")
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE dead;"
                       "ALTER TABLE docs DROP COLUMN prefix;"
                       "PRAGMA user_version = 2;")
    conn.close()
    db_to_storage_user(p, "postern-fts.db")
    since = len(p.logtext())
    p.restart()
    c = imap_client(p, select="INBOX")
    assert search(c, "TEXT gnuberry") == [1, 2, 3]
    assert search(c, 'TEXT "gnuberry 2"') == [2]
    expunge_last(c, 3)
    append_ok(c, "INBOX", note("v3", "elandberry"))
    assert search(c, "TEXT gnuberry") == [1, 2]
    assert search_soon(c, "TEXT elandberry", [3]) == [3]
    c.close()
    log = p.logtext()[since:]
    assert "schema version 2 brought to 3" in log
    assert "making the index anew" not in log
    assert "messages indexed" not in log


SCHED_OTHER, SCHED_IDLE = 0, 5


def thread_policies(pid):
    """The scheduling policy of each of pid's threads (stat field 41)."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        out.append(int(fields[38]))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="SCHED_IDLE and /proc are Linux's")
def test_indexer_runs_under_sched_idle(postern_factory):
    """On Linux the indexer is storaged's one SCHED_IDLE thread, so a
    session's thread always comes first; it still indexes while the
    processors have time to spare."""
    p = fts_daemon(postern_factory)
    c = imap_client(p)
    append_ok(c, "INBOX", note("okapi", "a lone pangolinberry"))
    c.ok("SELECT INBOX")
    assert search_soon(c, "TEXT pangolinberry", [1]) == [1]
    policies = thread_policies(p.role_pids()["storaged"])
    assert policies.count(SCHED_IDLE) == 1, policies
    assert policies.count(SCHED_OTHER) == len(policies) - 1, policies
    for role, pid in p.role_pids().items():
        if role != "storaged":
            assert SCHED_IDLE not in thread_policies(pid), role
    c.close()
