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
	/*								\
	 * Queue ids travel as u64 and are shown as 16 hex digits.	\
	 * SHOW_QUEUE (queue): - -> ITEM: s line ..., END		\
	 * QUEUE_REMOVE (queue): s id -> OK or FAIL: s err		\
	 * QUEUE_SCHEDULE (queue): s id or "all" -> OK or FAIL	\
	 * MAILBOX_LIST (storaged): s account -> ITEM: s line ..., END \
	 * MESSAGE_LIST (storaged): s account, s mailbox -> ITEM ..., END \
	 * MESSAGE_SHOW (storaged): s account, s mailbox, u32 uid	\
	 *   -> OK: s added header lines, with a read fd of the blob	\
	 */								\
	X(IMSG_CTL_SHOW_QUEUE)						\
	X(IMSG_CTL_QUEUE_REMOVE)					\
	X(IMSG_CTL_QUEUE_SCHEDULE)					\
	X(IMSG_CTL_MAILBOX_LIST)					\
	X(IMSG_CTL_MESSAGE_LIST)					\
	X(IMSG_CTL_MESSAGE_SHOW)					\
	/*								\
	 * roles <-> storaged.  Payload fields in order; s string,	\
	 * u8/u32/u64/i64 numbers.  peerid is the asker's session or	\
	 * request id and comes back in the answer.			\
	 * AUTH: s user, s password -> AUTH_RESULT: u32 ok, s account \
	 * RCPT: s address -> RCPT_RESULT: u32 enum rcpt_lookup	\
	 * SENDER_CHECK: s account, s mail-from -> SENDER_RESULT: u32 ok \
	 * SPOOL_OPEN: - -> SPOOL_FD: u64 spool id (0: failed), s err, \
	 *   with a write fd of the new spool file			\
	 * SPOOL_RCPT: u64 spool, s address, u8 rcpt_kind, u32 notify, \
	 *   s orcpt (one per recipient, just before COMMIT)		\
	 * SPOOL_ABORT: u64 spool (no answer; the file is unlinked)	\
	 * COMMIT: u64 spool, s mail-from, u8 body, u8 smtputf8,	\
	 *   u8 ret, s envid, s auth account, s client addr, s helo	\
	 *   -> COMMIT_RESULT: u32 ok, u64 queue id, s err		\
	 * storaged -> queue after every commit, and for QUEUE_LOAD:	\
	 *   QUEUE_RCPT: u64 queue id, u32 rcpt index, s sender,	\
	 *   i64 created, s address, u8 rcpt_kind, u8 rcpt_status,	\
	 *   u32 attempts, i64 next attempt, s last error;		\
	 *   then QUEUE_NEW: u64 queue id (the entry is complete), or	\
	 *   for QUEUE_LOAD, QUEUE_END: - after the last entry.	\
	 * DELIVER: u64 queue id -> DELIVER_RESULT: u64 queue id,	\
	 *   u32 rcpt index, u8 delivery_result, s reason (one per	\
	 *   pending local recipient), then DELIVER_DONE: u64 queue id \
	 * QUEUE_UPDATE: u64 queue id, u32 rcpt index, u32 attempts,	\
	 *   i64 next attempt, s last error (no answer)		\
	 * BOUNCE: u64 queue id, u32 n, n x (u32 rcpt index, s reason) \
	 *   -> BOUNCE_RESULT: u64 queue id, u64 dsn id (0: none), u32 ok \
	 * QUEUE_REMOVE: u64 queue id -> QUEUE_REMOVE_RESULT: u32 ok, \
	 *   s err							\
	 */								\
	X(IMSG_STORE_AUTH)						\
	X(IMSG_STORE_AUTH_RESULT)					\
	X(IMSG_STORE_RCPT)						\
	X(IMSG_STORE_RCPT_RESULT)					\
	X(IMSG_STORE_SENDER_CHECK)					\
	X(IMSG_STORE_SENDER_RESULT)					\
	X(IMSG_STORE_SPOOL_OPEN)					\
	X(IMSG_STORE_SPOOL_FD)						\
	X(IMSG_STORE_SPOOL_RCPT)					\
	X(IMSG_STORE_SPOOL_ABORT)					\
	X(IMSG_STORE_COMMIT)						\
	X(IMSG_STORE_COMMIT_RESULT)					\
	X(IMSG_STORE_QUEUE_LOAD)					\
	X(IMSG_STORE_QUEUE_RCPT)					\
	X(IMSG_STORE_QUEUE_NEW)					\
	X(IMSG_STORE_QUEUE_END)					\
	X(IMSG_STORE_DELIVER)						\
	X(IMSG_STORE_DELIVER_RESULT)					\
	X(IMSG_STORE_DELIVER_DONE)					\
	X(IMSG_STORE_QUEUE_UPDATE)					\
	X(IMSG_STORE_BOUNCE)						\
	X(IMSG_STORE_BOUNCE_RESULT)					\
	X(IMSG_STORE_QUEUE_REMOVE)					\
	X(IMSG_STORE_QUEUE_REMOVE_RESULT)				\
	X(IMSG_STORE_CHANGE)						\
	/* imapd <-> storaged: payloads in imap_proto.h */		\
	X(IMSG_STORE_SESSION_END)					\
	X(IMSG_STORE_MBOX_RESULT)					\
	X(IMSG_STORE_MBOX_LIST)						\
	X(IMSG_STORE_MBOX_ITEM)						\
	X(IMSG_STORE_MBOX_END)						\
	X(IMSG_STORE_MBOX_CREATE)					\
	X(IMSG_STORE_MBOX_DELETE)					\
	X(IMSG_STORE_MBOX_RENAME)					\
	X(IMSG_STORE_MBOX_SUBSCRIBE)					\
	X(IMSG_STORE_MBOX_SELECT)					\
	X(IMSG_STORE_MBOX_SELECTED)					\
	X(IMSG_STORE_MBOX_UIDS)						\
	X(IMSG_STORE_MBOX_UNSELECT)					\
	X(IMSG_STORE_MBOX_SYNC)						\
	X(IMSG_STORE_SYNC_FLAGS)					\
	X(IMSG_STORE_SYNC_VANISHED)					\
	X(IMSG_STORE_SYNC_END)						\
	X(IMSG_STORE_MSG_RANGES)					\
	X(IMSG_STORE_MSG_FETCH)						\
	X(IMSG_STORE_MSG_MIME)						\
	X(IMSG_STORE_MSG_PART)						\
	X(IMSG_STORE_MSG_ITEM)						\
	X(IMSG_STORE_MSG_END)						\
	X(IMSG_STORE_MSG_STORE)						\
	X(IMSG_STORE_STORE_ITEM)					\
	X(IMSG_STORE_STORE_MODIFIED)					\
	X(IMSG_STORE_STORE_END)						\
	X(IMSG_STORE_MSG_COPY)						\
	X(IMSG_STORE_COPY_UIDS)						\
	X(IMSG_STORE_COPY_RESULT)					\
	X(IMSG_STORE_MSG_EXPUNGE)					\
	X(IMSG_STORE_MSG_APPEND)					\
	X(IMSG_STORE_MSG_APPEND_COMMIT)					\
	X(IMSG_STORE_MSG_APPEND_ABORT)					\
	X(IMSG_STORE_APPEND_RESULT)					\
	X(IMSG_STORE_MSG_SEARCH)					\
	X(IMSG_STORE_SEARCH_UIDS)					\
	X(IMSG_STORE_SEARCH_END)					\
	X(IMSG_STORE_MSG_THREAD)					\
	X(IMSG_STORE_THREAD_DATA)					\
	X(IMSG_STORE_THREAD_END)

#define IMSG_ENUM(n)	n,
enum imsg_type {
	IMSG_TYPE_LIST(IMSG_ENUM)
	IMSG_TYPE_MAX
};
#undef IMSG_ENUM

const char	*imsg_type_name(uint32_t);

#endif /* IMSG_TYPES_H */
