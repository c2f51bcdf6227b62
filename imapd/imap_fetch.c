/*
 * FETCH, STORE, COPY, MOVE, EXPUNGE and APPEND.  Sequence sets become
 * the known UIDs they name (imap_set_uids()), sent to storaged as UID
 * ranges.  FETCH of bodies goes in batches of IMAP_BODY_BATCH messages,
 * each message's blob read through the descriptor storaged passes (or,
 * for a message whose large parts are stored apart, its skeleton and
 * each part through its own, put together by fetch_read()), and the
 * next batch waits until the client has read most of the last.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "imap_render.h"
#include "imapd.h"
#include "io.h"
#include "log.h"
#include "mime.h"
#include "proc.h"

#define APPEND_WRITE_MAX	(64 * 1024)

/* --- FETCH ----------------------------------------------------------- */

#define FETCH_STREAM_MIN	(256 * 1024)	/* larger sections stream */
#define FETCH_STREAM_CHUNK	(256 * 1024)
#define FETCH_STREAM		1		/* fetch_section(): streaming */
#define IMAP_FETCH_RENDER_MAX	(8 * 1024 * 1024)	/* one response */
#define FETCH_CORK_MAX		(64 * 1024)	/* output held back */

/* An answer that came in while a section streamed out. */
struct fetch_held {
	TAILQ_ENTRY(fetch_held)	 entry;
	struct imsg		 imsg;
};

/*
 * A part of a message stored apart (MSG_PART): len bytes at start of
 * the message after its prefix, cut out of the skeleton.
 */
struct fetch_piece {
	int			 fd;
	size_t			 start;
	size_t			 len;
};

/* One message being answered. */
struct fetch_msg {
	uint32_t		 uid;
	size_t			 seq;
	uint64_t		 modseq;
	char			*flags;
	size_t			 flagslen;
	int64_t			 idate;
	uint64_t		 size;
	char			*prefix;
	size_t			 prefixlen;
	int			 fd;		/* the blob, or the skeleton */
	struct fetch_piece	 pieces[IMAP_BODY_PARTS];
	size_t			 npieces;
	struct mime_message	*msg;
	/* IMAP_FETCH_SHALLOW: the message as one part, msg pointing here */
	struct mime_message	 shallow;
	struct mime_part	 shallow_root;
	size_t			 att;		/* the next item */
	int			 borrowed;	/* on the stack, strings too */
	int			 modseq_out;
	int			 sp;
	/* streaming [off, off + left) */
	size_t			 off;
	size_t			 left;
};

struct fetch_ctx {
	struct imap_fetch	 f;
	struct imap_uidlist	 uids;
	size_t			 next;
	size_t			 seqhint;	/* answers by ascending UID */
	uint32_t		 what;
	int			 seen;		/* phase: setting \Seen */
	int			 error;		/* NO at the end */
	char			*mime;
	size_t			 mimelen;
	uint32_t		 mimeuid;
	uint32_t		 mimetotal;
	struct fetch_piece	 parts[IMAP_BODY_PARTS]; /* of partuid */
	size_t			 nparts;
	uint32_t		 partuid;
	struct imap_buf		 out;
	/* Each section item parsed once, for every message. */
	struct imap_section	*sects[IMAP_FETCH_ATTS_MAX];
	int			 sectrc[IMAP_FETCH_ATTS_MAX];
	struct fetch_msg	*streaming;
	TAILQ_HEAD(, fetch_held) held;
};

struct fetch_reader {
	const char			*prefix;
	size_t				 prefixlen;
	int				 fd;
	const struct fetch_piece	*pieces;
	size_t				 npieces;
};

static void
fetch_reader_init(struct fetch_reader *r, const struct fetch_msg *fm)
{
	r->prefix = fm->prefix;
	r->prefixlen = fm->prefixlen;
	r->fd = fm->fd;
	r->pieces = fm->pieces;
	r->npieces = fm->npieces;
}

static int
fetch_pread(int fd, char *dst, size_t len, size_t off)
{
	ssize_t	 got;

	if (fd == -1)
		return -1;
	while (len > 0) {
		got = pread(fd, dst, len, (off_t)off);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		dst += got;
		len -= got;
		off += got;
	}
	return 0;
}

/*
 * len bytes at off of the message: its prefix, then the skeleton with
 * each part read from its own blob where it was cut out.
 */
static int
fetch_read(void *arg, size_t off, char *dst, size_t len)
{
	struct fetch_reader		*r = arg;
	const struct fetch_piece	*p;
	size_t				 i, n, cut = 0;

	if (off < r->prefixlen) {
		n = r->prefixlen - off < len ? r->prefixlen - off : len;
		memcpy(dst, r->prefix + off, n);
		off += n;
		dst += n;
		len -= n;
	}
	if (len == 0)
		return 0;
	off -= r->prefixlen;
	for (i = 0; i < r->npieces && len > 0; i++) {
		p = &r->pieces[i];
		if (off < p->start) {
			n = p->start - off < len ? p->start - off : len;
			if (fetch_pread(r->fd, dst, n, off - cut) == -1)
				return -1;
			off += n;
			dst += n;
			len -= n;
		}
		if (len > 0 && off < p->start + p->len) {
			n = p->start + p->len - off < len ?
			    p->start + p->len - off : len;
			if (fetch_pread(p->fd, dst, n, off - p->start) == -1)
				return -1;
			off += n;
			dst += n;
			len -= n;
		}
		cut += p->len;
	}
	if (len == 0)
		return 0;
	return fetch_pread(r->fd, dst, len, off - cut);
}

static void
fetch_pieces_close(struct fetch_piece *pieces, size_t *n)
{
	while (*n > 0)
		close(pieces[--(*n)].fd);
}

static void
fetch_msg_free(struct fetch_msg *fm)
{
	if (fm == NULL)
		return;
	if (fm->fd != -1)
		close(fm->fd);
	fetch_pieces_close(fm->pieces, &fm->npieces);
	if (fm->msg != NULL && fm->msg != &fm->shallow)
		mime_free(fm->msg);
	if (fm->borrowed)
		return;
	free(fm->flags);
	free(fm->prefix);
	free(fm);
}

static void
fetch_ctx_free(void *p)
{
	struct fetch_ctx	*c = p;
	struct fetch_held	*h;
	size_t			 i;

	for (i = 0; i < IMAP_FETCH_ATTS_MAX; i++) {
		if (c->sects[i] == NULL)
			continue;
		imap_section_clear(c->sects[i]);
		free(c->sects[i]);
	}
	imap_fetch_free(&c->f);
	imap_uidlist_free(&c->uids);
	free(c->mime);
	fetch_pieces_close(c->parts, &c->nparts);
	imap_buf_free(&c->out);
	fetch_msg_free(c->streaming);
	while ((h = TAILQ_FIRST(&c->held)) != NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		if (h->imsg.fd != -1)
			close(h->imsg.fd);
		free(h->imsg.data);
		free(h);
	}
	free(c);
}

/*
 * While storaged answers a batch, the responses wait in the output
 * buffer and go out in one write at its end (or once FETCH_CORK_MAX is
 * held, or when a section streams), not one write per answer that
 * came in on its own.
 */
static void
fetch_cork(struct imap_session *s)
{
	io_pause(s->io, IO_OUT);
}

static void
fetch_uncork(struct imap_session *s)
{
	io_resume(s->io, IO_OUT);
}

static int	fetch_batch(struct imap_session *);
static void	fetch_vanished_start(struct imap_session *, struct fetch_ctx *);
static void	fetch_shallow(struct fetch_ctx *);
static void	fetch_render(struct imap_session *, struct fetch_ctx *,
		    struct fetch_msg *);
static void	fetch_replay(struct imap_session *, struct fetch_ctx *);

/* FETCH's implicit \Seen, for all of the set in one request. */
static int
store_seen(struct imap_session *s, struct fetch_ctx *c)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_MSG_STORE, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u8(&m, IMAP_STORE_ADD);
	msg_add_u64(&m, 0);
	msg_add_string(&m, "\\Seen");
	if (imap_ranges_add_all(s, &m, c->uids.v, c->uids.n) == -1 ||
	    imap_send_storaged(s, &m) == -1)
		return -1;
	imap_wait(s, WAIT_STORE);
	return 0;
}

void
imap_cmd_fetch(struct imap_session *s)
{
	struct fetch_ctx	*c;
	struct imap_fetch_att	*a;
	const char		*err;
	size_t			 i;
	int			 setseen = 0, hasflags = 0, hasuid = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	TAILQ_INIT(&c->held);
	if (imap_parse_fetch(&s->cmd, &c->f, &err) == -1) {
		free(c);
		imap_bad(s, err);
		imap_done(s);
		return;
	}
	imap_ctx_set(s, c, fetch_ctx_free);
	if (imap_set_uids(s, &c->f.set, s->cmd.uid, &c->uids) == -1) {
		imap_bad(s, "Invalid sequence set");
		imap_done(s);
		return;
	}
	for (i = 0; i < c->f.natts; i++) {
		a = &c->f.atts[i];
		switch (a->kind) {
		case FA_FLAGS:
			hasflags = 1;
			c->what |= IMAP_FETCH_FLAGS;
			break;
		case FA_UID:
			hasuid = 1;
			break;
		case FA_INTERNALDATE:
		case FA_RFC822_SIZE:
			c->what |= IMAP_FETCH_META;
			break;
		case FA_MODSEQ:
			c->what |= IMAP_FETCH_META;
			s->flags |= SF_CONDSTORE;
			break;
		case FA_ENVELOPE:
		case FA_BODY:
		case FA_BODYSTRUCTURE:
			c->what |= IMAP_FETCH_MIME;
			break;
		case FA_SECTION:
		case FA_BINARY_SIZE:
		case FA_RFC822:
		case FA_RFC822_HEADER:
		case FA_RFC822_TEXT:
			c->what |= IMAP_FETCH_MIME | IMAP_FETCH_BODY;
			if ((a->kind == FA_SECTION && !a->peek) ||
			    a->kind == FA_RFC822 || a->kind == FA_RFC822_TEXT)
				setseen = 1;
			break;
		}
	}
	if (c->f.changedsince) {
		s->flags |= SF_CONDSTORE;
		c->what |= IMAP_FETCH_META;
	}
	fetch_shallow(c);
	/* A UID FETCH answers with UIDs, whatever was asked. */
	if (s->cmd.uid && !hasuid) {
		if (c->f.natts == IMAP_FETCH_ATTS_MAX) {
			imap_bad(s, "Too many fetch items");
			imap_done(s);
			return;
		}
		memmove(&c->f.atts[1], &c->f.atts[0], c->f.natts *
		    sizeof(c->f.atts[0]));
		memset(&c->f.atts[0], 0, sizeof(c->f.atts[0]));
		c->f.atts[0].kind = FA_UID;
		c->f.natts++;
	}
	if (setseen && !(s->flags & SF_READONLY)) {
		if (!hasflags && c->f.natts < IMAP_FETCH_ATTS_MAX) {
			c->f.atts[c->f.natts].kind = FA_FLAGS;
			c->f.natts++;
		}
		c->what |= IMAP_FETCH_FLAGS;
		if (c->uids.n > 0) {
			c->seen = 1;
			if (store_seen(s, c) == -1) {
				imap_tagged(s, "NO", "[UNAVAILABLE] Try again "
				    "later");
				imap_done(s);
			}
			return;
		}
	}
	c->what |= IMAP_FETCH_META;
	if (c->f.vanished) {
		if (!(s->flags & SF_QRESYNC)) {
			imap_bad(s, "VANISHED needs ENABLE QRESYNC");
			imap_done(s);
			return;
		}
		fetch_vanished_start(s, c);
		return;
	}
	(void)fetch_batch(s);
}

/*
 * Sections of the message as a whole (BODY[], HEADER, HEADER.FIELDS,
 * TEXT, RFC822*) need only where its header ends, not the mime tree;
 * and if only the header is read, storaged need not put back the
 * large parts it stored apart.
 */
static void
fetch_shallow(struct fetch_ctx *c)
{
	const struct imap_fetch_att	*a;
	size_t				 i;
	int				 header = 1;

	if ((c->what & (IMAP_FETCH_MIME | IMAP_FETCH_BODY)) !=
	    (IMAP_FETCH_MIME | IMAP_FETCH_BODY))
		return;
	for (i = 0; i < c->f.natts; i++) {
		a = &c->f.atts[i];
		switch (a->kind) {
		case FA_ENVELOPE:
		case FA_BODY:
		case FA_BODYSTRUCTURE:
		case FA_BINARY_SIZE:
			return;
		case FA_RFC822:
		case FA_RFC822_TEXT:
			header = 0;
			break;
		case FA_SECTION:
			if (a->binary || a->npart > 0)
				return;
			if (a->section != SECT_HEADER &&
			    a->section != SECT_HEADER_FIELDS &&
			    a->section != SECT_HEADER_FIELDS_NOT)
				header = 0;
			break;
		default:
			break;
		}
	}
	c->what &= ~IMAP_FETCH_MIME;
	c->what |= IMAP_FETCH_SHALLOW;
	if (header)
		c->what |= IMAP_FETCH_HEADER;
}

/*
 * UID FETCH (CHANGEDSINCE n VANISHED): a sync since n, of which only
 * the expunges within the set are told, as VANISHED (EARLIER); the
 * session's own state is left as it is.
 */
static void
fetch_vanished_start(struct imap_session *s, struct fetch_ctx *c)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_MBOX_SYNC, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u64(&m, c->f.changedsince);
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return;
	}
	s->after = AFTER_FETCH;
	s->sync_expunge = 3;
	imap_wait(s, WAIT_SYNC);
}

void
imap_fetch_vanished(struct imap_session *s, const uint32_t *uids, size_t n)
{
	struct fetch_ctx	*c = s->ctx;
	struct imap_buf		 b = IMAP_BUF_INIT;
	uint32_t		*v;
	size_t			 i, j, k = 0;

	if ((v = calloc(n + 1, sizeof(*v))) == NULL)
		fatal("%s", __func__);
	for (i = 0; i < n; i++)
		for (j = 0; j < c->f.set.n; j++)
			if (uids[i] >= c->f.set.r[j].lo &&
			    uids[i] <= c->f.set.r[j].hi) {
				v[k++] = uids[i];
				break;
			}
	if (k > 0) {
		imap_buf_adds(&b, "* VANISHED (EARLIER) ");
		imap_set_format(&b, v, k);
		imap_buf_adds(&b, "\r\n");
		if (!b.oom)
			imap_write(s, b.p, b.len);
		imap_buf_free(&b);
	}
	free(v);
}

void
imap_fetch_resume(struct imap_session *s)
{
	(void)fetch_batch(s);
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
fetch_finish(struct imap_session *s)
{
	struct fetch_ctx	*c = s->ctx;

	fetch_uncork(s);
	if (strcmp(s->cmd.verb, "STORE") == 0)
		imap_tagged(s, "OK", "%sSTORE completed",
		    s->cmd.uid ? "UID " : "");
	else if (c->error == 2)
		imap_tagged(s, "NO", "[UNKNOWN-CTE] Cannot decode a part");
	else if (c->error)
		imap_tagged(s, "NO", "[SERVERBUG] Some messages could not be "
		    "fetched");
	else
		imap_tagged(s, "OK", "%sFETCH completed",
		    s->cmd.uid ? "UID " : "");
	imap_done(s);
}

/* Asks for the next batch; -1 after answering the command. */
static int
fetch_batch(struct imap_session *s)
{
	struct fetch_ctx	*c = s->ctx;
	struct msg_out		 m;
	size_t			 n;

	if (c->next >= c->uids.n) {
		fetch_finish(s);
		return -1;
	}
	msg_create(&m, IMSG_STORE_MSG_FETCH, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u32(&m, c->what);
	msg_add_u64(&m, c->f.changedsince);
	n = imap_ranges_add(s, &m, c->uids.v + c->next, c->uids.n - c->next,
	    (c->what & IMAP_FETCH_BODY) ? IMAP_BODY_BATCH : SIZE_MAX);
	c->next += n;
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return -1;
	}
	imap_wait(s, WAIT_FETCH);
	fetch_cork(s);
	return 0;
}

/* An answer that must wait for the section streaming out. */
static int
fetch_hold(struct fetch_ctx *c, struct imsg *imsg)
{
	struct fetch_held	*h;
	size_t			 len = imsg->hdr.len - IMSG_HEADER_SIZE;

	if (c->streaming == NULL)
		return 0;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		fatal("%s", __func__);
	h->imsg = *imsg;
	if ((h->imsg.data = malloc(len + 1)) == NULL)
		fatal("%s", __func__);
	if (len > 0)
		memcpy(h->imsg.data, imsg->data, len);
	imsg->fd = -1;
	TAILQ_INSERT_TAIL(&c->held, h, entry);
	return 1;
}

static void
fetch_stream(struct imap_session *s, struct fetch_ctx *c)
{
	struct fetch_msg	*fm = c->streaming;
	static char		 chunk[FETCH_STREAM_CHUNK];
	struct fetch_reader	 rd;
	size_t			 n;

	fetch_reader_init(&rd, fm);
	while (fm->left > 0 && io_queued(s->io) < IMAP_FETCH_QUEUED_MAX) {
		n = fm->left < sizeof(chunk) ? fm->left : sizeof(chunk);
		if (fetch_read(&rd, fm->off, chunk, n) == -1) {
			/* The literal is promised: a short one is fatal. */
			log_warnx("session %u: cannot read uid %u", s->id,
			    fm->uid);
			imap_close(s);
			return;
		}
		imap_write(s, chunk, n);
		if (s->flags & SF_CLOSE)
			return;
		fm->off += n;
		fm->left -= n;
	}
	if (fm->left > 0)
		return;
	c->streaming = NULL;
	fetch_render(s, c, fm);
	fetch_replay(s, c);
}

void
imap_fetch_lowat(struct imap_session *s)
{
	struct fetch_ctx	*c = s->ctx;

	if (c != NULL && s->has_cmd && strcmp(s->cmd.verb, "FETCH") == 0 &&
	    c->streaming != NULL) {
		fetch_stream(s, c);
		return;
	}
	if (s->wait != WAIT_LOWAT)
		return;
	s->wait = WAIT_NONE;
	(void)fetch_batch(s);
}

void
imap_fetch_mime(struct imap_session *s, struct imsg *imsg)
{
	struct fetch_ctx	*c = s->ctx;
	struct msg_in		 m;
	const void		*data;
	size_t			 len;
	uint32_t		 uid, total;

	if (s->wait != WAIT_FETCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (fetch_hold(c, imsg))
		return;
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &uid) == -1 || msg_get_u32(&m, &total) == -1 ||
	    msg_get_data(&m, &data, &len) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	if (c->mime == NULL || c->mimeuid != uid) {
		free(c->mime);
		if ((c->mime = malloc((size_t)total + 1)) == NULL)
			fatal("%s", __func__);
		c->mimeuid = uid;
		c->mimetotal = total;
		c->mimelen = 0;
	}
	if (total != c->mimetotal || len > c->mimetotal - c->mimelen)
		imapd_malformed(imsg);
	if (len > 0)
		memcpy(c->mime + c->mimelen, data, len);
	c->mimelen += len;
}

/* Parts that came for no item: that message is not answered. */
static void
fetch_parts_stale(struct imap_session *s, struct fetch_ctx *c)
{
	if (c->nparts == 0)
		return;
	log_warnx("session %u: parts of uid %u without the message", s->id,
	    c->partuid);
	fetch_pieces_close(c->parts, &c->nparts);
	c->error = 1;
}

/* MSG_PART: one part of the next MSG_ITEM's message, which takes fd. */
void
imap_fetch_part(struct imap_session *s, struct imsg *imsg)
{
	struct fetch_ctx	*c = s->ctx;
	struct fetch_piece	*p;
	struct msg_in		 m;
	uint64_t		 start, len;
	uint32_t		 uid;

	if (s->wait != WAIT_FETCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (fetch_hold(c, imsg))
		return;
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &uid) == -1 || msg_get_u64(&m, &start) == -1 ||
	    msg_get_u64(&m, &len) == -1 || msg_end(&m) == -1 ||
	    imsg->fd == -1 || (c->what & IMAP_FETCH_BODY) == 0 ||
	    start > SIZE_MAX / 2 || len > SIZE_MAX / 2)
		imapd_malformed(imsg);
	if (c->nparts > 0 && c->partuid != uid)
		fetch_parts_stale(s, c);
	if (c->nparts == IMAP_BODY_PARTS || (c->nparts > 0 &&
	    start < c->parts[c->nparts - 1].start +
	    c->parts[c->nparts - 1].len))
		imapd_malformed(imsg);
	c->partuid = uid;
	p = &c->parts[c->nparts++];
	p->fd = imsg->fd;
	p->start = start;
	p->len = len;
	imsg->fd = -1;
}

static int
identity_cte(const struct mime_part *p)
{
	return p->encoding == NULL || strcmp(p->encoding, "7bit") == 0 ||
	    strcmp(p->encoding, "8bit") == 0 ||
	    strcmp(p->encoding, "binary") == 0;
}

/*
 * One section item.  A large plain byte range is not read here: its
 * literal's length goes out and FETCH_STREAM says the bytes follow.
 */
static int
fetch_section(struct fetch_ctx *c, struct imap_buf *b, size_t i,
    struct fetch_msg *fm, struct fetch_reader *rd)
{
	const struct imap_fetch_att	*a = &c->f.atts[i];
	struct imap_section	 sect;
	const char		*spec = a->spec, *name = a->name;
	size_t			 off, len;
	int			 kind = IMAP_FETCH_SECT_BODY, r;

	switch (a->kind) {
	case FA_RFC822:
		spec = "";
		name = "RFC822";
		break;
	case FA_RFC822_HEADER:
		spec = "HEADER";
		name = "RFC822.HEADER";
		break;
	case FA_RFC822_TEXT:
		spec = "TEXT";
		name = "RFC822.TEXT";
		break;
	case FA_BINARY_SIZE:
		kind = IMAP_FETCH_SECT_SIZE;
		break;
	default:
		if (a->binary)
			kind = IMAP_FETCH_SECT_BINARY;
		break;
	}
	if (c->sects[i] == NULL) {
		if ((c->sects[i] = malloc(sizeof(*c->sects[i]))) == NULL)
			return IMAP_SECTION_NOMEM;
		c->sectrc[i] = imap_section_parse(spec, c->sects[i]);
	}
	if (c->sectrc[i] < 0)
		return c->sectrc[i];
	/* A copy to resolve: the names stay the cached parse's. */
	sect = *c->sects[i];
	if ((r = imap_section_resolve(fm->msg, &sect)) < 0)
		return r;
	imap_buf_adds(b, name);
	if (a->partial)
		imap_buf_printf(b, "<%u>", a->offset);
	imap_buf_addc(b, ' ');
	if ((kind == IMAP_FETCH_SECT_BODY || (kind == IMAP_FETCH_SECT_BINARY &&
	    sect.part != NULL && identity_cte(sect.part))) &&
	    !sect.missing && !sect.filter && sect.text == IMAP_SECTION_BODY) {
		off = sect.off;
		len = sect.len;
		if (a->partial)
			imap_partial(&off, &len, a->offset, a->count);
		if (len >= FETCH_STREAM_MIN) {
			/* BINARY's bytes may hold NUL: literal8 (RFC 3516). */
			imap_buf_printf(b, "%s{%zu}\r\n",
			    kind == IMAP_FETCH_SECT_BINARY ? "~" : "", len);
			fm->off = off;
			fm->left = len;
			return FETCH_STREAM;
		}
	}
	return imap_fetch_section(b, fm->msg, &sect, kind, a->partial,
	    a->offset, a->count, fetch_read, rd);
}

/*
 * Renders the items of fm from fm->att on.  When one streams, what is
 * rendered goes out and c->streaming takes fm; else fm is freed.
 */
static void
fetch_render(struct imap_session *s, struct fetch_ctx *c,
    struct fetch_msg *fm)
{
	struct imap_buf		*b = &c->out;
	struct imap_fetch_att	*a;
	struct fetch_reader	 rd;
	int			 r, utf8, resumed;

	utf8 = (s->flags & SF_UTF8) ? IMAP_R_UTF8 : 0;
	resumed = fm->att > 0;
	fetch_reader_init(&rd, fm);
	imap_buf_reset(b);
	if (fm->att == 0) {
		imap_buf_adds(b, "* ");
		imap_buf_addu64(b, fm->seq);
		imap_buf_adds(b, " FETCH (");
	}
	for (; fm->att < c->f.natts; fm->att++) {
		a = &c->f.atts[fm->att];
		if (a->kind == FA_MODSEQ && fm->modseq_out)
			continue;
		if (fm->sp)
			imap_buf_addc(b, ' ');
		fm->sp = 1;
		switch (a->kind) {
		case FA_UID:
			imap_buf_adds(b, "UID ");
			imap_buf_addu64(b, fm->uid);
			break;
		case FA_FLAGS:
			imap_buf_adds(b, "FLAGS (");
			imap_buf_add(b, fm->flags, fm->flagslen);
			imap_buf_addc(b, ')');
			if ((s->flags & SF_CONDSTORE) && !fm->modseq_out) {
				imap_buf_adds(b, " MODSEQ (");
				imap_buf_addu64(b, fm->modseq);
				imap_buf_addc(b, ')');
				fm->modseq_out = 1;
			}
			break;
		case FA_INTERNALDATE:
			imap_buf_adds(b, "INTERNALDATE ");
			imap_render_date(b, (time_t)fm->idate, 0);
			break;
		case FA_RFC822_SIZE:
			imap_buf_adds(b, "RFC822.SIZE ");
			imap_buf_addu64(b, fm->size);
			break;
		case FA_MODSEQ:
			imap_buf_printf(b, "MODSEQ (%llu)",
			    (unsigned long long)fm->modseq);
			fm->modseq_out = 1;
			break;
		case FA_ENVELOPE:
			imap_buf_adds(b, "ENVELOPE ");
			imap_render_envelope(b, &fm->msg->envelope, utf8);
			break;
		case FA_BODY:
			imap_buf_adds(b, "BODY ");
			imap_render_bodystructure(b, fm->msg->root, 0, utf8);
			break;
		case FA_BODYSTRUCTURE:
			imap_buf_adds(b, "BODYSTRUCTURE ");
			imap_render_bodystructure(b, fm->msg->root, 1, utf8);
			break;
		default:
			r = fetch_section(c, b, fm->att, fm, &rd);
			if (r == FETCH_STREAM) {
				fm->att++;
				if (b->oom)
					fatal("%s", __func__);
				fetch_uncork(s);
				imap_write(s, b->p, b->len);
				c->streaming = fm;
				fetch_stream(s, c);
				return;
			}
			if (r != IMAP_SECTION_OK) {
				c->error = r == IMAP_BINARY_UNKNOWN_CTE ? 2 : 1;
				/* Half of it is out: end it. */
				if (resumed)
					imap_write(s, ")\r\n", 3);
				goto done;
			}
			break;
		}
	}
	if (c->f.changedsince && !fm->modseq_out)
		imap_buf_printf(b, " MODSEQ (%llu)",
		    (unsigned long long)fm->modseq);
	imap_buf_adds(b, ")\r\n");
	if (b->oom || b->len > IMAP_FETCH_RENDER_MAX) {
		/* Too large to hold at once (decoded BINARY): left out. */
		c->error = 1;
		if (resumed)
			imap_write(s, ")\r\n", 3);
		goto done;
	}
	imap_write(s, b->p, b->len);
	if (io_queued(s->io) > FETCH_CORK_MAX)
		fetch_uncork(s);
 done:
	fetch_msg_free(fm);
	if (b->cap > 1024 * 1024)
		imap_buf_free(b);
}

/*
 * One item of a MSG_ITEM, which takes fd.  Without a body nothing can
 * stream, so the message is answered before imsg goes: it is kept on
 * the stack, its strings in imsg.
 */
static void
fetch_item_one(struct imap_session *s, struct fetch_ctx *c,
    struct msg_in *m, struct imsg *imsg, int fd)
{
	struct fetch_msg	*fm, onstack;
	const char		*flags, *prefix;
	uint64_t		 body = 0;

	if (c->what & IMAP_FETCH_BODY) {
		if ((fm = calloc(1, sizeof(*fm))) == NULL)
			fatal("%s", __func__);
	} else {
		fm = &onstack;
		memset(fm, 0, sizeof(*fm));
		fm->borrowed = 1;
	}
	fm->fd = fd;
	if (msg_get_u32(m, &fm->uid) == -1 ||
	    msg_get_u64(m, &fm->modseq) == -1 ||
	    msg_get_string(m, &flags) == -1 ||
	    msg_get_i64(m, &fm->idate) == -1 ||
	    msg_get_u64(m, &fm->size) == -1 ||
	    msg_get_string(m, &prefix) == -1 ||
	    ((c->what & IMAP_FETCH_SHALLOW) &&
	    msg_get_u64(m, &body) == -1))
		imapd_malformed(imsg);
	if (c->what & IMAP_FETCH_SHALLOW) {
		if (body > fm->size)
			imapd_malformed(imsg);
		fm->shallow_root.type = "text";
		fm->shallow_root.subtype = "plain";
		fm->shallow_root.body_start = body;
		fm->shallow_root.body_end = fm->size;
		fm->shallow_root.size = fm->size - body;
		fm->shallow.size = fm->size;
		fm->shallow.root = &fm->shallow_root;
		fm->msg = &fm->shallow;
	}
	if (fm->borrowed) {
		fm->flags = (char *)flags;
		fm->prefix = (char *)prefix;
	} else if ((fm->flags = strdup(flags)) == NULL ||
	    (fm->prefix = strdup(prefix)) == NULL)
		fatal("%s", __func__);
	fm->flagslen = strlen(flags);
	fm->prefixlen = strlen(prefix);
	if (c->nparts > 0 && c->partuid == fm->uid) {
		memcpy(fm->pieces, c->parts, c->nparts * sizeof(*c->parts));
		fm->npieces = c->nparts;
		c->nparts = 0;
		if (fd == -1 || fm->size < fm->prefixlen ||
		    fm->pieces[fm->npieces - 1].start +
		    fm->pieces[fm->npieces - 1].len >
		    fm->size - fm->prefixlen) {
			log_warnx("session %u: uid %u: parts past the message",
			    s->id, fm->uid);
			c->error = 1;
			goto drop;
		}
	} else
		fetch_parts_stale(s, c);
	if ((fm->seq = imap_seq_of_uid_next(s, fm->uid, &c->seqhint)) == 0)
		goto drop;
	if (c->what & IMAP_FETCH_MIME) {
		if (c->mime == NULL || c->mimeuid != fm->uid ||
		    c->mimelen != c->mimetotal ||
		    mime_from_json(c->mime, c->mimelen, &fm->msg) != 0) {
			log_warnx("session %u: no mime data for uid %u", s->id,
			    fm->uid);
			c->error = 1;
			goto drop;
		}
	}
	free(c->mime);
	c->mime = NULL;
	fetch_render(s, c, fm);
	return;
 drop:
	free(c->mime);
	c->mime = NULL;
	fetch_msg_free(fm);
}

/* MSG_ITEM: one item, or several when neither mime nor body came. */
void
imap_fetch_item(struct imap_session *s, struct imsg *imsg)
{
	struct fetch_ctx	*c = s->ctx;
	struct msg_in		 m;
	int			 fd;

	if (s->wait != WAIT_FETCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (fetch_hold(c, imsg))
		return;
	fd = imsg->fd;
	imsg->fd = -1;
	msg_read(&m, imsg);
	fetch_item_one(s, c, &m, imsg, fd);
	while (m.left > 0 && m.err == 0) {
		if (c->what & (IMAP_FETCH_MIME | IMAP_FETCH_BODY) ||
		    c->streaming != NULL)
			imapd_malformed(imsg);
		fetch_item_one(s, c, &m, imsg, -1);
	}
	if (msg_end(&m) == -1)
		imapd_malformed(imsg);
}

void
imap_fetch_end(struct imap_session *s, struct imsg *imsg)
{
	struct fetch_ctx	*c = s->ctx;

	if (s->wait != WAIT_FETCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (imsg->hdr.len != IMSG_HEADER_SIZE)
		imapd_malformed(imsg);
	if (fetch_hold(c, imsg))
		return;
	fetch_parts_stale(s, c);
	s->wait = WAIT_NONE;
	if (s->flags & SF_CLOSE)
		return;
	fetch_uncork(s);
	if (io_queued(s->io) > IMAP_FETCH_QUEUED_MAX) {
		s->wait = WAIT_LOWAT;
		return;
	}
	(void)fetch_batch(s);
}

/* The answers held while a section streamed, in their order. */
static void
fetch_replay(struct imap_session *s, struct fetch_ctx *c)
{
	struct fetch_held	*h;

	while (c->streaming == NULL && !(s->flags & SF_CLOSE) &&
	    (h = TAILQ_FIRST(&c->held)) != NULL) {
		TAILQ_REMOVE(&c->held, h, entry);
		switch (h->imsg.hdr.type) {
		case IMSG_STORE_MSG_MIME:
			imap_fetch_mime(s, &h->imsg);
			break;
		case IMSG_STORE_MSG_PART:
			imap_fetch_part(s, &h->imsg);
			break;
		case IMSG_STORE_MSG_ITEM:
			imap_fetch_item(s, &h->imsg);
			break;
		default:
			/* MSG_END: the last of a batch; ctx may go. */
			free(h->imsg.data);
			free(h);
			s->wait = WAIT_NONE;
			fetch_uncork(s);
			if (io_queued(s->io) > IMAP_FETCH_QUEUED_MAX)
				s->wait = WAIT_LOWAT;
			else
				(void)fetch_batch(s);
			return;
		}
		if (h->imsg.fd != -1)
			close(h->imsg.fd);
		free(h->imsg.data);
		free(h);
	}
}

/* --- STORE ---------------------------------------------------------- */

struct store_ctx {
	struct imap_store	 st;
	struct imap_uidlist	 uids;
	struct imap_uidlist	 modified;
	struct imap_uidlist	 told;		/* FETCH sent for these */
};

static void
store_ctx_free(void *p)
{
	struct store_ctx	*c = p;

	imap_seqset_free(&c->st.set);
	imap_uidlist_free(&c->uids);
	imap_uidlist_free(&c->modified);
	imap_uidlist_free(&c->told);
	free(c);
}

static int
store_send(struct imap_session *s, struct store_ctx *c)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_MSG_STORE, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u8(&m, c->st.op);
	msg_add_u64(&m, c->st.has_unchangedsince ?
	    (c->st.unchangedsince ? c->st.unchangedsince : 1) : 0);
	msg_add_string(&m, c->st.flags);
	if (imap_ranges_add_all(s, &m, c->uids.v, c->uids.n) == -1) {
		imap_tagged(s, "NO", "[LIMIT] Too many messages in one STORE");
		imap_done(s);
		return -1;
	}
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return -1;
	}
	imap_wait(s, WAIT_STORE);
	return 0;
}

/*
 * RFC 9051 6.4.6: without .SILENT each message's flags come back, also
 * those the STORE left as they were, which storaged does not name: a
 * FETCH FLAGS of those finishes the command.
 */
static int
store_tell_unchanged(struct imap_session *s, struct store_ctx *sc)
{
	struct fetch_ctx	*c;
	size_t			 i, j;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	TAILQ_INIT(&c->held);
	if (sc->told.n > 1)
		qsort(sc->told.v, sc->told.n, sizeof(*sc->told.v), u32_cmp);
	for (i = j = 0; i < sc->uids.n; i++) {
		while (j < sc->told.n && sc->told.v[j] < sc->uids.v[i])
			j++;
		if (j < sc->told.n && sc->told.v[j] == sc->uids.v[i])
			continue;
		if (imap_uidlist_add(&c->uids, sc->uids.v[i]) == -1) {
			fetch_ctx_free(c);
			return -1;
		}
	}
	c->f.atts[0].kind = FA_UID;
	c->f.atts[1].kind = FA_FLAGS;
	c->f.natts = 2;
	c->what = IMAP_FETCH_FLAGS | IMAP_FETCH_META;
	imap_ctx_set(s, c, fetch_ctx_free);
	(void)fetch_batch(s);
	return 0;
}

void
imap_cmd_store(struct imap_session *s)
{
	struct store_ctx	*c;
	const char		*err;
	size_t			 i;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	if (imap_parse_store(&s->cmd, &c->st, &err) == -1) {
		free(c);
		imap_bad(s, err);
		imap_done(s);
		return;
	}
	imap_ctx_set(s, c, store_ctx_free);
	if (imap_set_uids(s, &c->st.set, s->cmd.uid, &c->uids) == -1) {
		imap_bad(s, "Invalid sequence set");
		imap_done(s);
		return;
	}
	if (s->flags & SF_READONLY) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		imap_done(s);
		return;
	}
	if (c->st.has_unchangedsince)
		s->flags |= SF_CONDSTORE;
	/* UNCHANGEDSINCE 0 can never hold (RFC 7162 3.1.3). */
	if (c->st.has_unchangedsince && c->st.unchangedsince == 0) {
		for (i = 0; i < c->uids.n; i++)
			(void)imap_uidlist_add(&c->modified, c->uids.v[i]);
		imap_store_end(s, NULL);
		return;
	}
	if (c->uids.n == 0) {
		imap_store_end(s, NULL);
		return;
	}
	(void)store_send(s, c);
}

void
imap_store_item(struct imap_session *s, struct imsg *imsg)
{
	struct store_ctx	*c = s->ctx;
	struct msg_in		 m;
	const char		*flags;
	uint64_t		 modseq;
	uint32_t		 uid;

	if (s->wait != WAIT_STORE)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &uid) == -1 || msg_get_u64(&m, &modseq) == -1 ||
	    msg_get_string(&m, &flags) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	/* FETCH's implicit \Seen: the FETCH itself shows the flags. */
	if (strcmp(s->cmd.verb, "FETCH") == 0 || c->st.silent)
		return;
	imap_flags_reply(s, uid, modseq, flags);
	if (imap_uidlist_add(&c->told, uid) == -1)
		fatal("%s", __func__);
}

void
imap_store_modified(struct imap_session *s, struct imsg *imsg)
{
	struct store_ctx	*c = s->ctx;
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint32_t		 n, i;

	if (s->wait != WAIT_STORE)
		fatalx("%s: session %u did not ask", __func__, s->id);
	n = imapd_uids_read(imsg, uids);
	/* FETCH's \Seen asks for no condition: nothing to tell. */
	if (strcmp(s->cmd.verb, "STORE") != 0)
		return;
	for (i = 0; i < n; i++)
		if (imap_seq_of_uid(s, uids[i]) &&
		    imap_uidlist_add(&c->modified, uids[i]) == -1)
			fatal("%s", __func__);
}

void
imap_store_end(struct imap_session *s, struct imsg *imsg)
{
	struct store_ctx	*c;
	struct fetch_ctx	*fc;
	struct imap_buf		 b = IMAP_BUF_INIT;
	size_t			 i;
	uint32_t		*v;

	if (imsg != NULL && imsg->hdr.len != IMSG_HEADER_SIZE)
		imapd_malformed(imsg);
	s->wait = WAIT_NONE;
	if (strcmp(s->cmd.verb, "FETCH") == 0) {
		fc = s->ctx;
		fc->seen = 0;
		fc->next = 0;
		fc->what |= IMAP_FETCH_META;
		(void)fetch_batch(s);
		return;
	}
	c = s->ctx;
	if (c->modified.n == 0) {
		if (!c->st.silent && c->told.n < c->uids.n &&
		    store_tell_unchanged(s, c) == 0)
			return;
		imap_tagged(s, "OK", "%sSTORE completed",
		    s->cmd.uid ? "UID " : "");
		imap_done(s);
		return;
	}
	if (!s->cmd.uid) {
		v = c->modified.v;
		for (i = 0; i < c->modified.n; i++)
			v[i] = imap_seq_of_uid(s, v[i]);
	}
	imap_buf_printf(&b, "%s OK [MODIFIED ", s->tag);
	imap_set_format(&b, c->modified.v, c->modified.n);
	imap_buf_adds(&b, "] Conditional STORE failed\r\n");
	if (!b.oom)
		imap_write(s, b.p, b.len);
	imap_buf_free(&b);
	imap_done(s);
}

/* --- COPY, MOVE ------------------------------------------------------ */

struct copy_ctx {
	char			*dest;
	struct imap_uidlist	 uids;
	int			 move;
	struct imap_uidlist	 copied;	/* COPY_UIDS: source UIDs */
	char			*copyuid;
};

static void
copy_ctx_free(void *p)
{
	struct copy_ctx	*c = p;

	free(c->dest);
	imap_uidlist_free(&c->uids);
	imap_uidlist_free(&c->copied);
	free(c->copyuid);
	free(c);
}

static int
copy_send(struct imap_session *s, struct copy_ctx *c)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_MSG_COPY, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_string(&m, c->dest);
	msg_add_u8(&m, c->move);
	if (imap_ranges_add_all(s, &m, c->uids.v, c->uids.n) == -1) {
		imap_tagged(s, "NO", "[LIMIT] Too many messages in one %s",
		    s->cmd.verb);
		imap_done(s);
		return -1;
	}
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return -1;
	}
	imap_wait(s, WAIT_COPY);
	return 0;
}

void
imap_cmd_copy(struct imap_session *s)
{
	struct imap_tok		*a = s->cmd.args.items;
	struct imap_seqset	 set;
	struct copy_ctx		*c;

	if (s->cmd.args.nitems != 2 || a[0].type != TOK_ATOM ||
	    !imap_tok_is_astring(&a[1]) ||
	    imap_parse_seqset(a[0].s, &set) == -1) {
		imap_bad(s, "Syntax: COPY sequence-set mailbox");
		imap_done(s);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_seqset_free(&set);
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	imap_ctx_set(s, c, copy_ctx_free);
	c->move = strcmp(s->cmd.verb, "MOVE") == 0;
	if (imap_set_uids(s, &set, s->cmd.uid, &c->uids) == -1) {
		imap_seqset_free(&set);
		imap_bad(s, "Invalid sequence set");
		imap_done(s);
		return;
	}
	imap_seqset_free(&set);
	if ((c->dest = imap_mailbox_in(s, a[1].s)) == NULL) {
		imap_tagged(s, "NO", "[TRYCREATE] No such mailbox");
		imap_done(s);
		return;
	}
	if (c->move && (s->flags & SF_READONLY)) {
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		imap_done(s);
		return;
	}
	if (c->uids.n == 0) {
		imap_tagged(s, "OK", "%s%s completed, nothing to do",
		    s->cmd.uid ? "UID " : "", s->cmd.verb);
		imap_done(s);
		return;
	}
	(void)copy_send(s, c);
}

/* COPY_UIDS: the source UIDs copied, before COPY_RESULT. */
void
imap_copy_uids(struct imap_session *s, struct imsg *imsg)
{
	struct copy_ctx	*c = s->ctx;
	uint32_t	 uids[IMAP_UIDS_PER_MSG];
	uint32_t	 n, i;

	if (s->wait != WAIT_COPY)
		fatalx("%s: session %u did not ask", __func__, s->id);
	n = imapd_uids_read(imsg, uids);
	for (i = 0; i < n; i++)
		if (imap_uidlist_add(&c->copied, uids[i]) == -1)
			fatal("%s", __func__);
}

void
imap_copy_result(struct imap_session *s, struct imsg *imsg)
{
	struct copy_ctx	*c = s->ctx;
	struct msg_in	 m;
	struct imap_buf	 b = IMAP_BUF_INIT;
	const char	*text;
	uint32_t	 ok, uidvalidity, first;
	int		 self;

	if (s->wait != WAIT_COPY)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &ok) == -1 || msg_get_string(&m, &text) == -1 ||
	    msg_get_u32(&m, &uidvalidity) == -1 ||
	    msg_get_u32(&m, &first) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	s->wait = WAIT_NONE;
	if (!ok) {
		imap_tagged(s, "NO", "%s", text);
		imap_done(s);
		return;
	}
	/* RFC 4315 COPYUID: every message of the one transaction. */
	if (first != 0 && c->copied.n > 0) {
		imap_buf_printf(&b, "[COPYUID %u ", uidvalidity);
		imap_set_format(&b, c->copied.v, c->copied.n);
		if (c->copied.n == 1)
			imap_buf_printf(&b, " %u] ", first);
		else
			imap_buf_printf(&b, " %u:%u] ", first,
			    first + (uint32_t)(c->copied.n - 1));
		imap_buf_addc(&b, '\0');
		if (b.oom || (c->copyuid = strdup(b.p)) == NULL)
			fatal("%s", __func__);
		imap_buf_free(&b);
	}
	self = s->mbox_name != NULL && strcmp(c->dest, s->mbox_name) == 0;
	if (c->move) {
		if (c->copyuid != NULL)
			imap_reply(s, "* OK %sMoved", c->copyuid);
		if (asprintf(&s->done, "OK %sMOVE completed",
		    s->cmd.uid ? "UID " : "") == -1)
			fatal("%s", __func__);
		s->flags |= SF_CHANGED;
		imap_sync_start(s, AFTER_DONE, 1);
		return;
	}
	if (self) {
		if (asprintf(&s->done, "OK %s%sCOPY completed",
		    c->copyuid ? c->copyuid : "", s->cmd.uid ? "UID " : "") ==
		    -1)
			fatal("%s", __func__);
		s->flags |= SF_CHANGED;
		imap_sync_start(s, AFTER_DONE, s->cmd.uid);
		return;
	}
	/* Not imap_tagged(): COPYUID may be longer than its buffer. */
	imap_reply(s, "%s OK %s%sCOPY completed", s->tag,
	    c->copyuid ? c->copyuid : "", s->cmd.uid ? "UID " : "");
	imap_done(s);
}

/* --- EXPUNGE, UID EXPUNGE ------------------------------------------- */

struct expunge_ctx {
	struct imap_uidlist	 uids;
};

static void
expunge_ctx_free(void *p)
{
	struct expunge_ctx	*c = p;

	imap_uidlist_free(&c->uids);
	free(c);
}

static int
expunge_send(struct imap_session *s, struct expunge_ctx *c)
{
	struct msg_out	 m;

	msg_create(&m, IMSG_STORE_MSG_EXPUNGE, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u8(&m, c != NULL);
	if (c == NULL) {
		msg_add_u32(&m, 0);	/* P R: no pieces, no ranges */
		msg_add_u32(&m, 0);
	} else if (imap_ranges_add_all(s, &m, c->uids.v, c->uids.n) == -1) {
		imap_tagged(s, "NO", "[LIMIT] Too many messages in one "
		    "UID EXPUNGE");
		imap_done(s);
		return -1;
	}
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return -1;
	}
	imap_wait(s, WAIT_EXPUNGE);
	return 0;
}

void
imap_cmd_expunge(struct imap_session *s)
{
	struct imap_tok		*a = s->cmd.args.items;
	struct imap_seqset	 set;
	struct expunge_ctx	*c;

	if ((s->cmd.uid && (s->cmd.args.nitems != 1 ||
	    a[0].type != TOK_ATOM || imap_parse_seqset(a[0].s, &set) == -1)) ||
	    (!s->cmd.uid && s->cmd.args.nitems != 0)) {
		imap_bad(s, s->cmd.uid ? "Syntax: UID EXPUNGE uid-set" :
		    "Syntax: EXPUNGE");
		imap_done(s);
		return;
	}
	if (s->flags & SF_READONLY) {
		if (s->cmd.uid)
			imap_seqset_free(&set);
		imap_tagged(s, "NO", "[READ-ONLY] Mailbox is read-only");
		imap_done(s);
		return;
	}
	if (!s->cmd.uid) {
		(void)expunge_send(s, NULL);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	imap_ctx_set(s, c, expunge_ctx_free);
	if (imap_set_uids(s, &set, 1, &c->uids) == -1) {
		imap_seqset_free(&set);
		imap_bad(s, "Invalid UID set");
		imap_done(s);
		return;
	}
	imap_seqset_free(&set);
	if (c->uids.n == 0) {
		imap_tagged(s, "OK", "UID EXPUNGE completed");
		imap_done(s);
		return;
	}
	(void)expunge_send(s, c);
}

/* --- APPEND --------------------------------------------------------- */

/*
 * Every message of one APPEND is spooled and staged in storaged as it
 * comes (MSG_APPEND), without waiting; the end of the command commits
 * them all at once (MSG_APPEND_COMMIT), and a command that fails on
 * the way drops what was staged (MSG_APPEND_ABORT).
 */
struct append_ctx {
	struct imap_session	*s;
	char			*mailbox;
	struct imap_append	 head;
	uint64_t		 size;
	int			 nonsync;
	uint64_t		 spool;
	int			 fd;
	/* read the literal, keep nothing */
	int			 discard;
	char			*error;		/* the tagged NO's text */
	int			 bad;		/* BAD rather than NO */
	int			 utf8_close;	/* a ")" ends UTF8 (...) */
	size_t			 messages;	/* announced */
	size_t			 staged;
	int			 committed;	/* storaged dropped the batch */
};

static void
append_ctx_free(void *p)
{
	struct append_ctx	*c = p;
	struct msg_out		 m;

	if (c->fd != -1)
		close(c->fd);
	/* After SESSION_END storaged has dropped them itself. */
	if (c->staged > 0 && !c->committed && !(c->s->flags & SF_CLOSE)) {
		msg_create(&m, IMSG_STORE_MSG_APPEND_ABORT, c->s->id, -1);
		(void)imap_send_storaged(c->s, &m);
	}
	free(c->mailbox);
	free(c->error);
	free(c);
}

/* A complete APPEND command without a message literal. */
void
imap_cmd_append(struct imap_session *s)
{
	imap_bad(s, "Syntax: APPEND mailbox [(flags)] [date-time] literal");
	imap_done(s);
}

void
imap_append_abort(struct imap_session *s)
{
	struct append_ctx	*c;
	struct msg_out		 m;

	if (!s->has_cmd || strcmp(s->cmd.verb, "APPEND") != 0 ||
	    s->ctx == NULL)
		return;
	c = s->ctx;
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->spool != 0) {
		msg_create(&m, IMSG_STORE_SPOOL_ABORT, s->id, -1);
		msg_add_u64(&m, c->spool);
		(void)imap_send_storaged(s, &m);
		c->spool = 0;
	}
}

static void
append_fail(struct append_ctx *c, const char *text)
{
	if (c->error == NULL && (c->error = strdup(text)) == NULL)
		fatal("%s", __func__);
}

/* One message literal of n bytes is announced; head parsed. */
static void
append_message(struct imap_session *s, struct append_ctx *c, uint64_t n,
    int nonsync)
{
	struct msg_out	 m;

	c->size = n;
	c->nonsync = nonsync;
	c->discard = 0;
	if (c->error == NULL && n > (uint64_t)proc_conf->limits[
	    LIMIT_IMAP_LITERAL])
		append_fail(c, "[TOOBIG] Message too large");
	if (c->error == NULL && n == 0)
		append_fail(c, "[CANNOT] Empty message");
	if (c->error == NULL && ++c->messages > IMAP_APPEND_MAX)
		append_fail(c, "[LIMIT] Too many messages in one APPEND");
	if (c->error != NULL) {
		if (!nonsync) {
			/* No "+": the client sends nothing more of it. */
			imap_tagged(s, c->bad ? "BAD" : "NO", "%s", c->error);
			imap_done(s);
			return;
		}
		c->discard = 1;
		s->literal_left = n;
		s->input = IN_APPEND;
		return;
	}
	msg_create(&m, IMSG_STORE_SPOOL_OPEN, s->id, -1);
	if (imap_send_storaged(s, &m) == -1) {
		append_fail(c, "[UNAVAILABLE] Try again later");
		append_message(s, c, n, nonsync);
		return;
	}
	imap_wait(s, WAIT_SPOOL);
}

void
imap_append_begin(struct imap_session *s, struct imap_cmd *cmd, uint64_t n,
    int nonsync, int utf8)
{
	struct append_ctx	*c;
	const char		*err;
	size_t			 next;

	s->cmd = *cmd;
	s->has_cmd = 1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		fatal("%s", __func__);
	c->s = s;
	c->fd = -1;
	c->utf8_close = utf8;
	imap_ctx_set(s, c, append_ctx_free);
	if (!imap_tok_is_astring(&cmd->args.items[0]) ||
	    imap_parse_append_head(&cmd->args.items[1], cmd->args.nitems - 1,
	    &next, &c->head, &err) == -1 || next != cmd->args.nitems - 1) {
		append_fail(c, err);
		c->bad = 1;
	}
	else if ((c->mailbox = imap_mailbox_in(s,
	    cmd->args.items[0].s)) == NULL)
		append_fail(c, "[TRYCREATE] No such mailbox");
	append_message(s, c, n, nonsync);
}

void
imap_session_spool_fd(struct imap_session *s, uint64_t id, const char *err,
    int fd)
{
	struct append_ctx	*c = s->ctx;

	if (s->wait != WAIT_SPOOL)
		fatalx("%s: session %u did not ask", __func__, s->id);
	s->wait = WAIT_NONE;
	if (id == 0) {
		log_warnx("session %u: no spool file: %s", s->id, err);
		append_fail(c, "[SERVERBUG] Cannot store the message now");
		append_message(s, c, c->size, c->nonsync);
		if (c->nonsync)
			io_resume(s->io, IO_IN);
		return;
	}
	c->spool = id;
	c->fd = fd;
	if (!c->nonsync)
		imap_reply(s, "+ Ready for literal data");
	s->literal_left = c->size;
	s->input = IN_APPEND;
	io_resume(s->io, IO_IN);
}

void
imap_append_data(struct imap_session *s)
{
	struct append_ctx	*c = s->ctx;
	struct msg_out		 m;
	const char		*p = io_data(s->io);
	size_t			 n = io_datalen(s->io), off = 0;
	ssize_t			 w;

	if (n > s->literal_left)
		n = s->literal_left;
	while (!c->discard && c->fd != -1 && off < n) {
		w = write(c->fd, p + off, n - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("session %u: spool write", s->id);
			append_fail(c, "[SERVERBUG] Cannot store the message");
			c->discard = 1;
			break;
		}
		off += w;
	}
	io_drop(s->io, n);
	s->literal_left -= n;
	if (s->literal_left > 0)
		return;
	s->input = IN_APPEND_NEXT;
	if (c->fd != -1) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->discard || c->error != NULL) {
		imap_append_abort(s);
		return;
	}
	msg_create(&m, IMSG_STORE_MSG_APPEND, s->id, -1);
	msg_add_u64(&m, c->spool);
	msg_add_string(&m, c->head.flags);
	msg_add_i64(&m, c->head.date);
	if (imap_send_storaged(s, &m) == -1) {
		append_fail(c, "[UNAVAILABLE] Try again later");
		imap_append_abort(s);
		return;
	}
	c->spool = 0;
	c->staged++;
}

void
imap_append_result(struct imap_session *s, struct imsg *imsg)
{
	struct append_ctx	*c = s->ctx;
	struct msg_in		 m;
	struct imap_buf		 b = IMAP_BUF_INIT;
	const char		*text;
	uint32_t		 ok, uidvalidity, first, count;

	if (s->wait != WAIT_APPEND)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &ok) == -1 || msg_get_string(&m, &text) == -1 ||
	    msg_get_u32(&m, &uidvalidity) == -1 ||
	    msg_get_u32(&m, &first) == -1 ||
	    msg_get_u32(&m, &count) == -1 || msg_end(&m) == -1 ||
	    (ok && (count != c->staged || first == 0 ||
	    first + (uint64_t)count - 1 > UINT32_MAX)))
		imapd_malformed(imsg);
	s->wait = WAIT_NONE;
	c->committed = 1;
	if (!ok) {
		imap_tagged(s, "NO", "%s", text);
		imap_done(s);
		return;
	}
	/* RFC 4315: the uid-set of all of them. */
	if (count == 1)
		imap_buf_printf(&b, "OK [APPENDUID %u %u] APPEND completed",
		    uidvalidity, first);
	else
		imap_buf_printf(&b, "OK [APPENDUID %u %u:%u] APPEND completed",
		    uidvalidity, first, first + count - 1);
	if (b.oom)
		fatal("%s", __func__);
	imap_buf_addc(&b, '\0');
	if (imap_selected(s) && s->mbox_name != NULL &&
	    strcmp(s->mbox_name, c->mailbox) == 0) {
		s->done = strdup(b.p);
		imap_buf_free(&b);
		if (s->done == NULL)
			fatal("%s", __func__);
		s->flags |= SF_CHANGED;
		imap_sync_start(s, AFTER_DONE, 1);
		return;
	}
	imap_reply(s, "%s %s", s->tag, b.p);
	imap_buf_free(&b);
	imap_done(s);
}

/* After a message literal: CR LF ends the command, or another follows. */
void
imap_append_next(struct imap_session *s, char *line, size_t len)
{
	struct append_ctx	*c = s->ctx;
	struct imap_tok		 args;
	struct msg_out		 m;
	const char		*err;
	char			 e[128];
	uint64_t		 n;
	size_t			 next, upto;
	int			 nonsync, binary;

	if (c->utf8_close) {
		if (len == 0 || line[0] != ')') {
			imap_bad(s, "Missing ) after UTF8 (literal8");
			imap_done(s);
			return;
		}
		c->utf8_close = 0;
		line++;
		len--;
	}
	if (len == 0) {
		if (c->error != NULL) {
			imap_tagged(s, c->bad ? "BAD" : "NO", "%s", c->error);
			imap_done(s);
			return;
		}
		msg_create(&m, IMSG_STORE_MSG_APPEND_COMMIT, s->id, -1);
		msg_add_string(&m, c->mailbox);
		if (imap_send_storaged(s, &m) == -1) {
			imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
			imap_done(s);
			return;
		}
		imap_wait(s, WAIT_APPEND);
		return;
	}
	if (line[0] != ' ' ||
	    !imap_literal_at_end(line, len, &n, &nonsync, &binary)) {
		imap_bad(s, "Bad APPEND continuation");
		imap_done(s);
		return;
	}
	upto = strrchr(line, '{') - line - (binary ? 1 : 0);
	if (upto > 6 && strncasecmp(line + upto - 6, "UTF8 (", 6) == 0) {
		c->utf8_close = 1;
		upto -= 6;
	}
	while (upto > 0 && line[upto - 1] == ' ')
		upto--;
	memset(&args, 0, sizeof(args));
	args.type = TOK_LIST;
	if (upto > 1 && imap_parse_args(line + 1, upto - 1, &args, e,
	    sizeof(e)) == -1) {
		append_fail(c, e);
		c->bad = 1;
	} else if (imap_parse_append_head(args.items, args.nitems, &next,
	    &c->head, &err) == -1 || next != args.nitems) {
		append_fail(c, err);
		c->bad = 1;
	}
	imap_tok_free(&args);
	append_message(s, c, n, nonsync);
}
