/*
 * Our imsg.  A message is a 16-byte header (type, length, flags, peer
 * id, pid) and at most IMSG_MAX_PAYLOAD bytes.  The descriptors of up
 * to IMSG_SEND_FDS queued messages go together with the first byte of
 * one sendmsg(), so on the receiving side they arrive no later than
 * the messages that carry them, in their order, and are claimed one
 * per IMSGF_HASFD message.  Each recvmsg() stops after one such batch:
 * a run of answers with descriptors costs one system call a batch
 * rather than one a message on either side.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

void
imsgbuf_init(struct imsgbuf *ib, int fd)
{
	memset(ib, 0, sizeof(*ib));
	ib->fd = fd;
	ib->pid = getpid();
	TAILQ_INIT(&ib->out);
}

void
imsgbuf_clear(struct imsgbuf *ib)
{
	struct imsg_out	*o;
	int		 i;

	while ((o = TAILQ_FIRST(&ib->out)) != NULL) {
		TAILQ_REMOVE(&ib->out, o, entry);
		if (o->fd != -1)
			close(o->fd);
		freezero(o, sizeof(*o) + o->len);
	}
	ib->queued = 0;
	for (i = 0; i < ib->nrfds; i++)
		close(ib->rfds[i]);
	ib->nrfds = 0;
	ib->rlen = 0;
}

/*
 * Returns bytes read, 0 on end of file, -1 on error (errno set; EAGAIN
 * means try again later).  Too many unclaimed descriptors is EBADMSG.
 */
ssize_t
imsgbuf_read(struct imsgbuf *ib)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cmsg;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * IMSG_SEND_FDS)];
	} cmsgbuf;
	ssize_t		 n;
	int		 overflow = 0;

	if (ib->rlen >= sizeof(ib->rbuf)) {
		errno = EBADMSG;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ib->rbuf + ib->rlen;
	iov.iov_len = sizeof(ib->rbuf) - ib->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);

	while ((n = recvmsg(ib->fd, &msg, MSG_CMSG_CLOEXEC)) == -1) {
		if (errno != EINTR)
			return -1;
	}
	for (cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL;
	    cmsg = CMSG_NXTHDR(&msg, cmsg)) {
		int	*fds, nfds, i;

		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		fds = (int *)CMSG_DATA(cmsg);
		for (i = 0; i < nfds; i++) {
			if (ib->nrfds >= IMSG_MAX_FDS) {
				close(fds[i]);
				overflow = 1;
			} else
				ib->rfds[ib->nrfds++] = fds[i];
		}
	}
	if (msg.msg_flags & MSG_CTRUNC)
		overflow = 1;
	if (overflow) {
		errno = EBADMSG;
		return -1;
	}
	ib->rlen += n;
	return n;
}

/*
 * Returns the size of the message taken (header included), 0 when no
 * whole message is buffered, -1 on a malformed one (errno EBADMSG).
 * A malformed stream cannot be resynchronised: close the channel.
 */
ssize_t
imsg_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct imsg_hdr	 hdr;
	size_t		 datalen;

	if (ib->rlen < IMSG_HEADER_SIZE)
		return 0;
	memcpy(&hdr, ib->rbuf, sizeof(hdr));
	if (hdr.len < IMSG_HEADER_SIZE || hdr.len > IMSG_MAX_SIZE ||
	    (hdr.flags & ~IMSGF_HASFD) != 0) {
		errno = EBADMSG;
		return -1;
	}
	if (ib->rlen < hdr.len)
		return 0;
	datalen = hdr.len - IMSG_HEADER_SIZE;

	memset(imsg, 0, sizeof(*imsg));
	imsg->hdr = hdr;
	imsg->fd = -1;
	imsg->datalen = datalen;
	if (hdr.flags & IMSGF_HASFD) {
		if (ib->nrfds == 0) {
			errno = EBADMSG;
			return -1;
		}
		imsg->fd = ib->rfds[0];
		ib->nrfds--;
		memmove(ib->rfds, ib->rfds + 1, ib->nrfds * sizeof(int));
	}
	/* One extra NUL so a payload is never read past its end. */
	if ((imsg->data = malloc(datalen + 1)) == NULL) {
		if (imsg->fd != -1)
			close(imsg->fd);
		return -1;
	}
	memcpy(imsg->data, ib->rbuf + IMSG_HEADER_SIZE, datalen);
	((char *)imsg->data)[datalen] = '\0';
	ib->rlen -= hdr.len;
	memmove(ib->rbuf, ib->rbuf + hdr.len, ib->rlen);
	/* Payloads may be passwords: leave no stale copy behind. */
	explicit_bzero(ib->rbuf + ib->rlen, hdr.len);
	return hdr.len;
}

void
imsg_free(struct imsg *imsg)
{
	if (imsg->data != NULL)
		freezero(imsg->data, imsg->datalen + 1);
	imsg->data = NULL;
}

/*
 * Queues one message.  The descriptor, if any, is owned by the queue
 * from here on and closed once sent.  Returns -1 (EMSGSIZE) if the
 * payload is too large, without taking the descriptor.
 */
int
imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t datalen)
{
	struct imsg_out	*o;
	struct imsg_hdr	 hdr;

	if (datalen > IMSG_MAX_PAYLOAD) {
		errno = EMSGSIZE;
		return -1;
	}
	if ((o = malloc(sizeof(*o) + IMSG_HEADER_SIZE + datalen)) == NULL)
		return -1;
	memset(&hdr, 0, sizeof(hdr));
	hdr.type = type;
	hdr.len = IMSG_HEADER_SIZE + datalen;
	hdr.flags = fd != -1 ? IMSGF_HASFD : 0;
	hdr.peerid = peerid;
	hdr.pid = ib->pid;
	memcpy(o->buf, &hdr, sizeof(hdr));
	if (datalen)
		memcpy(o->buf + IMSG_HEADER_SIZE, data, datalen);
	o->len = IMSG_HEADER_SIZE + datalen;
	o->off = 0;
	o->fd = fd;
	TAILQ_INSERT_TAIL(&ib->out, o, entry);
	ib->queued++;
	return 0;
}

int
imsgbuf_queued(struct imsgbuf *ib)
{
	return ib->queued > 0;
}

/*
 * Writes what the socket takes.  Returns 0 (something may remain
 * queued; EAGAIN is not an error) or -1 on a real error.
 */
int
imsgbuf_write(struct imsgbuf *ib)
{
	struct imsg_out	*o, *p;
	struct imsg_out	*withfd[IMSG_SEND_FDS];
	struct msghdr	 msg;
	struct iovec	 iov[16];
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * IMSG_SEND_FDS)];
	} cmsgbuf;
	struct cmsghdr	*cmsg;
	ssize_t		 n;
	int		 i, j, nfds;

	while ((o = TAILQ_FIRST(&ib->out)) != NULL) {
		memset(&msg, 0, sizeof(msg));
		i = nfds = 0;
		for (p = o; p != NULL && i < 16; p = TAILQ_NEXT(p, entry)) {
			if (p->fd != -1) {
				if (nfds == IMSG_SEND_FDS)
					break;
				withfd[nfds++] = p;
			}
			iov[i].iov_base = p->buf + p->off;
			iov[i].iov_len = p->len - p->off;
			i++;
		}
		if (nfds > 0) {
			memset(&cmsgbuf, 0, sizeof(cmsgbuf));
			msg.msg_control = &cmsgbuf.buf;
			msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
			cmsg = CMSG_FIRSTHDR(&msg);
			cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
			cmsg->cmsg_level = SOL_SOCKET;
			cmsg->cmsg_type = SCM_RIGHTS;
			for (j = 0; j < nfds; j++)
				memcpy(CMSG_DATA(cmsg) + j * sizeof(int),
				    &withfd[j]->fd, sizeof(int));
		}
		msg.msg_iov = iov;
		msg.msg_iovlen = i;
		n = sendmsg(ib->fd, &msg, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == ENOBUFS)
				return 0;
			return -1;
		}
		/* All went with the first byte, before their messages. */
		for (j = 0; j < nfds; j++) {
			close(withfd[j]->fd);
			withfd[j]->fd = -1;
		}
		while (n > 0 && (o = TAILQ_FIRST(&ib->out)) != NULL) {
			size_t	left = o->len - o->off;

			if ((size_t)n < left) {
				o->off += n;
				break;
			}
			n -= left;
			TAILQ_REMOVE(&ib->out, o, entry);
			ib->queued--;
			freezero(o, sizeof(*o) + o->len);
		}
	}
	return 0;
}

/* Blocking: writes everything queued, waiting while the socket is full. */
int
imsgbuf_flush(struct imsgbuf *ib)
{
	struct pollfd	 pfd;

	while (imsgbuf_queued(ib)) {
		if (imsgbuf_write(ib) == -1)
			return -1;
		if (!imsgbuf_queued(ib))
			break;
		pfd.fd = ib->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return -1;
	}
	return 0;
}
