/*
 * Buffered socket I/O on libevent, in clear or over libtls.
 *
 * One io is one socket with a bounded input buffer and a bounded output
 * buffer.  The io registers one non-persistent event for what it waits
 * for (reading, writing, or whichever a TLS record wants), re-armed
 * after each dispatch together with the idle timeout.  Its owner's
 * callback runs with the io held, so io_free() from the callback only
 * marks it and the memory goes when the dispatch unwinds.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <netinet/in.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"

enum io_state {
	IO_STATE_NONE,		/* no socket yet */
	IO_STATE_CONNECTING,	/* io_connect(), waiting for writable */
	IO_STATE_TLS_FLUSH,	/* clear output left before the handshake */
	IO_STATE_TLS_HANDSHAKE,
	IO_STATE_UP,
	IO_STATE_CLOSED		/* after IO_DISCONNECTED or IO_ERROR */
};

#define IO_F_READ		0x0001	/* read mode (io_set_read) */
#define IO_F_PAUSE_IN		0x0002
#define IO_F_PAUSE_OUT		0x0004
#define IO_F_CLIENT		0x0008	/* made by io_connect() */
#define IO_F_DISCARD		0x0010	/* skipping an over-long line */
#define IO_F_TLS_PENDING	0x0020	/* libtls may hold unread data */
#define IO_F_HIWAT		0x0040	/* input stopped: output too big */

struct iobuf {
	unsigned char	*buf;
	size_t		 size;
	size_t		 rpos;
	size_t		 wpos;
};

struct io {
	int		 fd;
	enum io_state	 state;
	int		 flags;
	io_callback	 cb;
	void		*arg;
	struct iobuf	 in;
	struct iobuf	 out;
	size_t		 maxline;
	size_t		 lowat;
	size_t		 hiwat;
	int		 timeout;	/* ms, 0 for none */
	struct event	 ev;
	short		 evset;		/* events pending on ev, 0 if none */
	struct event	 ev_defer;
	int		 defer_set;
	struct tls	*tls;		/* this connection's, always ours */
	struct tls	*tls_start;	/* io_start_tls() waiting for flush */
	short		 tls_want;	/* handshake waits for this */
	short		 tls_rwant;	/* last tls_read() wanted this */
	short		 tls_wwant;	/* last tls_write() wanted this */
	char		*servername;
	int		 busy;		/* dispatch depth */
	int		 freed;
	char		 error[IO_ERROR_MAX];
};

static void	io_reload(struct io *);
static void	io_dispatch(int, short, void *);
static void	io_deferred(int, short, void *);

static size_t
iobuf_len(const struct iobuf *b)
{
	return b->wpos - b->rpos;
}

static void
iobuf_drop(struct iobuf *b, size_t n)
{
	if (n > iobuf_len(b))
		n = iobuf_len(b);
	b->rpos += n;
	if (b->rpos == b->wpos)
		b->rpos = b->wpos = 0;
}

/* Makes room for len contiguous bytes at wpos, the whole within max. */
static int
iobuf_reserve(struct iobuf *b, size_t len, size_t max)
{
	unsigned char	*p;
	size_t		 need, size;

	if (len > max || iobuf_len(b) > max - len)
		return -1;
	if (b->size - b->wpos >= len)
		return 0;
	if (b->rpos > 0) {
		memmove(b->buf, b->buf + b->rpos, iobuf_len(b));
		b->wpos -= b->rpos;
		b->rpos = 0;
		if (b->size - b->wpos >= len)
			return 0;
	}
	need = b->wpos + len;
	size = b->size ? b->size : 1024;
	while (size < need)
		size = size > max / 2 ? max : size * 2;
	if (size < need)
		size = need;
	if ((p = realloc(b->buf, size)) == NULL)
		return -1;
	b->buf = p;
	b->size = size;
	return 0;
}

static void
iobuf_free(struct iobuf *b)
{
	freezero(b->buf, b->size);
	memset(b, 0, sizeof(*b));
}

static void
io_seterror(struct io *io, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(io->error, sizeof(io->error), fmt, ap);
	va_end(ap);
}

/* What the input buffer may hold: the longest line and one read. */
static size_t
io_inmax(struct io *io)
{
	return io->maxline + IO_READ_SIZE;
}

/* Whether the owner wants input now. */
static int
io_wants_input(struct io *io)
{
	return io->state == IO_STATE_UP && (io->flags & IO_F_READ) &&
	    !(io->flags & (IO_F_PAUSE_IN | IO_F_HIWAT));
}

static int
io_can_read(struct io *io)
{
	return io_wants_input(io) && iobuf_len(&io->in) < io_inmax(io);
}

static int
io_can_write(struct io *io)
{
	return io->state == IO_STATE_UP && iobuf_len(&io->out) > 0 &&
	    !(io->flags & IO_F_PAUSE_OUT);
}

struct io *
io_new(void)
{
	struct io	*io;

	if ((io = calloc(1, sizeof(*io))) == NULL)
		return NULL;
	io->fd = -1;
	io->flags = IO_F_READ;
	io->maxline = IO_LINE_DEFAULT;
	io->hiwat = IO_HIWAT_DEFAULT;
	return io;
}

static void
io_release_tls(struct io *io)
{
	if (io->tls != NULL) {
		/* Best effort close_notify: the socket does not wait. */
		if (io->state == IO_STATE_UP)
			(void)tls_close(io->tls);
		tls_free(io->tls);
		io->tls = NULL;
	}
	/* A client context handed over but never started is ours too. */
	if (io->tls_start != NULL && (io->flags & IO_F_CLIENT))
		tls_free(io->tls_start);
	io->tls_start = NULL;
}

static void
io_destroy(struct io *io)
{
	iobuf_free(&io->in);
	iobuf_free(&io->out);
	free(io->servername);
	free(io);
}

/*
 * Closes the socket at once.  From inside the io's own callback the
 * memory stays until the dispatch returns, so a line the callback got
 * from io_getline() is still readable there.
 */
void
io_free(struct io *io)
{
	if (io == NULL || io->freed)
		return;
	io->freed = 1;
	if (io->evset) {
		event_del(&io->ev);
		io->evset = 0;
	}
	if (io->defer_set) {
		event_del(&io->ev_defer);
		io->defer_set = 0;
	}
	io_release_tls(io);
	if (io->fd != -1)
		close(io->fd);
	io->fd = -1;
	io->state = IO_STATE_CLOSED;
	if (io->busy == 0)
		io_destroy(io);
}

int
io_set_fd(struct io *io, int fd)
{
	int	 flags;

	if (io->fd != -1 || io->freed) {
		errno = EBUSY;
		return -1;
	}
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		return -1;
	io->fd = fd;
	io->state = IO_STATE_UP;
	io_reload(io);
	return 0;
}

int
io_fileno(struct io *io)
{
	return io->fd;
}

void
io_set_callback(struct io *io, io_callback cb, void *arg)
{
	io->cb = cb;
	io->arg = arg;
}

/* Also re-arms the timer at once, e.g. when a session enters DATA. */
void
io_set_timeout(struct io *io, int ms)
{
	io->timeout = ms > 0 ? ms : 0;
	if (io->evset) {
		event_del(&io->ev);
		io->evset = 0;
	}
	io_reload(io);
}

int
io_set_maxline(struct io *io, size_t max)
{
	if (max < IO_LINE_MIN || max > IO_LINE_MAX)
		return -1;
	io->maxline = max;
	return 0;
}

void
io_set_lowat(struct io *io, size_t lowat)
{
	io->lowat = lowat;
}

/* Input stops while more than hiwat bytes wait to go out; 0: never. */
void
io_set_hiwat(struct io *io, size_t hiwat)
{
	io->hiwat = hiwat;
}

/* Lines may be buffered that no new read will announce. */
static void
io_schedule_datain(struct io *io)
{
	struct timeval	 tv = { 0, 0 };

	if (io->freed || io->defer_set)
		return;
	if (iobuf_len(&io->in) == 0 && !(io->flags & IO_F_TLS_PENDING))
		return;
	evtimer_set(&io->ev_defer, io_deferred, io);
	evtimer_add(&io->ev_defer, &tv);
	io->defer_set = 1;
}

/* Full duplex: read input, flush output.  The default. */
void
io_set_read(struct io *io)
{
	int	 was = io->flags & IO_F_READ;

	io->flags |= IO_F_READ;
	if (!was)
		io_schedule_datain(io);
	io_reload(io);
}

/*
 * Write turn: read nothing more until the owner calls io_set_read(),
 * typically on IO_LOWAT once its reply is out.
 */
void
io_set_write(struct io *io)
{
	io->flags &= ~IO_F_READ;
	io_reload(io);
}

/* Back-pressure: stop input (IO_IN) or output (IO_OUT) for a while. */
void
io_pause(struct io *io, int dir)
{
	if (dir & IO_IN)
		io->flags |= IO_F_PAUSE_IN;
	if (dir & IO_OUT)
		io->flags |= IO_F_PAUSE_OUT;
	io_reload(io);
}

/* Input buffered while paused is announced again with IO_DATAIN. */
void
io_resume(struct io *io, int dir)
{
	if ((dir & IO_IN) && (io->flags & IO_F_PAUSE_IN)) {
		io->flags &= ~IO_F_PAUSE_IN;
		io_schedule_datain(io);
	}
	if (dir & IO_OUT)
		io->flags &= ~IO_F_PAUSE_OUT;
	io_reload(io);
}

const char *
io_error(struct io *io)
{
	return io->error[0] ? io->error : "no error";
}

static int
io_out_check(struct io *io, size_t len)
{
	if (io->freed || io->state == IO_STATE_CLOSED) {
		io_seterror(io, "write on a closed connection");
		return -1;
	}
	if (iobuf_reserve(&io->out, len, IO_OUTBUF_MAX) == -1) {
		io_seterror(io, "output buffer full (%zu bytes queued)",
		    iobuf_len(&io->out));
		return -1;
	}
	return 0;
}

static void
io_out_added(struct io *io)
{
	if (io->hiwat && iobuf_len(&io->out) > io->hiwat)
		io->flags |= IO_F_HIWAT;
	io_reload(io);
}

int
io_write(struct io *io, const void *buf, size_t len)
{
	if (io_out_check(io, len) == -1)
		return -1;
	if (len == 0)
		return 0;
	memcpy(io->out.buf + io->out.wpos, buf, len);
	io->out.wpos += len;
	io_out_added(io);
	return 0;
}

int
io_vprintf(struct io *io, const char *fmt, va_list ap)
{
	va_list	 ap2;
	int	 n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0) {
		io_seterror(io, "io_printf: bad format");
		return -1;
	}
	/* One more for vsnprintf's NUL, which is not queued. */
	if (io_out_check(io, (size_t)n + 1) == -1)
		return -1;
	(void)vsnprintf((char *)io->out.buf + io->out.wpos, (size_t)n + 1,
	    fmt, ap);
	io->out.wpos += n;
	io_out_added(io);
	return 0;
}

int
io_printf(struct io *io, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = io_vprintf(io, fmt, ap);
	va_end(ap);
	return r;
}

size_t
io_queued(struct io *io)
{
	return iobuf_len(&io->out);
}

/*
 * Returns the next line, its LF replaced by a NUL and its CR (if any)
 * kept, with *len its length without the LF; it stays valid until the
 * callback returns.  NULL when no whole line is buffered (*len is 0),
 * or when a line was longer than the maximum (LF included): then *len
 * is IO_LINE_TOOLONG, the line is dropped up to its LF (however late
 * that comes) and the caller answers an error and calls again.
 */
char *
io_getline(struct io *io, size_t *len)
{
	unsigned char	*p, *lf;
	size_t		 avail, n;

	*len = 0;
	for (;;) {
		avail = iobuf_len(&io->in);
		if (avail == 0)
			return NULL;
		p = io->in.buf + io->in.rpos;
		lf = memchr(p, '\n', avail);
		if (io->flags & IO_F_DISCARD) {
			if (lf == NULL) {
				iobuf_drop(&io->in, avail);
				return NULL;
			}
			iobuf_drop(&io->in, lf - p + 1);
			io->flags &= ~IO_F_DISCARD;
			continue;
		}
		if (lf == NULL) {
			if (avail < io->maxline)
				return NULL;
			iobuf_drop(&io->in, avail);
			io->flags |= IO_F_DISCARD;
			*len = IO_LINE_TOOLONG;
			return NULL;
		}
		n = lf - p;
		if (n + 1 > io->maxline) {
			iobuf_drop(&io->in, n + 1);
			*len = IO_LINE_TOOLONG;
			return NULL;
		}
		*lf = '\0';
		io->in.rpos += n + 1;
		*len = n;
		/* Not iobuf_drop(): p must outlive the buffer's reset. */
		return (char *)p;
	}
}

/* Raw input, for literals and BDAT chunks: read, then io_drop(). */
void *
io_data(struct io *io)
{
	return io->in.buf + io->in.rpos;
}

size_t
io_datalen(struct io *io)
{
	return iobuf_len(&io->in);
}

void
io_drop(struct io *io, size_t n)
{
	iobuf_drop(&io->in, n);
	io_reload(io);
}

static socklen_t
io_sa_len(const struct sockaddr *sa)
{
	switch (sa->sa_family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	case AF_UNIX:
		return sizeof(struct sockaddr_un);
	default:
		return 0;
	}
}

/*
 * Starts a non-blocking connect; IO_CONNECTED or IO_ERROR follows, or
 * IO_TIMEOUT after the idle timeout.  bindto may be NULL.
 */
int
io_connect(struct io *io, const struct sockaddr *sa,
    const struct sockaddr *bindto)
{
	socklen_t	 len;
	int		 fd, saved;

	if (io->fd != -1 || io->freed) {
		errno = EBUSY;
		return -1;
	}
	if ((len = io_sa_len(sa)) == 0 ||
	    (bindto != NULL && io_sa_len(bindto) == 0)) {
		errno = EAFNOSUPPORT;
		io_seterror(io, "connect: %s", strerror(errno));
		return -1;
	}
	if ((fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (bindto != NULL && bind(fd, bindto, io_sa_len(bindto)) == -1)
		goto fail;
	if (connect(fd, sa, len) == -1 && errno != EINPROGRESS)
		goto fail;
	io->fd = fd;
	io->flags |= IO_F_CLIENT;
	io->state = IO_STATE_CONNECTING;
	io_reload(io);
	return 0;
 fail:
	saved = errno;
	io_seterror(io, "connect: %s", strerror(errno));
	if (fd != -1)
		close(fd);
	errno = saved;
	return -1;
}

/* The name a client sends (SNI) and verifies the certificate against. */
int
io_set_servername(struct io *io, const char *name)
{
	char	*s = NULL;

	if (name != NULL && (s = strdup(name)) == NULL)
		return -1;
	free(io->servername);
	io->servername = s;
	return 0;
}

static int
io_tls_begin(struct io *io)
{
	struct tls	*ctx = io->tls_start, *cctx = NULL;

	io->tls_start = NULL;
	if (io->flags & IO_F_CLIENT) {
		io->tls = ctx;
		if (tls_connect_socket(ctx, io->fd, io->servername) == -1) {
			io_seterror(io, "TLS connect: %s", tls_error(ctx));
			return -1;
		}
		io->tls_want = EV_WRITE;
	} else {
		if (tls_accept_socket(ctx, &cctx, io->fd) == -1) {
			io_seterror(io, "TLS accept: %s", tls_error(ctx));
			return -1;
		}
		io->tls = cctx;
		io->tls_want = EV_READ;
	}
	io->state = IO_STATE_TLS_HANDSHAKE;
	return 0;
}

/*
 * Upgrades the connection to TLS: a server context (tls_server())
 * accepts, for implicit TLS or STARTTLS; on an io made by io_connect()
 * a configured tls_client() context connects, and the io then owns it.
 * Output queued before (the "220 go ahead") is flushed in clear first.
 *
 * Input buffered now came in clear before the handshake: it is
 * dropped, never read as if it came through TLS.  This closes the
 * STARTTLS command injection hole (CVE-2011-0411 and its kin), where
 * a man in the middle appends commands to the client's STARTTLS.
 * Callers that want to refuse such a client check io_datalen() first.
 * IO_TLSREADY or IO_ERROR follows.
 */
int
io_start_tls(struct io *io, struct tls *ctx)
{
	if (io->freed || io->state != IO_STATE_UP || io->tls != NULL ||
	    ctx == NULL) {
		io_seterror(io, "TLS: connection not in a state to start it");
		return -1;
	}
	if (iobuf_len(&io->in) > 0)
		log_debug("%s: dropping %zu bytes sent before the TLS "
		    "handshake", __func__, iobuf_len(&io->in));
	iobuf_drop(&io->in, iobuf_len(&io->in));
	io->flags &= ~(IO_F_DISCARD | IO_F_TLS_PENDING);
	io->tls_start = ctx;
	if (iobuf_len(&io->out) > 0)
		io->state = IO_STATE_TLS_FLUSH;
	else if (io_tls_begin(io) == -1) {
		io_release_tls(io);
		io->state = IO_STATE_UP;
		return -1;
	}
	io_reload(io);
	return 0;
}

struct tls *
io_tls(struct io *io)
{
	return io->state == IO_STATE_UP ? io->tls : NULL;
}

static void
io_reload(struct io *io)
{
	struct timeval	 tv, *tvp = NULL;
	short		 events = 0;

	if (io->freed || io->fd == -1 || io->busy)
		return;

	switch (io->state) {
	case IO_STATE_CONNECTING:
	case IO_STATE_TLS_FLUSH:
		events = EV_WRITE;
		break;
	case IO_STATE_TLS_HANDSHAKE:
		events = io->tls_want;
		break;
	case IO_STATE_UP:
		if ((io->flags & IO_F_TLS_PENDING) && io_can_read(io))
			io_schedule_datain(io);
		if (io_can_read(io))
			events |= io->tls_rwant ? io->tls_rwant : EV_READ;
		if (io_can_write(io))
			events |= io->tls_wwant ? io->tls_wwant : EV_WRITE;
		break;
	default:
		break;
	}

	if (io->timeout) {
		tv.tv_sec = io->timeout / 1000;
		tv.tv_usec = (io->timeout % 1000) * 1000;
		tvp = &tv;
	}
	if (events == io->evset) {
		/* Same wait: re-adding re-arms the idle timer. */
		if (events && tvp)
			event_add(&io->ev, tvp);
		return;
	}
	if (io->evset)
		event_del(&io->ev);
	io->evset = events;
	if (events == 0)
		return;
	event_set(&io->ev, io->fd, events, io_dispatch, io);
	event_add(&io->ev, tvp);
}

static void
io_hold(struct io *io)
{
	io->busy++;
}

/* Returns -1 if the io is gone. */
static int
io_unhold(struct io *io)
{
	if (--io->busy > 0)
		return io->freed ? -1 : 0;
	if (io->freed) {
		io_destroy(io);
		return -1;
	}
	io_reload(io);
	return 0;
}

/* Returns -1 if the callback freed the io. */
static int
io_callback_run(struct io *io, int event)
{
	if (io->freed)
		return -1;
	if (io->cb != NULL)
		io->cb(io, event, io->arg);
	return io->freed ? -1 : 0;
}

/* The end of the connection: no more events after this one. */
static void
io_closed(struct io *io, int event)
{
	io->state = IO_STATE_CLOSED;
	if (io->evset) {
		event_del(&io->ev);
		io->evset = 0;
	}
	(void)io_callback_run(io, event);
}

static void
io_dispatch_connect(struct io *io)
{
	socklen_t	 len = sizeof(int);
	int		 err = 0;

	if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
		err = errno;
	if (err != 0) {
		io_seterror(io, "connect: %s", strerror(err));
		io_closed(io, IO_ERROR);
		return;
	}
	io->state = IO_STATE_UP;
	(void)io_callback_run(io, IO_CONNECTED);
}

static void
io_dispatch_handshake(struct io *io)
{
	int	 r;

	r = tls_handshake(io->tls);
	if (r == TLS_WANT_POLLIN) {
		io->tls_want = EV_READ;
		return;
	}
	if (r == TLS_WANT_POLLOUT) {
		io->tls_want = EV_WRITE;
		return;
	}
	if (r == -1) {
		io_seterror(io, "TLS handshake: %s", tls_error(io->tls));
		io_closed(io, IO_ERROR);
		return;
	}
	io->state = IO_STATE_UP;
	io->tls_rwant = io->tls_wwant = 0;
	(void)io_callback_run(io, IO_TLSREADY);
}

/* Returns -1 when the io is closed or freed. */
static int
io_dispatch_write(struct io *io)
{
	ssize_t	 n;
	size_t	 len = iobuf_len(&io->out);

	if (io->tls != NULL && io->state == IO_STATE_UP) {
		n = tls_write(io->tls, io->out.buf + io->out.rpos, len);
		if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
			io->tls_wwant = n == TLS_WANT_POLLIN ? EV_READ :
			    EV_WRITE;
			return 0;
		}
		io->tls_wwant = 0;
		if (n == -1) {
			io_seterror(io, "TLS write: %s", tls_error(io->tls));
			io_closed(io, IO_ERROR);
			return -1;
		}
	} else {
		n = write(io->fd, io->out.buf + io->out.rpos, len);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			io_seterror(io, "write: %s", strerror(errno));
			io_closed(io, errno == EPIPE || errno == ECONNRESET ?
			    IO_DISCONNECTED : IO_ERROR);
			return -1;
		}
	}
	iobuf_drop(&io->out, n);
	if (io->state != IO_STATE_UP)
		return 0;
	if (iobuf_len(&io->out) <= io->lowat) {
		if (io->flags & IO_F_HIWAT) {
			io->flags &= ~IO_F_HIWAT;
			io_schedule_datain(io);
		}
		if (io_callback_run(io, IO_LOWAT) == -1)
			return -1;
	}
	return 0;
}

/*
 * Reads what is there.  A TLS record is decrypted whole, so libtls may
 * keep plaintext the socket no longer signals: read until it wants
 * the socket, or note it when the buffer fills first.
 */
static void
io_dispatch_read(struct io *io)
{
	ssize_t		 n;
	size_t		 room;
	int		 got = 0, end = 0;

	for (;;) {
		room = io_inmax(io) - iobuf_len(&io->in);
		if (room > IO_READ_SIZE)
			room = IO_READ_SIZE;
		if (room == 0) {
			if (io->tls != NULL)
				io->flags |= IO_F_TLS_PENDING;
			break;
		}
		if (iobuf_reserve(&io->in, room, io_inmax(io)) == -1) {
			io_seterror(io, "read: out of memory");
			end = IO_ERROR;
			break;
		}
		if (io->tls != NULL) {
			n = tls_read(io->tls, io->in.buf + io->in.wpos, room);
			if (n == TLS_WANT_POLLIN || n == TLS_WANT_POLLOUT) {
				io->tls_rwant = n == TLS_WANT_POLLIN ?
				    EV_READ : EV_WRITE;
				io->flags &= ~IO_F_TLS_PENDING;
				break;
			}
			io->tls_rwant = 0;
			if (n == -1) {
				io_seterror(io, "TLS read: %s",
				    tls_error(io->tls));
				end = IO_ERROR;
				break;
			}
		} else {
			n = read(io->fd, io->in.buf + io->in.wpos, room);
			if (n == -1) {
				if (errno == EAGAIN || errno == EINTR)
					break;
				io_seterror(io, "read: %s", strerror(errno));
				end = errno == ECONNRESET ? IO_DISCONNECTED :
				    IO_ERROR;
				break;
			}
		}
		if (n == 0) {
			io_seterror(io, "connection closed by peer");
			end = IO_DISCONNECTED;
			break;
		}
		io->in.wpos += n;
		got = 1;
		/* A plain socket stays readable: the next turn comes. */
		if (io->tls == NULL)
			break;
	}
	/* Input that came with the end is still the owner's to read. */
	if (got && io_callback_run(io, IO_DATAIN) == -1)
		return;
	if (end)
		io_closed(io, end);
}

static void
io_dispatch(int fd, short event, void *arg)
{
	struct io	*io = arg;
	short		 rwant, wwant;

	(void)fd;
	io->evset = 0;
	io_hold(io);
	if (event & EV_TIMEOUT) {
		(void)io_callback_run(io, IO_TIMEOUT);
		goto done;
	}
	switch (io->state) {
	case IO_STATE_CONNECTING:
		io_dispatch_connect(io);
		break;
	case IO_STATE_TLS_FLUSH:
		if (io_dispatch_write(io) == -1)
			break;
		if (iobuf_len(&io->out) == 0 && io_tls_begin(io) == -1)
			io_closed(io, IO_ERROR);
		break;
	case IO_STATE_TLS_HANDSHAKE:
		io_dispatch_handshake(io);
		break;
	case IO_STATE_UP:
		rwant = io->tls_rwant ? io->tls_rwant : EV_READ;
		wwant = io->tls_wwant ? io->tls_wwant : EV_WRITE;
		if (io_can_write(io) && (event & wwant))
			if (io_dispatch_write(io) == -1)
				break;
		if (!io->freed && io_can_read(io) && (event & rwant))
			io_dispatch_read(io);
		break;
	default:
		break;
	}
 done:
	(void)io_unhold(io);
}

/* Announces input buffered while the owner was not reading. */
static void
io_deferred(int fd, short event, void *arg)
{
	struct io	*io = arg;

	(void)fd;
	(void)event;
	io->defer_set = 0;
	io_hold(io);
	if ((io->flags & IO_F_TLS_PENDING) && io_can_read(io))
		io_dispatch_read(io);
	else if (io_wants_input(io) && iobuf_len(&io->in) > 0)
		(void)io_callback_run(io, IO_DATAIN);
	(void)io_unhold(io);
}
