/*
 * lib/imsg.c: framing over a real socketpair.  Split reads, several
 * messages in one read, descriptor passing, and every malformed header
 * the reader must refuse.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "unit.h"

static int	sp[2];
static struct imsgbuf	tx, rx;

static void
pair_open(void)
{
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1) {
		perror("socketpair");
		exit(2);
	}
	imsgbuf_init(&tx, sp[0]);
	imsgbuf_init(&rx, sp[1]);
}

static void
pair_close(void)
{
	imsgbuf_clear(&tx);
	imsgbuf_clear(&rx);
	if (sp[0] != -1)
		close(sp[0]);
	if (sp[1] != -1)
		close(sp[1]);
	sp[0] = sp[1] = -1;
}

static void
set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* A raw header, as a hostile or broken peer would write it. */
static size_t
raw_msg(unsigned char *buf, uint32_t type, uint16_t len, uint16_t flags,
    const void *data, size_t datalen)
{
	struct imsg_hdr	 hdr;

	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = len;
	hdr.flags = flags;
	hdr.peerid = 7;
	hdr.pid = 1;
	memcpy(buf, &hdr, sizeof(hdr));
	if (datalen)
		memcpy(buf + sizeof(hdr), data, datalen);
	return sizeof(hdr) + datalen;
}

static int
send_fds(int sock, const void *data, size_t len, const int *fds, int nfds)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		/* One more than the reader takes, for test_too_many_fds. */
		char		buf[CMSG_SPACE(sizeof(int) * (IMSG_SEND_FDS + 1))];
	} cbuf;
	struct cmsghdr	*cmsg;

	if (nfds < 0 || nfds > IMSG_SEND_FDS + 1)
		return -1;
	memset(&msg, 0, sizeof(msg));
	memset(&cbuf, 0, sizeof(cbuf));
	iov.iov_base = (void *)data;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds > 0) {
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
	}
	return sendmsg(sock, &msg, 0) == (ssize_t)len ? 0 : -1;
}

static void
test_roundtrip(void)
{
	struct imsg	 imsg;
	ssize_t		 n;

	pair_open();
	CHECK(imsg_compose(&tx, 42, 9, -1, "hello", 6) == 0);
	CHECK(imsgbuf_queued(&tx));
	CHECK(imsgbuf_flush(&tx) == 0);
	CHECK(!imsgbuf_queued(&tx));
	CHECK(imsgbuf_read(&rx) == IMSG_HEADER_SIZE + 6);
	n = imsg_get(&rx, &imsg);
	CHECK(n == IMSG_HEADER_SIZE + 6);
	if (n > 0) {
		CHECK(imsg.hdr.type == 42);
		CHECK(imsg.hdr.peerid == 9);
		CHECK(imsg.hdr.pid == (uint32_t)getpid());
		CHECK(imsg.fd == -1);
		CHECK(imsg.datalen == 6);
		CHECK(memcmp(imsg.data, "hello", 6) == 0);
		imsg_free(&imsg);
		CHECK(imsg.data == NULL);
	}
	CHECK(imsg_get(&rx, &imsg) == 0);
	/* An empty payload is a message too. */
	CHECK(imsg_compose(&tx, 43, 0, -1, NULL, 0) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	CHECK(imsgbuf_read(&rx) == IMSG_HEADER_SIZE);
	CHECK(imsg_get(&rx, &imsg) == IMSG_HEADER_SIZE);
	CHECK(imsg.hdr.type == 43 && imsg.datalen == 0);
	CHECK(((char *)imsg.data)[0] == '\0');
	imsg_free(&imsg);
	pair_close();
}

/* A message arriving one byte at a time is returned once, whole. */
static void
test_split_reads(void)
{
	unsigned char	 buf[64];
	struct imsg	 imsg;
	size_t		 len, i;
	int		 early = 0, bad = 0;

	pair_open();
	len = raw_msg(buf, 5, IMSG_HEADER_SIZE + 11, 0, "split reads", 11);
	for (i = 0; i < len; i++) {
		if (write(sp[0], buf + i, 1) != 1)
			bad++;
		if (imsgbuf_read(&rx) != 1)
			bad++;
		if (i + 1 < len && imsg_get(&rx, &imsg) != 0)
			early++;
	}
	CHECK(bad == 0);
	CHECK(early == 0);
	CHECK(imsg_get(&rx, &imsg) == (ssize_t)len);
	CHECK(imsg.hdr.type == 5 && imsg.datalen == 11);
	CHECK(memcmp(imsg.data, "split reads", 11) == 0);
	imsg_free(&imsg);
	CHECK(rx.rlen == 0);
	pair_close();
}

static void
test_several_in_one_read(void)
{
	struct imsg	 imsg;
	char		 big[IMSG_MAX_PAYLOAD];
	uint32_t	 i;
	ssize_t		 n;
	int		 order = 0;

	pair_open();
	memset(big, 'x', sizeof(big));
	for (i = 0; i < 3; i++)
		CHECK(imsg_compose(&tx, 100 + i, i, -1, &i, sizeof(i)) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	CHECK(imsgbuf_read(&rx) == 3 * (IMSG_HEADER_SIZE + 4));
	for (i = 0; i < 3; i++) {
		n = imsg_get(&rx, &imsg);
		if (n <= 0)
			break;
		if (imsg.hdr.type == 100 + i && imsg.hdr.peerid == i &&
		    memcmp(imsg.data, &i, 4) == 0)
			order++;
		imsg_free(&imsg);
	}
	CHECK(order == 3);
	CHECK(imsg_get(&rx, &imsg) == 0);

	/* Largest payloads: four fill the read buffer exactly. */
	for (i = 0; i < 4; i++)
		CHECK(imsg_compose(&tx, 200, i, -1, big, sizeof(big)) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	n = 0;
	while ((size_t)n < 4 * IMSG_MAX_SIZE) {
		ssize_t	r = imsgbuf_read(&rx);

		if (r <= 0)
			break;
		n += r;
	}
	CHECK(n == 4 * IMSG_MAX_SIZE);
	for (i = 0; i < 4; i++) {
		if (imsg_get(&rx, &imsg) != IMSG_MAX_SIZE)
			break;
		if (imsg.datalen != IMSG_MAX_PAYLOAD || imsg.hdr.peerid != i ||
		    memcmp(imsg.data, big, sizeof(big)) != 0)
			break;
		imsg_free(&imsg);
	}
	CHECK(i == 4);
	pair_close();
}

static void
test_oversize(void)
{
	static char	 big[IMSG_MAX_PAYLOAD + 1];
	int		 p[2];

	pair_open();
	if (pipe(p) == -1)
		exit(2);
	errno = 0;
	CHECK(imsg_compose(&tx, 1, 0, p[0], big, sizeof(big)) == -1);
	CHECK(errno == EMSGSIZE);
	CHECK(!imsgbuf_queued(&tx));
	/* Refused: the descriptor is still the caller's. */
	CHECK(fd_is_open(p[0]));
	CHECK(imsg_compose(&tx, 1, 0, -1, big, IMSG_MAX_PAYLOAD) == 0);
	close(p[0]);
	close(p[1]);
	pair_close();
}

static void
test_fd_passing(void)
{
	struct imsg	 imsg;
	int		 p[2], fds_before;
	char		 buf[16];

	fds_before = unit_open_fds();
	pair_open();
	if (pipe(p) == -1)
		exit(2);
	CHECK(imsg_compose(&tx, 10, 1, -1, "nofd", 4) == 0);
	CHECK(imsg_compose(&tx, 11, 2, p[0], "fd", 2) == 0);
	CHECK(imsg_compose(&tx, 12, 3, -1, "after", 5) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	/* Sent: the queue closed our copy. */
	CHECK(!fd_is_open(p[0]));
	while (rx.rlen < 3 * IMSG_HEADER_SIZE + 11)
		if (imsgbuf_read(&rx) <= 0)
			break;

	CHECK(imsg_get(&rx, &imsg) > 0);
	CHECK(imsg.hdr.type == 10 && imsg.fd == -1);
	CHECK(!(imsg.hdr.flags & IMSGF_HASFD));
	imsg_free(&imsg);

	CHECK(imsg_get(&rx, &imsg) > 0);
	CHECK(imsg.hdr.type == 11 && imsg.fd != -1);
	CHECK(imsg.hdr.flags & IMSGF_HASFD);
	if (imsg.fd != -1) {
		CHECK(write(p[1], "through", 7) == 7);
		CHECK(read(imsg.fd, buf, sizeof(buf)) == 7);
		CHECK(memcmp(buf, "through", 7) == 0);
		/* Received descriptors are close-on-exec. */
		CHECK(fcntl(imsg.fd, F_GETFD) & FD_CLOEXEC);
		close(imsg.fd);
	}
	imsg_free(&imsg);

	CHECK(imsg_get(&rx, &imsg) > 0);
	CHECK(imsg.hdr.type == 12 && imsg.fd == -1);
	imsg_free(&imsg);
	CHECK(rx.nrfds == 0);
	close(p[1]);
	pair_close();
	CHECK(unit_open_fds() == fds_before);
}

/* Two descriptors in a row go to their own messages, in order. */
static void
test_fd_order(void)
{
	struct imsg	 imsg;
	int		 a[2], b[2], got[2] = { -1, -1 }, i;
	char		 c;

	pair_open();
	if (pipe(a) == -1 || pipe(b) == -1)
		exit(2);
	CHECK(imsg_compose(&tx, 1, 0, a[0], NULL, 0) == 0);
	CHECK(imsg_compose(&tx, 2, 0, b[0], NULL, 0) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	while (rx.rlen < 2 * IMSG_HEADER_SIZE)
		if (imsgbuf_read(&rx) <= 0)
			break;
	for (i = 0; i < 2; i++) {
		if (imsg_get(&rx, &imsg) <= 0)
			break;
		got[imsg.hdr.type - 1] = imsg.fd;
		imsg_free(&imsg);
	}
	CHECK(got[0] != -1 && got[1] != -1);
	CHECK(write(a[1], "a", 1) == 1 && write(b[1], "b", 1) == 1);
	CHECK(got[0] != -1 && read(got[0], &c, 1) == 1 && c == 'a');
	CHECK(got[1] != -1 && read(got[1], &c, 1) == 1 && c == 'b');
	for (i = 0; i < 2; i++)
		if (got[i] != -1)
			close(got[i]);
	close(a[1]);
	close(b[1]);
	pair_close();
}

/*
 * A run of messages with descriptors, more than one batch, between
 * messages without: each gets its own descriptor, in order, in a read
 * per batch rather than one per message.
 */
static void
test_fd_batches(void)
{
	struct imsg	 imsg;
	int		 p[2], fds_before, i, reads = 0, got = 0, bad = 0;
	char		 c;

	fds_before = unit_open_fds();
	pair_open();
	CHECK(imsg_compose(&tx, 100, 0, -1, "first", 5) == 0);
	for (i = 0; i < 2 * IMSG_SEND_FDS + 3; i++) {
		if (pipe(p) == -1)
			exit(2);
		c = 'a' + i;
		if (write(p[1], &c, 1) != 1)
			exit(2);
		close(p[1]);
		CHECK(imsg_compose(&tx, i, 0, p[0], &c, 1) == 0);
	}
	CHECK(imsg_compose(&tx, 101, 0, -1, "last", 4) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	while (got < 2 * IMSG_SEND_FDS + 5) {
		if (imsgbuf_read(&rx) <= 0)
			break;
		reads++;
		while (imsg_get(&rx, &imsg) > 0) {
			if (imsg.hdr.type == 100 || imsg.hdr.type == 101) {
				bad += imsg.fd != -1 ||
				    (int)imsg.hdr.type != 100 + (got > 0);
			} else {
				bad += (int)imsg.hdr.type != got - 1 ||
				    imsg.fd == -1 || imsg.datalen != 1 ||
				    read(imsg.fd, &c, 1) != 1 ||
				    c != ((char *)imsg.data)[0];
				if (imsg.fd != -1)
					close(imsg.fd);
			}
			got++;
			imsg_free(&imsg);
		}
	}
	CHECK(got == 2 * IMSG_SEND_FDS + 5);
	CHECK(bad == 0);
	CHECK(reads <= 3);
	CHECK(rx.nrfds == 0);
	pair_close();
	CHECK(unit_open_fds() == fds_before);
}

static void
expect_bad_header(uint16_t len, uint16_t flags, const char *what)
{
	unsigned char	 buf[64];
	struct imsg	 imsg;
	size_t		 n;

	pair_open();
	n = raw_msg(buf, 1, len, flags, "0123456789abcdef", 16);
	if (write(sp[0], buf, n) != (ssize_t)n)
		exit(2);
	CHECK(imsgbuf_read(&rx) == (ssize_t)n);
	errno = 0;
	if (!CHECK(imsg_get(&rx, &imsg) == -1 && errno == EBADMSG))
		printf("\tcase: %s\n", what);
	pair_close();
}

static void
test_bad_headers(void)
{
	expect_bad_header(0, 0, "len 0");
	expect_bad_header(IMSG_HEADER_SIZE - 1, 0, "len 15");
	expect_bad_header(IMSG_MAX_SIZE + 1, 0, "len IMSG_MAX_SIZE + 1");
	expect_bad_header(UINT16_MAX, 0, "len 65535");
	expect_bad_header(IMSG_HEADER_SIZE, 0x8000, "unknown flag");
	/* HASFD with no descriptor sent. */
	expect_bad_header(IMSG_HEADER_SIZE + 16, IMSGF_HASFD, "HASFD, no fd");
}

/* A header alone, its payload still to come, is not a message yet. */
static void
test_truncated_at_eof(void)
{
	unsigned char	 buf[128];
	struct imsg	 imsg;
	size_t		 n;

	pair_open();
	n = raw_msg(buf, 1, IMSG_HEADER_SIZE + 100, 0, "only part", 9);
	CHECK(write(sp[0], buf, n) == (ssize_t)n);
	close(sp[0]);
	sp[0] = -1;
	CHECK(imsgbuf_read(&rx) == (ssize_t)n);
	CHECK(imsg_get(&rx, &imsg) == 0);
	CHECK(imsgbuf_read(&rx) == 0);
	CHECK(imsg_get(&rx, &imsg) == 0);

	/* Half a header, then end of file. */
	pair_close();
	pair_open();
	CHECK(write(sp[0], buf, 7) == 7);
	close(sp[0]);
	sp[0] = -1;
	CHECK(imsgbuf_read(&rx) == 7);
	CHECK(imsg_get(&rx, &imsg) == 0);
	CHECK(imsgbuf_read(&rx) == 0);
	pair_close();
}

/* More unclaimed descriptors than IMSG_MAX_FDS is refused, no leak. */
static void
test_too_many_fds(void)
{
	unsigned char	 buf[64];
	int		 fds[IMSG_SEND_FDS + 1], i, fds_before, r = 0;
	size_t		 n;

	fds_before = unit_open_fds();
	pair_open();
	n = raw_msg(buf, 1, IMSG_HEADER_SIZE, IMSGF_HASFD, NULL, 0);
	fds[0] = open("/dev/null", O_RDONLY);
	for (i = 0; i <= IMSG_MAX_FDS; i++)
		if (send_fds(sp[0], buf, n, fds, 1) == -1)
			break;
	CHECK(i == IMSG_MAX_FDS + 1);
	for (i = 0; i <= IMSG_MAX_FDS; i++)
		if ((r = imsgbuf_read(&rx)) <= 0)
			break;
	CHECK(r == -1 && errno == EBADMSG);
	CHECK(i == IMSG_MAX_FDS);
	CHECK(rx.nrfds == IMSG_MAX_FDS);
	pair_close();
	close(fds[0]);
	CHECK(unit_open_fds() == fds_before);

	/* More in one message than the reader's control buffer takes. */
	pair_open();
	for (i = 0; i < IMSG_SEND_FDS + 1; i++)
		fds[i] = open("/dev/null", O_RDONLY);
	CHECK(send_fds(sp[0], buf, n, fds, IMSG_SEND_FDS + 1) == 0);
	for (i = 0; i < IMSG_SEND_FDS + 1; i++)
		close(fds[i]);
	errno = 0;
	CHECK(imsgbuf_read(&rx) == -1 && errno == EBADMSG);
	pair_close();
	CHECK(unit_open_fds() == fds_before);
}

/* A message queued on a full socket goes out once there is room. */
static void
test_nonblocking_write(void)
{
	static char	 big[IMSG_MAX_PAYLOAD];
	struct imsg	 imsg;
	int		 i, queued = 0, got = 0, rounds = 0;

	pair_open();
	set_nonblock(sp[0]);
	set_nonblock(sp[1]);
	for (i = 0; i < 64; i++)
		if (imsg_compose(&tx, 7, i, -1, big, sizeof(big)) == 0)
			queued++;
	CHECK(queued == 64);
	CHECK(imsgbuf_write(&tx) == 0);
	CHECK(imsgbuf_queued(&tx));	/* more than the socket holds */
	while (got < 64 && rounds++ < 10000) {
		if (imsgbuf_write(&tx) == -1)
			break;
		if (imsgbuf_read(&rx) == -1 && errno != EAGAIN)
			break;
		while (imsg_get(&rx, &imsg) > 0) {
			if (imsg.hdr.peerid == (uint32_t)got &&
			    imsg.datalen == sizeof(big))
				got++;
			imsg_free(&imsg);
		}
	}
	CHECK(got == 64);
	CHECK(!imsgbuf_queued(&tx));
	pair_close();
}

int
main(void)
{
	sp[0] = sp[1] = -1;
	test_roundtrip();
	test_split_reads();
	test_several_in_one_read();
	test_oversize();
	test_fd_passing();
	test_fd_order();
	test_fd_batches();
	test_bad_headers();
	test_truncated_at_eof();
	test_too_many_fds();
	test_nonblocking_write();
	return unit_done();
}
