/*
 * The syntax checks posternctl makes before it connects and the control
 * role makes again before it forwards a request: one set of rules, so
 * that both walls refuse the same input with the same words.
 */
#ifndef CTL_VALID_H
#define CTL_VALID_H

#include <stddef.h>
#include <stdint.h>

#define CTL_LABEL_MAX		63	/* one label of a domain, RFC 1035 */
#define CTL_LOCALPART_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define CTL_PASSWORD_MAX	1024	/* bytes */
#define CTL_ERR_MAX		128	/* room for any reason below */
#define CTL_QUEUE_ID_LEN	16	/* hex digits of a queue id */
#define CTL_MAILBOX_MAX		255	/* bytes of a mailbox name */

/* Each returns 0, or -1 with a reason (no input echoed) in err. */
int	ctl_valid_domain(const char *, char *, size_t);
int	ctl_valid_address(const char *, char *, size_t);
/* An address, or @domain: the domain's catch-all. */
int	ctl_valid_alias(const char *, char *, size_t);
int	ctl_valid_password(const char *, char *, size_t);
int	ctl_valid_mailbox(const char *, char *, size_t);
int	ctl_valid_uid(const char *, uint32_t *, char *, size_t);
int	ctl_valid_queue_id(const char *, uint64_t *, char *, size_t);

#endif /* CTL_VALID_H */
