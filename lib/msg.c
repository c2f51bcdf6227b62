/*
 * Marshalling.  Integers travel in host order (both ends are the same
 * binary on the same machine).  A string is a u32 length, its bytes and
 * a NUL; a reader rejects one whose NUL is missing or comes early.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "msg.h"

void
msg_create(struct msg_out *m, uint32_t type, uint32_t peerid, int fd)
{
	m->type = type;
	m->peerid = peerid;
	m->fd = fd;
	m->len = 0;
	m->overflow = 0;
}

static void
msg_add(struct msg_out *m, const void *p, size_t len)
{
	if (m->overflow || len > sizeof(m->buf) - m->len) {
		m->overflow = 1;
		return;
	}
	if (len)
		memcpy(m->buf + m->len, p, len);
	m->len += len;
}

void
msg_add_u8(struct msg_out *m, uint8_t v)
{
	msg_add(m, &v, sizeof(v));
}

void
msg_add_u32(struct msg_out *m, uint32_t v)
{
	msg_add(m, &v, sizeof(v));
}

void
msg_add_u64(struct msg_out *m, uint64_t v)
{
	msg_add(m, &v, sizeof(v));
}

void
msg_add_i64(struct msg_out *m, int64_t v)
{
	msg_add(m, &v, sizeof(v));
}

void
msg_add_string(struct msg_out *m, const char *s)
{
	size_t	len = strlen(s);

	if (len > UINT32_MAX - 1) {
		m->overflow = 1;
		return;
	}
	msg_add_u32(m, (uint32_t)len);
	msg_add(m, s, len + 1);
}

void
msg_add_data(struct msg_out *m, const void *p, size_t len)
{
	if (len > UINT32_MAX) {
		m->overflow = 1;
		return;
	}
	msg_add_u32(m, (uint32_t)len);
	msg_add(m, p, len);
}

/*
 * Queues the message.  On overflow nothing is queued, the descriptor
 * is closed and -1 returned with EMSGSIZE.
 */
int
msg_close(struct msg_out *m, struct imsgbuf *ib)
{
	if (m->overflow) {
		if (m->fd != -1)
			close(m->fd);
		errno = EMSGSIZE;
		return -1;
	}
	if (imsg_compose(ib, m->type, m->peerid, m->fd, m->buf, m->len)
	    == -1) {
		if (m->fd != -1)
			close(m->fd);
		return -1;
	}
	return 0;
}

void
msg_read(struct msg_in *r, const struct imsg *imsg)
{
	msg_read_buf(r, imsg->data, imsg->datalen);
}

void
msg_read_buf(struct msg_in *r, const void *p, size_t len)
{
	r->p = p;
	r->left = len;
	r->err = 0;
}

static int
msg_get(struct msg_in *r, void *p, size_t len)
{
	if (r->err || len > r->left) {
		r->err = 1;
		return -1;
	}
	memcpy(p, r->p, len);
	r->p += len;
	r->left -= len;
	return 0;
}

int
msg_get_u8(struct msg_in *r, uint8_t *v)
{
	return msg_get(r, v, sizeof(*v));
}

int
msg_get_u32(struct msg_in *r, uint32_t *v)
{
	return msg_get(r, v, sizeof(*v));
}

int
msg_get_u64(struct msg_in *r, uint64_t *v)
{
	return msg_get(r, v, sizeof(*v));
}

int
msg_get_i64(struct msg_in *r, int64_t *v)
{
	return msg_get(r, v, sizeof(*v));
}

/* The string points into the message: valid until imsg_free(). */
int
msg_get_string(struct msg_in *r, const char **s)
{
	uint32_t	 len;

	if (msg_get_u32(r, &len) == -1)
		return -1;
	if (len >= r->left || r->p[len] != '\0' ||
	    memchr(r->p, '\0', len) != NULL) {
		r->err = 1;
		return -1;
	}
	*s = (const char *)r->p;
	r->p += len + 1;
	r->left -= len + 1;
	return 0;
}

int
msg_get_data(struct msg_in *r, const void **p, size_t *len)
{
	uint32_t	 n;

	if (msg_get_u32(r, &n) == -1)
		return -1;
	if (n > r->left) {
		r->err = 1;
		return -1;
	}
	*p = r->p;
	*len = n;
	r->p += n;
	r->left -= n;
	return 0;
}

/* 0 if every field was read and nothing is left over. */
int
msg_end(struct msg_in *r)
{
	if (r->err || r->left != 0)
		return -1;
	return 0;
}
