/*
 * SEARCH (with ESEARCH's RETURN options and SEARCHRES), SORT and
 * THREAD.  The parsed keys become the search program of imap_proto.h:
 * sequence sets and $ turn into UID ranges here, and the whole program
 * is bounded by the UIDs the session knows, so storaged never answers
 * with a message the client has not been told of.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_render.h"
#include "imapd.h"
#include "log.h"
#include "proc.h"

struct search_ctx {
	struct imap_search	 search;
	struct imap_uidlist	 uids;		/* in the order given */
	struct imap_buf		 thread;
	size_t			 hint;		/* imap_seq_of_uid_next() */
	int			 kind;		/* 0 SEARCH, 1 SORT, 2 THREAD */
};

static void
search_ctx_free(void *p)
{
	struct search_ctx	*c = p;

	imap_search_free(&c->search);
	imap_uidlist_free(&c->uids);
	imap_buf_free(&c->thread);
	free(c);
}

/* Writes one node and its children; -1 with *err set. */
static int
search_node(struct imap_session *s, struct msg_out *m, struct imap_sk *k,
    const char **err)
{
	struct imap_uidlist	 uids;
	struct imap_sk		*c;
	size_t			 n;

	if (k->op == SKX_SEQSET) {
		if (!k->uidset && s->uids.n == 0) {
			/* Nothing to number: the set matches nothing. */
			msg_add_u8(m, SK_UIDS);
			msg_add_u32(m, 0);
			return 0;
		}
		if (imap_set_uids(s, &k->set, k->uidset, &uids) == -1) {
			*err = "Invalid sequence set";
			return -1;
		}
		msg_add_u8(m, SK_UIDS);
		n = imap_ranges_add(s, m, uids.v, uids.n, SIZE_MAX);
		if (n != uids.n) {
			imap_uidlist_free(&uids);
			*err = "[LIMIT] Sequence set too large";
			return -1;
		}
		imap_uidlist_free(&uids);
		return 0;
	}
	msg_add_u8(m, k->op);
	switch (k->op) {
	case SK_ALL:
		break;
	case SK_AND:
		msg_add_u32(m, k->num);
		/* FALLTHROUGH */
	case SK_OR:
	case SK_NOT:
		for (c = k->child; c != NULL; c = c->next)
			if (search_node(s, m, c, err) == -1)
				return -1;
		break;
	case SK_KEYWORD:
	case SK_BODY:
	case SK_TEXT:
		msg_add_string(m, k->s1);
		break;
	case SK_HEADER:
		msg_add_string(m, k->s1);
		msg_add_string(m, k->s2);
		break;
	case SK_BEFORE:
	case SK_ON:
	case SK_SINCE:
	case SK_SENTBEFORE:
	case SK_SENTON:
	case SK_SENTSINCE:
		msg_add_i64(m, k->date);
		break;
	case SK_LARGER:
	case SK_SMALLER:
	case SK_MODSEQ:
		msg_add_u64(m, k->num);
		break;
	case SK_OLDER:
	case SK_YOUNGER:
		msg_add_u32(m, (uint32_t)k->num);
		break;
	default:
		fatalx("%s: search key %d", __func__, k->op);
	}
	return 0;
}

void
imap_cmd_search(struct imap_session *s)
{
	struct search_ctx	*c;
	struct msg_out		 m;
	const char		*err;
	uint32_t		 last;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	imap_ctx_set(s, c, search_ctx_free);
	if (strcmp(s->cmd.verb, "SORT") == 0)
		c->kind = 1;
	else if (strcmp(s->cmd.verb, "THREAD") == 0)
		c->kind = 2;
	if (imap_parse_search(&s->cmd, 0, &c->search, &err) == -1) {
		/* RFC 5182 2.1: a SAVE that fails leaves $ empty. */
		if (c->search.ret & ESEARCH_SAVE)
			imap_uidlist_free(&s->saved);
		if (strncmp(err, "[BADCHARSET", 11) == 0)
			imap_tagged(s, "NO", "%s", err);
		else
			imap_bad(s, err);
		imap_done(s);
		return;
	}
	if (c->search.modseq)
		s->flags |= SF_CONDSTORE;
	if (c->kind == 2) {
		msg_create(&m, IMSG_STORE_MSG_THREAD, s->id, -1);
		msg_add_u64(&m, s->mbox);
		msg_add_string(&m, c->search.algorithm);
	} else {
		msg_create(&m, IMSG_STORE_MSG_SEARCH, s->id, -1);
		msg_add_u64(&m, s->mbox);
		msg_add_u8(&m, c->kind == 1);
		msg_add_string(&m, c->search.sort);
	}
	/* AND (UID 1:last known) (the keys) */
	last = s->uids.n ? s->uids.v[s->uids.n - 1] : 0;
	msg_add_u8(&m, SK_AND);
	msg_add_u32(&m, 2);
	msg_add_u8(&m, SK_UIDS);
	if (last == 0)
		msg_add_u32(&m, 0);
	else {
		msg_add_u32(&m, 1);
		msg_add_u32(&m, 1);
		msg_add_u32(&m, last);
	}
	if (search_node(s, &m, c->search.prog, &err) == -1) {
		if (c->search.ret & ESEARCH_SAVE)
			imap_uidlist_free(&s->saved);
		if (err[0] == '[')
			imap_tagged(s, "NO", "%s", err);
		else
			imap_bad(s, err);
		imap_done(s);
		return;
	}
	if (m.overflow) {
		imap_tagged(s, "NO", "[LIMIT] Search program too large");
		imap_done(s);
		return;
	}
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return;
	}
	imap_wait(s, c->kind == 2 ? WAIT_THREAD : WAIT_SEARCH);
}

void
imap_search_uids(struct imap_session *s, struct imsg *imsg)
{
	struct search_ctx	*c = s->ctx;
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint32_t		 n, i;

	if (s->wait != WAIT_SEARCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	n = imapd_uids_read(imsg, uids);
	for (i = 0; i < n; i++)
		if (imap_seq_of_uid_next(s, uids[i], &c->hint) &&
		    imap_uidlist_add(&c->uids, uids[i]) == -1)
			fatal("%s", __func__);
}

static int
u32_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
search_save(struct imap_session *s, struct search_ctx *c)
{
	struct imap_search	*q = &c->search;
	size_t			 i;

	imap_uidlist_free(&s->saved);
	if (c->uids.n == 0)
		return;
	/* RFC 5182 2.4: with MIN or MAX but not ALL or COUNT, those only. */
	if ((q->ret & (ESEARCH_MIN | ESEARCH_MAX)) &&
	    !(q->ret & (ESEARCH_ALL | ESEARCH_COUNT))) {
		if (q->ret & ESEARCH_MIN)
			(void)imap_uidlist_add(&s->saved, c->uids.v[0]);
		if ((q->ret & ESEARCH_MAX) && (c->uids.n > 1 ||
		    !(q->ret & ESEARCH_MIN)))
			(void)imap_uidlist_add(&s->saved,
			    c->uids.v[c->uids.n - 1]);
		return;
	}
	for (i = 0; i < c->uids.n; i++)
		(void)imap_uidlist_add(&s->saved, c->uids.v[i]);
}

/* " n" for each number: a search can answer thousands. */
static void
numbers_add(struct imap_buf *b, const uint32_t *v, size_t n)
{
	char		 buf[16];
	size_t		 i, k;
	uint32_t	 x;

	for (i = 0; i < n; i++) {
		k = sizeof(buf);
		x = v[i];
		do {
			buf[--k] = '0' + x % 10;
			x /= 10;
		} while (x > 0);
		buf[--k] = ' ';
		imap_buf_add(b, buf + k, sizeof(buf) - k);
	}
}

void
imap_search_end(struct imap_session *s, struct imsg *imsg)
{
	struct search_ctx	*c = s->ctx;
	struct imap_search	*q;
	struct imap_buf		 b = IMAP_BUF_INIT;
	struct msg_in		 m;
	uint64_t		 hms;
	uint32_t		*v;
	size_t			 i, n;
	int			 ret;

	if (s->wait != WAIT_SEARCH)
		fatalx("%s: session %u did not ask", __func__, s->id);
	q = &c->search;
	v = c->uids.v;
	n = c->uids.n;
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &hms) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	s->wait = WAIT_NONE;
	if (c->kind == 0 && n > 1)
		qsort(v, n, sizeof(*v), u32_cmp);
	if (q->ret & ESEARCH_SAVE)
		search_save(s, c);
	if (!s->cmd.uid)
		for (i = 0, c->hint = 0; i < n; i++)
			v[i] = imap_seq_of_uid_next(s, v[i], &c->hint);
	if (c->kind == 1) {
		imap_buf_adds(&b, "* SORT");
		numbers_add(&b, v, n);
		if (q->modseq && n > 0)
			imap_buf_printf(&b, " (MODSEQ %llu)",
			    (unsigned long long)hms);
	} else if (q->esearch || (s->flags & SF_REV2)) {
		ret = q->esearch ? q->ret : ESEARCH_ALL;
		if (ret == ESEARCH_SAVE)
			goto out;
		imap_buf_printf(&b, "* ESEARCH (TAG \"%s\")%s", s->tag,
		    s->cmd.uid ? " UID" : "");
		if ((ret & ESEARCH_MIN) && n > 0)
			imap_buf_printf(&b, " MIN %u", v[0]);
		if ((ret & ESEARCH_MAX) && n > 0)
			imap_buf_printf(&b, " MAX %u", v[n - 1]);
		if (ret & ESEARCH_COUNT)
			imap_buf_printf(&b, " COUNT %zu", n);
		if ((ret & ESEARCH_ALL) && n > 0) {
			imap_buf_adds(&b, " ALL ");
			imap_set_format(&b, v, n);
		}
		if (q->modseq && n > 0)
			imap_buf_printf(&b, " MODSEQ %llu",
			    (unsigned long long)hms);
	} else {
		imap_buf_adds(&b, "* SEARCH");
		numbers_add(&b, v, n);
		if (q->modseq && n > 0)
			imap_buf_printf(&b, " (MODSEQ %llu)",
			    (unsigned long long)hms);
	}
	imap_buf_adds(&b, "\r\n");
	if (b.oom) {
		imap_buf_free(&b);
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	imap_write(s, b.p, b.len);
 out:
	imap_buf_free(&b);
	imap_tagged(s, "OK", "%s%s completed", s->cmd.uid ? "UID " : "",
	    s->cmd.verb);
	imap_done(s);
}

void
imap_thread_data(struct imap_session *s, struct imsg *imsg)
{
	struct search_ctx	*c = s->ctx;
	struct msg_in		 m;
	const void		*data;
	size_t			 len;

	if (s->wait != WAIT_THREAD)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_data(&m, &data, &len) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	imap_buf_add(&c->thread, data, len);
}

void
imap_thread_end(struct imap_session *s, struct imsg *imsg)
{
	struct search_ctx	*c = s->ctx;
	struct imap_buf		 b = IMAP_BUF_INIT;
	const char		*p, *end;
	uint64_t		 v;

	if (s->wait != WAIT_THREAD)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (imsg->hdr.len != IMSG_HEADER_SIZE)
		imapd_malformed(imsg);
	s->wait = WAIT_NONE;
	imap_buf_adds(&b, "* THREAD");
	if (c->thread.len > 0)
		imap_buf_addc(&b, ' ');
	p = c->thread.p;
	end = p + c->thread.len;
	while (p != NULL && p < end) {
		if (!isdigit((unsigned char)*p)) {
			if (*p != '(' && *p != ')' && *p != ' ')
				imapd_malformed(imsg);
			imap_buf_addc(&b, *p++);
			continue;
		}
		for (v = 0; p < end && isdigit((unsigned char)*p); p++)
			if ((v = v * 10 + (*p - '0')) > UINT32_MAX)
				imapd_malformed(imsg);
		imap_buf_printf(&b, "%llu", (unsigned long long)(s->cmd.uid ?
		    v : imap_seq_of_uid(s, (uint32_t)v)));
	}
	imap_buf_adds(&b, "\r\n");
	if (!b.oom)
		imap_write(s, b.p, b.len);
	imap_buf_free(&b);
	imap_tagged(s, "OK", "%sTHREAD completed", s->cmd.uid ? "UID " : "");
	imap_done(s);
}
