/*
 * Every message type that travels between Postern's processes, in one
 * list.  The X-macro gives both the enum and the name table used in
 * traces and in fatalx() for an unexpected type.
 */
#ifndef IMSG_TYPES_H
#define IMSG_TYPES_H

#define IMSG_TYPE_LIST(X)						\
	X(IMSG_NONE)							\
	/* parent <-> every role: start-up, reload, lifecycle */	\
	X(IMSG_CONF_START)						\
	X(IMSG_CONF_LISTENER)						\
	X(IMSG_CONF_DOMAIN)						\
	X(IMSG_CONF_TLS_CERT)						\
	X(IMSG_CONF_TLS_KEY)						\
	X(IMSG_CONF_CONTROL_FD)						\
	X(IMSG_CONF_END)						\
	X(IMSG_CONF_RELOAD)						\
	X(IMSG_PROC_READY)						\
	X(IMSG_PROC_VERBOSE)						\
	/* posternctl <-> control <-> parent / storaged / queue */	\
	X(IMSG_CTL_HELLO)						\
	X(IMSG_CTL_OK)							\
	X(IMSG_CTL_FAIL)						\
	X(IMSG_CTL_ITEM)						\
	X(IMSG_CTL_END)							\
	X(IMSG_CTL_SHOW_STATUS)						\
	X(IMSG_CTL_RELOAD)						\
	X(IMSG_CTL_STOP)						\
	X(IMSG_CTL_LOG_VERBOSE)						\
	X(IMSG_CTL_LOG_BRIEF)						\
	X(IMSG_CTL_DOMAIN_ADD)						\
	X(IMSG_CTL_DOMAIN_DEL)						\
	X(IMSG_CTL_DOMAIN_LIST)						\
	X(IMSG_CTL_ACCOUNT_ADD)						\
	X(IMSG_CTL_ACCOUNT_DEL)						\
	X(IMSG_CTL_ACCOUNT_LIST)					\
	X(IMSG_CTL_ACCOUNT_PASSWD)					\
	X(IMSG_CTL_ALIAS_ADD)						\
	X(IMSG_CTL_ALIAS_DEL)						\
	X(IMSG_CTL_ALIAS_LIST)						\
	X(IMSG_CTL_SHOW_QUEUE)						\
	X(IMSG_CTL_QUEUE_REMOVE)					\
	X(IMSG_CTL_QUEUE_SCHEDULE)					\
	X(IMSG_CTL_MAILBOX_LIST)					\
	X(IMSG_CTL_MESSAGE_SHOW)					\
	/* roles <-> storaged */					\
	X(IMSG_STORE_AUTH)						\
	X(IMSG_STORE_AUTH_RESULT)					\
	X(IMSG_STORE_RCPT)						\
	X(IMSG_STORE_RCPT_RESULT)					\
	X(IMSG_STORE_SENDER_CHECK)					\
	X(IMSG_STORE_SENDER_RESULT)					\
	X(IMSG_STORE_SPOOL_OPEN)					\
	X(IMSG_STORE_SPOOL_FD)						\
	X(IMSG_STORE_COMMIT)						\
	X(IMSG_STORE_COMMIT_RESULT)					\
	X(IMSG_STORE_DELIVER)						\
	X(IMSG_STORE_DELIVER_RESULT)					\
	X(IMSG_STORE_QUEUE_LOAD)					\
	X(IMSG_STORE_QUEUE_ENTRY)					\
	X(IMSG_STORE_QUEUE_UPDATE)					\
	X(IMSG_STORE_BOUNCE)						\
	X(IMSG_STORE_CHANGE)						\
	/* smtpd <-> queue */						\
	X(IMSG_QUEUE_RCPT)						\
	X(IMSG_QUEUE_RCPT_RESULT)					\
	X(IMSG_QUEUE_COMMIT)						\
	X(IMSG_QUEUE_COMMIT_RESULT)					\
	X(IMSG_QUEUE_NEW)

#define IMSG_ENUM(n)	n,
enum imsg_type {
	IMSG_TYPE_LIST(IMSG_ENUM)
	IMSG_TYPE_MAX
};
#undef IMSG_ENUM

const char	*imsg_type_name(uint32_t);

#endif /* IMSG_TYPES_H */
