/*
 * Field-by-field payloads, built and read with symmetric helpers (in
 * the manner of OpenSMTPD's mproc.c).  Every get is length-checked; a
 * reader remembers its first error and msg_end() reports it, as it
 * reports bytes left over.
 */
#ifndef MSG_H
#define MSG_H

#include <stddef.h>
#include <stdint.h>

#include "imsg.h"

struct msg_out {
	uint32_t	 type;
	uint32_t	 peerid;
	int		 fd;
	size_t		 len;
	int		 overflow;
	unsigned char	 buf[IMSG_MAX_PAYLOAD];
};

struct msg_in {
	const unsigned char	*p;
	size_t			 left;
	int			 err;
};

void	msg_create(struct msg_out *, uint32_t, uint32_t, int);
void	msg_add_u8(struct msg_out *, uint8_t);
void	msg_add_u32(struct msg_out *, uint32_t);
void	msg_add_u64(struct msg_out *, uint64_t);
void	msg_add_i64(struct msg_out *, int64_t);
void	msg_add_string(struct msg_out *, const char *);
void	msg_add_data(struct msg_out *, const void *, size_t);
int	msg_close(struct msg_out *, struct imsgbuf *);

void	msg_read(struct msg_in *, const struct imsg *);
void	msg_read_buf(struct msg_in *, const void *, size_t);
int	msg_get_u8(struct msg_in *, uint8_t *);
int	msg_get_u32(struct msg_in *, uint32_t *);
int	msg_get_u64(struct msg_in *, uint64_t *);
int	msg_get_i64(struct msg_in *, int64_t *);
int	msg_get_string(struct msg_in *, const char **);
int	msg_get_data(struct msg_in *, const void **, size_t *);
int	msg_end(struct msg_in *);

#endif /* MSG_H */
