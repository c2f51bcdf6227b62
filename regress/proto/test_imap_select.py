"""What SELECT, EXAMINE, STATUS and SEARCH tell of a mailbox's flags
when other sessions change them: FLAGS and PERMANENTFLAGS list the
keywords in use there (and only those), an IMAP4rev1 client learns the
first unseen message, STATUS counts the unseen and the deleted, SEARCH
matches the flags as they are now.  The store keeps these apart from
the keywords themselves (schema migration 3), so the tests also move
messages every way a placement can come and go: APPEND, COPY, MOVE,
EXPUNGE, RENAME INBOX, DELETE, and a store migrated from schema 2."""
import os
import re
import sqlite3
import time

import pytest

from conftest import (IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER,
                      db_to_schema_3, db_to_storage_user, imap_append,
                      imap_client, imap_code, imap_quote)

SYSTEM = {"\\ANSWERED", "\\FLAGGED", "\\DELETED", "\\SEEN", "\\DRAFT"}


def msg(subject):
    return ("From: Bob <bob@example.net>\r\nTo: %s\r\nSubject: %s\r\n"
            "Message-ID: <%s.%f@example.net>\r\n\r\nbody\r\n"
            % (IMAP_USER, subject, re.sub(r"\W", "", subject), time.time()))


def append(c, mailbox, text, flags=""):
    tagged = imap_append(c, mailbox, text, flags)
    assert tagged.split(" ", 2)[1] == "OK", tagged


def fill(c, mailbox, flags_list):
    """One message per entry of flags_list, appended with those flags."""
    for i, flags in enumerate(flags_list):
        append(c, mailbox, msg("%s %d" % (mailbox, i)), flags)


def selected(c, mailbox, verb="SELECT"):
    """(FLAGS, PERMANENTFLAGS less \\*, UNSEEN or None) of a SELECT."""
    out = c.ok("%s %s" % (verb, imap_quote(mailbox)))
    flags = [ln for ln in out if ln.startswith("* FLAGS (")]
    assert len(flags) == 1, out
    fl = flags[0][len("* FLAGS ("):-1].upper().split()
    assert len(fl) == len(set(fl)), flags
    perm = imap_code(out, "PERMANENTFLAGS")
    assert perm is not None, out
    pf = set(perm.strip("()").upper().split()) - {"\\*"}
    unseen = imap_code(out, "UNSEEN")
    return set(fl), pf, None if unseen is None else int(unseen)


def keywords(c, mailbox):
    """The keywords SELECT lists besides the system flags, which it must
    always list, in FLAGS and in PERMANENTFLAGS alike."""
    fl, pf, _ = selected(c, mailbox)
    assert SYSTEM <= fl and fl == pf, (fl, pf)
    return fl - SYSTEM


def status(c, mailbox):
    out = c.ok("STATUS %s (MESSAGES UNSEEN DELETED)" % imap_quote(mailbox))
    line = [ln for ln in out if ln.startswith("* STATUS ")][0]
    words = re.search(r"\((.*)\)$", line).group(1).split()
    return {words[i].upper(): int(words[i + 1])
            for i in range(0, len(words), 2)}


def search(c, criteria):
    out = c.ok("SEARCH " + criteria)
    line = [ln for ln in out if ln.startswith("* SEARCH")]
    assert len(line) == 1, out
    return [int(x) for x in line[0].split()[2:]]


@pytest.fixture
def two(imap):
    a = imap_client(imap)
    b = imap_client(imap)
    yield a, b
    a.close()
    b.close()


def test_flags_list_a_keyword_another_session_set(two):
    a, b = two
    a.ok("CREATE KwOther")
    fill(a, "KwOther", ["", "\\Seen"])
    assert keywords(a, "KwOther") == set()
    b.ok("SELECT KwOther")
    b.ok("STORE 1 +FLAGS.SILENT ($Blue)")
    assert keywords(a, "KwOther") == {"$BLUE"}
    # The same keyword in another case is the same keyword, listed once.
    b.ok("STORE 2 +FLAGS.SILENT ($blue)")
    b.ok("STORE 1 -FLAGS.SILENT ($BLUE)")
    assert keywords(a, "KwOther") == {"$BLUE"}
    b.ok("STORE 2 FLAGS.SILENT (\\Seen $Green)")
    assert keywords(a, "KwOther") == {"$GREEN"}
    b.ok("STORE 1:* -FLAGS.SILENT ($Green)")
    assert keywords(a, "KwOther") == set()
    # EXAMINE lists them too, with no PERMANENTFLAGS.
    b.ok("STORE 1 +FLAGS.SILENT (Later)")
    fl, pf, _ = selected(a, "KwOther", "EXAMINE")
    assert fl == SYSTEM | {"LATER"} and pf == set(), (fl, pf)


def test_flags_follow_copy_move_expunge_delete(two):
    a, b = two
    for name in ("KwSrc", "KwDst", "KwDst2"):
        a.ok("CREATE " + name)
    fill(a, "KwSrc", ["$Red \\Seen", "$Red $Work", ""])
    assert keywords(a, "KwSrc") == {"$RED", "$WORK"}
    a.ok("SELECT KwSrc")
    a.ok("COPY 1 KwDst")
    assert keywords(b, "KwDst") == {"$RED"}
    a.ok("SELECT KwSrc")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    assert keywords(b, "KwSrc") == {"$RED"}
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    assert keywords(b, "KwSrc") == set()
    # The copy keeps its own.
    assert keywords(b, "KwDst") == {"$RED"}
    a.ok("SELECT KwDst")
    a.ok("MOVE 1 KwDst2")
    assert keywords(b, "KwDst") == set()
    assert keywords(b, "KwDst2") == {"$RED"}
    b.ok("SELECT INBOX")
    a.ok("SELECT INBOX")
    a.ok("DELETE KwDst2")
    a.ok("CREATE KwDst2")
    assert keywords(b, "KwDst2") == set()


def test_rename_inbox_takes_its_keywords(imap):
    imap.add_account("kwren@example.test", IMAP_PASSWORD)
    c = imap_client(imap, user="kwren@example.test")
    fill(c, "INBOX", ["$Orange", "\\Seen"])
    c.ok("RENAME INBOX OldInbox")
    fl, _, unseen = selected(c, "OldInbox")
    assert fl - SYSTEM == {"$ORANGE"} and unseen == 1, (fl, unseen)
    assert keywords(c, "INBOX") == set()
    assert status(c, "OldInbox") == {"MESSAGES": 2, "UNSEEN": 1,
                                     "DELETED": 0}
    c.close()


def test_first_unseen_for_rev1(two):
    a, b = two
    a.ok("CREATE Unseen1")
    fill(a, "Unseen1", ["\\Seen", "\\Seen", "", "\\Seen", ""])
    assert selected(a, "Unseen1")[2] == 3
    assert selected(a, "Unseen1", "EXAMINE")[2] == 3
    b.ok("SELECT Unseen1")
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    # A sequence number: the third message is now the second.
    assert selected(a, "Unseen1")[2] == 2
    b.ok("STORE 1 -FLAGS.SILENT (\\Seen)")
    assert selected(a, "Unseen1")[2] == 1
    b.ok("STORE 1:* +FLAGS.SILENT (\\Seen)")
    assert selected(a, "Unseen1")[2] is None
    b.ok("STORE 4 -FLAGS.SILENT (\\Seen)")
    assert selected(a, "Unseen1")[2] == 4
    a.ok("CREATE Unseen2")
    assert selected(a, "Unseen2")[2] is None


def test_no_unseen_code_for_rev2(imap):
    c = imap_client(imap)
    c.ok("CREATE Unseen3")
    fill(c, "Unseen3", ["", "\\Seen"])
    c.ok("ENABLE IMAP4rev2")
    out = c.ok("SELECT Unseen3")
    assert imap_code(out, "UNSEEN") is None, out
    c.close()


def test_status_counts_follow_flags(two):
    a, b = two
    a.ok("CREATE Counts")
    fill(a, "Counts", ["\\Seen \\Deleted", "", "\\Seen"])
    assert status(a, "Counts") == {"MESSAGES": 3, "UNSEEN": 1, "DELETED": 1}
    b.ok("SELECT Counts")
    b.ok("STORE 2 +FLAGS.SILENT (\\Seen \\Deleted)")
    assert status(a, "Counts") == {"MESSAGES": 3, "UNSEEN": 0, "DELETED": 2}
    b.ok("STORE 1:* -FLAGS.SILENT (\\Seen)")
    assert status(a, "Counts") == {"MESSAGES": 3, "UNSEEN": 3, "DELETED": 2}
    # A copy carries its flags into its new mailbox.
    a.ok("CREATE Counts2")
    b.ok("STORE 3 +FLAGS.SILENT (\\Seen)")
    b.ok("COPY 1:3 Counts2")
    assert status(a, "Counts2") == {"MESSAGES": 3, "UNSEEN": 2,
                                    "DELETED": 2}
    b.ok("EXPUNGE")
    assert status(a, "Counts") == {"MESSAGES": 1, "UNSEEN": 0, "DELETED": 0}


def test_search_sees_flags_another_session_set(two):
    a, b = two
    a.ok("CREATE SFlags")
    fill(a, "SFlags", ["\\Seen", "", "$Work", "\\Flagged \\Draft"])
    a.ok("SELECT SFlags")
    b.ok("SELECT SFlags")
    assert search(a, "UNSEEN") == [2, 3, 4]
    b.ok("STORE 2 +FLAGS.SILENT (\\Seen \\Answered)")
    b.ok("STORE 4 -FLAGS.SILENT (\\Draft)")
    b.ok("STORE 1 +FLAGS.SILENT ($work)")
    a.ok("NOOP")
    assert search(a, "UNSEEN") == [3, 4]
    assert search(a, "SEEN") == [1, 2]
    assert search(a, "NOT SEEN") == [3, 4]
    assert search(a, "ANSWERED") == [2]
    assert search(a, "DRAFT") == []
    assert search(a, "NOT DRAFT") == [1, 2, 3, 4]
    assert search(a, "FLAGGED UNSEEN") == [4]
    assert search(a, "OR ANSWERED FLAGGED") == [2, 4]
    assert search(a, "KEYWORD $WORK") == [1, 3]
    assert search(a, "NOT KEYWORD $Work") == [2, 4]
    assert search(a, "NOT UNKEYWORD $Work") == [1, 3]
    assert search(a, "NOT KEYWORD $Absent") == [1, 2, 3, 4]
    assert search(a, "NOT NEW") == [1, 2, 3, 4]
    assert search(a, "UID 1:* NOT SEEN NOT FLAGGED") == [3]


# --- a store of schema version 2 ----------------------------------------

def to_schema_2(db):
    """Takes away what migrations 4 and 3 made, leaving the schema 2
    made."""
    db_to_schema_3(db)
    conn = sqlite3.connect(db)
    for (name,) in conn.execute("SELECT name FROM sqlite_master "
                                "WHERE type = 'trigger'").fetchall():
        conn.execute("DROP TRIGGER %s" % name)
    conn.executescript("""
        DROP INDEX mailbox_messages_unseen;
        DROP INDEX mailbox_messages_deleted;
        DROP TABLE mailbox_keywords;
        ALTER TABLE mailbox_messages DROP COLUMN flags;
        UPDATE schema_version SET version = 2;
    """)
    conn.commit()
    conn.close()


def test_migration_3_from_schema_2(postern_factory):
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    c.ok("CREATE Old")
    fill(c, "Old", ["\\Seen $Kept", "\\Deleted $kept Other", "\\Flagged",
                    "\\Seen"])
    c.ok("SELECT Old")
    c.ok("COPY 2:3 INBOX")
    c.close()
    p.stop()
    db = os.path.join(p.statedir, "postern.db")
    to_schema_2(db)
    db_to_storage_user(p)
    p.restart()
    assert "storaged: /postern.db: migrated to schema version 3" \
        in p.logtext()
    c = imap_client(p)
    fl, _, unseen = selected(c, "Old")
    assert fl - SYSTEM == {"$KEPT", "OTHER"} and unseen == 2, (fl, unseen)
    assert search(c, "UNSEEN") == [2, 3]
    assert search(c, "DELETED") == [2]
    assert search(c, "FLAGGED") == [3]
    assert search(c, "KEYWORD other") == [2]
    assert status(c, "Old") == {"MESSAGES": 4, "UNSEEN": 2, "DELETED": 1}
    fl, _, unseen = selected(c, "INBOX")
    assert fl - SYSTEM == {"$KEPT", "OTHER"} and unseen == 1, (fl, unseen)
    # And the triggers keep it from there.
    c.ok("STORE 1 -FLAGS.SILENT ($Kept Other \\Deleted)")
    c.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert keywords(c, "INBOX") == set()
    assert status(c, "INBOX") == {"MESSAGES": 2, "UNSEEN": 1, "DELETED": 0}
    # A message has one set of flags, whichever mailbox holds it.
    assert keywords(c, "Old") == {"$KEPT"}
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert keywords(c, "Old") == set()
    assert status(c, "Old") == {"MESSAGES": 3, "UNSEEN": 1, "DELETED": 0}
    c.close()
