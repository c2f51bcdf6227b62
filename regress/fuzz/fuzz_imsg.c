/*
 * libFuzzer target for lib/imsg.c and lib/msg.c: the input is a byte
 * stream as a hostile peer would write it to a socketpair.
 *
 * Input: one control byte, then the stream.  The control byte's low
 * 7 bits pick the size of each write (1 to 128 bytes, so messages
 * arrive split), its top bit sends a descriptor with the first write.
 * Each message taken is then read with msg_get_* in an order chosen by
 * its type field, three bits per getter, and ended with msg_end().
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "msg.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_MAX_INPUT	(256 * 1024)	/* under the socket's buffer */

static void
fuzz_send(int sock, const uint8_t *p, size_t len, int withfd)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	struct cmsghdr	*cmsg;
	int		 fd = -1;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)p;
	iov.iov_len = len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (withfd && (fd = open("/dev/null", O_RDONLY)) != -1) {
		memset(&cbuf, 0, sizeof(cbuf));
		msg.msg_control = cbuf.buf;
		msg.msg_controllen = sizeof(cbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	}
	(void)sendmsg(sock, &msg, MSG_DONTWAIT);
	if (fd != -1)
		close(fd);
}

static void
fuzz_payload(struct imsg *imsg)
{
	struct msg_in	 m;
	uint32_t	 prog = imsg->hdr.type, u32;
	uint64_t	 u64;
	int64_t		 i64;
	uint8_t		 u8;
	const char	*s;
	const void	*d;
	size_t		 dlen, i;
	int		 step;

	msg_read(&m, imsg);
	for (step = 0; step < 10; step++, prog >>= 3) {
		switch (prog & 7) {
		case 0:
			(void)msg_get_u8(&m, &u8);
			break;
		case 1:
			(void)msg_get_u32(&m, &u32);
			break;
		case 2:
			(void)msg_get_u64(&m, &u64);
			break;
		case 3:
			(void)msg_get_i64(&m, &i64);
			break;
		case 4:
		case 5:
			if (msg_get_string(&m, &s) == 0) {
				/* Its NUL must be inside the payload. */
				if ((const char *)s < (const char *)imsg->data ||
				    s + strlen(s) >= (const char *)imsg->data +
				    imsg->datalen)
					abort();
			}
			break;
		case 6:
			if (msg_get_data(&m, &d, &dlen) == 0) {
				u8 = 0;
				for (i = 0; i < dlen; i++)
					u8 ^= ((const uint8_t *)d)[i];
				(void)u8;
			}
			break;
		case 7:
			(void)msg_end(&m);
			break;
		}
	}
	(void)msg_end(&m);
}

/* Takes every whole message; 0 when the stream must be dropped. */
static int
fuzz_drain(struct imsgbuf *ib)
{
	struct imsg	 imsg;
	ssize_t		 n;

	for (;;) {
		if ((n = imsg_get(ib, &imsg)) == -1)
			return 0;
		if (n == 0)
			return 1;
		if ((size_t)n != imsg.hdr.len || n < IMSG_HEADER_SIZE ||
		    n > IMSG_MAX_SIZE || imsg.datalen != (size_t)n -
		    IMSG_HEADER_SIZE)
			abort();
		if ((imsg.hdr.flags & IMSGF_HASFD) != (imsg.fd != -1))
			abort();
		fuzz_payload(&imsg);
		if (imsg.fd != -1)
			close(imsg.fd);
		imsg_free(&imsg);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imsgbuf	 ib;
	size_t		 chunk, off;
	ssize_t		 n;
	int		 sp[2], withfd, alive = 1;

	if (size < 1 || size > FUZZ_MAX_INPUT)
		return 0;
	chunk = (data[0] & 0x7f) + 1;
	withfd = (data[0] & 0x80) != 0;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		abort();
	fcntl(sp[1], F_SETFL, O_NONBLOCK);
	imsgbuf_init(&ib, sp[1]);

	for (off = 0; off < size && alive; off += chunk) {
		if (chunk > size - off)
			chunk = size - off;
		fuzz_send(sp[0], data + off, chunk, withfd && off == 0);
		while (alive) {
			n = imsgbuf_read(&ib);
			if (n == -1 && errno == EAGAIN)
				break;
			if (n <= 0 || !fuzz_drain(&ib))
				alive = 0;
		}
	}
	close(sp[0]);
	while (alive) {
		n = imsgbuf_read(&ib);
		if (n == -1 && errno == EAGAIN)
			continue;
		if (n <= 0 || !fuzz_drain(&ib))
			alive = 0;
	}
	imsgbuf_clear(&ib);
	close(sp[1]);
	return 0;
}
