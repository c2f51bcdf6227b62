/*
 * THREAD (RFC 5256): ORDEREDSUBJECT and REFERENCES over the messages a
 * search program selects, from the keys ingestion stored (message_id,
 * in_reply_to, refs, sort_subject, sent_ts).  The answer is RFC 5256
 * thread data in UIDs; imapd maps them to sequence numbers for THREAD.
 */
#include <sys/tree.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "storaged.h"

#define THREAD_MESSAGES_MAX	1000000	/* messages one THREAD looks at */
#define THREAD_DEPTH_MAX	4096	/* replies to replies, kept linked */

struct thr_node {
	RB_ENTRY(thr_node)	 entry;
	char			*id;		/* message id, or NULL */
	uint32_t		 uid;		/* 0: a dummy */
	int64_t			 date;
	char			*subject;	/* base subject */
	int			 reply;		/* Re:, Fwd: taken off */
	struct thr_node		*parent;
	struct thr_node		*child;		/* first */
	struct thr_node		*last;		/* last child */
	struct thr_node		*prev;
	struct thr_node		*next;
	struct thr_node		*all;		/* every node, to free */
};

RB_HEAD(thr_ids, thr_node);

static int	thr_cmp(struct thr_node *, struct thr_node *);
RB_GENERATE(thr_ids, thr_node, entry, thr_cmp)

struct thr_tree {
	struct thr_ids		 ids;
	struct thr_node		 top;		/* its children: the roots */
	struct thr_node		*all;
	int			 err;
};

static int
thr_cmp(struct thr_node *a, struct thr_node *b)
{
	return strcmp(a->id, b->id);
}

static struct thr_node *
node_new(struct thr_tree *t, const char *id)
{
	struct thr_node	*n;

	if ((n = calloc(1, sizeof(*n))) == NULL) {
		t->err = 1;
		return NULL;
	}
	if (id != NULL && (n->id = strdup(id)) == NULL) {
		free(n);
		t->err = 1;
		return NULL;
	}
	n->all = t->all;
	t->all = n;
	if (id != NULL)
		RB_INSERT(thr_ids, &t->ids, n);
	return n;
}

/* The container of a message id, made (a dummy) if there is none. */
static struct thr_node *
node_get(struct thr_tree *t, const char *id)
{
	struct thr_node	 key, *n;

	key.id = (char *)id;
	if ((n = RB_FIND(thr_ids, &t->ids, &key)) != NULL)
		return n;
	return node_new(t, id);
}

static void
node_unlink(struct thr_node *n)
{
	struct thr_node	*p = n->parent;

	if (p == NULL)
		return;
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		p->child = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	else
		p->last = n->prev;
	n->parent = n->prev = n->next = NULL;
}

static void
node_append(struct thr_node *p, struct thr_node *n)
{
	node_unlink(n);
	n->parent = p;
	n->prev = p->last;
	n->next = NULL;
	if (p->last != NULL)
		p->last->next = n;
	else
		p->child = n;
	p->last = n;
}

/*
 * Whether b may not become a's parent: a is b or one of
 * b's ancestors (a loop), or b is THREAD_DEPTH_MAX deep already (the
 * tree is walked recursively).
 */
static int
node_above(const struct thr_node *a, const struct thr_node *b)
{
	size_t	 depth = 0;

	for (; b != NULL; b = b->parent)
		if (a == b || ++depth >= THREAD_DEPTH_MAX)
			return 1;
	return 0;
}

static void
tree_free(struct thr_tree *t)
{
	struct thr_node	*n, *next;

	for (n = t->all; n != NULL; n = next) {
		next = n->all;
		free(n->id);
		free(n->subject);
		free(n);
	}
	t->all = NULL;
}

/* The n-th message id of a list separated by spaces, in buf. */
static int
ref_at(const char *refs, size_t n, char *buf, size_t buflen)
{
	size_t	 len;

	for (;;) {
		while (*refs == ' ')
			refs++;
		if (*refs == '\0')
			return -1;
		len = strcspn(refs, " ");
		if (n-- == 0) {
			if (len >= buflen)
				return -1;
			memcpy(buf, refs, len);
			buf[len] = '\0';
			return 0;
		}
		refs += len;
	}
}

/* RFC 5256 REFERENCES step 1: a message into the id table. */
static void
thread_add(struct thr_tree *t, const char *irt, const char *refs,
    struct thr_node *n)
{
	struct thr_node	*prev = NULL, *cur;
	char		 ref[1000];
	size_t		 i;

	if (refs == NULL || *refs == '\0')
		refs = irt;
	for (i = 0; refs != NULL && ref_at(refs, i, ref, sizeof(ref)) == 0;
	    i++) {
		if ((cur = node_get(t, ref)) == NULL)
			return;
		if (cur == n)
			continue;
		if (prev != NULL && cur->parent == NULL &&
		    !node_above(cur, prev))
			node_append(prev, cur);
		prev = cur;
	}
	/* A parent it has came from a truncated References: replace it. */
	node_unlink(n);
	if (prev != NULL && prev != n && !node_above(n, prev))
		node_append(prev, n);
}

static int
node_date_cmp(const void *a, const void *b)
{
	const struct thr_node	*x = *(struct thr_node *const *)a;
	const struct thr_node	*y = *(struct thr_node *const *)b;
	const struct thr_node	*fx = x, *fy = y;

	while (fx->uid == 0 && fx->child != NULL)
		fx = fx->child;
	while (fy->uid == 0 && fy->child != NULL)
		fy = fy->child;
	if (fx->date != fy->date)
		return fx->date < fy->date ? -1 : 1;
	if (fx->uid != fy->uid)
		return fx->uid < fy->uid ? -1 : 1;
	return 0;
}

/* Sorts every sibling list under p by date, children first. */
static void
tree_sort(struct thr_tree *t, struct thr_node *p)
{
	struct thr_node	**v, *c;
	size_t		  n = 0, i;

	for (c = p->child; c != NULL; c = c->next) {
		tree_sort(t, c);
		n++;
	}
	if (n < 2)
		return;
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		t->err = 1;
		return;
	}
	for (i = 0, c = p->child; c != NULL; c = c->next)
		v[i++] = c;
	qsort(v, n, sizeof(*v), node_date_cmp);
	p->child = p->last = NULL;
	for (i = 0; i < n; i++) {
		v[i]->parent = NULL;
		v[i]->prev = v[i]->next = NULL;
		node_append(p, v[i]);
	}
	free(v);
}

/* RFC 5256 REFERENCES step 4: dummies without need go. */
static void
tree_prune(struct thr_node *p, int root)
{
	struct thr_node	*c, *next, *g, *gnext;

	for (c = p->child; c != NULL; c = next) {
		tree_prune(c, 0);
		next = c->next;
		if (c->uid != 0)
			continue;
		if (c->child == NULL) {
			node_unlink(c);
			continue;
		}
		if (root && c->child->next != NULL)
			continue;
		/* Its children take its place. */
		for (g = c->child; g != NULL; g = gnext) {
			gnext = g->next;
			node_unlink(g);
			g->parent = p;
			g->prev = c->prev;
			g->next = c;
			if (c->prev != NULL)
				c->prev->next = g;
			else
				p->child = g;
			c->prev = g;
		}
		node_unlink(c);
	}
}

/* A root's base subject: a dummy's is its first child's. */
static const char *
root_subject(const struct thr_node *r)
{
	if (r->uid == 0 && r->child != NULL)
		r = r->child;
	return r->subject != NULL ? r->subject : "";
}

/* RFC 5256 REFERENCES step 5: roots of one base subject together. */
static void
tree_group_subjects(struct thr_tree *t)
{
	struct thr_node	**table = NULL, **roots = NULL, *r, *e, *d, *s;
	const char	 *subj;
	size_t		  n = 0, nt = 0, i, j;

	for (r = t->top.child; r != NULL; r = r->next)
		n++;
	if (n < 2)
		return;
	if ((table = calloc(n, sizeof(*table))) == NULL ||
	    (roots = calloc(n, sizeof(*roots))) == NULL) {
		t->err = 1;
		goto done;
	}
	for (i = 0, r = t->top.child; r != NULL; r = r->next)
		roots[i++] = r;
	for (i = 0; i < n; i++) {
		r = roots[i];
		subj = root_subject(r);
		if (*subj == '\0')
			continue;
		for (j = 0; j < nt; j++)
			if (strcasecmp(root_subject(table[j]), subj) == 0)
				break;
		if (j == nt)
			table[nt++] = r;
		else if ((table[j]->uid != 0 && r->uid == 0) ||
		    (r->uid != 0 && table[j]->uid != 0 && table[j]->reply &&
		    !r->reply))
			table[j] = r;
	}
	for (i = 0; i < n; i++) {
		r = roots[i];
		subj = root_subject(r);
		if (*subj == '\0')
			continue;
		for (j = 0; j < nt; j++)
			if (strcasecmp(root_subject(table[j]), subj) == 0)
				break;
		if (j == nt || (e = table[j]) == r)
			continue;
		if (e->uid == 0 && r->uid == 0) {
			while ((s = r->child) != NULL)
				node_append(e, s);
			node_unlink(r);
		} else if (e->uid == 0)
			node_append(e, r);
		else if (r->uid == 0) {
			node_append(r, e);
			table[j] = r;
		} else if (!e->reply && r->reply)
			node_append(e, r);
		else {
			if ((d = node_new(t, NULL)) == NULL)
				goto done;
			d->parent = &t->top;
			d->prev = e->prev;
			d->next = e->next;
			if (e->prev != NULL)
				e->prev->next = d;
			else
				t->top.child = d;
			if (e->next != NULL)
				e->next->prev = d;
			else
				t->top.last = d;
			e->parent = e->prev = e->next = NULL;
			node_append(d, e);
			node_append(d, r);
			table[j] = d;
		}
	}
 done:
	free(table);
	free(roots);
}

/* One node and what hangs under it, in RFC 5256 thread syntax. */
static void
thread_print(struct store_buf *b, const struct thr_node *n)
{
	const struct thr_node	*c;

	for (;;) {
		if (n->uid != 0) {
			store_buf_printf(b, "%u", n->uid);
			if (n->child == NULL)
				return;
			store_buf_add(b, " ", 1);
		}
		if (n->child != NULL && n->child->next == NULL &&
		    n->uid != 0) {
			n = n->child;
			continue;
		}
		for (c = n->child; c != NULL; c = c->next) {
			store_buf_add(b, "(", 1);
			thread_print(b, c);
			store_buf_add(b, ")", 1);
		}
		return;
	}
}

struct thr_msg {
	uint32_t	 uid;
	int64_t		 date;
	char		*subject;
	struct thr_node	*node;
};

static int
ordered_cmp(const void *a, const void *b)
{
	const struct thr_msg	*x = a, *y = b;
	int			 c;

	if ((c = strcasecmp(x->subject, y->subject)) != 0)
		return c;
	if (x->date != y->date)
		return x->date < y->date ? -1 : 1;
	return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static char *
dup_or_empty(const unsigned char *s)
{
	return strdup(s != NULL ? (const char *)s : "");
}

/* Whether ingestion took a Re: or Fwd: off the subject. */
static int
subject_is_reply(const char *subject, const char *base)
{
	size_t	 len;

	if (subject == NULL)
		return 0;
	while (*subject == ' ' || *subject == '\t')
		subject++;
	len = strlen(subject);
	while (len > 0 && (subject[len - 1] == ' ' ||
	    subject[len - 1] == '\t'))
		len--;
	return strlen(base) != len || strncasecmp(subject, base, len) != 0;
}

/*
 * MSG_THREAD: u64 mailbox, s algorithm, program -> THREAD_DATA ...,
 * THREAD_END.
 */
void
store_imap_thread(struct proc_peer *peer, struct imsg *imsg)
{
	struct msg_in		 m;
	struct msg_out		 out;
	struct store_search	 s;
	struct store_buf	 sql, res;
	struct thr_tree		 t;
	struct thr_msg		*msgs = NULL, *nm;
	struct thr_node		*n, *c;
	sqlite3_stmt		*st;
	const char		*algo, *id;
	uint64_t		 mailbox;
	size_t			 nmsgs = 0, cap = 0, i, off, len;
	int			 refs, rc;

	(void)store_imap_account(peer, imsg);
	memset(&s, 0, sizeof(s));
	memset(&sql, 0, sizeof(sql));
	memset(&res, 0, sizeof(res));
	memset(&t, 0, sizeof(t));
	RB_INIT(&t.ids);
	msg_read(&m, imsg);
	if (msg_get_u64(&m, &mailbox) == -1 ||
	    msg_get_string(&m, &algo) == -1 ||
	    (store_search_parse(&m, &s) == -1 && !s.err) ||
	    (!s.err && msg_end(&m) == -1))
		fatalx("malformed %s from imapd",
		    imsg_type_name(imsg->hdr.type));
	if (s.err) {
		log_warnx("%s: a search program too deep or too large",
		    __func__);
		goto end;
	}
	refs = strcasecmp(algo, "REFERENCES") == 0;
	if (!refs && strcasecmp(algo, "ORDEREDSUBJECT") != 0) {
		log_warnx("%s: no thread algorithm %s", __func__, algo);
		goto end;
	}
	if (!store_imap_selected(imsg->hdr.peerid, mailbox, NULL))
		goto end;
	store_buf_str(&sql, "SELECT mm.uid, coalesce(m.sent_ts, m.received), "
	    "coalesce(m.sort_subject, ''), m.subject, m.message_id, "
	    "m.in_reply_to, m.refs FROM mailbox_messages mm ");
	store_search_join(&sql, &s, 1);
	store_buf_str(&sql, "WHERE mm.mailbox_id = ?1 AND mm.uid > 0 AND ");
	store_buf_add(&sql, s.sql.p, s.sql.len);
	store_buf_str(&sql, " ORDER BY mm.uid");
	if (sql.err || (st = store_db_stmt(sql.p)) == NULL)
		goto end;
	if (sqlite3_bind_int64(st, 1, mailbox) != SQLITE_OK ||
	    store_search_bind(st, 2, &s) == -1) {
		sqlite3_finalize(st);
		goto end;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW &&
	    nmsgs < THREAD_MESSAGES_MAX) {
		if (nmsgs == cap) {
			cap = cap ? cap * 2 : 256;
			if ((nm = reallocarray(msgs, cap,
			    sizeof(*nm))) == NULL) {
				t.err = 1;
				break;
			}
			msgs = nm;
		}
		nm = &msgs[nmsgs];
		memset(nm, 0, sizeof(*nm));
		nm->uid = sqlite3_column_int64(st, 0);
		nm->date = sqlite3_column_int64(st, 1);
		if ((nm->subject = dup_or_empty(sqlite3_column_text(st,
		    2))) == NULL) {
			t.err = 1;
			break;
		}
		nmsgs++;
		if (!refs)
			continue;
		id = (const char *)sqlite3_column_text(st, 4);
		n = NULL;
		if (id != NULL && *id != '\0') {
			if ((n = node_get(&t, id)) != NULL && n->uid != 0)
				n = NULL;	/* a duplicate id: its own */
		}
		if (n == NULL && (n = node_new(&t, NULL)) == NULL)
			break;
		n->uid = nm->uid;
		n->date = nm->date;
		if ((n->subject = strdup(nm->subject)) == NULL) {
			t.err = 1;
			break;
		}
		n->reply = subject_is_reply((const char *)
		    sqlite3_column_text(st, 3), nm->subject);
		nm->node = n;
		thread_add(&t, (const char *)sqlite3_column_text(st, 5),
		    (const char *)sqlite3_column_text(st, 6), n);
	}
	sqlite3_finalize(st);
	if (t.err)
		goto end;

	if (refs) {
		for (n = t.all; n != NULL; n = n->all)
			if (n->parent == NULL)
				node_append(&t.top, n);
		tree_prune(&t.top, 1);
		tree_group_subjects(&t);
		tree_sort(&t, &t.top);
	} else {
		qsort(msgs, nmsgs, sizeof(*msgs), ordered_cmp);
		for (i = 0; i < nmsgs; i++) {
			if ((n = node_new(&t, NULL)) == NULL)
				goto end;
			n->uid = msgs[i].uid;
			n->date = msgs[i].date;
			if (i > 0 && strcasecmp(msgs[i].subject,
			    msgs[i - 1].subject) == 0 &&
			    (c = t.top.last) != NULL)
				node_append(c, n);
			else
				node_append(&t.top, n);
		}
		tree_sort(&t, &t.top);
	}
	for (n = t.top.child; n != NULL; n = n->next) {
		store_buf_add(&res, "(", 1);
		thread_print(&res, n);
		store_buf_add(&res, ")", 1);
	}
	if (res.err)
		goto end;
	for (off = 0; off < res.len; off += len) {
		len = res.len - off;
		if (len > IMAP_MIME_CHUNK)
			len = IMAP_MIME_CHUNK;
		msg_create(&out, IMSG_STORE_THREAD_DATA, imsg->hdr.peerid, -1);
		msg_add_data(&out, res.p + off, len);
		if (proc_send(PROC_IMAPD, &out) == -1)
			log_warn("%s: thread data to imapd", __func__);
	}
 end:
	for (i = 0; i < nmsgs; i++)
		free(msgs[i].subject);
	free(msgs);
	tree_free(&t);
	store_search_free(&s);
	free(sql.p);
	free(res.p);
	msg_create(&out, IMSG_STORE_THREAD_END, imsg->hdr.peerid, -1);
	if (proc_send(PROC_IMAPD, &out) == -1)
		log_warn("%s: end to imapd", __func__);
}
