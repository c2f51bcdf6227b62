/*
 * What smtpd, queue and storaged say to each other about one message:
 * the kinds of recipient, the answers to a recipient lookup and the
 * states of a queued recipient.  The payloads themselves are described
 * next to their types in imsg_types.h.
 */
#ifndef ENVELOPE_H
#define ENVELOPE_H

/* IMSG_STORE_RCPT_RESULT: what an address is to us. */
enum rcpt_lookup {
	RCPT_LOCAL,		/* one of our accounts, aliases, catch-alls */
	RCPT_UNKNOWN,		/* a local domain, but nobody there: 5.1.1 */
	RCPT_REMOTE,		/* not one of our domains */
	RCPT_TEMPFAIL		/* the store could not tell: 4.3.0 */
};

/* Where a queued recipient goes. */
enum rcpt_kind {
	RCPT_KIND_LOCAL,
	RCPT_KIND_REMOTE
};

/* A queued recipient's state, as stored and as shown. */
enum rcpt_status {
	RCPT_PENDING,		/* waiting for (another) attempt */
	RCPT_HELD,		/* remote: relaying is not built yet */
	RCPT_DELIVERED,
	RCPT_BOUNCED,		/* failed for good; a DSN was queued */
	RCPT_REMOVED		/* taken out by posternctl queue remove */
};

/* IMSG_STORE_DELIVER_RESULT: how one attempt went. */
enum delivery_result {
	DELIVERY_OK,
	DELIVERY_TEMPFAIL,	/* try again later */
	DELIVERY_PERMFAIL	/* bounce it */
};

#define ENVELOPE_REASON_MAX	256	/* bytes of a failure's text */

#endif /* ENVELOPE_H */
