/*
 * What imapd and storaged say to each other (the IMSG_STORE_MBOX_* and
 * IMSG_STORE_MSG_* types of imsg_types.h).  peerid is imapd's session;
 * storaged binds it to the account of a successful IMSG_STORE_AUTH and
 * answers every request of that peerid within that account only, until
 * IMSG_STORE_SESSION_END.  Payload fields in order: s string, d data,
 * u8/u32/u64/i64 numbers, R a UID range list (u32 n, then n x u32 lo,
 * u32 hi; at most IMAP_RANGES_MAX: FETCH splits longer sets, SEARCH
 * refuses them).
 * Flags travel as IMAP atoms separated by spaces ("\Seen $Forwarded");
 * the mapping to stored keywords is storaged's alone.
 *
 * P R is a set of any length for a request that must be one
 * transaction (STORE, COPY, MOVE, EXPUNGE): imapd first sends all but
 * its last IMAP_RANGES_MAX ranges as MSG_RANGES: R pieces (no answer;
 * at most IMAP_RANGE_PIECES_MAX before one request), which storaged
 * keeps for the session, then the request with P, the u32 count of
 * those pieces, and R, the last ranges.  storaged runs the request on
 * all of them in one transaction and forgets the pieces; a count that
 * differs from the pieces kept is malformed.
 *
 * MBOX_RESULT: u32 ok, s text (response code and text after OK / NO)
 * MBOX_LIST: - -> MBOX_ITEM: u64 id (0: subscribed, not existing),
 *	s name, s special-use, u8 subscribed, u32 messages, u32 unseen,
 *	u32 deleted, u32 uidnext, u32 uidvalidity, u64 size,
 *	u64 highestmodseq ..., MBOX_END
 * MBOX_CREATE, MBOX_DELETE: s name -> MBOX_RESULT
 * MBOX_RENAME: s old, s new -> MBOX_RESULT
 * MBOX_SUBSCRIBE: s name, u8 on -> MBOX_RESULT
 * MBOX_SELECT: s name, u8 readonly -> MBOX_SELECTED: u64 id,
 *	u32 uidvalidity, u32 uidnext, u64 highestmodseq, u32 messages,
 *	s keywords in use, u32 first unseen uid (0: none); MBOX_UIDS:
 *	u32 n, n x u32 uid ...; MBOX_END.
 *	Or MBOX_RESULT with ok 0.
 * MBOX_UNSELECT: - (no answer)
 * MBOX_SYNC: u64 mailbox, u64 since -> SYNC_FLAGS: u32 uid, u64 modseq,
 *	s flags ... (modseq > since; new messages are among them),
 *	SYNC_VANISHED: u32 n, n x u32 uid ..., SYNC_END: u64 highestmodseq,
 *	u32 uidnext
 * CHANGE (storaged -> imapd, to each other session with the mailbox
 *	selected): u64 mailbox, u64 highestmodseq
 * MSG_FETCH: u64 mailbox, u32 IMAP_FETCH_* bits, u64 changedsince, R ->
 *	per message MSG_MIME: u32 uid, u32 total, d chunk ... (mime JSON,
 *	mime_from_json(), offsets count the prefix), then MSG_ITEM: u32 uid,
 *	u64 modseq, s flags, i64 internaldate, u64 size, s prefix, with the
 *	blob's read-only fd when IMAP_FETCH_BODY; then MSG_END.  Without
 *	IMAP_FETCH_MIME and IMAP_FETCH_BODY one MSG_ITEM holds as many
 *	items, one after the other, as fit.
 *	IMAP_FETCH_SHALLOW instead of IMAP_FETCH_MIME: no MSG_MIME, and
 *	MSG_ITEM ends with u64 body start (where the top-level header ends,
 *	counting the prefix), for sections of the message as a whole.
 *	IMAP_FETCH_HEADER with IMAP_FETCH_BODY: only the header is read,
 *	so the fd may be the stored skeleton of a message whose large
 *	parts were cut (store_parts.c), never reassembled.
 *	Else, for a message whose parts were cut, before its MSG_ITEM one
 *	MSG_PART: u32 uid, u64 start, u64 length per part, in order, with
 *	the part blob's read-only fd, and MSG_ITEM's fd is the skeleton:
 *	the message after its prefix is the skeleton with each part put
 *	back at start (skeleton offset: start less the lengths of the
 *	parts before it).  At most IMAP_BODY_PARTS a message and
 *	IMAP_BODY_FDS descriptors an answer (imsg holds IMSG_MAX_FDS
 *	unclaimed); a message of more parts comes put together in one fd
 * MSG_STORE: u64 mailbox, u8 IMAP_STORE_*, u64 unchangedsince, s flags,
 *	P R -> STORE_ITEM: u32 uid, u64 modseq, s flags ...,
 *	STORE_MODIFIED: u32 n, n x u32 uid ..., STORE_END
 * MSG_COPY: u64 mailbox, s destination, u8 move, P R -> COPY_UIDS:
 *	u32 n, n x u32 source uid ... (ascending, at most
 *	IMAP_UIDS_PER_MSG each), COPY_RESULT: u32 ok, s text,
 *	u32 uidvalidity, u32 first destination uid (0: nothing copied);
 *	the destination UIDs are first, first + 1, ... in the order of
 *	the source UIDs
 * MSG_EXPUNGE: u64 mailbox, u8 restrict to R, P R -> MBOX_RESULT
 * MSG_APPEND: u64 spool (SPOOL_OPEN), s flags, i64 internaldate
 *	(0: now) (no answer): one message of an APPEND command, staged in
 *	the session's batch (storaged makes it durable and parses it
 *	meanwhile; a failure is kept for the commit).  At most
 *	IMAP_APPEND_MAX in one batch.
 * MSG_APPEND_COMMIT: s mailbox -> APPEND_RESULT: u32 ok, s text,
 *	u32 uidvalidity, u32 first uid, u32 count: every message staged
 *	since the last commit or abort goes into the mailbox in one
 *	transaction, with the UIDs first .. first + count - 1 in their
 *	order, and the answer waits until that is on disk; or, if any of
 *	them failed (its text is the answer's) or the mailbox is gone,
 *	none does.
 * MSG_APPEND_ABORT: - (no answer): the staged messages are dropped;
 *	SESSION_END drops them too.
 * MSG_SEARCH: u64 mailbox, u8 sort, s sort keys (RFC 5256), program ->
 *	SEARCH_UIDS: u32 n, n x u32 uid ..., SEARCH_END: u64 highest modseq
 * MSG_THREAD: u64 mailbox, s algorithm, program -> THREAD_DATA: d chunk
 *	..., THREAD_END (the chunks are RFC 5256 thread data in UIDs)
 *
 * A request for a mailbox that is no longer the session's selected one
 * (another session deleted it) is answered empty: MSG_END, STORE_END,
 * SEARCH_END 0, THREAD_END, or ok 0 "[NONEXISTENT] ..." in COPY_RESULT,
 * MBOX_RESULT and APPEND_RESULT; MBOX_SYNC then gets MBOX_RESULT ok 0
 * instead of SYNC_END (imapd ends the session with BYE).
 *
 * The search program is a tree in prefix order, each node a u8 SK_* and
 * its fields (see enum search_key).
 */
#ifndef IMAP_PROTO_H
#define IMAP_PROTO_H

#define IMAP_RANGES_MAX		1024	/* UID ranges in one message */
#define IMAP_RANGE_PIECES_MAX	512	/* MSG_RANGES before one request */
#define IMAP_APPEND_MAX		1000	/* messages in one (MULTI)APPEND */
#define IMAP_UIDS_PER_MSG	3000	/* UIDs in one MBOX_UIDS, SEARCH_UIDS */
#define IMAP_BODY_BATCH		32	/* messages per MSG_FETCH with fds */
#define IMAP_BODY_PARTS		8	/* MSG_PARTs before one MSG_ITEM */
#define IMAP_BODY_FDS		64	/* fds in one answer to MSG_FETCH */
#define IMAP_MIME_CHUNK		15000	/* bytes of mime JSON per MSG_MIME */
#define IMAP_SEARCH_DEPTH	32	/* nesting of a search program */
#define IMAP_HIERARCHY_SEP	'/'

#define IMAP_FETCH_FLAGS	0x01
#define IMAP_FETCH_META		0x02	/* internaldate, size, modseq */
#define IMAP_FETCH_MIME		0x04
#define IMAP_FETCH_BODY		0x08
#define IMAP_FETCH_SHALLOW	0x10	/* body start, not the mime tree */
#define IMAP_FETCH_HEADER	0x20	/* the fd is read up to body start */

#define IMAP_STORE_REPLACE	0
#define IMAP_STORE_ADD		1
#define IMAP_STORE_REMOVE	2

enum search_key {
	SK_ALL,			/* - */
	SK_AND,			/* u32 n, then n nodes */
	SK_OR,			/* 2 nodes */
	SK_NOT,			/* 1 node */
	SK_UIDS,		/* R */
	SK_KEYWORD,		/* s flag: set */
	SK_HEADER,		/* s field, s substring */
	SK_BODY,		/* s */
	SK_TEXT,		/* s */
	SK_BEFORE,		/* i64: internaldate < day start (UTC) */
	SK_ON,			/* i64 */
	SK_SINCE,		/* i64 */
	SK_SENTBEFORE,		/* i64: Date: header */
	SK_SENTON,		/* i64 */
	SK_SENTSINCE,		/* i64 */
	SK_LARGER,		/* u64 */
	SK_SMALLER,		/* u64 */
	SK_MODSEQ,		/* u64 */
	SK_OLDER,		/* u32 seconds */
	SK_YOUNGER,		/* u32 seconds */
	SK_MAX
};

#endif /* IMAP_PROTO_H */
