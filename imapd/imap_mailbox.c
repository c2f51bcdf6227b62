/*
 * Mailbox commands (LIST, LSUB, STATUS, SELECT, EXAMINE, CREATE, DELETE,
 * RENAME, SUBSCRIBE, UNSUBSCRIBE, CLOSE, UNSELECT) and the sequence map
 * of the selected mailbox, kept in step with storaged: a CHANGE marks
 * the session, and the next command (or IDLE at once) asks MBOX_SYNC
 * for what changed since the highest modseq the session has told.
 */
#include <sys/types.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_render.h"
#include "imapd.h"
#include "io.h"
#include "log.h"
#include "proc.h"

/* --- UID lists and the sequence map -------------------------------- */

void
imap_uidlist_free(struct imap_uidlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int
imap_uidlist_add(struct imap_uidlist *l, uint32_t uid)
{
	uint32_t	*v;
	size_t		 cap;

	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 64;
		if ((v = reallocarray(l->v, cap, sizeof(*v))) == NULL)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = uid;
	return 0;
}

static int
uid_cmp(const void *a, const void *b)
{
	uint32_t	 x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
uidlist_sort(struct imap_uidlist *l)
{
	size_t	 i, o = 0;

	if (l->n < 2)
		return;
	qsort(l->v, l->n, sizeof(*l->v), uid_cmp);
	for (i = 0; i < l->n; i++)
		if (o == 0 || l->v[o - 1] != l->v[i])
			l->v[o++] = l->v[i];
	l->n = o;
}

/* First index with v[i] >= uid. */
static size_t
uid_lower(const struct imap_uidlist *l, uint32_t uid)
{
	size_t	 lo = 0, hi = l->n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (l->v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int
uidlist_has(const struct imap_uidlist *l, uint32_t uid)
{
	size_t	 i = uid_lower(l, uid);

	return i < l->n && l->v[i] == uid;
}

static void
uidlist_remove(struct imap_uidlist *l, uint32_t uid)
{
	size_t	 i = uid_lower(l, uid);

	if (i < l->n && l->v[i] == uid) {
		memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) *
		    sizeof(*l->v));
		l->n--;
	}
}

/* 1-based, 0 when the UID is not in the map. */
size_t
imap_seq_of_uid(struct imap_session *s, uint32_t uid)
{
	size_t	 i = uid_lower(&s->uids, uid);

	return i < s->uids.n && s->uids.v[i] == uid ? i + 1 : 0;
}

/*
 * The same for UIDs asked in ascending order: *hint (0 at first) is
 * where the last one was, and the next is looked for from there by
 * doubling steps, so a run of n UIDs costs O(n) rather than O(n log n).
 */
size_t
imap_seq_of_uid_next(struct imap_session *s, uint32_t uid, size_t *hint)
{
	const uint32_t	*v = s->uids.v;
	size_t		 n = s->uids.n, lo = *hint, hi, step = 1, mid;

	if (lo >= n || v[lo] > uid)
		lo = 0;
	/* v[lo] <= uid, or lo == 0: find hi with v[hi] >= uid. */
	hi = lo;
	while (hi < n && v[hi] < uid) {
		lo = hi;
		hi += step;
		step *= 2;
	}
	if (hi > n)
		hi = n;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (v[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	*hint = lo;
	return lo < n && v[lo] == uid ? lo + 1 : 0;
}

/*
 * The known UIDs a set names, ascending.  Sequence numbers beyond the
 * map are an error (RFC 9051 6.4.8); UIDs the map lacks are ignored.
 */
int
imap_set_uids(struct imap_session *s, const struct imap_seqset *set,
    int uid, struct imap_uidlist *out)
{
	uint32_t	 lo, hi, star, t;
	size_t		 i, j, n = s->uids.n;

	memset(out, 0, sizeof(*out));
	if (set->saved) {
		for (i = 0; i < s->saved.n; i++)
			if (uidlist_has(&s->uids, s->saved.v[i]) &&
			    imap_uidlist_add(out, s->saved.v[i]) == -1)
				goto fail;
		return 0;
	}
	for (i = 0; i < set->n; i++) {
		lo = set->r[i].lo;
		hi = set->r[i].hi;
		if (uid) {
			star = n ? s->uids.v[n - 1] : 0;
			if (lo == UINT32_MAX)
				lo = star;
			if (hi == UINT32_MAX)
				hi = star;
			if (lo > hi) {
				t = lo;
				lo = hi;
				hi = t;
			}
			for (j = uid_lower(&s->uids, lo); j < n &&
			    s->uids.v[j] <= hi; j++)
				if (imap_uidlist_add(out, s->uids.v[j]) == -1)
					goto fail;
			continue;
		}
		if (n == 0)
			goto fail;
		if (lo == UINT32_MAX)
			lo = n;
		if (hi == UINT32_MAX)
			hi = n;
		if (lo > hi) {
			t = lo;
			lo = hi;
			hi = t;
		}
		if (hi > n)
			goto fail;
		for (j = lo; j <= hi; j++)
			if (imap_uidlist_add(out, s->uids.v[j - 1]) == -1)
				goto fail;
	}
	if (set->n > 1)
		uidlist_sort(out);
	return 0;
 fail:
	imap_uidlist_free(out);
	return -1;
}

/*
 * Adds a range list for uids[0, n) to m: runs of neighbours in the map
 * make one range.  Stops at IMAP_RANGES_MAX ranges or maxmsgs UIDs;
 * returns how many UIDs went in.
 */
size_t
imap_ranges_add(struct imap_session *s, struct msg_out *m,
    const uint32_t *uids, size_t n, size_t maxmsgs)
{
	struct imap_range	 r[IMAP_RANGES_MAX];
	size_t			 i, k, nr = 0, seq, prev = 0, hint = 0;

	for (i = 0; i < n && i < maxmsgs; i++) {
		seq = imap_seq_of_uid_next(s, uids[i], &hint);
		if (nr > 0 && seq != 0 && prev != 0 && seq == prev + 1) {
			r[nr - 1].hi = uids[i];
			prev = seq;
			continue;
		}
		if (nr == IMAP_RANGES_MAX)
			break;
		r[nr].lo = r[nr].hi = uids[i];
		nr++;
		prev = seq;
	}
	msg_add_u32(m, nr);
	for (k = 0; k < nr; k++) {
		msg_add_u32(m, r[k].lo);
		msg_add_u32(m, r[k].hi);
	}
	return i;
}

/*
 * The whole of uids[0, n) for a request that takes P R: all but the
 * last IMAP_RANGES_MAX ranges go first, as MSG_RANGES pieces that
 * storaged keeps for the request; m gets the count of pieces and the
 * last range list.  -1 (nothing sent) if the set needs more than
 * IMAP_RANGE_PIECES_MAX pieces, or a piece could not be sent.
 */
int
imap_ranges_add_all(struct imap_session *s, struct msg_out *m,
    const uint32_t *uids, size_t n)
{
	struct msg_out	 piece;
	size_t		 i, k, pieces = 0;

	/* A dry run first: nothing goes out for a set refused. */
	for (i = 0;; i += k) {
		msg_create(&piece, IMSG_STORE_MSG_RANGES, s->id, -1);
		k = imap_ranges_add(s, &piece, uids + i, n - i, SIZE_MAX);
		if (i + k >= n)
			break;
		if (++pieces > IMAP_RANGE_PIECES_MAX)
			return -1;
	}
	for (i = 0; pieces > 0 && i < n; i += k) {
		msg_create(&piece, IMSG_STORE_MSG_RANGES, s->id, -1);
		k = imap_ranges_add(s, &piece, uids + i, n - i, SIZE_MAX);
		if (i + k >= n)
			break;
		if (imap_send_storaged(s, &piece) == -1) {
			/* storaged holds a part of a set: start afresh. */
			imap_close(s);
			return -1;
		}
	}
	msg_add_u32(m, pieces);
	(void)imap_ranges_add(s, m, uids + i, n - i, SIZE_MAX);
	return 0;
}

/* A sorted UID list as an IMAP set: "1:3,7". */
void
imap_set_format(struct imap_buf *b, const uint32_t *v, size_t n)
{
	size_t	 i, j;

	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && v[j] == v[j - 1] + 1; j++)
			;
		if (i > 0)
			imap_buf_addc(b, ',');
		if (j - 1 == i)
			imap_buf_printf(b, "%u", v[i]);
		else
			imap_buf_printf(b, "%u:%u", v[i], v[j - 1]);
	}
}

void
imap_flags_reply(struct imap_session *s, uint32_t uid, uint64_t modseq,
    const char *flags)
{
	size_t	 seq;

	if ((seq = imap_seq_of_uid(s, uid)) == 0)
		return;
	if (s->flags & SF_CONDSTORE)
		imap_reply(s, "* %zu FETCH (UID %u FLAGS (%s) MODSEQ (%llu))",
		    seq, uid, flags, (unsigned long long)modseq);
	else
		imap_reply(s, "* %zu FETCH (UID %u FLAGS (%s))", seq, uid,
		    flags);
}

/* --- mailbox names ------------------------------------------------- */

static int
utf8_valid(const char *p)
{
	const unsigned char	*s = (const unsigned char *)p;
	int			 n;

	while (*s) {
		if (*s < 0x80) {
			s++;
			continue;
		}
		if ((*s & 0xe0) == 0xc0 && *s >= 0xc2)
			n = 1;
		else if ((*s & 0xf0) == 0xe0)
			n = 2;
		else if ((*s & 0xf8) == 0xf0 && *s <= 0xf4)
			n = 3;
		else
			return 0;
		for (s++; n > 0; n--, s++)
			if ((*s & 0xc0) != 0x80)
				return 0;
	}
	return 1;
}

/*
 * A mailbox name from the client, as storaged wants it (UTF-8), with
 * INBOX in capitals however the client wrote it (RFC 9051 5.1).
 */
char *
imap_mailbox_in(struct imap_session *s, const char *name)
{
	char		*copy, *out;
	const char	*p;

	if (strlen(name) > IMAP_MAILBOX_MAX)
		return NULL;
	for (p = name; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return NULL;
	if ((copy = strdup(name)) == NULL)
		return NULL;
	if (strncasecmp(copy, "INBOX", 5) == 0 &&
	    (copy[5] == '\0' || copy[5] == IMAP_HIERARCHY_SEP))
		memcpy(copy, "INBOX", 5);
	if (s->flags & SF_UTF8) {
		if (utf8_valid(copy))
			return copy;
		free(copy);
		return NULL;
	}
	out = imap_mutf7_decode(copy);
	free(copy);
	return out;
}

void
imap_mailbox_out(struct imap_session *s, struct imap_buf *b,
    const char *name)
{
	char	*m;

	if (s->flags & SF_UTF8) {
		imap_quote_str(b, name, 1);
		return;
	}
	if ((m = imap_mutf7_encode(name)) == NULL) {
		imap_quote_str(b, name, 0);
		return;
	}
	imap_quote_str(b, m, 0);
	free(m);
}

static void
imap_reply_buf(struct imap_session *s, struct imap_buf *b)
{
	if (b->oom) {
		imap_reply(s, "* NO [SERVERBUG] Out of memory");
		return;
	}
	imap_write(s, b->p, b->len);
	imap_write(s, "\r\n", 2);
}

/* --- CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE ---------------- */

void
imap_cmd_mailbox(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;
	size_t		 n = s->cmd.args.nitems, want, len;
	struct msg_out	 m;
	char		*name = NULL, *to = NULL;
	int		 type;

	want = strcmp(s->cmd.verb, "RENAME") == 0 ? 2 : 1;
	if (n != want || !imap_tok_is_astring(&a[0]) ||
	    (want == 2 && !imap_tok_is_astring(&a[1]))) {
		imap_bad(s, "Wrong arguments");
		imap_done(s);
		return;
	}
	if ((name = imap_mailbox_in(s, a[0].s)) == NULL ||
	    (want == 2 && (to = imap_mailbox_in(s, a[1].s)) == NULL)) {
		free(name);
		imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
		imap_done(s);
		return;
	}
	if (strcmp(s->cmd.verb, "CREATE") == 0) {
		/* RFC 9051 6.3.4: a trailing delimiter is dropped. */
		len = strlen(name);
		while (len > 0 && name[len - 1] == IMAP_HIERARCHY_SEP)
			name[--len] = '\0';
		type = IMSG_STORE_MBOX_CREATE;
	} else if (strcmp(s->cmd.verb, "DELETE") == 0)
		type = IMSG_STORE_MBOX_DELETE;
	else if (strcmp(s->cmd.verb, "RENAME") == 0)
		type = IMSG_STORE_MBOX_RENAME;
	else
		type = IMSG_STORE_MBOX_SUBSCRIBE;
	if (*name == '\0' || (to != NULL && *to == '\0')) {
		free(name);
		free(to);
		imap_tagged(s, "NO", "[CANNOT] Invalid mailbox name");
		imap_done(s);
		return;
	}
	msg_create(&m, type, s->id, -1);
	msg_add_string(&m, name);
	if (type == IMSG_STORE_MBOX_RENAME)
		msg_add_string(&m, to);
	if (type == IMSG_STORE_MBOX_SUBSCRIBE)
		msg_add_u8(&m, strcmp(s->cmd.verb, "SUBSCRIBE") == 0);
	free(name);
	free(to);
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return;
	}
	imap_wait(s, WAIT_MBOX);
}

/* --- LIST, LSUB, STATUS --------------------------------------------- */

struct list_ctx {
	struct imap_list	 l;
	int			 lsub;
	int			 status;	/* STATUS items, STATUS cmd */
	char			*status_name;
	struct imap_listitem	*items;
	size_t			 nitems;
	size_t			 cap;
};

static void
list_ctx_free(void *p)
{
	struct list_ctx	*c = p;
	size_t		 i;

	for (i = 0; i < c->nitems; i++)
		free(c->items[i].name);
	free(c->items);
	free(c->status_name);
	free(c);
}

static int
list_request(struct imap_session *s, struct list_ctx *c)
{
	struct msg_out	 m;

	imap_ctx_set(s, c, list_ctx_free);
	msg_create(&m, IMSG_STORE_MBOX_LIST, s->id, -1);
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return -1;
	}
	imap_wait(s, WAIT_LIST);
	return 0;
}

void
imap_cmd_list(struct imap_session *s)
{
	struct list_ctx	*c;
	const char	*err;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	if (imap_parse_list(&s->cmd, &c->l, &err) == -1) {
		free(c);
		imap_bad(s, err);
		imap_done(s);
		return;
	}
	c->lsub = strcmp(s->cmd.verb, "LSUB") == 0;
	(void)list_request(s, c);
}

void
imap_cmd_status(struct imap_session *s)
{
	struct imap_tok	*a = s->cmd.args.items;
	struct list_ctx	*c;
	int		 items;

	if (s->cmd.args.nitems != 2 || !imap_tok_is_astring(&a[0]) ||
	    imap_parse_status_items(&a[1], &items) == -1) {
		imap_bad(s, "Syntax: STATUS mailbox (items)");
		imap_done(s);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	c->status = items;
	if ((c->status_name = imap_mailbox_in(s, a[0].s)) == NULL) {
		free(c);
		imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
		imap_done(s);
		return;
	}
	(void)list_request(s, c);
}

void
imap_mbox_item(struct imap_session *s, struct imsg *imsg)
{
	struct list_ctx		*c = s->ctx;
	struct imap_listitem	*it, *v;
	struct msg_in		 m;
	const char		*name, *special;
	uint8_t			 sub;
	size_t			 cap;

	if (s->wait != WAIT_LIST)
		fatalx("%s: session %u did not ask", __func__, s->id);
	if (c->nitems == c->cap) {
		cap = c->cap ? c->cap * 2 : 16;
		if ((v = reallocarray(c->items, cap, sizeof(*v))) == NULL)
			fatal("%s", __func__);
		c->items = v;
		c->cap = cap;
	}
	it = &c->items[c->nitems];
	memset(it, 0, sizeof(*it));
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &it->id) == -1 ||
	    msg_get_string(&m, &name) == -1 ||
	    msg_get_string(&m, &special) == -1 ||
	    msg_get_u8(&m, &sub) == -1 ||
	    msg_get_u32(&m, &it->messages) == -1 ||
	    msg_get_u32(&m, &it->unseen) == -1 ||
	    msg_get_u32(&m, &it->deleted) == -1 ||
	    msg_get_u32(&m, &it->uidnext) == -1 ||
	    msg_get_u32(&m, &it->uidvalidity) == -1 ||
	    msg_get_u64(&m, &it->size) == -1 ||
	    msg_get_u64(&m, &it->highestmodseq) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	if ((it->name = strdup(name)) == NULL)
		fatal("%s", __func__);
	(void)strlcpy(it->special, special, sizeof(it->special));
	it->subscribed = sub != 0;
	c->nitems++;
}

static void
status_items(struct imap_session *s, struct imap_buf *b,
    const struct imap_listitem *it, int items)
{
	int	 sp = 0;

#define ITEM(bit, fmt, v) do {						\
	if (items & (bit)) {						\
		imap_buf_printf(b, "%s" fmt, sp ? " " : "", v);		\
		sp = 1;							\
	}								\
} while (0)
	imap_buf_adds(b, " (");
	ITEM(STATUS_MESSAGES, "MESSAGES %u", it->messages);
	ITEM(STATUS_UIDNEXT, "UIDNEXT %u", it->uidnext);
	ITEM(STATUS_UIDVALIDITY, "UIDVALIDITY %u", it->uidvalidity);
	ITEM(STATUS_UNSEEN, "UNSEEN %u", it->unseen);
	ITEM(STATUS_DELETED, "DELETED %u", it->deleted);
	ITEM(STATUS_SIZE, "SIZE %llu", (unsigned long long)it->size);
	ITEM(STATUS_HIGHESTMODSEQ, "HIGHESTMODSEQ %llu",
	    (unsigned long long)it->highestmodseq);
	ITEM(STATUS_RECENT, "RECENT %u", 0U);
#undef ITEM
	imap_buf_addc(b, ')');
	if (items & STATUS_HIGHESTMODSEQ)
		s->flags |= SF_CONDSTORE;
}

static void
status_reply(struct imap_session *s, struct list_ctx *c)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	size_t		 i;

	for (i = 0; i < c->nitems; i++)
		if (c->items[i].id != 0 &&
		    strcmp(c->items[i].name, c->status_name) == 0)
			break;
	if (i == c->nitems) {
		imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
		imap_done(s);
		return;
	}
	imap_buf_adds(&b, "* STATUS ");
	imap_mailbox_out(s, &b, c->items[i].name);
	status_items(s, &b, &c->items[i], c->status);
	imap_reply_buf(s, &b);
	imap_buf_free(&b);
	imap_tagged(s, "OK", "STATUS completed");
	imap_done(s);
}

static int
has_children(struct list_ctx *c, const char *name)
{
	size_t	 i, len = strlen(name);

	for (i = 0; i < c->nitems; i++)
		if (c->items[i].id != 0 &&
		    strncmp(c->items[i].name, name, len) == 0 &&
		    c->items[i].name[len] == IMAP_HIERARCHY_SEP)
			return 1;
	return 0;
}

static int
list_match(struct imap_session *s, const char *pattern, const char *name)
{
	char	*p;
	int	 r;

	if (strncasecmp(pattern, "INBOX", 5) == 0 &&
	    strncmp(name, "INBOX", 5) == 0 &&
	    (pattern[5] == '\0' || pattern[5] == IMAP_HIERARCHY_SEP)) {
		if ((p = strdup(pattern)) == NULL)
			return 0;
		memcpy(p, "INBOX", 5);
		r = imap_match(p, name, IMAP_HIERARCHY_SEP);
		free(p);
		return r;
	}
	return imap_match(pattern, name, IMAP_HIERARCHY_SEP);
}

/* RECURSIVEMATCH: whether a mailbox below name is subscribed. */
static int
has_subscribed_child(struct list_ctx *c, const char *name)
{
	size_t	 i, len = strlen(name);

	for (i = 0; i < c->nitems; i++)
		if (c->items[i].subscribed &&
		    strncmp(c->items[i].name, name, len) == 0 &&
		    c->items[i].name[len] == IMAP_HIERARCHY_SEP)
			return 1;
	return 0;
}

static void
list_one(struct imap_session *s, struct list_ctx *c,
    struct imap_listitem *it, int childinfo)
{
	struct imap_buf	 b = IMAP_BUF_INIT;
	int		 sp = 0;

#define ATTR(a) do {							\
	imap_buf_printf(&b, "%s%s", sp ? " " : "", a);			\
	sp = 1;								\
} while (0)
	imap_buf_printf(&b, "* %s (", c->lsub ? "LSUB" : "LIST");
	if (it->id == 0)
		ATTR(c->lsub ? "\\Noselect" : "\\NonExistent");
	else if (!c->lsub) {
		ATTR(has_children(c, it->name) ? "\\HasChildren" :
		    "\\HasNoChildren");
		if (it->special[0] != '\0')
			ATTR(it->special);
	}
	if (!c->lsub && it->subscribed && ((c->l.ret & LIST_RET_SUBSCRIBED) ||
	    (c->l.sel & LIST_SEL_SUBSCRIBED)))
		ATTR("\\Subscribed");
#undef ATTR
	imap_buf_printf(&b, ") \"%c\" ", IMAP_HIERARCHY_SEP);
	imap_mailbox_out(s, &b, it->name);
	if (childinfo)
		imap_buf_adds(&b, " (\"CHILDINFO\" (\"SUBSCRIBED\"))");
	imap_reply_buf(s, &b);
	if (!c->lsub && (c->l.ret & LIST_RET_STATUS) && it->id != 0) {
		imap_buf_reset(&b);
		imap_buf_adds(&b, "* STATUS ");
		imap_mailbox_out(s, &b, it->name);
		status_items(s, &b, it, c->l.status);
		imap_reply_buf(s, &b);
	}
	imap_buf_free(&b);
}

/*
 * RFC 3501 6.3.9: with "%", a subscribed a/b whose parent a is not
 * subscribed makes LSUB name a, as \Noselect.
 */
static void
lsub_parents(struct imap_session *s, struct list_ctx *c, const char *pattern)
{
	struct imap_buf		 b = IMAP_BUF_INIT;
	char			*name, *sep, **told = NULL, **t;
	size_t			 i, j, ntold = 0;

	for (i = 0; i < c->nitems; i++) {
		if (!c->items[i].subscribed ||
		    (name = strdup(c->items[i].name)) == NULL)
			continue;
		while ((sep = strrchr(name, IMAP_HIERARCHY_SEP)) != NULL) {
			*sep = '\0';
			if (!list_match(s, pattern, name))
				continue;
			for (j = 0; j < c->nitems; j++)
				if (c->items[j].subscribed &&
				    strcmp(c->items[j].name, name) == 0)
					break;
			for (t = told; j == c->nitems && t < told + ntold; t++)
				if (strcmp(*t, name) == 0)
					break;
			if (j < c->nitems || t < told + ntold)
				continue;
			if ((t = reallocarray(told, ntold + 1,
			    sizeof(*told))) == NULL)
				break;
			told = t;
			if ((told[ntold] = strdup(name)) == NULL)
				break;
			ntold++;
			imap_buf_reset(&b);
			imap_buf_printf(&b, "* LSUB (\\Noselect) \"%c\" ",
			    IMAP_HIERARCHY_SEP);
			imap_mailbox_out(s, &b, name);
			imap_reply_buf(s, &b);
		}
		free(name);
	}
	for (i = 0; i < ntold; i++)
		free(told[i]);
	free(told);
	imap_buf_free(&b);
}

static void
list_reply(struct imap_session *s, struct list_ctx *c)
{
	char		*pattern, *full;
	unsigned char	*done;
	size_t		 i, j, len;
	int		 sub, child;

	if (c->l.npatterns == 1 && c->l.patterns[0][0] == '\0' && !c->lsub &&
	    !c->l.extended) {
		imap_reply(s, "* LIST (\\Noselect) \"%c\" \"\"",
		    IMAP_HIERARCHY_SEP);
		imap_tagged(s, "OK", "LIST completed");
		imap_done(s);
		return;
	}
	if ((done = calloc(c->nitems + 1, 1)) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	sub = c->lsub || (c->l.sel & LIST_SEL_SUBSCRIBED);
	for (j = 0; j < c->l.npatterns; j++) {
		len = strlen(c->l.ref) + strlen(c->l.patterns[j]) + 1;
		if ((full = malloc(len)) == NULL)
			break;
		(void)strlcpy(full, c->l.ref, len);
		(void)strlcat(full, c->l.patterns[j], len);
		pattern = imap_mailbox_in(s, full);
		free(full);
		if (pattern == NULL)
			continue;
		for (i = 0; i < c->nitems; i++) {
			if (done[i])
				continue;
			child = (c->l.sel & LIST_SEL_RECURSIVE) &&
			    (c->l.sel & LIST_SEL_SUBSCRIBED) &&
			    has_subscribed_child(c, c->items[i].name);
			if (sub && !c->items[i].subscribed && !child)
				continue;
			if (!sub && c->items[i].id == 0)
				continue;
			if ((c->l.sel & LIST_SEL_SPECIAL) &&
			    c->items[i].special[0] == '\0')
				continue;
			if (!list_match(s, pattern, c->items[i].name))
				continue;
			done[i] = 1;
			list_one(s, c, &c->items[i], child);
		}
		if (c->lsub && strchr(pattern, '%') != NULL)
			lsub_parents(s, c, pattern);
		free(pattern);
	}
	free(done);
	imap_tagged(s, "OK", "%s completed", c->lsub ? "LSUB" : "LIST");
	imap_done(s);
}

static void
select_end(struct imap_session *);

void
imap_mbox_end(struct imap_session *s, struct imsg *imsg)
{
	struct list_ctx	*c = s->ctx;

	if (imsg->hdr.len != IMSG_HEADER_SIZE)
		imapd_malformed(imsg);
	if (s->wait == WAIT_SELECT) {
		select_end(s);
		return;
	}
	if (s->wait != WAIT_LIST)
		fatalx("%s: session %u did not ask", __func__, s->id);
	s->wait = WAIT_NONE;
	if (c->status_name != NULL)
		status_reply(s, c);
	else
		list_reply(s, c);
}

/* --- SELECT, EXAMINE, CLOSE, UNSELECT -------------------------------- */

struct select_ctx {
	struct imap_select	 sel;
	char			*name;
	uint64_t		 id;
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	uint64_t		 highestmodseq;
	uint32_t		 messages;
	char			*keywords;
	struct imap_uidlist	 uids;
	int			 got;
	uint32_t		 unseen;	/* first unseen UID, 0: none */
};

static void
select_ctx_free(void *p)
{
	struct select_ctx	*c = p;

	imap_select_free(&c->sel);
	free(c->name);
	free(c->keywords);
	imap_uidlist_free(&c->uids);
	free(c);
}

/* Forget the selected mailbox (storaged too). */
void
imap_deselect(struct imap_session *s)
{
	struct msg_out	 m;

	if (s->state != IMAP_SELECTED)
		return;
	msg_create(&m, IMSG_STORE_MBOX_UNSELECT, s->id, -1);
	(void)imap_send_storaged(s, &m);
	s->state = IMAP_AUTH;
	s->mbox = 0;
	free(s->mbox_name);
	s->mbox_name = NULL;
	imap_uidlist_free(&s->uids);
	imap_uidlist_free(&s->pending);
	imap_uidlist_free(&s->sync_new);
	imap_uidlist_free(&s->saved);
	s->flags &= ~(SF_CHANGED | SF_READONLY);
}

void
imap_cmd_select(struct imap_session *s)
{
	struct select_ctx	*c;
	struct msg_out		 m;
	const char		*err;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		imap_tagged(s, "NO", "[SERVERBUG] Out of memory");
		imap_done(s);
		return;
	}
	if (imap_parse_select(&s->cmd, &c->sel, &err) == -1) {
		free(c);
		imap_bad(s, err);
		imap_done(s);
		return;
	}
	if (c->sel.qresync && !(s->flags & SF_QRESYNC)) {
		select_ctx_free(c);
		imap_bad(s, "QRESYNC is not enabled");
		imap_done(s);
		return;
	}
	if (s->state == IMAP_SELECTED) {
		imap_deselect(s);
		imap_reply(s, "* OK [CLOSED] Previous mailbox closed");
	}
	if (c->sel.condstore)
		s->flags |= SF_CONDSTORE;
	if ((c->name = imap_mailbox_in(s, c->sel.mailbox)) == NULL) {
		select_ctx_free(c);
		imap_tagged(s, "NO", "[NONEXISTENT] No such mailbox");
		imap_done(s);
		return;
	}
	imap_ctx_set(s, c, select_ctx_free);
	msg_create(&m, IMSG_STORE_MBOX_SELECT, s->id, -1);
	msg_add_string(&m, c->name);
	msg_add_u8(&m, strcmp(s->cmd.verb, "EXAMINE") == 0);
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return;
	}
	imap_wait(s, WAIT_SELECT);
}

void
imap_mbox_selected(struct imap_session *s, struct imsg *imsg)
{
	struct select_ctx	*c = s->ctx;
	struct msg_in		 m;
	const char		*kw;

	if (s->wait != WAIT_SELECT || c->got)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &c->id) == -1 ||
	    msg_get_u32(&m, &c->uidvalidity) == -1 ||
	    msg_get_u32(&m, &c->uidnext) == -1 ||
	    msg_get_u64(&m, &c->highestmodseq) == -1 ||
	    msg_get_u32(&m, &c->messages) == -1 ||
	    msg_get_string(&m, &kw) == -1 ||
	    msg_get_u32(&m, &c->unseen) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	if ((c->keywords = strdup(kw)) == NULL)
		fatal("%s", __func__);
	c->got = 1;
}

void
imap_mbox_uids(struct imap_session *s, struct imsg *imsg)
{
	struct select_ctx	*c = s->ctx;
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint32_t		 n, i;

	if (s->wait != WAIT_SELECT || !c->got)
		fatalx("%s: session %u did not ask", __func__, s->id);
	n = imapd_uids_read(imsg, uids);
	for (i = 0; i < n; i++) {
		if (c->uids.n > 0 && uids[i] <= c->uids.v[c->uids.n - 1])
			imapd_malformed(imsg);
		if (imap_uidlist_add(&c->uids, uids[i]) == -1)
			fatal("%s", __func__);
	}
}

static void	select_finish(struct imap_session *);

static void
select_end(struct imap_session *s)
{
	struct select_ctx	*c = s->ctx;
	struct imap_buf		 b = IMAP_BUF_INIT;
	size_t			 seq;
	int			 ro;

	if (!c->got)
		fatalx("%s: session %u: no MBOX_SELECTED", __func__, s->id);
	ro = strcmp(s->cmd.verb, "EXAMINE") == 0;
	s->state = IMAP_SELECTED;
	s->mbox = c->id;
	s->mbox_name = c->name;
	c->name = NULL;
	s->uidvalidity = c->uidvalidity;
	s->uidnext = c->uidnext;
	s->highestmodseq = c->highestmodseq;
	s->uids = c->uids;
	memset(&c->uids, 0, sizeof(c->uids));
	if (ro)
		s->flags |= SF_READONLY;
	else
		s->flags &= ~SF_READONLY;

	imap_reply(s, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
	    "\\Draft%s%s)", c->keywords[0] ? " " : "", c->keywords);
	if (ro)
		imap_reply(s, "* OK [PERMANENTFLAGS ()] Read-only mailbox");
	else
		imap_reply(s, "* OK [PERMANENTFLAGS (\\Answered \\Flagged "
		    "\\Deleted \\Seen \\Draft%s%s \\*)] Flags permitted",
		    c->keywords[0] ? " " : "", c->keywords);
	imap_reply(s, "* %zu EXISTS", s->uids.n);
	if (!(s->flags & SF_REV2))
		imap_reply(s, "* 0 RECENT");
	imap_reply(s, "* OK [UIDVALIDITY %u] UIDs valid", s->uidvalidity);
	imap_reply(s, "* OK [UIDNEXT %u] Predicted next UID", s->uidnext);
	imap_reply(s, "* OK [HIGHESTMODSEQ %llu] Highest",
	    (unsigned long long)s->highestmodseq);
	if (s->flags & SF_REV2) {
		imap_buf_printf(&b, "* LIST () \"%c\" ", IMAP_HIERARCHY_SEP);
		imap_mailbox_out(s, &b, s->mbox_name);
		imap_reply_buf(s, &b);
		imap_buf_free(&b);
	}
	s->done = strdup(ro ? "OK [READ-ONLY] EXAMINE completed" :
	    "OK [READ-WRITE] SELECT completed");
	if (s->done == NULL)
		fatal("%s", __func__);
	/* RFC 3501 6.3.1: an IMAP4rev1 client learns the first unseen. */
	if (!(s->flags & SF_REV2) && c->unseen != 0 &&
	    (seq = imap_seq_of_uid(s, c->unseen)) != 0)
		imap_reply(s, "* OK [UNSEEN %zu] First unseen", seq);
	select_finish(s);
}

static void
select_finish(struct imap_session *s)
{
	struct select_ctx	*c = s->ctx;

	if (c->sel.qresync && c->sel.uidvalidity == s->uidvalidity &&
	    c->sel.modseq < s->highestmodseq) {
		/* VANISHED (EARLIER) and flags changed since then. */
		s->flags |= SF_CHANGED;
		s->highestmodseq = c->sel.modseq;
		imap_sync_start(s, AFTER_DONE, 2);
		return;
	}
	s->wait = WAIT_NONE;
	imap_reply(s, "%s %s", s->tag, s->done);
	imap_done(s);
}

void
imap_cmd_close(struct imap_session *s)
{
	struct msg_out	 m;

	if (!(s->flags & SF_READONLY)) {
		/* Expunge silently; the result is not waited for. */
		msg_create(&m, IMSG_STORE_MSG_EXPUNGE, s->id, -1);
		msg_add_u64(&m, s->mbox);
		msg_add_u8(&m, 0);
		msg_add_u32(&m, 0);	/* P R: no pieces, no ranges */
		msg_add_u32(&m, 0);
		if (imap_send_storaged(s, &m) == -1) {
			imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
			imap_done(s);
			return;
		}
		imap_wait(s, WAIT_EXPUNGE);
		s->after = AFTER_CMD;	/* CLOSE: no sync after */
		return;
	}
	imap_deselect(s);
	imap_tagged(s, "OK", "CLOSE completed");
	imap_done(s);
}

void
imap_cmd_unselect(struct imap_session *s)
{
	imap_deselect(s);
	imap_tagged(s, "OK", "%s completed", s->cmd.verb);
	imap_done(s);
}

/* MBOX_RESULT answers CREATE and the like, EXPUNGE, and a failed SELECT. */
void
imap_mbox_result(struct imap_session *s, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*text;
	uint32_t	 ok;

	msg_read(&m, imsg);
	if (msg_get_u32(&m, &ok) == -1 || msg_get_string(&m, &text) == -1 ||
	    msg_end(&m) == -1)
		imapd_malformed(imsg);
	switch (s->wait) {
	case WAIT_MBOX:
		s->wait = WAIT_NONE;
		imap_tagged(s, ok ? "OK" : "NO", "%s", text);
		imap_done(s);
		break;
	case WAIT_SELECT:
		s->wait = WAIT_NONE;
		imap_tagged(s, "NO", "%s", text);
		imap_done(s);
		break;
	case WAIT_EXPUNGE:
		s->wait = WAIT_NONE;
		if (strcmp(s->cmd.verb, "CLOSE") == 0) {
			imap_deselect(s);
			imap_tagged(s, "OK", "CLOSE completed");
			imap_done(s);
			break;
		}
		if (!ok) {
			imap_tagged(s, "NO", "%s", text);
			imap_done(s);
			break;
		}
		if ((s->done = strdup(s->cmd.uid ? "OK UID EXPUNGE completed" :
		    "OK EXPUNGE completed")) == NULL)
			fatal("%s", __func__);
		s->flags |= SF_CHANGED;
		imap_sync_start(s, AFTER_DONE, 1);
		break;
	case WAIT_SYNC:
		/* The selected mailbox was deleted under the session. */
		log_info("session %u from %s: selected mailbox went away",
		    s->id, s->addr);
		imap_reply(s, "* BYE [NONEXISTENT] The selected mailbox was "
		    "deleted");
		s->wait = WAIT_NONE;
		s->state = IMAP_LOGOUT;
		io_set_write(s->io);
		if (io_queued(s->io) == 0)
			imap_close(s);
		break;
	default:
		fatalx("%s: session %u did not ask", __func__, s->id);
	}
}

/* --- the sync ---------------------------------------------------------- */

/*
 * expunge: 1 expunges may be told now, 0 they wait in s->pending,
 * 2 QRESYNC's SELECT: vanished UIDs go out as VANISHED (EARLIER);
 * 3 (UID FETCH's VANISHED, imap_fetch.c) only those, nothing kept.
 */
void
imap_sync_start(struct imap_session *s, enum imap_after after, int expunge)
{
	struct msg_out	 m;

	s->flags &= ~SF_CHANGED;
	s->after = after;
	s->sync_expunge = expunge;
	imap_uidlist_free(&s->sync_new);
	msg_create(&m, IMSG_STORE_MBOX_SYNC, s->id, -1);
	msg_add_u64(&m, s->mbox);
	msg_add_u64(&m, s->highestmodseq);
	if (imap_send_storaged(s, &m) == -1) {
		imap_tagged(s, "NO", "[UNAVAILABLE] Try again later");
		imap_done(s);
		return;
	}
	imap_wait(s, WAIT_SYNC);
}

void
imap_change(struct imap_session *s, struct imsg *imsg)
{
	struct msg_in	 m;
	uint64_t	 mbox, hms;

	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mbox) == -1 || msg_get_u64(&m, &hms) == -1 ||
	    msg_end(&m) == -1)
		imapd_malformed(imsg);
	if (!imap_selected(s) || mbox != s->mbox || hms <= s->highestmodseq)
		return;
	s->flags |= SF_CHANGED;
	if (s->input == IN_IDLE && s->wait == WAIT_NONE)
		imap_sync_start(s, AFTER_IDLE, 1);
}

void
imap_sync_flags(struct imap_session *s, struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*flags;
	uint64_t	 modseq;
	uint32_t	 uid;

	if (s->wait != WAIT_SYNC)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u32(&m, &uid) == -1 || msg_get_u64(&m, &modseq) == -1 ||
	    msg_get_string(&m, &flags) == -1 || msg_end(&m) == -1)
		imapd_malformed(imsg);
	if (s->sync_expunge == 3)
		return;
	if (uid >= s->uidnext && !imap_seq_of_uid(s, uid)) {
		if (imap_uidlist_add(&s->sync_new, uid) == -1)
			fatal("%s", __func__);
		return;
	}
	if (uidlist_has(&s->pending, uid))
		return;
	imap_flags_reply(s, uid, modseq, flags);
}

static void
expunge_one(struct imap_session *s, uint32_t uid, struct imap_uidlist *gone)
{
	size_t	 seq;

	if ((seq = imap_seq_of_uid(s, uid)) == 0)
		return;
	uidlist_remove(&s->uids, uid);
	if (s->flags & SF_QRESYNC) {
		if (imap_uidlist_add(gone, uid) == -1)
			fatal("%s", __func__);
	} else
		imap_reply(s, "* %zu EXPUNGE", seq);
}

static void
vanished_reply(struct imap_session *s, struct imap_uidlist *gone,
    int earlier)
{
	struct imap_buf	 b = IMAP_BUF_INIT;

	if (gone->n == 0)
		return;
	uidlist_sort(gone);
	imap_buf_printf(&b, "* VANISHED %s", earlier ? "(EARLIER) " : "");
	imap_set_format(&b, gone->v, gone->n);
	imap_reply_buf(s, &b);
	imap_buf_free(&b);
}

void
imap_sync_vanished(struct imap_session *s, struct imsg *imsg)
{
	struct imap_uidlist	 gone = { NULL, 0, 0 };
	struct select_ctx	*c;
	uint32_t		 uids[IMAP_UIDS_PER_MSG];
	uint32_t		 n, i, uid;

	if (s->wait != WAIT_SYNC)
		fatalx("%s: session %u did not ask", __func__, s->id);
	n = imapd_uids_read(imsg, uids);
	for (i = 0; i < n; i++) {
		uid = uids[i];
		if (s->sync_expunge == 3) {
			if (imap_uidlist_add(&gone, uid) == -1)
				fatal("%s", __func__);
			continue;
		}
		uidlist_remove(&s->sync_new, uid);
		if (s->sync_expunge == 2) {
			c = s->ctx;
			if (c != NULL && c->sel.known_uids.n > 0) {
				size_t	 k;

				for (k = 0; k < c->sel.known_uids.n; k++)
					if (uid >= c->sel.known_uids.r[k].lo &&
					    uid <= c->sel.known_uids.r[k].hi)
						break;
				if (k == c->sel.known_uids.n)
					continue;
			}
			if (imap_uidlist_add(&gone, uid) == -1)
				fatal("%s", __func__);
			continue;
		}
		if (!imap_seq_of_uid(s, uid))
			continue;
		if (s->sync_expunge)
			expunge_one(s, uid, &gone);
		else if (!uidlist_has(&s->pending, uid)) {
			if (imap_uidlist_add(&s->pending, uid) == -1)
				fatal("%s", __func__);
			uidlist_sort(&s->pending);
		}
	}
	if (s->sync_expunge == 3)
		imap_fetch_vanished(s, gone.v, gone.n);
	else
		vanished_reply(s, &gone, s->sync_expunge == 2);
	imap_uidlist_free(&gone);
}

void
imap_sync_end(struct imap_session *s, struct imsg *imsg)
{
	struct imap_uidlist	 gone = { NULL, 0, 0 };
	struct msg_in		 m;
	uint64_t		 hms;
	uint32_t		 uidnext, last;
	size_t			 i, before;

	if (s->wait != WAIT_SYNC)
		fatalx("%s: session %u did not ask", __func__, s->id);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &hms) == -1 || msg_get_u32(&m, &uidnext) == -1 ||
	    msg_end(&m) == -1)
		imapd_malformed(imsg);
	if (s->sync_expunge == 3) {
		s->wait = WAIT_NONE;
		imap_fetch_resume(s);
		return;
	}
	if (s->sync_expunge == 1 && s->pending.n > 0) {
		for (i = s->pending.n; i > 0; i--)
			expunge_one(s, s->pending.v[i - 1], &gone);
		imap_uidlist_free(&s->pending);
		vanished_reply(s, &gone, 0);
		imap_uidlist_free(&gone);
	}
	before = s->uids.n;
	uidlist_sort(&s->sync_new);
	for (i = 0; i < s->sync_new.n; i++) {
		last = s->uids.n ? s->uids.v[s->uids.n - 1] : 0;
		if (s->sync_new.v[i] > last &&
		    imap_uidlist_add(&s->uids, s->sync_new.v[i]) == -1)
			fatal("%s", __func__);
	}
	imap_uidlist_free(&s->sync_new);
	if (s->uids.n != before)
		imap_reply(s, "* %zu EXISTS", s->uids.n);
	if (hms > s->highestmodseq)
		s->highestmodseq = hms;
	if (uidnext > s->uidnext)
		s->uidnext = uidnext;
	s->wait = WAIT_NONE;
	switch (s->after) {
	case AFTER_CMD:
		imap_run_command(s);
		break;
	case AFTER_IDLE:
		if (s->flags & SF_CHANGED)
			imap_sync_start(s, AFTER_IDLE, 1);
		else
			io_resume(s->io, IO_IN);
		break;
	case AFTER_DONE:
		imap_reply(s, "%s %s", s->tag, s->done ? s->done : "OK");
		imap_done(s);
		break;
	case AFTER_FETCH:
		fatalx("%s: session %u: fetch after a full sync", __func__,
		    s->id);
	}
}
