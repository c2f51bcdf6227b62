/*
 * Buffered, non-blocking socket I/O on libevent, in clear or over
 * libtls, shared by every protocol role (the shape of OpenSMTPD's io.c).
 *
 * An io owns one socket, an input buffer bounded by the longest line
 * (or chunk) its owner accepts, and an output buffer bounded by
 * IO_OUTBUF_MAX.  Its owner learns what happens through one callback.
 * The owner may call io_free() from inside that callback.
 */
#ifndef IO_H
#define IO_H

#include <sys/types.h>
#include <sys/socket.h>

#include <stdarg.h>
#include <stddef.h>

struct io;
struct tls;

/* Events given to the callback. */
enum io_event {
	IO_CONNECTED,		/* io_connect() succeeded */
	IO_TLSREADY,		/* the TLS handshake is done */
	IO_DATAIN,		/* new input is buffered */
	IO_LOWAT,		/* output drained to the low water mark */
	IO_TIMEOUT,		/* idle for the timeout */
	IO_DISCONNECTED,	/* the peer closed (or reset) */
	IO_ERROR		/* see io_error() */
};

/* Directions for io_pause() and io_resume(). */
#define IO_IN			0x01
#define IO_OUT			0x02

#define IO_READ_SIZE		16384	/* one TLS record's plaintext */
#define IO_LINE_MIN		64
#define IO_LINE_MAX		(1024 * 1024)	/* hard cap on io_set_maxline */
#define IO_LINE_DEFAULT		1024	/* LF included */
#define IO_OUTBUF_MAX		(16 * 1024 * 1024)
#define IO_HIWAT_DEFAULT	(256 * 1024)
#define IO_ERROR_MAX		256

/* io_getline() sets *len to this when it skipped an over-long line. */
#define IO_LINE_TOOLONG		((size_t)-1)

typedef void (*io_callback)(struct io *, int, void *);

struct io	*io_new(void);
void		 io_free(struct io *);
int		 io_set_fd(struct io *, int);
int		 io_fileno(struct io *);
void		 io_set_callback(struct io *, io_callback, void *);
void		 io_set_timeout(struct io *, int);	/* ms, 0: none */
int		 io_set_maxline(struct io *, size_t);
void		 io_set_lowat(struct io *, size_t);
void		 io_set_hiwat(struct io *, size_t);
void		 io_set_read(struct io *);
void		 io_set_write(struct io *);
void		 io_pause(struct io *, int);
void		 io_resume(struct io *, int);
const char	*io_error(struct io *);

int		 io_write(struct io *, const void *, size_t);
int		 io_printf(struct io *, const char *, ...)
		    __attribute__((__format__ (printf, 2, 3)));
int		 io_vprintf(struct io *, const char *, va_list)
		    __attribute__((__format__ (printf, 2, 0)));
size_t		 io_queued(struct io *);

char		*io_getline(struct io *, size_t *);
void		*io_data(struct io *);
size_t		 io_datalen(struct io *);
void		 io_drop(struct io *, size_t);

int		 io_connect(struct io *, const struct sockaddr *,
		    const struct sockaddr *);
int		 io_set_servername(struct io *, const char *);
int		 io_start_tls(struct io *, struct tls *);
struct tls	*io_tls(struct io *);

#endif /* IO_H */
