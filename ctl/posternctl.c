/*
 * posternctl: talks to posternd's control role over the control socket.
 * Arguments are checked before connecting; a password is read from
 * standard input or the terminal, never from the command line.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <readpassphrase.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_valid.h"
#include "imsg.h"
#include "imsg_types.h"
#include "msg.h"
#include "parser.h"
#include "postern.h"

#define CTL_STOP_WAIT_MS	10000	/* for the daemon to hang up */
#define CTL_COPY_BUF		65536	/* message show's read size */
#define CTL_QUEUE_COLUMNS	5	/* id age sender recipient status */

/* glibc permutes argv unless told not to: "domain add -x" is a verb. */
#ifdef __GLIBC__
#define CTL_OPTSTRING	"+s:"
#else
#define CTL_OPTSTRING	"s:"
#endif

static const char	*ctl_socket = POSTERN_SOCKET;

static __attribute__((__noreturn__)) void
usage(void)
{
	fprintf(stderr, "usage: posternctl [-s socket] command [argument ...]"
	    " (posternctl help lists the commands)\n");
	exit(1);
}

static __attribute__((__noreturn__)) void
ctl_fail(const char *text)
{
	fprintf(stderr, "posternctl: %s\n", text);
	exit(1);
}

static void
ctl_help(void)
{
	printf("usage: posternctl [-s socket] command [argument ...]\n"
	    "commands:\n");
	ctl_print_verbs(stdout, "\t");
}

/* Reads the first line of standard input, without its line end. */
static void
ctl_password_stdin(char *buf, size_t len)
{
	size_t	 n = 0;
	ssize_t	 r;
	char	 ch;

	for (;;) {
		if ((r = read(STDIN_FILENO, &ch, 1)) == -1) {
			if (errno == EINTR)
				continue;
			explicit_bzero(buf, len);
			fprintf(stderr, "posternctl: standard input: %s\n",
			    strerror(errno));
			exit(1);
		}
		if (r == 0 || ch == '\n')
			break;
		if (ch == '\0') {
			explicit_bzero(buf, len);
			ctl_fail("invalid password: NUL byte in password");
		}
		if (n + 1 >= len) {
			explicit_bzero(buf, len);
			ch = 0;
			ctl_fail("invalid password: password longer than "
			    "1024 bytes");
		}
		buf[n++] = ch;
	}
	ch = 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
}

static void
ctl_password_tty(char *buf, size_t len)
{
	char	*again;

	if ((again = malloc(len)) == NULL)
		ctl_fail(strerror(errno));
	if (readpassphrase("Password: ", buf, len, RPP_REQUIRE_TTY) == NULL ||
	    readpassphrase("Retype password: ", again, len,
	    RPP_REQUIRE_TTY) == NULL) {
		explicit_bzero(buf, len);
		freezero(again, len);
		ctl_fail("cannot read the password from the terminal");
	}
	if (strcmp(buf, again) != 0) {
		explicit_bzero(buf, len);
		freezero(again, len);
		ctl_fail("passwords do not match");
	}
	freezero(again, len);
	if (strlen(buf) >= len - 1) {
		explicit_bzero(buf, len);
		ctl_fail("invalid password: password longer than 1024 bytes");
	}
}

static void
ctl_read_password(char *buf, size_t len)
{
	char	 why[CTL_ERR_MAX], err[CTL_ERR_MAX + 32];

	if (isatty(STDIN_FILENO))
		ctl_password_tty(buf, len);
	else
		ctl_password_stdin(buf, len);
	if (ctl_valid_password(buf, why, sizeof(why)) == -1) {
		explicit_bzero(buf, len);
		snprintf(err, sizeof(err), "invalid password: %s", why);
		ctl_fail(err);
	}
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	char			 err[PATH_MAX + 64];
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, sizeof(err), "%s: socket path too long", path);
		ctl_fail(err);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		ctl_fail(strerror(errno));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		ctl_fail(err);
	}
	return fd;
}

/*
 * A daemon that refuses us may hang up before it reads what we sent;
 * its answer is still ours to read, so a closed socket is not fatal.
 */
static void
ctl_flush(struct imsgbuf *ib)
{
	if (imsgbuf_flush(ib) == -1 && errno != EPIPE && errno != ECONNRESET)
		ctl_fail(strerror(errno));
}

/*
 * Blocks for the next message from the daemon.  Only message show's OK
 * may bring a descriptor; the caller says when that is allowed.
 */
static void
ctl_next_fd(struct imsgbuf *ib, struct imsg *imsg, int fd_ok)
{
	ssize_t	 n;

	for (;;) {
		if ((n = imsg_get(ib, imsg)) == -1)
			ctl_fail("malformed reply from posternd");
		if (n > 0)
			break;
		if ((n = imsgbuf_read(ib)) == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (errno == ECONNRESET)
				ctl_fail("connection closed by posternd");
			ctl_fail(strerror(errno));
		}
		if (n == 0)
			ctl_fail("connection closed by posternd");
	}
	if (imsg->fd != -1 && (!fd_ok || imsg->hdr.type != IMSG_CTL_OK)) {
		close(imsg->fd);
		ctl_fail("unexpected descriptor from posternd");
	}
}

static void
ctl_next(struct imsgbuf *ib, struct imsg *imsg)
{
	ctl_next_fd(ib, imsg, 0);
}

/* The text of a FAIL or an ITEM; control characters shown as '?'. */
static char *
ctl_reply_text(struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*s;
	char		*p;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &s) == -1 || msg_end(&m) == -1)
		ctl_fail("malformed reply from posternd");
	for (p = (char *)s; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f)
			*p = '?';
	return (char *)s;
}

static void
ctl_hello(struct imsgbuf *ib)
{
	struct msg_out	 m;
	struct imsg	 imsg;

	msg_create(&m, IMSG_CTL_HELLO, 0, -1);
	msg_add_u32(&m, POSTERN_CTL_VERSION);
	if (msg_close(&m, ib) == -1)
		ctl_fail(strerror(errno));
	ctl_flush(ib);
	ctl_next(ib, &imsg);
	switch (imsg.hdr.type) {
	case IMSG_CTL_OK:
		if (imsg.datalen != 0)
			ctl_fail("malformed reply from posternd");
		break;
	case IMSG_CTL_FAIL:
		ctl_fail(ctl_reply_text(&imsg));
	default:
		ctl_fail("unexpected reply from posternd");
	}
	imsg_free(&imsg);
}

static void
ctl_send_request(struct imsgbuf *ib, struct ctl_request *req)
{
	struct msg_out	 m;
	char		 password[CTL_PASSWORD_MAX + 2];
	uint32_t	 uid;
	int		 i;

	msg_create(&m, req->verb->type, 0, -1);
	for (i = 0; i < req->nargs; i++) {
		if (ctl_arg_token(req->verb, i)->type == TOK_UID) {
			if (ctl_valid_uid(req->args[i], &uid, NULL, 0) == -1)
				ctl_fail("invalid uid");
			msg_add_u32(&m, uid);
		} else
			msg_add_string(&m, req->args[i]);
	}
	if (req->verb->type == IMSG_CTL_ALIAS_DEL && req->nargs == 1)
		msg_add_string(&m, "");
	if (req->verb->type == IMSG_CTL_QUEUE_SCHEDULE && req->nargs == 0)
		msg_add_string(&m, "all");
	if (req->verb->action == ACT_PASSWORD) {
		ctl_read_password(password, sizeof(password));
		msg_add_string(&m, password);
		explicit_bzero(password, sizeof(password));
	}
	if (msg_close(&m, ib) == -1) {
		explicit_bzero(m.buf, sizeof(m.buf));
		ctl_fail(strerror(errno));
	}
	explicit_bzero(m.buf, sizeof(m.buf));
	ctl_flush(ib);
}

/* After a stop is accepted, waits for the daemon to hang up. */
static void
ctl_wait_hangup(struct imsgbuf *ib)
{
	struct pollfd	 pfd;
	char		 buf[256];
	ssize_t		 n;

	pfd.fd = ib->fd;
	pfd.events = POLLIN;
	for (;;) {
		if ((n = poll(&pfd, 1, CTL_STOP_WAIT_MS)) == -1) {
			if (errno == EINTR)
				continue;
			return;
		}
		if (n == 0)
			return;
		if ((n = read(ib->fd, buf, sizeof(buf))) <= 0)
			return;
	}
}

static void
ctl_write(const void *p, size_t len)
{
	if (len > 0 && fwrite(p, 1, len, stdout) != len)
		ctl_fail("standard output: write error");
}

/*
 * message show: the header lines added at delivery, then the blob's
 * bytes, exactly as stored, so the output is the message as delivered.
 */
static void
ctl_message_show(struct imsg *imsg)
{
	struct msg_in	 m;
	const char	*added;
	char		*buf;
	ssize_t		 n;

	msg_read(&m, imsg);
	if (msg_get_string(&m, &added) == -1 || msg_end(&m) == -1) {
		if (imsg->fd != -1)
			close(imsg->fd);
		ctl_fail("malformed reply from posternd");
	}
	if (imsg->fd == -1)
		ctl_fail("no message descriptor from posternd");
	if ((buf = malloc(CTL_COPY_BUF)) == NULL)
		ctl_fail(strerror(errno));
	ctl_write(added, strlen(added));
	for (;;) {
		if ((n = read(imsg->fd, buf, CTL_COPY_BUF)) == -1) {
			if (errno == EINTR)
				continue;
			ctl_fail(strerror(errno));
		}
		if (n == 0)
			break;
		ctl_write(buf, n);
	}
	close(imsg->fd);
	imsg->fd = -1;
	free(buf);
}

/* show queue's lines, split into columns; the last is the rest. */
struct ctl_row {
	char	*buf;
	char	*col[CTL_QUEUE_COLUMNS];
};

struct ctl_table {
	struct ctl_row	*rows;
	size_t		 n;
};

static void
ctl_table_add(struct ctl_table *t, const char *line)
{
	struct ctl_row	*rows, *r;
	char		*p;
	int		 i;

	if ((rows = reallocarray(t->rows, t->n + 1, sizeof(*rows))) == NULL)
		ctl_fail(strerror(errno));
	t->rows = rows;
	r = &t->rows[t->n++];
	if ((r->buf = p = strdup(line)) == NULL)
		ctl_fail(strerror(errno));
	for (i = 0; i < CTL_QUEUE_COLUMNS - 1; i++) {
		r->col[i] = p;
		if ((p = strchr(p, ' ')) == NULL)
			ctl_fail("malformed reply from posternd");
		*p++ = '\0';
	}
	r->col[i] = p;
}

/*
 * show queue: the queue's lines in aligned columns under a header, or
 * nothing at all for an empty queue.
 */
static void
ctl_table_print(struct ctl_table *t)
{
	static const char	*head[CTL_QUEUE_COLUMNS] = {
		"ID", "AGE", "SENDER", "RECIPIENT", "STATUS"
	};
	const char		*const *col;
	int			 w[CTL_QUEUE_COLUMNS], i;
	size_t			 j, len;

	if (t->n == 0)
		return;
	for (i = 0; i < CTL_QUEUE_COLUMNS; i++)
		w[i] = strlen(head[i]);
	for (j = 0; j < t->n; j++)
		for (i = 0; i < CTL_QUEUE_COLUMNS - 1; i++)
			if ((len = strlen(t->rows[j].col[i])) > (size_t)w[i])
				w[i] = len;
	for (j = 0; j <= t->n; j++) {
		col = j == 0 ? head : (const char *const *)t->rows[j - 1].col;
		printf("%-*s  %-*s  %-*s  %-*s  %s\n", w[0], col[0], w[1],
		    col[1], w[2], col[2], w[3], col[3], col[4]);
	}
	for (j = 0; j < t->n; j++)
		free(t->rows[j].buf);
	free(t->rows);
	t->rows = NULL;
	t->n = 0;
}

static int
ctl_replies(struct imsgbuf *ib, const struct ctl_request *req)
{
	struct imsg	 imsg;
	struct ctl_table table = { NULL, 0 };
	int		 header = 0;
	int		 show = req->verb->action == ACT_MESSAGE_SHOW;

	for (;;) {
		ctl_next_fd(ib, &imsg, show);
		switch (imsg.hdr.type) {
		case IMSG_CTL_OK:
			if (show) {
				ctl_message_show(&imsg);
				imsg_free(&imsg);
				return 0;
			}
			/* FALLTHROUGH */
		case IMSG_CTL_END:
			if (imsg.datalen != 0)
				ctl_fail("malformed reply from posternd");
			if (req->verb->action == ACT_STOP)
				ctl_wait_hangup(ib);
			if (req->verb->action == ACT_SHOW_QUEUE)
				ctl_table_print(&table);
			imsg_free(&imsg);
			return 0;
		case IMSG_CTL_FAIL:
			ctl_fail(ctl_reply_text(&imsg));
		case IMSG_CTL_ITEM:
			if (req->verb->action == ACT_SHOW_STATUS && !header) {
				printf("%-9s %7s  %-8s %s\n", "PROCESS",
				    "PID", "STATE", "UPTIME");
				header = 1;
			}
			if (req->verb->action == ACT_SHOW_QUEUE)
				ctl_table_add(&table, ctl_reply_text(&imsg));
			else
				printf("%s\n", ctl_reply_text(&imsg));
			break;
		default:
			ctl_fail("unexpected reply from posternd");
		}
		imsg_free(&imsg);
	}
}

int
main(int argc, char *argv[])
{
	struct ctl_request	 req;
	struct imsgbuf		*ib;
	char			 err[256];
	int			 ch, fd;

	while ((ch = getopt(argc, argv, CTL_OPTSTRING)) != -1) {
		switch (ch) {
		case 's':
			ctl_socket = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;

	switch (ctl_parse(argc, argv, &req, err, sizeof(err))) {
	case PARSE_OK:
		break;
	case PARSE_UNKNOWN:
		usage();
	case PARSE_USAGE:
		fprintf(stderr, "usage: posternctl [-s socket] ");
		ctl_print_verb(stderr, req.verb);
		exit(1);
	case PARSE_INVALID:
		ctl_fail(err);
	}
	if (req.verb->action == ACT_HELP) {
		ctl_help();
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	fd = ctl_connect(ctl_socket);
	/* The read buffer is large; keep it off the stack. */
	if ((ib = malloc(sizeof(*ib))) == NULL)
		ctl_fail(strerror(errno));
	imsgbuf_init(ib, fd);
	ctl_hello(ib);
	ctl_send_request(ib, &req);
	ctl_replies(ib, &req);
	if (fflush(stdout) == EOF || ferror(stdout))
		ctl_fail("standard output: write error");
	imsgbuf_clear(ib);
	freezero(ib, sizeof(*ib));
	close(fd);
	return 0;
}
