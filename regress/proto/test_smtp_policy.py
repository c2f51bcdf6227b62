"""Recipient and sender policy: unknown local users, never an open
relay, aliases to several accounts, catch-all per domain, subaddressing,
domains and accounts added at run time, and the submission sender
check."""
import uuid

import pytest

from conftest import QUEUED_RE, SMTPClient, split_trace, submit_session

PASSWORD = "Cobalt-Falcon-2871-unlikely"
ACCOUNTS = ["alice@example.test", "bob@example.test", "carol@example.test",
            "dave@second.test", "erin@second.test"]


@pytest.fixture(scope="module")
def pm(module_factory):
    p = module_factory(domains=["example.test", "second.test"])
    for a in ACCOUNTS:
        p.add_account(a, PASSWORD)
    for alias, target in [("team@example.test", "alice@example.test"),
                          ("team@example.test", "bob@example.test"),
                          ("sales@example.test", "carol@example.test"),
                          ("sales@example.test", "dave@second.test"),
                          ("alice.alias@example.test", "alice@example.test"),
                          ("boss@second.test", "erin@second.test")]:
        p.ctl("alias", "add", alias, target, check=True)
    return p


def mark():
    return "<%s@client.example.net>" % uuid.uuid4().hex


def message(mid):
    return ("From: <sender@example.net>\r\nSubject: policy\r\n"
            "Message-ID: %s\r\n\r\nbody\r\n" % mid).encode()


def send(p, rcpts, mid, mail_from="sender@example.net", kind="smtp"):
    """One transaction on the smtp listener; every RCPT must be
    accepted."""
    with SMTPClient(p.ports[kind]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<%s>" % mail_from)[0] == 250
        for r in rcpts:
            code, text = c.cmd("RCPT TO:<%s>" % r)
            assert code == 250, (r, code, text)
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        code, text = c.reply()
        assert code == 250 and QUEUED_RE.match(text[-1]), (code, text)


def rcpt_reply(p, rcpt, kind="smtp"):
    with SMTPClient(p.ports[kind]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        return c.cmd("RCPT TO:<%s>" % rcpt)


def got_once(p, account, mid):
    found = p.find_messages(account, mid)
    assert len(found) == 1, (account, mid, len(found))
    added, rest = split_trace(found[0])
    assert rest == message(mid)
    return added


def sentinel_to(p, accounts):
    """A message to each account, waited for: whatever was queued
    before it has been delivered by then."""
    mid = mark()
    send(p, accounts, mid)
    for a in accounts:
        got_once(p, a, mid)


def got_none(p, account, mid):
    assert p.find_messages(account, mid, timeout=0) == [], (account, mid)


# --- unknown users and relaying ------------------------------------------


@pytest.mark.parametrize("rcpt", ["nobody@example.test",
                                  "nobody@second.test",
                                  "nobody+tag@example.test",
                                  "alicex@example.test"])
def test_unknown_local_user(pm, rcpt):
    code, text = rcpt_reply(pm, rcpt)
    assert (code, text[0][:5]) == (550, "5.1.1"), (rcpt, code, text)


@pytest.mark.parametrize("rcpt", [
    "someone@remote.example",
    "someone@REMOTE.example",
    "alice@example.test.remote.example",
    "alice@example.test.invalid",
    "alice@[127.0.0.1]",
    "alice@sub.example.test",
])
def test_no_open_relay(pm, rcpt):
    code, text = rcpt_reply(pm, rcpt)
    assert (code, text[0][:5]) == (550, "5.7.1"), (rcpt, code, text)


@pytest.mark.parametrize("rcpt", [
    "someone%remote.example@example.test",
    "remote.example!someone@example.test",
    '"someone@remote.example"@example.test',
])
def test_relay_tricks_are_local_unknowns(pm, rcpt):
    """Percent hack, bang path and quoted @: addresses in our domain
    that name nobody, never a way out."""
    code, text = rcpt_reply(pm, rcpt)
    assert code >= 500, (rcpt, code, text)
    assert text[0][:5] in ("5.1.1", "5.1.3", "5.7.1"), (rcpt, code, text)


def test_source_route_is_not_relayed(pm):
    code, text = rcpt_reply(pm, "@example.test:someone@remote.example")
    assert code >= 500, (code, text)
    assert "someone" not in pm.show_queue()


def test_no_open_relay_after_starttls(pm):
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        c.starttls()
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@remote.example>")
        assert (code, text[0][:5]) == (550, "5.7.1"), (code, text)


def test_no_open_relay_with_local_sender(pm):
    """A local sender address proves nothing on the smtp listener."""
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.test>")[0] == 250
        code, text = c.cmd("RCPT TO:<someone@remote.example>")
        assert (code, text[0][:5]) == (550, "5.7.1"), (code, text)
        # Pipelined too.
        c.send(b"RSET\r\nMAIL FROM:<alice@example.test>\r\n"
               b"RCPT TO:<other@remote.example>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(3)] == [250, 250, 550]
        assert c.reply()[0] in (503, 554)


def test_refused_recipient_does_not_spoil_the_others(pm):
    mid = mark()
    with SMTPClient(pm.ports["smtp"]) as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@example.net>")[0] == 250
        assert c.cmd("RCPT TO:<nobody@example.test>")[0] == 550
        assert c.cmd("RCPT TO:<x@remote.example>")[0] == 550
        assert c.cmd("RCPT TO:<bob@example.test>")[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(message(mid) + b".\r\n")
        assert c.reply()[0] == 250
    got_once(pm, "bob@example.test", mid)


# --- aliases, catch-all, subaddressing -------------------------------------


def test_alias_to_several_accounts(pm):
    mid = mark()
    send(pm, ["team@example.test"], mid)
    for a in ("alice@example.test", "bob@example.test"):
        got_once(pm, a, mid)
    sentinel_to(pm, ["carol@example.test"])
    got_none(pm, "carol@example.test", mid)


def test_alias_across_domains(pm):
    mid = mark()
    send(pm, ["sales@example.test"], mid)
    got_once(pm, "carol@example.test", mid)
    got_once(pm, "dave@second.test", mid)


def test_alias_and_its_target_deliver_once(pm):
    mid = mark()
    send(pm, ["team@example.test", "alice@example.test",
              "alice.alias@example.test"], mid)
    got_once(pm, "bob@example.test", mid)
    sentinel_to(pm, ["alice@example.test"])
    got_once(pm, "alice@example.test", mid)


def test_addresses_are_case_insensitive(pm):
    mid = mark()
    send(pm, ["Carol@EXAMPLE.test", "TEAM@example.TEST"], mid)
    for a in ("alice@example.test", "bob@example.test",
              "carol@example.test"):
        got_once(pm, a, mid)


def test_subaddress_reaches_the_account(pm):
    mid = mark()
    send(pm, ["alice+lists@example.test"], mid)
    added = got_once(pm, "alice@example.test", mid)
    assert added["return-path"] == ["<sender@example.net>"]


def test_subaddress_of_an_alias(pm):
    mid = mark()
    send(pm, ["team+news@example.test"], mid)
    got_once(pm, "alice@example.test", mid)
    got_once(pm, "bob@example.test", mid)


def test_subaddress_empty_tag_and_double_plus(pm):
    mid = mark()
    send(pm, ["carol+@example.test", "bob+a+b@example.test"], mid)
    got_once(pm, "carol@example.test", mid)
    got_once(pm, "bob@example.test", mid)


def test_catch_all(pm):
    r = pm.ctl("alias", "add", "@second.test", "dave@second.test")
    assert r.returncode == 0, ("a catch-all alias cannot be written as "
                               "@domain: %s" % r.stderr)
    try:
        listed = pm.ctl("alias", "list", check=True).stdout
        assert "@second.test -> dave@second.test" in listed, listed
        # Anyone at second.test now reaches dave ...
        mid = mark()
        send(pm, ["whoever@second.test", "any.one+x@second.test"], mid)
        got_once(pm, "dave@second.test", mid)
        # ... but an account or alias of the domain is still its own.
        # (user+tag of an account comes before the catch-all too.)
        mid2 = mark()
        send(pm, ["erin@second.test", "boss@second.test",
                  "erin+tag@second.test"], mid2)
        got_once(pm, "erin@second.test", mid2)
        sentinel_to(pm, ["dave@second.test"])
        got_none(pm, "dave@second.test", mid2)
        # The catch-all is for its own domain only.
        code, text = rcpt_reply(pm, "whoever@example.test")
        assert (code, text[0][:5]) == (550, "5.1.1"), (code, text)
    finally:
        pm.ctl("alias", "del", "@second.test")
    code, text = rcpt_reply(pm, "whoever@second.test")
    assert (code, text[0][:5]) == (550, "5.1.1"), (code, text)


# --- domains, accounts and aliases changed while running ---------------------


def test_domain_and_account_added_at_run_time(pm):
    code, text = rcpt_reply(pm, "frank@third.test")
    assert (code, text[0][:5]) == (550, "5.7.1"), (code, text)
    pm.ctl("domain", "add", "third.test", check=True)
    try:
        code, text = rcpt_reply(pm, "frank@third.test")
        assert (code, text[0][:5]) == (550, "5.1.1"), (code, text)
        pm.add_account("frank@third.test", PASSWORD)
        mid = mark()
        send(pm, ["frank@third.test"], mid)
        got_once(pm, "frank@third.test", mid)
        assert "INBOX" in pm.mailbox_list("frank@third.test")
        pm.ctl("account", "del", "frank@third.test", check=True)
        code, text = rcpt_reply(pm, "frank@third.test")
        assert (code, text[0][:5]) == (550, "5.1.1"), (code, text)
    finally:
        pm.ctl("account", "del", "frank@third.test")
        pm.ctl("domain", "del", "third.test")
    code, text = rcpt_reply(pm, "frank@third.test")
    assert (code, text[0][:5]) == (550, "5.7.1"), (code, text)


def test_new_account_has_its_mailboxes(pm):
    boxes = pm.mailbox_list("erin@second.test")
    for name in ("INBOX", "Drafts", "Sent", "Junk", "Trash", "Archive"):
        assert name in boxes, boxes


def test_alias_removed_at_run_time(pm):
    pm.ctl("alias", "add", "temp@example.test", "carol@example.test",
           check=True)
    code, _ = rcpt_reply(pm, "temp@example.test")
    assert code == 250
    pm.ctl("alias", "del", "temp@example.test", check=True)
    code, text = rcpt_reply(pm, "temp@example.test")
    assert (code, text[0][:5]) == (550, "5.1.1"), (code, text)


# --- submission: the sender must be the account's ----------------------------


@pytest.mark.parametrize("kind", ["submission", "submissions"])
@pytest.mark.parametrize("sender,ok", [
    ("alice@example.test", True),
    ("ALICE@example.TEST", True),
    ("alice.alias@example.test", True),
    ("team@example.test", True),
    ("bob@example.test", False),
    ("carol@example.test", False),
    ("sales@example.test", False),
    ("alice@remote.example", False),
    ("postmaster@example.test", False),
    ("dave@second.test", False),
])
def test_submission_sender_check(pm, kind, sender, ok):
    s = submit_session(pm, "alice@example.test", PASSWORD, kind=kind)
    try:
        code, text = s.mail(sender)
        if ok:
            assert code == 250, (sender, code, text)
        else:
            assert code == 553 and text.startswith(b"5.7.1"), \
                (sender, code, text)
            # The session goes on; the right sender works.
            code, text = s.mail("alice@example.test")
            assert code == 250, (code, text)
    finally:
        s.close()


def test_submission_delivers_locally_with_sender_checked(pm):
    mid = mark()
    s = submit_session(pm, "bob@example.test", PASSWORD)
    try:
        assert s.mail("bob@example.test")[0] == 250
        assert s.rcpt("carol@example.test")[0] == 250
        assert s.rcpt("team@example.test")[0] == 250
        code, resp = s.data(message(mid))
        assert code == 250 and QUEUED_RE.match(resp.decode()), resp
    finally:
        s.close()
    for a in ("alice@example.test", "bob@example.test",
              "carol@example.test"):
        added = got_once(pm, a, mid)
        assert added["return-path"] == ["<bob@example.test>"], added


def test_smtp_listener_has_no_sender_check(pm):
    """On the smtp listener any sender is taken (other servers' users)."""
    mid = mark()
    send(pm, ["carol@example.test"], mid, mail_from="bob@example.test")
    got_once(pm, "carol@example.test", mid)


def test_bare_postmaster(pm):
    """RFC 5321 4.5.1: RCPT TO:<Postmaster>, without a domain, is taken
    and reaches the postmaster of the (first) local domain."""
    pm.ctl("alias", "add", "postmaster@example.test", "carol@example.test",
           check=True)
    try:
        mid = mark()
        send(pm, ["Postmaster"], mid)
        got_once(pm, "carol@example.test", mid)
    finally:
        pm.ctl("alias", "del", "postmaster@example.test")
