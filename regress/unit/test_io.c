/*
 * lib/io.c and lib/tls_conf.c: both ends of a connection in one event
 * loop.  Line reading, over-long lines, back-pressure (and output
 * held while paused), the idle timeout, STARTTLS and implicit TLS both
 * ways, an old-protocol client refused, bytes pipelined before the
 * handshake dropped, io_free() from a callback, and a server handshake
 * inside the smtpd sandbox.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <tls.h>
#include <unistd.h>

#include "io.h"
#include "log.h"
#include "proc.h"
#include "tls_conf.h"
#include "unit.h"

#define MAXLINES	64
#define LINELEN		256

struct end {
	const char	*name;
	struct io	*io;
	char		 lines[MAXLINES][LINELEN];
	size_t		 linelens[MAXLINES];
	int		 nlines;
	int		 toolong;
	int		 datain;
	int		 connected;
	int		 tlsready;
	int		 lowat;
	int		 timeout;
	int		 disconnected;
	int		 error;
	char		 errstr[IO_ERROR_MAX];
	size_t		 bytes;		/* raw mode: bytes consumed */
	int		 raw;
	int		 free_on_datain;
	int		 free_on_end;
	void		(*on_line)(struct end *, char *, size_t);
	void		(*on_event)(struct end *, int);
};

static uint8_t	*cert, *key;
static size_t	 certlen, keylen;
static char	 tmpdir[] = "/tmp/test_io.XXXXXX";
static int	 loop_expired;

static void
end_cb(struct io *io, int event, void *arg)
{
	struct end	*e = arg;
	char		*line;
	size_t		 len;

	switch (event) {
	case IO_CONNECTED:
		e->connected++;
		break;
	case IO_TLSREADY:
		e->tlsready++;
		break;
	case IO_LOWAT:
		e->lowat++;
		break;
	case IO_TIMEOUT:
		e->timeout++;
		break;
	case IO_DISCONNECTED:
		e->disconnected++;
		break;
	case IO_ERROR:
		e->error++;
		strlcpy(e->errstr, io_error(io), sizeof(e->errstr));
		break;
	case IO_DATAIN:
		e->datain++;
		if (e->raw) {
			e->bytes += io_datalen(io);
			io_drop(io, io_datalen(io));
			break;
		}
		for (;;) {
			line = io_getline(io, &len);
			if (line == NULL) {
				if (len != IO_LINE_TOOLONG)
					break;
				e->toolong++;
				if (e->nlines < MAXLINES)
					strlcpy(e->lines[e->nlines++],
					    "<TOOLONG>", LINELEN);
				continue;
			}
			if (e->nlines < MAXLINES) {
				strlcpy(e->lines[e->nlines], line, LINELEN);
				e->linelens[e->nlines++] = len;
			}
			if (e->free_on_datain) {
				io_free(io);
				e->io = NULL;
				/* Still readable until the callback returns. */
				e->bytes = strlen(line);
				return;
			}
			if (e->on_line) {
				e->on_line(e, line, len);
				if (e->io == NULL)
					return;
				/* After io_start_tls() nothing is left. */
				if (io_datalen(io) == 0)
					break;
			}
		}
		break;
	}
	if (e->on_event)
		e->on_event(e, event);
	if (e->free_on_end && (event == IO_DISCONNECTED ||
	    event == IO_ERROR) && e->io != NULL) {
		io_free(e->io);
		e->io = NULL;
	}
}

static void
end_init(struct end *e, const char *name)
{
	memset(e, 0, sizeof(*e));
	e->name = name;
	if ((e->io = io_new()) == NULL) {
		perror("io_new");
		exit(2);
	}
	io_set_callback(e->io, end_cb, e);
}

static void
end_free(struct end *e)
{
	if (e->io != NULL)
		io_free(e->io);
	e->io = NULL;
}

static void
loop_expire(int fd, short ev, void *arg)
{
	loop_expired = 1;
}

/* Runs the loop until *flag is set or ms pass.  Returns *flag. */
static int
run_until(int *flag, int ms)
{
	struct event	 guard;
	struct timeval	 tv;

	loop_expired = 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_set(&guard, loop_expire, NULL);
	evtimer_add(&guard, &tv);
	while (!*flag && !loop_expired)
		event_loop(EVLOOP_ONCE);
	evtimer_del(&guard);
	return *flag;
}

/* Runs the loop for ms, whatever happens. */
static void
run_for(int ms)
{
	int	 never = 0;

	(void)run_until(&never, ms);
}

static void
socketpair_nb(int sp[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		perror("socketpair");
		exit(2);
	}
}

static void
write_all(int fd, const char *s, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, s, len)) == -1) {
			perror("write");
			exit(2);
		}
		s += n;
		len -= n;
	}
}

static void
write_str(int fd, const char *s)
{
	write_all(fd, s, strlen(s));
}

static int
has_line(struct end *e, const char *s)
{
	int	 i;

	for (i = 0; i < e->nlines; i++)
		if (strcmp(e->lines[i], s) == 0)
			return 1;
	return 0;
}

static void
test_lines(void)
{
	struct end	 s;
	int		 sp[2], want;

	socketpair_nb(sp);
	end_init(&s, "server");
	CHECK(io_set_fd(s.io, sp[0]) == 0);

	/* A line split across two reads, CR kept. */
	write_str(sp[1], "HELO a\r\nMAIL");
	CHECK(run_until(&s.nlines, 1000) == 1);
	CHECK(strcmp(s.lines[0], "HELO a\r") == 0);
	CHECK(s.linelens[0] == 7);
	write_str(sp[1], " FROM:<x>\r\n");
	want = 2;
	run_for(50);
	CHECK(s.nlines == want);
	CHECK(strcmp(s.lines[1], "MAIL FROM:<x>\r") == 0);

	/* Several lines in one read; a bare LF ends a line too. */
	write_str(sp[1], "RCPT TO:<y>\nDATA\r\n\r\nQUIT\r\n");
	run_for(50);
	CHECK(s.nlines == 6);
	CHECK(strcmp(s.lines[2], "RCPT TO:<y>") == 0);
	CHECK(strcmp(s.lines[3], "DATA\r") == 0);
	CHECK(strcmp(s.lines[4], "\r") == 0 && s.linelens[4] == 1);
	CHECK(strcmp(s.lines[5], "QUIT\r") == 0);

	/* A NUL inside a line is the caller's to see: len tells. */
	write_all(sp[1], "A\0B\r\n", 5);
	run_for(50);
	CHECK(s.nlines == 7 && s.linelens[6] == 4);

	/* The peer goes away. */
	close(sp[1]);
	CHECK(run_until(&s.disconnected, 1000) == 1);
	CHECK(s.error == 0);
	end_free(&s);
}

static void
test_toolong(void)
{
	struct end	 s;
	char		 buf[300];
	int		 sp[2];

	socketpair_nb(sp);
	end_init(&s, "server");
	CHECK(io_set_maxline(s.io, 10) == -1);	/* below IO_LINE_MIN */
	CHECK(io_set_maxline(s.io, IO_LINE_MAX + 1) == -1);
	CHECK(io_set_maxline(s.io, 64) == 0);
	CHECK(io_set_fd(s.io, sp[0]) == 0);

	/* 63 bytes and LF: exactly the maximum, accepted. */
	memset(buf, 'a', 63);
	buf[63] = '\n';
	write_all(sp[1], buf, 64);
	run_for(50);
	CHECK(s.nlines == 1 && s.linelens[0] == 63 && s.toolong == 0);

	/* 64 and LF in one read: one too many. */
	memset(buf, 'b', 64);
	buf[64] = '\n';
	write_all(sp[1], buf, 65);
	write_str(sp[1], "NEXT\r\n");
	run_for(50);
	CHECK(s.toolong == 1);
	CHECK(s.nlines == 3 && strcmp(s.lines[2], "NEXT\r") == 0);

	/* Longer than the buffer, LF much later: reported once, skipped. */
	memset(buf, 'c', sizeof(buf));
	write_all(sp[1], buf, sizeof(buf));
	run_for(50);
	CHECK(s.toolong == 2);
	write_all(sp[1], buf, sizeof(buf));
	write_all(sp[1], buf, sizeof(buf));
	run_for(50);
	CHECK(s.toolong == 2);
	write_str(sp[1], "tail of the long one\r\nAFTER\r\n");
	run_for(50);
	CHECK(s.toolong == 2);
	CHECK(s.nlines == 5 && strcmp(s.lines[4], "AFTER\r") == 0);
	CHECK(!has_line(&s, "tail of the long one\r"));
	close(sp[1]);
	end_free(&s);
}

static void
test_backpressure(void)
{
	struct end	 s;
	char		 buf[65536];
	size_t		 total = 0, queued;
	ssize_t		 n;
	int		 sp[2], i, flags;

	socketpair_nb(sp);
	end_init(&s, "server");
	io_set_hiwat(s.io, 64 * 1024);
	io_set_lowat(s.io, 0);
	CHECK(io_set_fd(s.io, sp[0]) == 0);

	/* Explicit pause: input waits, then comes on resume by itself. */
	io_pause(s.io, IO_IN);
	write_str(sp[1], "ONE\r\nTWO\r\n");
	run_for(50);
	CHECK(s.nlines == 0);
	io_resume(s.io, IO_IN);
	run_for(50);
	CHECK(s.nlines == 2);

	/* Output paused: held whole, then out in one write on resume. */
	io_pause(s.io, IO_OUT);
	CHECK(io_write(s.io, "A\r\n", 3) == 0 && io_write(s.io, "B\r\n",
	    3) == 0);
	run_for(50);
	CHECK(io_queued(s.io) == 6 && s.lowat == 0);
	n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(n == -1 && errno == EAGAIN);
	io_resume(s.io, IO_OUT);
	run_for(50);
	CHECK(io_queued(s.io) == 0 && s.lowat == 1);
	n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(n == 6 && memcmp(buf, "A\r\nB\r\n", 6) == 0);
	s.lowat = 0;

	/* A peer that does not read: 1 MB goes out as far as it can. */
	memset(buf, 'x', sizeof(buf));
	for (i = 0; i < 16; i++)
		CHECK(io_write(s.io, buf, sizeof(buf)) == 0);
	run_for(100);
	queued = io_queued(s.io);
	CHECK(queued > 64 * 1024 && queued < 16 * 65536);

	/* Above the high water mark the io stops reading. */
	write_str(sp[1], "PIPELINED\r\n");
	run_for(50);
	CHECK(s.nlines == 2);

	/* The hard cap on output. */
	CHECK(io_write(s.io, buf, IO_OUTBUF_MAX) == -1);
	CHECK(strstr(io_error(s.io), "output buffer full") != NULL);

	/* The peer drains: IO_LOWAT, then the waiting line arrives. */
	flags = fcntl(sp[1], F_GETFL);
	fcntl(sp[1], F_SETFL, flags | O_NONBLOCK);
	while (total < 16 * sizeof(buf)) {
		n = read(sp[1], buf, sizeof(buf));
		if (n > 0)
			total += n;
		else if (n == -1 && errno == EAGAIN)
			event_loop(EVLOOP_ONCE | EVLOOP_NONBLOCK);
		else
			break;
	}
	CHECK(total == 16 * sizeof(buf));
	CHECK(run_until(&s.lowat, 1000) >= 1);
	CHECK(io_queued(s.io) == 0);
	run_for(50);
	CHECK(s.nlines == 3 && strcmp(s.lines[2], "PIPELINED\r") == 0);

	/* Write turn: nothing is read until io_set_read(). */
	io_set_write(s.io);
	write_str(sp[1], "LATER\r\n");
	run_for(50);
	CHECK(s.nlines == 3);
	io_set_read(s.io);
	run_for(50);
	CHECK(s.nlines == 4);
	close(sp[1]);
	end_free(&s);
}

static void
test_timeout(void)
{
	struct end	 s;
	struct timeval	 t0, t1;
	long		 ms;
	int		 sp[2];

	socketpair_nb(sp);
	end_init(&s, "server");
	io_set_timeout(s.io, 200);
	CHECK(io_set_fd(s.io, sp[0]) == 0);

	/* Activity re-arms the timer. */
	gettimeofday(&t0, NULL);
	run_for(120);
	write_str(sp[1], "NOOP\r\n");
	run_for(120);
	CHECK(s.timeout == 0 && s.nlines == 1);

	CHECK(run_until(&s.timeout, 2000) == 1);
	gettimeofday(&t1, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	CHECK(ms >= 300);

	/* A distinct timeout (SMTP DATA), taking effect at once. */
	s.timeout = 0;
	io_set_timeout(s.io, 50);
	gettimeofday(&t0, NULL);
	CHECK(run_until(&s.timeout, 2000) == 1);
	gettimeofday(&t1, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	CHECK(ms >= 40 && ms < 180);
	close(sp[1]);
	end_free(&s);
}

/* A loopback TCP listener, and its accepted end. */
static int
tcp_listen(struct sockaddr_in *sin)
{
	socklen_t	 len = sizeof(*sin);
	int		 fd;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
	    bind(fd, (struct sockaddr *)sin, sizeof(*sin)) == -1 ||
	    listen(fd, 5) == -1 ||
	    getsockname(fd, (struct sockaddr *)sin, &len) == -1) {
		perror("listen");
		exit(2);
	}
	return fd;
}

static struct tls *server_ctx;
static struct tls_config *client_cfg;

/* A client and a server end connected over loopback TCP. */
static void
tcp_pair(struct end *c, struct end *s)
{
	struct sockaddr_in	 sin;
	int			 lfd, fd;

	lfd = tcp_listen(&sin);
	end_init(c, "client");
	end_init(s, "server");
	CHECK(io_connect(c->io, (struct sockaddr *)&sin, NULL) == 0);
	if ((fd = accept(lfd, NULL, NULL)) == -1) {
		perror("accept");
		exit(2);
	}
	close(lfd);
	CHECK(io_set_fd(s->io, fd) == 0);
	CHECK(run_until(&c->connected, 1000) == 1);
}

static struct tls *
client_ctx(void)
{
	char		 err[256];
	struct tls	*ctx;

	if ((ctx = tls_conf_client_ctx(client_cfg, err, sizeof(err))) == NULL)
		printf("client ctx: %s\n", err);
	return ctx;
}

/* STARTTLS dialogue, server side. */
static int	 injected_before_tls;

static void
starttls_server_line(struct end *e, char *line, size_t len)
{
	if (strcmp(line, "STARTTLS\r") == 0) {
		injected_before_tls = io_datalen(e->io);
		io_printf(e->io, "220 go ahead\r\n");
		CHECK(io_start_tls(e->io, server_ctx) == 0);
		CHECK(io_datalen(e->io) == 0);
	} else if (strcmp(line, "PING\r") == 0)
		io_printf(e->io, "PONG %s\r\n", io_tls(e->io) ?
		    tls_conn_version(io_tls(e->io)) : "clear");
}

static void
starttls_client_line(struct end *e, char *line, size_t len)
{
	if (strcmp(line, "220 go ahead\r") == 0) {
		CHECK(io_start_tls(e->io, client_ctx()) == 0);
		CHECK(io_datalen(e->io) == 0);
	}
}

static void
starttls_client_event(struct end *e, int event)
{
	if (event == IO_TLSREADY)
		io_printf(e->io, "PING\r\n");
}

static void
test_starttls(int inject)
{
	struct end	 c, s;
	char		 big[1000];
	int		 i;

	tcp_pair(&c, &s);
	s.on_line = starttls_server_line;
	c.on_line = starttls_client_line;
	c.on_event = starttls_client_event;
	injected_before_tls = 0;
	io_printf(s.io, "220 hello\r\n");
	CHECK(run_until(&c.nlines, 1000) == 1);
	/* An attacker's commands riding in the same segment. */
	if (inject)
		io_printf(c.io, "STARTTLS\r\nMAIL FROM:<evil@x>\r\n");
	else
		io_printf(c.io, "STARTTLS\r\n");
	CHECK(run_until(&s.tlsready, 2000) == 1);
	CHECK(run_until(&c.tlsready, 2000) == 1);
	CHECK(run_until(&s.nlines, 2000) >= 1);
	run_for(50);
	CHECK(!has_line(&s, "MAIL FROM:<evil@x>\r"));
	if (inject)
		CHECK(injected_before_tls > 0);
	CHECK(s.nlines == 2 && strcmp(s.lines[1], "PING\r") == 0);
	CHECK(c.nlines == 3 && strncmp(c.lines[2], "PONG TLSv1.", 11) == 0);
	CHECK(c.error == 0 && s.error == 0);

	/* Bulk both ways: many records, partial writes, full buffers. */
	memset(big, 'z', sizeof(big) - 2);
	big[sizeof(big) - 2] = '\r';
	big[sizeof(big) - 1] = '\n';
	s.raw = c.raw = 1;
	io_set_maxline(s.io, 4096);
	for (i = 0; i < 500; i++) {
		io_write(c.io, big, sizeof(big));
		io_write(s.io, big, sizeof(big));
	}
	for (i = 0; i < 200 && (s.bytes < 500000 || c.bytes < 500000); i++)
		run_for(20);
	CHECK(s.bytes == 500000);
	CHECK(c.bytes == 500000);

	/* The client hangs up: the server learns it. */
	end_free(&c);
	CHECK(run_until(&s.disconnected, 2000) == 1);
	end_free(&s);
}

static void
implicit_client_event(struct end *e, int event)
{
	if (event == IO_CONNECTED)
		CHECK(io_start_tls(e->io, client_ctx()) == 0);
	if (event == IO_TLSREADY)
		io_printf(e->io, "* hello over TLS\r\n");
}

static void
implicit_server_line(struct end *e, char *line, size_t len)
{
	io_printf(e->io, "echo %s\n", line);
}

static void
test_implicit_tls(void)
{
	struct sockaddr_in	 sin;
	struct end		 c, s;
	int			 lfd, fd;

	lfd = tcp_listen(&sin);
	end_init(&c, "client");
	end_init(&s, "server");
	c.on_event = implicit_client_event;
	s.on_line = implicit_server_line;
	io_set_servername(c.io, "localhost");
	CHECK(io_connect(c.io, (struct sockaddr *)&sin, NULL) == 0);
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	CHECK(io_set_fd(s.io, fd) == 0);
	/* Right after accept, before a byte is read. */
	CHECK(io_start_tls(s.io, server_ctx) == 0);
	CHECK(io_start_tls(s.io, server_ctx) == -1);	/* not twice */
	CHECK(run_until(&s.tlsready, 2000) == 1);
	CHECK(run_until(&c.nlines, 2000) == 1);
	CHECK(strcmp(s.lines[0], "* hello over TLS\r") == 0);
	CHECK(strcmp(c.lines[0], "echo * hello over TLS\r") == 0);
	CHECK(io_tls(s.io) != NULL &&
	    strcmp(tls_conn_servername(io_tls(s.io)), "localhost") == 0);
	end_free(&c);
	end_free(&s);
}

static void
old_client_event(struct end *e, int event)
{
	struct tls_config	*cfg;
	struct tls		*ctx;

	if (event != IO_CONNECTED)
		return;
	/* A client that only speaks TLS 1.0 and 1.1 and any cipher. */
	cfg = tls_config_new();
	tls_config_set_protocols(cfg, TLS_PROTOCOL_TLSv1_0 |
	    TLS_PROTOCOL_TLSv1_1);
	tls_config_set_ciphers(cfg, "ALL:@SECLEVEL=0");
	tls_config_insecure_noverifycert(cfg);
	tls_config_insecure_noverifyname(cfg);
	ctx = tls_client();
	CHECK(tls_configure(ctx, cfg) == 0);
	tls_config_free(cfg);
	CHECK(io_start_tls(e->io, ctx) == 0);
}

static void
test_old_tls_refused(void)
{
	struct end	 c, s;
	struct sockaddr_in sin;
	int		 lfd, fd;

	lfd = tcp_listen(&sin);
	end_init(&c, "client");
	end_init(&s, "server");
	c.on_event = old_client_event;
	CHECK(io_connect(c.io, (struct sockaddr *)&sin, NULL) == 0);
	fd = accept(lfd, NULL, NULL);
	close(lfd);
	CHECK(io_set_fd(s.io, fd) == 0);
	CHECK(io_start_tls(s.io, server_ctx) == 0);
	CHECK(run_until(&s.error, 2000) == 1);
	run_for(50);
	CHECK(s.tlsready == 0 && c.tlsready == 0);
	CHECK(strstr(s.errstr, "TLS handshake") != NULL);
	if (!CHECK(strstr(s.errstr, "protocol") != NULL ||
	    strstr(s.errstr, "version") != NULL))
		printf("server refused with: %s\n", s.errstr);
	CHECK(c.error == 1 || c.disconnected == 1);
	end_free(&c);
	end_free(&s);
}

static void
test_free_in_callback(void)
{
	struct end	 s, t;
	char		 buf[16];
	ssize_t		 n;
	int		 sp[2], sp2[2], before;

	before = unit_open_fds();
	socketpair_nb(sp);
	end_init(&s, "server");
	s.free_on_datain = 1;
	CHECK(io_set_fd(s.io, sp[0]) == 0);
	io_printf(s.io, "pending output\r\n");
	write_str(sp[1], "BYE now\r\nMORE\r\n");
	CHECK(run_until(&s.nlines, 1000) == 1);
	CHECK(s.io == NULL && s.bytes == 8);	/* "BYE now\r" read after free */
	run_for(50);
	CHECK(s.nlines == 1);
	/* Closed at once, unsent output dropped: the peer sees the end. */
	while ((n = read(sp[1], buf, sizeof(buf))) > 0)
		;
	CHECK(n == 0);
	close(sp[1]);

	/* Freed from IO_DISCONNECTED. */
	socketpair_nb(sp2);
	end_init(&t, "server");
	t.free_on_end = 1;
	CHECK(io_set_fd(t.io, sp2[0]) == 0);
	close(sp2[1]);
	CHECK(run_until(&t.disconnected, 1000) == 1);
	CHECK(t.io == NULL);
	run_for(20);
	CHECK(unit_open_fds() == before);
}

static void
test_connect_refused(void)
{
	struct sockaddr_in	 sin;
	struct end		 c;
	int			 lfd;

	/* A port that was just free: nobody listens there now. */
	lfd = tcp_listen(&sin);
	close(lfd);
	end_init(&c, "client");
	CHECK(io_connect(c.io, (struct sockaddr *)&sin, NULL) == 0);
	CHECK(run_until(&c.error, 1000) == 1);
	CHECK(c.connected == 0);
	CHECK(strstr(c.errstr, "refused") != NULL);
	end_free(&c);
}

/*
 * The child end of test_sandbox(), run after exec like a real role:
 * chroot into an empty directory, build the TLS context from memory,
 * enter smtpd's seccomp sandbox, then serve one TLS handshake and echo.
 */
static int
sandbox_child(int fd, const char *root)
{
	struct end	 s;
	char		 err[256];
	struct tls	*ctx;
	int		 done = 0;

	log_init(1, LOG_MAIL);
	log_procname("sandbox-child");
	if (geteuid() == 0 && (chroot(root) == -1 || chdir("/") == -1))
		return 3;
	event_init();
	if ((ctx = tls_conf_server(cert, certlen, key, keylen, err,
	    sizeof(err))) == NULL) {
		printf("sandbox child: %s\n", err);
		return 4;
	}
	end_init(&s, "sandboxed");
	s.on_line = implicit_server_line;
	sandbox_enter(PROC_SMTPD);
	io_set_fd(s.io, fd);
	io_start_tls(s.io, ctx);
	(void)run_until(&s.nlines, 5000);
	(void)run_until(&done, 200);	/* let the echo go out */
	/* _exit: LeakSanitizer's exit-time scan is no syscall of smtpd's. */
	_exit(s.nlines == 1 ? 0 : 5);
}

static void
tls_hello_event(struct end *e, int event)
{
	if (event == IO_TLSREADY)
		io_printf(e->io, "* hello over TLS\r\n");
}

static void
test_sandbox(const char *self)
{
	struct end	 c, s;
	char		 fdstr[16];
	int		 fd, status;
	pid_t		 pid;

	/* The server end goes to the child; only its fd is used. */
	tcp_pair(&c, &s);
	fd = dup(io_fileno(s.io));
	end_free(&s);
	switch ((pid = fork())) {
	case -1:
		perror("fork");
		exit(2);
	case 0:
		snprintf(fdstr, sizeof(fdstr), "%d", fd);
		execl(self, self, "sandbox-child", fdstr, tmpdir,
		    (char *)NULL);
		_exit(6);
	}
	close(fd);
	c.on_event = tls_hello_event;
	CHECK(io_start_tls(c.io, client_ctx()) == 0);
	CHECK(run_until(&c.nlines, 5000) == 1);
	CHECK(c.tlsready == 1);
	CHECK(strcmp(c.lines[0], "echo * hello over TLS\r") == 0);
	end_free(&c);
	if (waitpid(pid, &status, 0) == -1)
		status = -1;
	if (!CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		printf("sandboxed child: %s %d\n", WIFSIGNALED(status) ?
		    "killed by signal" : "exit status", WIFSIGNALED(status) ?
		    WTERMSIG(status) : WEXITSTATUS(status));
}

static void
make_cert(void)
{
	char	 cmd[1024], path[PATH_MAX], err[256];

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey ec "
	    "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
	    "-subj /CN=localhost -keyout %s/key.pem -out %s/cert.pem "
	    ">/dev/null 2>&1", tmpdir, tmpdir);
	if (system(cmd) != 0) {
		printf("openssl req failed\n");
		exit(2);
	}
	snprintf(path, sizeof(path), "%s/cert.pem", tmpdir);
	cert = tls_conf_load_file(path, TLS_CERT_FILE_MAX, &certlen, err,
	    sizeof(err));
	snprintf(path, sizeof(path), "%s/key.pem", tmpdir);
	key = tls_conf_load_file(path, TLS_KEY_FILE_MAX, &keylen, err,
	    sizeof(err));
	if (cert == NULL || key == NULL) {
		printf("load: %s\n", err);
		exit(2);
	}
}

static void
cleanup(void)
{
	char	 path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/cert.pem", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/key.pem", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

static void
test_tls_conf(void)
{
	char		 err[256], path[PATH_MAX];
	size_t		 len;
	struct tls	*ctx;

	/* A key that is not the certificate's is refused with a reason. */
	ctx = tls_conf_server(cert, certlen, cert, certlen, err, sizeof(err));
	CHECK(ctx == NULL && strstr(err, "TLS") != NULL);
	CHECK(tls_conf_server(NULL, 0, key, keylen, err, sizeof(err)) ==
	    NULL);
	CHECK(tls_conf_client(1, NULL, 0, err, sizeof(err)) == NULL &&
	    strstr(err, "CA") != NULL);
	/* Size limit and missing file. */
	snprintf(path, sizeof(path), "%s/cert.pem", tmpdir);
	CHECK(tls_conf_load_file(path, 10, &len, err, sizeof(err)) == NULL &&
	    strstr(err, "size") != NULL);
	CHECK(tls_conf_load_file("/nonexistent/x", 10, &len, err,
	    sizeof(err)) == NULL && strstr(err, "No such file") != NULL);
	CHECK(tls_conf_load_file(tmpdir, 10, &len, err, sizeof(err)) ==
	    NULL && strstr(err, "not a regular file") != NULL);
}

int
main(int argc, char *argv[])
{
	char	 err[256];
	char	 self[PATH_MAX];
	ssize_t	 n;

	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "sandbox-child") == 0) {
		strlcpy(tmpdir, argv[3], sizeof(tmpdir));
		snprintf(self, sizeof(self), "%s/cert.pem", tmpdir);
		cert = tls_conf_load_file(self, TLS_CERT_FILE_MAX, &certlen,
		    err, sizeof(err));
		snprintf(self, sizeof(self), "%s/key.pem", tmpdir);
		key = tls_conf_load_file(self, TLS_KEY_FILE_MAX, &keylen, err,
		    sizeof(err));
		if (cert == NULL || key == NULL)
			return 7;
		return sandbox_child(strtonum(argv[2], 0, 1024, NULL),
		    tmpdir);
	}

	log_init(1, LOG_MAIL);
	log_procname("test_io");
	event_init();
	make_cert();
	if ((server_ctx = tls_conf_server(cert, certlen, key, keylen, err,
	    sizeof(err))) == NULL) {
		printf("server ctx: %s\n", err);
		return 2;
	}
	if ((client_cfg = tls_conf_client(0, NULL, 0, err,
	    sizeof(err))) == NULL) {
		printf("client cfg: %s\n", err);
		return 2;
	}

	test_lines();
	test_toolong();
	test_backpressure();
	test_timeout();
	test_free_in_callback();
	test_connect_refused();
	test_tls_conf();
	test_starttls(0);
	test_starttls(1);
	test_implicit_tls();
	test_old_tls_refused();
	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		self[n] = '\0';
		test_sandbox(self);
	}
	cleanup();
	return unit_done();
}
