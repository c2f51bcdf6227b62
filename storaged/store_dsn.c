/*
 * Bounces: BOUNCE marks recipients failed for good and, unless the
 * sender is <> or asked for no failure notice (NOTIFY=NEVER, or a list
 * without FAILURE), queues an RFC 3464 delivery status notification to
 * the sender, in the same transaction, so a crash never loses the
 * notice nor sends it twice.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "envelope.h"
#include "log.h"
#include "mime.h"
#include "storaged.h"
#include "../smtpd/smtp_parse.h"

#define DSN_BOUNCES_MAX		10000	/* recipients in one BOUNCE */
#define DSN_STATUS_MAX		16	/* "5.123.123" */

struct dsn_rcpt {
	uint32_t	 idx;
	char		*reason;
	char		*address;
	char		*orcpt;
	uint32_t	 notify;
	int		 bounced;	/* was pending or held, now bounced */
};

struct dsn_entry {
	char		 blob[STORE_HASH_HEX + 1];
	char		*sender;
	char		*envid;
	int		 ret;
	int		 body;
	int		 smtputf8;
	int64_t		 created;
};

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) == SQLITE_OK ?
	    0 : -1;
}

static char *
column_dup(sqlite3_stmt *st, int i)
{
	const char	*s = (const char *)sqlite3_column_text(st, i);

	return strdup(s != NULL ? s : "");
}

/* For a header line: CR, LF, TAB and other controls become spaces. */
static void
line_safe(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

static int
notify_wants_failure(uint32_t notify)
{
	if (notify == SMTP_NOTIFY_DEFAULT)
		return 1;
	if (notify & SMTP_NOTIFY_NEVER)
		return 0;
	return (notify & SMTP_NOTIFY_FAILURE) != 0;
}

/*
 * The status code a reason starts with ("5.1.1 no such user", or
 * "550 5.1.1 ..."), and the reply code if it has one.
 */
static void
reason_status(const char *reason, char *status, size_t statuslen,
    char *code, size_t codelen)
{
	const char	*p = reason;
	size_t		 n, parts;

	strlcpy(status, "5.0.0", statuslen);
	code[0] = '\0';
	if (isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && (p[3] == ' ' || p[3] == '-')) {
		(void)snprintf(code, codelen, "%.3s", p);
		p += 4;
	}
	if ((p[0] != '4' && p[0] != '5') || p[1] != '.')
		return;
	for (n = 2, parts = 1; parts < 3; parts++) {
		if (!isdigit((unsigned char)p[n]))
			return;
		while (isdigit((unsigned char)p[n]) && n < DSN_STATUS_MAX)
			n++;
		if (parts < 2) {
			if (p[n] != '.')
				return;
			n++;
		}
	}
	if (n >= statuslen || (p[n] != '\0' && p[n] != ' '))
		return;
	memcpy(status, p, n);
	status[n] = '\0';
}

static void
rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0)
		strlcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000", len);
}

/*
 * At most max bytes of the blob's head; *whole says whether that is
 * the whole blob.
 */
static int
blob_head(const char *hash, size_t max, char **out, size_t *outlen,
    int *whole)
{
	char	*buf;
	size_t	 off = 0;
	ssize_t	 n;
	int	 fd;

	*out = NULL;
	*outlen = 0;
	*whole = 0;
	if ((fd = store_blob_open(hash)) == -1)
		return -1;
	if ((buf = malloc(max + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (off < max) {
		if ((n = read(fd, buf + off, max - off)) == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0) {
			*whole = 1;
			break;
		}
		off += n;
	}
	if (!*whole) {
		/* Exactly max bytes: is there more? */
		char	 c;

		while ((n = read(fd, &c, 1)) == -1 && errno == EINTR)
			;
		*whole = n == 0;
	}
	close(fd);
	buf[off] = '\0';
	*out = buf;
	*outlen = off;
	return 0;
}

/* The length of the header block, its last CRLF included. */
static size_t
header_length(const char *buf, size_t len)
{
	size_t	 i;

	for (i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 1;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 1;
	}
	/* No body: up to the last complete line. */
	while (len > 0 && buf[len - 1] != '\n')
		len--;
	return len;
}

static int
has_8bit(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/*
 * The whole report, in *out.  What the original contributes: its
 * header (or, for RET=FULL, all of it if it is not over the delivery
 * limit).
 */
static int
dsn_compose(int64_t queue_id, const struct dsn_entry *e,
    const struct dsn_rcpt *rcpts, size_t n, char **out, size_t *outlen,
    int *eightbit)
{
	struct store_buf	 b, t;
	const char		*host = proc_conf->hostname;
	char			*orig = NULL, *text, *s;
	char			 boundary[80], date[64], arrival[64];
	char			 status[DSN_STATUS_MAX], code[8];
	size_t			 origlen, hlen, i;
	uint64_t		 r[2];
	int			 whole, full;
	time_t			 now = time(NULL);

	full = e->ret == SMTP_RET_FULL;
	if (blob_head(e->blob, full ? store_deliver_max() : MIME_MAX_HEADER,
	    &orig, &origlen, &whole) == -1) {
		/* The notice matters more than the copy of the original. */
		log_warn("dsn: blob %s", e->blob);
		if ((orig = strdup("")) == NULL)
			return -1;
		origlen = 0;
		whole = 0;
	}
	if (full && !whole)
		full = 0;
	hlen = full ? origlen : header_length(orig, origlen);
	do {
		arc4random_buf(r, sizeof(r));
		(void)snprintf(boundary, sizeof(boundary),
		    "=_postern_%016llx_%016llx", (unsigned long long)r[0],
		    (unsigned long long)r[1]);
	} while (memmem(orig, hlen, boundary, strlen(boundary)) != NULL);
	rfc5322_date(now, date, sizeof(date));
	rfc5322_date(e->created, arrival, sizeof(arrival));

	/* The human part. */
	memset(&t, 0, sizeof(t));
	store_buf_printf(&t, "This is the mail system at %s.\r\n\r\n"
	    "Your message could not be delivered to %s:\r\n\r\n", host,
	    n == 1 ? "this recipient" : "these recipients");
	for (i = 0; i < n; i++)
		store_buf_printf(&t, "  <%s>: %s\r\n", rcpts[i].address,
		    rcpts[i].reason);
	store_buf_printf(&t, "\r\n%s\r\n", full ?
	    "Your message is attached." :
	    "The header of your message is attached.");
	if ((text = store_buf_finish(&t)) == NULL) {
		free(orig);
		return -1;
	}

	memset(&b, 0, sizeof(b));
	store_buf_printf(&b, "Date: %s\r\n", date);
	store_buf_printf(&b, "From: Mail Delivery System "
	    "<MAILER-DAEMON@%s>\r\n", host);
	store_buf_printf(&b, "To: <%s>\r\n", e->sender);
	store_buf_str(&b, "Subject: Undelivered Mail Returned to Sender\r\n");
	store_buf_printf(&b, "Message-ID: <dsn.%016llx.%lld.%08x@%s>\r\n",
	    (unsigned long long)queue_id, (long long)now,
	    (unsigned int)(r[0] & 0xffffffff), host);
	store_buf_str(&b, "Auto-Submitted: auto-replied\r\n");
	store_buf_str(&b, "MIME-Version: 1.0\r\n");
	store_buf_printf(&b, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"%s\"\r\n",
	    boundary);
	store_buf_str(&b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	store_buf_printf(&b, "--%s\r\n", boundary);
	store_buf_str(&b, "Content-Type: text/plain; charset=utf-8\r\n");
	if (has_8bit(text, strlen(text)))
		store_buf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
	store_buf_printf(&b, "Content-Description: Notification\r\n\r\n%s\r\n",
	    text);
	free(text);

	store_buf_printf(&b, "--%s\r\n", boundary);
	store_buf_str(&b, "Content-Type: message/delivery-status\r\n"
	    "Content-Description: Delivery report\r\n\r\n");
	store_buf_printf(&b, "Reporting-MTA: dns; %s\r\n", host);
	if (e->envid[0] != '\0')
		store_buf_printf(&b, "Original-Envelope-Id: %s\r\n", e->envid);
	store_buf_printf(&b, "Arrival-Date: %s\r\n", arrival);
	for (i = 0; i < n; i++) {
		reason_status(rcpts[i].reason, status, sizeof(status), code,
		    sizeof(code));
		store_buf_str(&b, "\r\n");
		if (rcpts[i].orcpt[0] != '\0' &&
		    (s = strchr(rcpts[i].orcpt, ';')) != NULL)
			store_buf_printf(&b, "Original-Recipient: %.*s; %s\r\n",
			    (int)(s - rcpts[i].orcpt), rcpts[i].orcpt,
			    s + 1 + strspn(s + 1, " "));
		store_buf_printf(&b, "Final-Recipient: rfc822; %s\r\n",
		    rcpts[i].address);
		store_buf_str(&b, "Action: failed\r\n");
		store_buf_printf(&b, "Status: %s\r\n", status);
		if (code[0] != '\0')
			store_buf_printf(&b, "Diagnostic-Code: smtp; %s\r\n",
			    rcpts[i].reason);
		else
			store_buf_printf(&b, "Diagnostic-Code: smtp; %s %s\r\n",
			    status[0] == '4' ? "450" : "550",
			    rcpts[i].reason);
		store_buf_printf(&b, "Last-Attempt-Date: %s\r\n", date);
	}
	store_buf_str(&b, "\r\n");

	store_buf_printf(&b, "--%s\r\n", boundary);
	if (full)
		store_buf_str(&b, "Content-Type: message/rfc822\r\n"
		    "Content-Description: Undelivered message\r\n");
	else
		store_buf_str(&b, "Content-Type: text/rfc822-headers\r\n"
		    "Content-Description: Undelivered message header\r\n");
	*eightbit = has_8bit(orig, hlen);
	if (*eightbit)
		store_buf_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
	store_buf_str(&b, "\r\n");
	store_buf_add(&b, orig, hlen);
	if (hlen > 0 && orig[hlen - 1] != '\n')
		store_buf_str(&b, "\r\n");
	store_buf_printf(&b, "\r\n--%s--\r\n", boundary);
	free(orig);
	if ((*out = store_buf_finish(&b)) == NULL)
		return -1;
	*outlen = strlen(*out);
	return 0;
}

static int
entry_load(int64_t queue_id, struct dsn_entry *e)
{
	sqlite3_stmt	*st;
	int		 rc;

	memset(e, 0, sizeof(*e));
	if ((st = store_db_stmt("SELECT blob, sender, envid, ret, body, "
	    "smtputf8, created FROM queue WHERE id = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, queue_id) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		strlcpy(e->blob, (const char *)sqlite3_column_text(st, 0),
		    sizeof(e->blob));
		e->sender = column_dup(st, 1);
		e->envid = column_dup(st, 2);
		e->ret = sqlite3_column_int(st, 3);
		e->body = sqlite3_column_int(st, 4);
		e->smtputf8 = sqlite3_column_int(st, 5);
		e->created = sqlite3_column_int64(st, 6);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE)
		return 1;
	if (rc != SQLITE_ROW || e->sender == NULL || e->envid == NULL)
		return -1;
	line_safe(e->sender);
	line_safe(e->envid);
	return 0;
}

static void
entry_clear(struct dsn_entry *e)
{
	free(e->sender);
	free(e->envid);
}

/* Marks one recipient bounced if it was still waiting. */
static int
rcpt_bounce(int64_t queue_id, struct dsn_rcpt *r)
{
	sqlite3_stmt	*st;
	int		 rc, status = -1;

	if ((st = store_db_stmt("SELECT address, notify, orcpt, status "
	    "FROM queue_rcpts WHERE queue_id = ? AND idx = ?")) == NULL)
		return -1;
	if (sqlite3_bind_int64(st, 1, queue_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, r->idx) != SQLITE_OK) {
		sqlite3_finalize(st);
		return -1;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r->address = column_dup(st, 0);
		r->notify = sqlite3_column_int64(st, 1);
		r->orcpt = column_dup(st, 2);
		status = sqlite3_column_int(st, 3);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_DONE) {
		log_warnx("bounce: queue %016llx has no recipient %u",
		    (unsigned long long)queue_id, r->idx);
		return 0;
	}
	if (rc != SQLITE_ROW || r->address == NULL || r->orcpt == NULL)
		return -1;
	line_safe(r->address);
	line_safe(r->orcpt);
	if (status != RCPT_PENDING && status != RCPT_HELD)
		return 0;
	if ((st = store_db_stmt("UPDATE queue_rcpts SET status = ?, "
	    "last_error = substr(?, 1, ?) WHERE queue_id = ? AND idx = ?")) ==
	    NULL)
		return -1;
	if (sqlite3_bind_int(st, 1, RCPT_BOUNCED) != SQLITE_OK ||
	    bind_text(st, 2, r->reason) == -1 ||
	    sqlite3_bind_int(st, 3, ENVELOPE_REASON_MAX) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 4, queue_id) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 5, r->idx) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return -1;
	r->bounced = 1;
	return 0;
}

/* Whether an address is in one of our domains: 1, 0, -1 on error. */
static int
sender_is_local(const char *addr)
{
	sqlite3_stmt	*st;
	const char	*at;
	int		 rc;

	if ((at = strrchr(addr, '@')) == NULL)
		return 0;
	if ((st = store_db_stmt("SELECT 1 FROM domains WHERE name = ?")) ==
	    NULL)
		return -1;
	rc = bind_text(st, 1, at + 1) == 0 ? sqlite3_step(st) : SQLITE_ERROR;
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * Inside the transaction: the report as a blob and a queue entry from
 * <> to the original sender.  Returns the new id, 0 if none is due,
 * -1 on error.
 */
static int64_t
dsn_queue(int64_t queue_id, const struct dsn_entry *e,
    struct dsn_rcpt *rcpts, size_t n)
{
	struct store_envelope	 env;
	struct store_rcpt	 rcpt;
	struct dsn_rcpt		*want;
	char			 hash[STORE_HASH_HEX + 1], *dsn = NULL;
	size_t			 i, nwant = 0, dsnlen;
	int64_t			 id;
	int			 local, eightbit;

	if (e->sender[0] == '\0')
		return 0;
	if ((want = calloc(n > 0 ? n : 1, sizeof(*want))) == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (rcpts[i].bounced && notify_wants_failure(rcpts[i].notify))
			want[nwant++] = rcpts[i];
	if (nwant == 0) {
		free(want);
		return 0;
	}
	if ((local = sender_is_local(e->sender)) == -1 ||
	    dsn_compose(queue_id, e, want, nwant, &dsn, &dsnlen,
	    &eightbit) == -1) {
		free(want);
		return -1;
	}
	free(want);
	if (store_blob_put(dsn, dsnlen, hash, sizeof(hash)) == -1) {
		free(dsn);
		return -1;
	}
	free(dsn);
	memset(&env, 0, sizeof(env));
	env.blob = hash;
	env.size = dsnlen;
	env.sender = "";
	env.body = eightbit ? SMTP_BODY_8BITMIME : SMTP_BODY_7BIT;
	env.smtputf8 = e->smtputf8;
	env.ret = SMTP_RET_NONE;
	env.envid = "";
	env.auth = "";
	env.client = "";
	env.helo = "";
	memset(&rcpt, 0, sizeof(rcpt));
	rcpt.address = e->sender;
	rcpt.kind = local ? RCPT_KIND_LOCAL : RCPT_KIND_REMOTE;
	rcpt.notify = SMTP_NOTIFY_NEVER;
	rcpt.orcpt = "";
	if ((id = store_queue_insert(&env, &rcpt, 1)) == -1)
		return -1;
	return id;
}

static void
bounce_reply(uint32_t peerid, uint64_t queue_id, uint64_t dsn_id,
    uint32_t ok)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_BOUNCE_RESULT, peerid, -1);
	msg_add_u64(&m, queue_id);
	msg_add_u64(&m, dsn_id);
	msg_add_u32(&m, ok);
	if (proc_send(PROC_QUEUE, &m) == -1)
		log_warn("bounce result to queue");
}

/* IMSG_STORE_BOUNCE from queue: u64 id, u32 n, n x (u32 idx, s reason) */
void
store_bounce(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct dsn_entry	 e;
	struct dsn_rcpt		*rcpts = NULL;
	const char		*reason;
	uint64_t		 id;
	uint32_t		 n, i;
	int64_t			 dsn_id = 0;
	int			 rc;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &id) == -1 || msg_get_u32(&m, &n) == -1 ||
	    n > DSN_BOUNCES_MAX ||
	    (rcpts = calloc(n > 0 ? n : 1, sizeof(*rcpts))) == NULL)
		goto malformed;
	for (i = 0; i < n; i++) {
		if (msg_get_u32(&m, &rcpts[i].idx) == -1 ||
		    msg_get_string(&m, &reason) == -1)
			goto malformed;
		if ((rcpts[i].reason = strndup(reason,
		    ENVELOPE_REASON_MAX - 1)) == NULL)
			fatal("%s", __func__);
		line_safe(rcpts[i].reason);
	}
	if (msg_end(&m) == -1)
		goto malformed;

	if (store_db_begin() == -1)
		goto fail;
	if ((rc = entry_load((int64_t)id, &e)) != 0) {
		entry_clear(&e);
		store_db_rollback();
		if (rc == 1) {
			log_warnx("bounce: no queue entry %016llx",
			    (unsigned long long)id);
			bounce_reply(imsg->hdr.peerid, id, 0, 1);
			goto done;
		}
		goto fail;
	}
	for (i = 0; i < n; i++)
		if (rcpt_bounce((int64_t)id, &rcpts[i]) == -1)
			break;
	if (i < n || (dsn_id = dsn_queue((int64_t)id, &e, rcpts, n)) == -1 ||
	    store_queue_drop_if_done((int64_t)id) == -1 ||
	    store_db_commit() == -1) {
		entry_clear(&e);
		store_db_rollback();
		goto fail;
	}
	store_blob_collect();
	for (i = 0; i < n; i++)
		if (rcpts[i].bounced)
			log_info("queue %016llx: bounced %s: %s",
			    (unsigned long long)id, rcpts[i].address,
			    rcpts[i].reason);
	if (dsn_id > 0)
		log_info("queue %016llx: delivery status notification to "
		    "<%s> queued as %016llx", (unsigned long long)id,
		    e.sender, (unsigned long long)dsn_id);
	entry_clear(&e);
	bounce_reply(imsg->hdr.peerid, id, dsn_id, 1);
	if (dsn_id > 0)
		store_queue_announce(dsn_id);
	goto done;
 fail:
	store_blob_collect();
	log_warnx("bounce: queue %016llx: storage error; its recipients "
	    "stay queued", (unsigned long long)id);
	bounce_reply(imsg->hdr.peerid, id, 0, 0);
 done:
	for (i = 0; rcpts != NULL && i < n; i++) {
		free(rcpts[i].reason);
		free(rcpts[i].address);
		free(rcpts[i].orcpt);
	}
	free(rcpts);
	return;
 malformed:
	fatalx("malformed %s from %s", imsg_type_name(imsg->hdr.type),
	    proc_names[peer->id]);
}
