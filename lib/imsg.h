/*
 * Framed messages over a socketpair, in the manner of OpenBSD's imsg:
 * a fixed header, a bounded payload, and an optional file descriptor
 * that travels no later than the first byte of its message.
 */
#ifndef IMSG_H
#define IMSG_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stddef.h>
#include <stdint.h>

#define IMSG_HEADER_SIZE	16
#define IMSG_MAX_SIZE		16384	/* header included */
#define IMSG_MAX_PAYLOAD	(IMSG_MAX_SIZE - IMSG_HEADER_SIZE)
#define IMSG_READ_SIZE		(IMSG_MAX_SIZE * 4)
#define IMSG_MAX_FDS		64	/* received and not yet claimed */
#define IMSG_SEND_FDS		16	/* sent (and read) in one batch */

#define IMSGF_HASFD		0x0001

struct imsg_hdr {
	uint32_t	type;
	uint16_t	len;		/* header included */
	uint16_t	flags;
	uint32_t	peerid;
	uint32_t	pid;
};

struct imsg {
	struct imsg_hdr	 hdr;
	int		 fd;		/* -1 unless IMSGF_HASFD */
	void		*data;
	size_t		 datalen;
};

struct imsg_out {
	TAILQ_ENTRY(imsg_out)	 entry;
	size_t			 len;
	size_t			 off;
	int			 fd;
	unsigned char		 buf[];
};

struct imsgbuf {
	int			 fd;
	pid_t			 pid;
	unsigned char		 rbuf[IMSG_READ_SIZE];
	size_t			 rlen;
	int			 rfds[IMSG_MAX_FDS];
	int			 nrfds;
	TAILQ_HEAD(, imsg_out)	 out;
	size_t			 queued;	/* messages waiting */
};

void	imsgbuf_init(struct imsgbuf *, int);
void	imsgbuf_clear(struct imsgbuf *);
ssize_t	imsgbuf_read(struct imsgbuf *);
int	imsgbuf_write(struct imsgbuf *);
int	imsgbuf_flush(struct imsgbuf *);
int	imsgbuf_queued(struct imsgbuf *);
ssize_t	imsg_get(struct imsgbuf *, struct imsg *);
int	imsg_compose(struct imsgbuf *, uint32_t, uint32_t, int,
	    const void *, size_t);
void	imsg_free(struct imsg *);

#endif /* IMSG_H */
