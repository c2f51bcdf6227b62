/*
 * The message of an SMTP transaction: DATA and BDAT, read from the
 * raw input buffer through smtp_data_scan(), streamed after our trace
 * header into the spool file storaged opened, and committed; 250 only
 * once storaged says the message is durable.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "proc.h"
#include "smtp_parse.h"
#include "smtp_session.h"
#include "smtpd.h"

static unsigned char	 scratch[IO_READ_SIZE + SMTP_DATA_SCAN_SLACK];

static void
smtp_data_timeout(int fd, short event, void *arg)
{
	struct smtp_session	*s = arg;

	log_info("session %u from %s: data timeout", s->id, s->addr);
	smtp_tx_reset(s);
	smtp_reply(s, "421 4.4.2 %s Timeout, closing connection",
	    proc_conf->hostname);
	smtp_quit(s);
	smtp_release(s);
}

static void
smtp_data_timer_start(struct smtp_session *s)
{
	struct timeval	 tv;

	if (evtimer_pending(&s->ev_data, NULL))
		return;
	tv.tv_sec = smtp_limit(LIMIT_DATA_TIMEOUT);
	tv.tv_usec = 0;
	evtimer_set(&s->ev_data, smtp_data_timeout, s);
	evtimer_add(&s->ev_data, &tv);
}

/* --- the trace header and the spool file ---------------------------- */

static void
smtp_spool_write(struct smtp_session *s, const void *buf, size_t len)
{
	const unsigned char	*p = buf;
	ssize_t			 n;

	while (len > 0 && !(s->data_errors & DATA_WRITE)) {
		n = write(s->spoolfd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("session %u: spool %016llx write", s->id,
			    (unsigned long long)s->spool);
			s->data_errors |= DATA_WRITE;
			return;
		}
		p += n;
		len -= n;
	}
}

/* Message data: counted, and kept while nothing is wrong with it. */
static void
smtp_spool_add(struct smtp_session *s, const void *buf, size_t len)
{
	s->datasize += len;
	if (s->datasize > (uint64_t)smtp_limit(LIMIT_MESSAGE_SIZE))
		s->data_errors |= DATA_TOO_BIG;
	if (s->data_errors == 0 && len > 0)
		smtp_spool_write(s, buf, len);
}

static const char *
smtp_protocol(struct smtp_session *s)
{
	int	 tls = (s->flags & SF_TLS) != 0;
	int	 auth = (s->flags & SF_AUTHED) != 0;

	if (s->mail.smtputf8)
		return tls ? (auth ? "UTF8SMTPSA" : "UTF8SMTPS") :
		    (auth ? "UTF8SMTPA" : "UTF8SMTP");
	if (!(s->flags & SF_EHLO))
		return "SMTP";
	return tls ? (auth ? "ESMTPSA" : "ESMTPS") :
	    (auth ? "ESMTPA" : "ESMTP");
}

/* RFC 5322 3.3 date-time, from the zone read before the chroot. */
static void
smtp_date(char *buf, size_t len)
{
	static const char *days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *months[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct timespec	 ts;
	struct tm	 tm;
	long		 off;
	time_t		 t;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		fatal("clock_gettime");
	t = ts.tv_sec;
	if (localtime_r(&t, &tm) == NULL)
		gmtime_r(&t, &tm);
	off = tm.tm_gmtoff / 60;
	snprintf(buf, len, "%s, %d %s %d %02d:%02d:%02d %c%02ld%02ld",
	    days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    off < 0 ? '-' : '+', labs(off) / 60, labs(off) % 60);
}

static void
smtp_trace_header(struct smtp_session *s)
{
	char		 hdr[2048], date[64], tlsinfo[256], forpart[300];
	struct tls	*tls;
	struct smtp_rcpt *r;
	int		 n;

	smtp_date(date, sizeof(date));
	tlsinfo[0] = '\0';
	if ((tls = io_tls(s->io)) != NULL)
		snprintf(tlsinfo, sizeof(tlsinfo), "\r\n\t(using %s with "
		    "cipher %s)", tls_conn_version(tls), tls_conn_cipher(tls));
	forpart[0] = '\0';
	if (s->nrcpts == 1 && (r = TAILQ_FIRST(&s->rcpts)) != NULL)
		snprintf(forpart, sizeof(forpart), "\r\n\tfor <%s>", r->addr);
	n = snprintf(hdr, sizeof(hdr), "Received: from %s (%s%s])\r\n"
	    "\tby %s (%s) with %s id %016llx%s%s;\r\n\t%s\r\n",
	    s->helo, s->family == AF_INET6 ? "[IPv6:" : "[", s->addr,
	    proc_conf->hostname, SMTPD_NAME, smtp_protocol(s),
	    (unsigned long long)s->spool, tlsinfo, forpart, date);
	if (n < 0 || (size_t)n >= sizeof(hdr)) {
		s->data_errors |= DATA_WRITE;
		return;
	}
	smtp_spool_write(s, hdr, n);
}

/* --- the end of a message ------------------------------------------- */

static void
smtp_data_refuse(struct smtp_session *s, int errors)
{
	const char	*reply, *why;

	if (errors & (SMTP_DATA_BARE_CR | SMTP_DATA_BARE_LF |
	    SMTP_DATA_NUL)) {
		why = "bare CR, bare LF or NUL in the message";
		reply = "550 5.6.0 Message refused: bare CR, bare LF or NUL "
		    "in message data";
	} else if (errors & DATA_TOO_BIG) {
		why = "message too big";
		reply = "552 5.3.4 Message size exceeds fixed maximum "
		    "message size";
	} else if (errors & SMTP_DATA_LONG_LINE) {
		why = "line too long";
		reply = "500 5.5.2 Line too long";
	} else {
		why = "spool write failed";
		reply = "451 4.3.0 Error writing the message, try again "
		    "later";
	}
	log_info("session %u from %s: message refused: %s", s->id, s->addr,
	    why);
	smtp_tx_reset(s);
	smtp_reply(s, "%s", reply);
}

static void
smtp_data_end(struct smtp_session *s)
{
	struct smtp_rcpt	*r;
	struct msg_out		 m;
	int			 errors = s->data_errors | s->scan.errors;

	evtimer_del(&s->ev_data);
	io_set_timeout(s->io, smtp_limit(LIMIT_IDLE_TIMEOUT) * 1000);
	s->state = SMTP_CMD;
	if (errors) {
		smtp_data_refuse(s, errors);
		return;
	}
	/* storaged fsyncs it; our descriptor has done its job. */
	close(s->spoolfd);
	s->spoolfd = -1;
	TAILQ_FOREACH(r, &s->rcpts, entry) {
		msg_create(&m, IMSG_STORE_SPOOL_RCPT, s->id, -1);
		msg_add_u64(&m, s->spool);
		msg_add_string(&m, r->addr);
		msg_add_u8(&m, r->kind);
		msg_add_u32(&m, r->notify);
		msg_add_string(&m, r->orcpt);
		if (smtp_send_storaged(s, &m) == -1)
			goto fail;
	}
	msg_create(&m, IMSG_STORE_COMMIT, s->id, -1);
	msg_add_u64(&m, s->spool);
	msg_add_string(&m, s->mail.from);
	msg_add_u8(&m, s->mail.body);
	msg_add_u8(&m, s->mail.smtputf8);
	msg_add_u8(&m, s->mail.ret);
	msg_add_string(&m, s->mail.envid);
	msg_add_string(&m, (s->flags & SF_AUTHED) ? s->account : "");
	msg_add_string(&m, s->addr);
	msg_add_string(&m, s->helo);
	if (smtp_send_storaged(s, &m) == -1)
		goto fail;
	smtp_wait(s, WAIT_COMMIT);
	return;
 fail:
	smtp_tx_reset(s);
	smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
}

void
smtp_session_commit_result(uint32_t id, int ok, uint64_t qid,
    const char *err)
{
	struct smtp_session	*s;

	if ((s = smtp_lookup(id)) == NULL)
		return;
	if (s->wait != WAIT_COMMIT)
		fatalx("%s: session %u is not committing", __func__, id);
	/* Committed or not, the spool file is storaged's now. */
	s->spool = 0;
	if (ok) {
		log_info("session %u from %s: queued %016llx from=<%s> "
		    "size=%llu nrcpts=%d", s->id, s->addr,
		    (unsigned long long)qid, s->mail.from,
		    (unsigned long long)s->datasize, s->nrcpts);
		smtp_reply(s, "250 2.0.0 Ok: queued as %016llx",
		    (unsigned long long)qid);
	} else {
		log_warnx("session %u from %s: commit failed: %s", s->id,
		    s->addr, err);
		smtp_reply(s, "451 4.3.0 Error queueing the message, try "
		    "again later");
	}
	smtp_tx_reset(s);
	smtp_unwait(s);
	smtp_continue(s);
}

/* --- DATA and BDAT input ------------------------------------------- */

/* Returns 0 when it needs more input. */
int
smtp_data_in(struct smtp_session *s)
{
	size_t	 avail, take, n, olen;

	if ((avail = io_datalen(s->io)) == 0)
		return 0;
	take = avail < IO_READ_SIZE ? avail : IO_READ_SIZE;
	n = smtp_data_scan(&s->scan, io_data(s->io), take, scratch, &olen);
	io_drop(s->io, n);
	smtp_spool_add(s, scratch, olen);
	if (s->scan.done)
		smtp_data_end(s);
	return 1;
}

static void
smtp_bdat_chunk_done(struct smtp_session *s)
{
	int	 errors;

	s->state = SMTP_CMD;
	if (s->flags & SF_DISCARD) {
		s->flags &= ~SF_DISCARD;
		smtp_reply(s, "%s", s->discard_reply);
		return;
	}
	if (s->chunk_last) {
		if (!s->binary)
			smtp_data_scan_finish(&s->scan);
		smtp_data_end(s);
		return;
	}
	errors = s->data_errors | s->scan.errors;
	if (errors) {
		/* RFC 3030 3: later chunks already sent are discarded. */
		evtimer_del(&s->ev_data);
		io_set_timeout(s->io, smtp_limit(LIMIT_IDLE_TIMEOUT) * 1000);
		smtp_data_refuse(s, errors);
		return;
	}
	smtp_reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)s->chunk_size);
}

int
smtp_bdat_in(struct smtp_session *s)
{
	size_t		 avail, take, olen;
	unsigned char	*p;

	if (s->chunk_left == 0) {
		smtp_bdat_chunk_done(s);
		return 1;
	}
	if ((avail = io_datalen(s->io)) == 0)
		return 0;
	take = avail < IO_READ_SIZE ? avail : IO_READ_SIZE;
	if (take > s->chunk_left)
		take = s->chunk_left;
	p = io_data(s->io);
	if (!(s->flags & SF_DISCARD)) {
		if (s->binary)
			smtp_spool_add(s, p, take);
		else {
			(void)smtp_data_scan(&s->scan, p, take, scratch,
			    &olen);
			smtp_spool_add(s, scratch, olen);
		}
	}
	io_drop(s->io, take);
	s->chunk_left -= take;
	if (s->chunk_left == 0)
		smtp_bdat_chunk_done(s);
	return 1;
}

/* The spool file is open: message data may come. */
static void
smtp_data_begin(struct smtp_session *s)
{
	smtp_trace_header(s);
	smtp_data_timer_start(s);
	if (s->flags & SF_BDAT) {
		s->binary = s->mail.body == SMTP_BODY_BINARYMIME;
		smtp_data_scan_init(&s->scan, 0, s->maxline);
		s->state = SMTP_BDAT;
		return;
	}
	smtp_data_scan_init(&s->scan, 1, s->maxline);
	s->state = SMTP_DATA;
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

void
smtp_session_spool_fd(uint32_t id, uint64_t spool, const char *err, int fd)
{
	struct smtp_session	*s;
	struct msg_out		 m;

	if ((s = smtp_lookup(id)) == NULL) {
		if (fd != -1)
			close(fd);
		if (spool != 0) {
			msg_create(&m, IMSG_STORE_SPOOL_ABORT, id, -1);
			msg_add_u64(&m, spool);
			if (proc_send(PROC_STORAGED, &m) == -1)
				log_warn("SPOOL_ABORT to storaged");
		}
		return;
	}
	if (s->wait != WAIT_SPOOL)
		fatalx("%s: session %u did not ask for a spool file",
		    __func__, id);
	smtp_unwait(s);
	if (spool == 0) {
		if (fd != -1)
			close(fd);
		log_warnx("session %u: no spool file: %s", s->id, err);
		if (s->flags & SF_BDAT) {
			/* The chunk that asked still has to be read. */
			s->flags |= SF_DISCARD;
			s->discard_reply = "451 4.3.0 Temporary failure, try "
			    "again later";
			smtp_tx_reset(s);
			s->state = SMTP_BDAT;
		} else {
			smtp_tx_reset(s);
			smtp_reply(s, "451 4.3.0 Temporary failure, try again "
			    "later");
		}
		smtp_continue(s);
		return;
	}
	s->spool = spool;
	s->spoolfd = fd;
	smtp_data_begin(s);
	smtp_continue(s);
}

static int
smtp_spool_open(struct smtp_session *s)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_SPOOL_OPEN, s->id, -1);
	if (smtp_send_storaged(s, &m) == -1)
		return -1;
	smtp_wait(s, WAIT_SPOOL);
	return 0;
}

void
smtp_cmd_data(struct smtp_session *s, const char *verb, char *arg)
{
	if (arg != NULL) {
		smtp_bad(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	if (!(s->flags & SF_MAIL)) {
		smtp_reply(s, "503 5.5.1 Need MAIL before DATA");
		return;
	}
	if (s->flags & SF_BDAT) {
		smtp_reply(s, "503 5.5.1 DATA after BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_reply(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->mail.body == SMTP_BODY_BINARYMIME) {
		smtp_reply(s, "503 5.5.1 BODY=BINARYMIME needs BDAT");
		return;
	}
	if (smtp_spool_open(s) == -1)
		smtp_reply(s, "451 4.3.0 Temporary failure, try again later");
}

/* A chunk whose transaction cannot go on is read and thrown away. */
static void
smtp_bdat_discard(struct smtp_session *s, const char *reply)
{
	s->flags |= SF_DISCARD;
	s->discard_reply = reply;
	s->state = SMTP_BDAT;
}

void
smtp_cmd_bdat(struct smtp_session *s, const char *verb, char *arg)
{
	uint64_t	 size;
	int		 last;

	if (arg == NULL || smtp_parse_bdat(arg, &size, &last) == -1) {
		/* The chunk's length is unknown: its bytes are not commands. */
		smtp_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		smtp_quit(s);
		return;
	}
	s->chunk_size = s->chunk_left = size;
	s->chunk_last = last;
	if (!(s->flags & SF_MAIL)) {
		smtp_bdat_discard(s, "503 5.5.1 Need MAIL before BDAT");
		return;
	}
	if (s->nrcpts == 0) {
		smtp_bdat_discard(s, "554 5.5.1 No valid recipients");
		return;
	}
	if (s->flags & SF_BDAT) {
		s->state = SMTP_BDAT;
		return;
	}
	s->flags |= SF_BDAT;
	if (smtp_spool_open(s) == -1) {
		smtp_tx_reset(s);
		smtp_bdat_discard(s, "451 4.3.0 Temporary failure, try again "
		    "later");
	}
}

