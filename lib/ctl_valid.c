/*
 * Syntax of what an administrator types into posternctl: domain names,
 * addresses, passwords, mailbox names, UIDs and queue ids.  Shared by
 * posternctl, the control role and queue.
 * Deliberately narrower than RFC 5322: a local part is a dot-atom of
 * ASCII atext, a domain is a hostname of letters, digits and hyphens.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_valid.h"
#include "postern.h"

static int
ctl_fail(char *err, size_t errlen, const char *reason)
{
	if (errlen > 0)
		strlcpy(err, reason, errlen);
	return -1;
}

static int
ctl_is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* RFC 5322 atext: letters, digits and these. */
static int
ctl_is_atext(unsigned char c)
{
	return ctl_is_alnum(c) || (c != '\0' &&
	    strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static int
ctl_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 1;
	return 0;
}

int
ctl_valid_domain(const char *name, char *err, size_t errlen)
{
	const char	*p, *label;
	size_t		 len;

	if (ctl_has_control(name))
		return ctl_fail(err, errlen, "control character in domain");
	len = strlen(name);
	if (len == 0)
		return ctl_fail(err, errlen, "empty domain");
	if (len > DOMAIN_MAX)
		return ctl_fail(err, errlen, "domain longer than 255 bytes");
	label = name;
	for (p = name;; p++) {
		if (*p == '.' || *p == '\0') {
			if (p == label)
				return ctl_fail(err, errlen,
				    "empty label in domain");
			if ((size_t)(p - label) > CTL_LABEL_MAX)
				return ctl_fail(err, errlen,
				    "domain label longer than 63 bytes");
			if (*label == '-' || p[-1] == '-')
				return ctl_fail(err, errlen, "domain label "
				    "starts or ends with a hyphen");
			if (*p == '\0')
				break;
			label = p + 1;
			continue;
		}
		if (!ctl_is_alnum(*p) && *p != '-')
			return ctl_fail(err, errlen, "domain may hold only "
			    "letters, digits, hyphens and dots");
	}
	return 0;
}

int
ctl_valid_address(const char *addr, char *err, size_t errlen)
{
	const char	*at, *p;
	size_t		 len;

	if (ctl_has_control(addr))
		return ctl_fail(err, errlen, "control character in address");
	len = strlen(addr);
	if (len > ADDRESS_MAX)
		return ctl_fail(err, errlen, "address longer than 320 bytes");
	if ((at = strrchr(addr, '@')) == NULL)
		return ctl_fail(err, errlen, "address must be local@domain");
	if (at == addr)
		return ctl_fail(err, errlen, "empty local part in address");
	if ((size_t)(at - addr) > CTL_LOCALPART_MAX)
		return ctl_fail(err, errlen,
		    "local part longer than 64 bytes");
	if (addr[0] == '.' || at[-1] == '.')
		return ctl_fail(err, errlen,
		    "local part starts or ends with a dot");
	for (p = addr; p < at; p++) {
		if (*p == '.') {
			if (p[1] == '.')
				return ctl_fail(err, errlen,
				    "two dots in a row in local part");
			continue;
		}
		if (!ctl_is_atext(*p))
			return ctl_fail(err, errlen, "local part may hold "
			    "only letters, digits, dots and "
			    "!#$%&'*+-/=?^_`{|}~");
	}
	return ctl_valid_domain(at + 1, err, errlen);
}

int
ctl_valid_alias(const char *alias, char *err, size_t errlen)
{
	if (alias[0] == '@')
		return ctl_valid_domain(alias + 1, err, errlen);
	return ctl_valid_address(alias, err, errlen);
}

int
ctl_valid_password(const char *pw, char *err, size_t errlen)
{
	size_t	 len = strlen(pw);

	if (len == 0)
		return ctl_fail(err, errlen, "empty password");
	if (len > CTL_PASSWORD_MAX)
		return ctl_fail(err, errlen,
		    "password longer than 1024 bytes");
	if (strchr(pw, '\n') != NULL || strchr(pw, '\r') != NULL)
		return ctl_fail(err, errlen, "line break in password");
	return 0;
}

int
ctl_valid_mailbox(const char *name, char *err, size_t errlen)
{
	if (ctl_has_control(name))
		return ctl_fail(err, errlen, "control character in mailbox");
	if (*name == '\0')
		return ctl_fail(err, errlen, "empty mailbox");
	if (strlen(name) > CTL_MAILBOX_MAX)
		return ctl_fail(err, errlen, "mailbox longer than 255 bytes");
	return 0;
}

/* A message's UID in its mailbox: decimal, 1 to 2^32-1. */
int
ctl_valid_uid(const char *s, uint32_t *uid, char *err, size_t errlen)
{
	const char	*errstr;
	long long	 v;

	if (ctl_has_control(s))
		return ctl_fail(err, errlen, "control character in uid");
	if (*s < '0' || *s > '9')
		return ctl_fail(err, errlen, "uid must be a decimal number");
	v = strtonum(s, 1, UINT32_MAX, &errstr);
	if (errstr != NULL)
		return ctl_fail(err, errlen,
		    "uid must be a number from 1 to 4294967295");
	if (uid != NULL)
		*uid = (uint32_t)v;
	return 0;
}

/* A queue id as shown by show queue: exactly 16 hex digits. */
int
ctl_valid_queue_id(const char *s, uint64_t *id, char *err, size_t errlen)
{
	uint64_t	 v = 0;
	size_t		 i;
	int		 d;

	if (ctl_has_control(s))
		return ctl_fail(err, errlen, "control character in queue id");
	for (i = 0; s[i] != '\0'; i++) {
		if (i == CTL_QUEUE_ID_LEN)
			break;
		if (s[i] >= '0' && s[i] <= '9')
			d = s[i] - '0';
		else if (s[i] >= 'a' && s[i] <= 'f')
			d = s[i] - 'a' + 10;
		else if (s[i] >= 'A' && s[i] <= 'F')
			d = s[i] - 'A' + 10;
		else
			return ctl_fail(err, errlen,
			    "queue id must be 16 hex digits");
		v = v << 4 | (uint64_t)d;
	}
	if (i != CTL_QUEUE_ID_LEN || s[i] != '\0')
		return ctl_fail(err, errlen, "queue id must be 16 hex digits");
	if (id != NULL)
		*id = v;
	return 0;
}
