/*
 * lib/ctl_valid.c: the syntax posternctl and the control role share.
 */
#include <stdint.h>
#include <string.h>

#include "ctl_valid.h"
#include "unit.h"

static int
domain_ok(const char *s)
{
	char	 err[CTL_ERR_MAX];

	return ctl_valid_domain(s, err, sizeof(err)) == 0;
}

static int
address_ok(const char *s)
{
	char	 err[CTL_ERR_MAX];

	return ctl_valid_address(s, err, sizeof(err)) == 0;
}

static int
address_says(const char *s, const char *reason)
{
	char	 err[CTL_ERR_MAX];

	if (ctl_valid_address(s, err, sizeof(err)) == 0)
		return 0;
	return strstr(err, reason) != NULL;
}

int
main(void)
{
	char		 buf[1100], err[CTL_ERR_MAX];
	uint64_t	 qid;
	uint32_t	 uid;
	int		 i;

	CHECK(domain_ok("example.test"));
	CHECK(domain_ok("a-b.c0.example"));
	CHECK(domain_ok("localhost"));
	CHECK(!domain_ok(""));
	CHECK(!domain_ok("example..test"));
	CHECK(!domain_ok(".example.test"));
	CHECK(!domain_ok("example.test."));
	CHECK(!domain_ok("-example.test"));
	CHECK(!domain_ok("example-.test"));
	CHECK(!domain_ok("exa_mple.test"));
	CHECK(!domain_ok("exa mple.test"));
	CHECK(!domain_ok("ex\x01.test"));

	/* A label of 63 bytes passes, 64 does not. */
	memset(buf, 'a', 63);
	strlcpy(buf + 63, ".test", sizeof(buf) - 63);
	CHECK(domain_ok(buf));
	memset(buf, 'a', 64);
	strlcpy(buf + 64, ".test", sizeof(buf) - 64);
	CHECK(!domain_ok(buf));

	/* 255 bytes in all, not 256. */
	memset(buf, 'a', 255);
	buf[255] = '\0';
	for (i = 60; i < 255; i += 61)
		buf[i] = '.';
	CHECK(domain_ok(buf));
	buf[255] = 'a';
	buf[256] = '\0';
	CHECK(!domain_ok(buf));

	CHECK(address_ok("alice@example.test"));
	CHECK(address_ok("a.b+tag@example.test"));
	CHECK(address_ok("!#$%&'*+-/=?^_`{|}~@example.test"));
	CHECK(address_says("alice", "local@domain"));
	CHECK(address_says("@example.test", "empty local part"));
	CHECK(address_says("alice@", "empty domain"));
	CHECK(address_says(".alice@example.test", "dot"));
	CHECK(address_says("alice.@example.test", "dot"));
	CHECK(address_says("al..ice@example.test", "two dots"));
	CHECK(address_says("a@b@example.test", "local part may hold"));
	CHECK(address_says("al ice@example.test", "local part may hold"));
	CHECK(address_says("al\"ice@example.test", "local part may hold"));
	CHECK(address_says("al\tice@example.test", "control character"));
	CHECK(address_says("alice@exa_mple.test", "domain may hold"));
	CHECK(address_says("al\xc3\xa9@example.test", "local part may hold"));

	/* A local part of 64 bytes passes, 65 does not. */
	memset(buf, 'x', 64);
	strlcpy(buf + 64, "@example.test", sizeof(buf) - 64);
	CHECK(address_ok(buf));
	memset(buf, 'x', 65);
	strlcpy(buf + 65, "@example.test", sizeof(buf) - 65);
	CHECK(address_says(buf, "longer than 64"));

	/* 320 bytes in all. */
	memset(buf, 'x', 400);
	buf[400] = '\0';
	buf[10] = '@';
	CHECK(address_says(buf, "longer than 320"));

	CHECK(ctl_valid_password("x", err, sizeof(err)) == 0);
	CHECK(ctl_valid_password("", err, sizeof(err)) == -1 &&
	    strcmp(err, "empty password") == 0);
	CHECK(ctl_valid_password("a\nb", err, sizeof(err)) == -1);
	memset(buf, 'p', 1024);
	buf[1024] = '\0';
	CHECK(ctl_valid_password(buf, err, sizeof(err)) == 0);
	memset(buf, 'p', 1025);
	buf[1025] = '\0';
	CHECK(ctl_valid_password(buf, err, sizeof(err)) == -1);

	CHECK(ctl_valid_queue_id("0123456789abcdef", &qid, err,
	    sizeof(err)) == 0 && qid == 0x0123456789abcdefULL);
	CHECK(ctl_valid_queue_id("FFFFFFFFFFFFFFFF", &qid, err,
	    sizeof(err)) == 0 && qid == UINT64_MAX);
	CHECK(ctl_valid_queue_id("0123456789abcde", NULL, err,
	    sizeof(err)) == -1);
	CHECK(ctl_valid_queue_id("0123456789abcdef0", NULL, err,
	    sizeof(err)) == -1);
	CHECK(ctl_valid_queue_id("0123456789abcdeg", NULL, err,
	    sizeof(err)) == -1);
	CHECK(ctl_valid_queue_id("", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_queue_id("0x23456789abcdef", NULL, err,
	    sizeof(err)) == -1);

	CHECK(ctl_valid_uid("1", &uid, err, sizeof(err)) == 0 && uid == 1);
	CHECK(ctl_valid_uid("4294967295", &uid, err, sizeof(err)) == 0 &&
	    uid == UINT32_MAX);
	CHECK(ctl_valid_uid("0", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_uid("4294967296", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_uid("-1", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_uid(" 1", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_uid("1x", NULL, err, sizeof(err)) == -1);
	CHECK(ctl_valid_uid("", NULL, err, sizeof(err)) == -1);

	CHECK(ctl_valid_mailbox("INBOX", err, sizeof(err)) == 0);
	CHECK(ctl_valid_mailbox("Archive/2026", err, sizeof(err)) == 0);
	CHECK(ctl_valid_mailbox("", err, sizeof(err)) == -1);
	CHECK(ctl_valid_mailbox("In\tbox", err, sizeof(err)) == -1);
	memset(buf, 'm', 256);
	buf[256] = '\0';
	CHECK(ctl_valid_mailbox(buf, err, sizeof(err)) == -1);
	buf[255] = '\0';
	CHECK(ctl_valid_mailbox(buf, err, sizeof(err)) == 0);

	/* The reason fits a small buffer, truncated. */
	CHECK(ctl_valid_address("nope", err, 8) == -1 &&
	    strlen(err) == 7);
	return unit_done();
}
