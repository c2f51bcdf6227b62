"""SEARCH's subject, address fields and internal dates as the store keeps
them for it (schema migration 4): the address fields of the header as
HEADER compares them (decoded display names, every field of the name,
folded lines unfolded, the delivery prefix included), the subject, and
the internal date of each placement, through every way a message comes
into a mailbox, in a store migrated from schema 3, and when the stored
copy is missing and the message itself is read instead."""
import os
import sqlite3

import pytest

from conftest import (IMAP_LISTENERS, IMAP_PASSWORD, IMAP_USER,
                      db_to_schema_3, db_to_storage_user, imap_append,
                      imap_client, imap_deliver)

D = "12:00:00 +0000"

# (header lines, internal date); a body is added.
FIELDS = [
    # 1: an encoded-word display name, a folded To.
    ("From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@enc.example>\r\n"
     "To: a@x.example,\r\n b@y.example\r\nSubject: one quokka\r\n",
     "02-Jan-2024"),
    # 2: two From fields (a substring never spans the two).
    ("From: first@one.example\r\nFrom: second@two.example\r\n"
     "Subject: two\r\n", "05-Jan-2024"),
    # 3: the field name in another case; no Subject.
    ("fRoM: Mixed Case <mc@case.example>\r\n"
     "Reply-To: Reply Person <rp@reply.example>\r\n"
     "Sender: snd@sender.example\r\n", "10-Jan-2024"),
    # 4: no From; a group; Cc and Bcc.
    ("To: Team: c@z.example, d@z.example;\r\nCc: cc@cc.example\r\n"
     "Bcc: hidden@bcc.example\r\nSubject: four QUOKKA\r\n", "12-Jan-2024"),
]

# (criteria, a UTF-8 literal or None, the messages that match)
ANSWERS = [
    ("FROM", "J\u00fcrgen", [1]),
    ("FROM", "m\u00fcller <j@enc", [1]),
    ("FROM =?utf-8", None, []),
    ("TO b@y.example", None, [1]),
    ("TO a@x.example", None, [1]),
    ("FROM second@two", None, [2]),
    ("FROM first", None, [2]),
    ('FROM "one.example>"', None, [2]),
    ('FROM "one.example> <second"', None, []),
    ("FROM mc@case", None, [3]),
    ('FROM "mixed case"', None, [3]),
    ('HEADER Reply-To "reply person"', None, [3]),
    ("HEADER SENDER snd@", None, [3]),
    ("HEADER sender rp@", None, []),
    ("TO d@z.example", None, [4]),
    ("CC cc@cc", None, [4]),
    ("BCC hidden", None, [4]),
    ('FROM ""', None, [1, 2, 3]),
    ('NOT FROM ""', None, [4]),
    ('HEADER Reply-To ""', None, [3]),
    ("OR FROM second TO b@y", None, [1, 2]),
    ("SUBJECT quokka", None, [1, 4]),
    ('SUBJECT ""', None, [1, 2, 4]),
    # A message without the field does not hold the string.
    ("NOT SUBJECT quokka", None, [2, 3]),
    ("NOT SUBJECT zzz", None, [1, 2, 3, 4]),
    ("SINCE 10-Jan-2024", None, [3, 4]),
    ("BEFORE 05-Jan-2024", None, [1]),
    ("ON 05-Jan-2024", None, [2]),
    ("SINCE 05-Jan-2024 FROM first", None, [2]),
]


def message(i, header):
    return (header + "Date: 0%d Jan 2024 %s\r\n\r\nbody %d\r\n"
            % (i, D, i)).encode("utf-8")


def fill(c, mailbox):
    c.ok("CREATE " + mailbox)
    for i, (header, date) in enumerate(FIELDS):
        assert imap_append(c, mailbox, message(i + 1, header),
                           date='%s %s' % (date, D)).split()[1] == "OK"


def search(c, criteria, literal=None):
    """SEARCH's answer, sorted; literal (UTF-8) as the last string."""
    tag = c.tag()
    if literal is None:
        c.send("%s SEARCH %s\r\n" % (tag, criteria))
    else:
        w = literal.encode("utf-8")
        c.send(b"%s SEARCH CHARSET UTF-8 %s {%d+}\r\n%s\r\n"
               % (tag.encode(), criteria.encode(), len(w), w))
    lines = c.until(tag)
    assert lines[-1].startswith(tag + " OK"), (criteria, lines)
    found = [ln for ln in lines if ln.startswith("* SEARCH")]
    assert len(found) == 1, (criteria, lines)
    return sorted(int(x) for x in found[0].split()[2:])


def answers(c):
    return [search(c, crit, lit) for crit, lit, _ in ANSWERS]


WANT = [want for _, _, want in ANSWERS]


@pytest.fixture(scope="module")
def fields_box(imap):
    c = imap_client(imap)
    fill(c, "Fields")
    c.close()
    return imap


@pytest.mark.parametrize("criteria,literal,want", ANSWERS,
                         ids=[a[0] + ("" if a[1] is None else " " + a[1])
                              for a in ANSWERS])
def test_fields(fields_box, criteria, literal, want):
    c = imap_client(fields_box, select="Fields")
    assert search(c, criteria, literal) == want
    c.close()


def test_copy_move_and_copy_into_the_same_mailbox(fields_box):
    """A placement made by COPY or MOVE keeps the message's internal
    date, and a message copied into a mailbox that holds it already
    (a message row of its own) its subject and addresses."""
    c = imap_client(fields_box)
    c.ok("CREATE FieldsCopy")
    c.ok("CREATE FieldsMoved")
    c.ok("SELECT Fields")
    c.ok("COPY 1:4 FieldsCopy")
    c.ok("SELECT FieldsCopy")
    assert answers(c) == WANT
    c.ok("MOVE 1:4 FieldsMoved")
    c.ok("SELECT FieldsMoved")
    assert answers(c) == WANT
    # 5:8 are copies of 1:4 in the mailbox that holds them.
    c.ok("COPY 1:4 FieldsMoved")
    assert search(c, "ALL") == [1, 2, 3, 4, 5, 6, 7, 8]
    for (crit, lit, want), got in zip(ANSWERS, answers(c)):
        assert got == sorted(want + [n + 4 for n in want]), (crit, got)
    c.close()


def test_delivered_message(postern_factory):
    """A delivered message's row begins with the lines storaged adds
    (Return-Path, Delivered-To): its own address fields are found past
    them, and those lines by HEADER."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    imap_deliver(p, [message(1, FIELDS[0][0]), message(2, FIELDS[1][0])],
                 mail_from="bounce-42@env.example")
    c = imap_client(p, select="INBOX")
    assert search(c, "FROM", "J\u00fcrgen") == [1]
    assert search(c, "TO b@y.example") == [1]
    assert search(c, "FROM second@two") == [2]
    assert search(c, 'FROM "one.example> <second"') == []
    assert search(c, "HEADER Return-Path bounce-42") == [1, 2]
    assert search(c, "HEADER Delivered-To %s" % IMAP_USER) == [1, 2]
    assert search(c, "SUBJECT one") == [1]
    c.close()


def db(p):
    return os.path.join(p.statedir, "postern.db")


def test_migration_4_from_schema_3(postern_factory):
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    fill(c, "Old")
    c.ok("SELECT Old")
    c.ok("COPY 1:4 INBOX")
    c.close()
    p.stop()
    db_to_schema_3(db(p))
    # An unreadable blob does not stop the migration: that message's
    # header is read when SEARCH asks (and, gone, matches nothing).
    lost_blob = "0" * 64
    conn = sqlite3.connect(db(p))
    (box, first), = conn.execute(
        "SELECT b.id, mm.message_id FROM mailbox_messages mm JOIN "
        "mailboxes b ON b.id = mm.mailbox_id WHERE b.name = 'Old' AND "
        "mm.uid = 1").fetchall()
    conn.execute("INSERT INTO blobs (hash, size, refs) VALUES (?, 1, 1)",
                 (lost_blob,))
    conn.execute("INSERT INTO messages (account_id, blob, prefix, size, "
                 "received, subject, preview, has_attachment, mime) "
                 "SELECT account_id, ?, prefix, size, received, "
                 "'lost one', preview, has_attachment, mime FROM messages "
                 "WHERE id = ?", (lost_blob, first))
    lost = conn.execute("SELECT max(id) FROM messages").fetchone()[0]
    conn.execute("INSERT INTO mailbox_messages (mailbox_id, message_id, "
                 "account_id, uid, modseq) SELECT id, ?, account_id, "
                 "uidnext, highestmodseq FROM mailboxes WHERE id = ?",
                 (lost, box))
    conn.execute("UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?",
                 (box,))
    conn.commit()
    conn.close()
    db_to_storage_user(p)
    p.restart()
    log = p.logtext()
    assert "storaged: /postern.db: migrated to schema version 4" in log
    assert "/blobs/%s" % lost_blob in log
    c = imap_client(p, select="Old")
    # The lost message is 5 in Old: SUBJECT still finds it, FROM not.
    for (crit, lit, want), got in zip(ANSWERS, answers(c)):
        if crit.startswith(("SINCE", "BEFORE", "ON", "NOT", "SUBJECT")):
            continue
        assert got == want, (crit, got)
    assert search(c, "SUBJECT lost") == [5]
    assert search(c, "NOT SUBJECT quokka") == [2, 3, 5]
    assert search(c, "ON 02-Jan-2024") == [1, 5]
    c.ok("SELECT INBOX")
    assert answers(c) == WANT
    # And the triggers keep it from there.
    assert imap_append(c, "INBOX", message(5, FIELDS[1][0]),
                       date="20-Jan-2024 %s" % D).split()[1] == "OK"
    c.ok("NOOP")
    assert search(c, "FROM second@two") == [2, 5]
    assert search(c, "SINCE 20-Jan-2024") == [5]
    c.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert search(c, "FROM second@two") == [4]
    c.close()
    p.stop()
    conn = sqlite3.connect("file:%s?mode=ro" % db(p), uri=True)
    assert conn.execute("SELECT version FROM schema_version").fetchone() \
        == (4,)
    # One row per message, and every placement has its date.
    assert conn.execute(
        "SELECT count(*) FROM messages m LEFT JOIN message_search s "
        "ON s.message_id = m.id WHERE s.message_id IS NULL").fetchone() \
        == (0,)
    assert conn.execute(
        "SELECT count(*) FROM message_search s LEFT JOIN messages m "
        "ON m.id = s.message_id WHERE m.id IS NULL").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM mailbox_messages mm JOIN messages m "
        "ON m.id = mm.message_id WHERE mm.received != m.received"
        ).fetchone() == (0,)
    assert conn.execute("SELECT addresses IS NULL FROM message_search "
                        "WHERE message_id = ?", (lost,)).fetchone() == (1,)
    conn.close()


def stopped_with_fields(postern_factory):
    """A daemon whose mailbox Fields holds fill()'s messages, stopped so
    that its database can be changed."""
    p = postern_factory(listeners=IMAP_LISTENERS)
    p.add_account(IMAP_USER, IMAP_PASSWORD)
    c = imap_client(p)
    fill(c, "Fields")
    c.close()
    p.stop()
    return p


def test_without_the_stored_fields(postern_factory):
    """Where message_search has no addresses for a message (its blob was
    unreadable when it was made) or no row at all, SEARCH reads the
    message's own row and header: the answers stay the same."""
    p = stopped_with_fields(postern_factory)
    conn = sqlite3.connect(db(p))
    ids = [r[0] for r in conn.execute(
        "SELECT mm.message_id FROM mailbox_messages mm JOIN mailboxes b "
        "ON b.id = mm.mailbox_id WHERE b.name = 'Fields' ORDER BY mm.uid")]
    conn.execute("UPDATE message_search SET addresses = NULL "
                 "WHERE message_id IN (?, ?)", (ids[0], ids[2]))
    conn.execute("DELETE FROM message_search WHERE message_id IN (?, ?)",
                 (ids[1], ids[3]))
    conn.commit()
    conn.close()
    db_to_storage_user(p)
    p.restart()
    c = imap_client(p, select="Fields")
    assert answers(c) == WANT
    c.close()


def test_message_row_updated_in_place(postern_factory):
    """Nothing in posternd updates a message's row yet; if something
    does, message_search follows it (here with the addresses left for
    SEARCH to read from the header: the function that makes them is
    storaged's)."""
    p = stopped_with_fields(postern_factory)
    conn = sqlite3.connect(db(p))
    conn.create_function("imap_address_fields", 2, lambda blob, prefix:
                         None)
    conn.execute("UPDATE messages SET subject = 'renamed kiwi' WHERE id = "
                 "(SELECT mm.message_id FROM mailbox_messages mm JOIN "
                 "mailboxes b ON b.id = mm.mailbox_id WHERE b.name = "
                 "'Fields' AND mm.uid = 2)")
    conn.commit()
    conn.close()
    db_to_storage_user(p)
    p.restart()
    c = imap_client(p, select="Fields")
    assert search(c, "SUBJECT kiwi") == [2]
    assert search(c, "SUBJECT two") == []
    assert search(c, "FROM second@two") == [2]
    c.close()
