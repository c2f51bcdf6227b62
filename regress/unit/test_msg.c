/*
 * lib/msg.c: payloads built and read field by field.  Every get past
 * the end fails, strings must end in their one NUL, bytes left over
 * make msg_end() fail, and an overflowing message is never queued.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"
#include "msg.h"
#include "unit.h"

static struct msg_out	 out;

static int
fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

/* Build with msg_add_*, send through a socketpair, read it back. */
static void
test_roundtrip(void)
{
	struct imsgbuf	 tx, rx;
	struct imsg	 imsg;
	struct msg_in	 m;
	const char	*s = NULL, *e = NULL;
	const void	*d = NULL;
	size_t		 dlen = 0;
	uint8_t		 u8 = 0;
	uint32_t	 u32 = 0;
	uint64_t	 u64 = 0;
	int64_t		 i64 = 0;
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		exit(2);
	imsgbuf_init(&tx, sp[0]);
	imsgbuf_init(&rx, sp[1]);
	msg_create(&out, 77, 5, -1);
	msg_add_u8(&out, 0xab);
	msg_add_u32(&out, 0xdeadbeef);
	msg_add_u64(&out, UINT64_MAX - 1);
	msg_add_i64(&out, INT64_MIN);
	msg_add_string(&out, "user@example.test");
	msg_add_string(&out, "");
	msg_add_data(&out, "\0bin\0", 5);
	CHECK(msg_close(&out, &tx) == 0);
	CHECK(imsgbuf_flush(&tx) == 0);
	CHECK(imsgbuf_read(&rx) > 0);
	CHECK(imsg_get(&rx, &imsg) > 0);
	CHECK(imsg.hdr.type == 77 && imsg.hdr.peerid == 5);
	msg_read(&m, &imsg);
	CHECK(msg_get_u8(&m, &u8) == 0 && u8 == 0xab);
	CHECK(msg_get_u32(&m, &u32) == 0 && u32 == 0xdeadbeef);
	CHECK(msg_get_u64(&m, &u64) == 0 && u64 == UINT64_MAX - 1);
	CHECK(msg_get_i64(&m, &i64) == 0 && i64 == INT64_MIN);
	CHECK(msg_get_string(&m, &s) == 0 && s != NULL &&
	    strcmp(s, "user@example.test") == 0);
	CHECK(msg_get_string(&m, &e) == 0 && e != NULL && *e == '\0');
	CHECK(msg_get_data(&m, &d, &dlen) == 0 && dlen == 5 &&
	    memcmp(d, "\0bin\0", 5) == 0);
	CHECK(msg_end(&m) == 0);
	/* One more get past the end fails, and sticks. */
	CHECK(msg_get_u8(&m, &u8) == -1);
	CHECK(msg_end(&m) == -1);
	imsg_free(&imsg);
	imsgbuf_clear(&tx);
	imsgbuf_clear(&rx);
	close(sp[0]);
	close(sp[1]);
}

/* Each getter, one byte short of what it needs. */
static void
test_get_past_end(void)
{
	unsigned char	 buf[16];
	struct msg_in	 m;
	uint8_t		 u8;
	uint32_t	 u32;
	uint64_t	 u64;
	int64_t		 i64;
	const char	*s;
	const void	*d;
	size_t		 dlen;

	memset(buf, 0, sizeof(buf));
	msg_read_buf(&m, buf, 0);
	CHECK(msg_get_u8(&m, &u8) == -1);
	msg_read_buf(&m, buf, 3);
	CHECK(msg_get_u32(&m, &u32) == -1);
	msg_read_buf(&m, buf, 7);
	CHECK(msg_get_u64(&m, &u64) == -1);
	msg_read_buf(&m, buf, 7);
	CHECK(msg_get_i64(&m, &i64) == -1);
	msg_read_buf(&m, buf, 3);
	CHECK(msg_get_string(&m, &s) == -1);
	msg_read_buf(&m, buf, 3);
	CHECK(msg_get_data(&m, &d, &dlen) == -1);
	CHECK(msg_end(&m) == -1);

	/* A length that claims more than is there. */
	u32 = 5;
	memcpy(buf, &u32, 4);
	memcpy(buf + 4, "abcd", 4);
	msg_read_buf(&m, buf, 8);
	CHECK(msg_get_data(&m, &d, &dlen) == -1);
	u32 = 4;
	memcpy(buf, &u32, 4);
	msg_read_buf(&m, buf, 8);
	CHECK(msg_get_data(&m, &d, &dlen) == 0 && dlen == 4);
	CHECK(msg_end(&m) == 0);
	u32 = UINT32_MAX;
	memcpy(buf, &u32, 4);
	msg_read_buf(&m, buf, 8);
	CHECK(msg_get_data(&m, &d, &dlen) == -1);
	msg_read_buf(&m, buf, 8);
	CHECK(msg_get_string(&m, &s) == -1);

	/* After a failure, even a get that would fit fails. */
	msg_read_buf(&m, buf, 4);
	CHECK(msg_get_u64(&m, &u64) == -1);
	CHECK(msg_get_u32(&m, &u32) == -1);
	CHECK(msg_end(&m) == -1);
}

static void
load_string(struct msg_in *m, unsigned char *buf, uint32_t len,
    const void *bytes, size_t n)
{
	memcpy(buf, &len, 4);
	memcpy(buf + 4, bytes, n);
	msg_read_buf(m, buf, 4 + n);
}

static void
test_strings(void)
{
	unsigned char	 buf[32];
	struct msg_in	 m;
	const char	*s;

	/* Well formed: "abc" and its NUL. */
	load_string(&m, buf, 3, "abc", 4);
	CHECK(msg_get_string(&m, &s) == 0 && strcmp(s, "abc") == 0);
	CHECK(msg_end(&m) == 0);
	/* No NUL where the length says. */
	load_string(&m, buf, 3, "abcd", 4);
	CHECK(msg_get_string(&m, &s) == -1);
	/* No room for the NUL at all. */
	load_string(&m, buf, 3, "abc", 3);
	CHECK(msg_get_string(&m, &s) == -1);
	/* A NUL inside. */
	load_string(&m, buf, 3, "a\0c", 4);
	CHECK(msg_get_string(&m, &s) == -1);
	load_string(&m, buf, 3, "\0bc", 4);
	CHECK(msg_get_string(&m, &s) == -1);
	/* Empty is fine, but needs its NUL. */
	load_string(&m, buf, 0, "", 1);
	CHECK(msg_get_string(&m, &s) == 0 && *s == '\0');
	CHECK(msg_end(&m) == 0);
	load_string(&m, buf, 0, "", 0);
	CHECK(msg_get_string(&m, &s) == -1);
	/* A shorter length than the string: its NUL is not where claimed. */
	load_string(&m, buf, 2, "abc", 4);
	CHECK(msg_get_string(&m, &s) == -1);
}

static void
test_leftover(void)
{
	unsigned char	 buf[16];
	struct msg_in	 m;
	uint32_t	 u32;
	uint8_t		 u8;

	memset(buf, 0, sizeof(buf));
	msg_read_buf(&m, buf, 5);
	CHECK(msg_get_u32(&m, &u32) == 0);
	CHECK(msg_end(&m) == -1);
	msg_read_buf(&m, buf, 5);
	CHECK(msg_get_u32(&m, &u32) == 0);
	CHECK(msg_get_u8(&m, &u8) == 0);
	CHECK(msg_end(&m) == 0);
	msg_read_buf(&m, buf, 0);
	CHECK(msg_end(&m) == 0);
	msg_read_buf(&m, buf, 1);
	CHECK(msg_end(&m) == -1);
}

static void
test_overflow(void)
{
	static char	 big[IMSG_MAX_PAYLOAD + 1];
	struct imsgbuf	 ib;
	int		 p[2], sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == -1)
		exit(2);
	imsgbuf_init(&ib, sp[0]);

	/* Exactly full is fine. */
	msg_create(&out, 1, 0, -1);
	msg_add_data(&out, big, IMSG_MAX_PAYLOAD - 4);
	CHECK(out.len == IMSG_MAX_PAYLOAD);
	CHECK(msg_close(&out, &ib) == 0);
	CHECK(imsgbuf_queued(&ib));
	imsgbuf_clear(&ib);

	/* One byte more overflows; the message is not queued. */
	if (pipe(p) == -1)
		exit(2);
	msg_create(&out, 1, 0, p[0]);
	msg_add_data(&out, big, IMSG_MAX_PAYLOAD - 4);
	msg_add_u8(&out, 1);
	errno = 0;
	CHECK(msg_close(&out, &ib) == -1 && errno == EMSGSIZE);
	CHECK(!imsgbuf_queued(&ib));
	CHECK(!fd_is_open(p[0]));
	close(p[1]);

	/* A string too long for the payload. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	if (pipe(p) == -1)
		exit(2);
	msg_create(&out, 1, 0, p[0]);
	msg_add_string(&out, big);
	CHECK(msg_close(&out, &ib) == -1 && errno == EMSGSIZE);
	CHECK(!fd_is_open(p[0]));
	close(p[1]);

	/* An overflow early is not undone by small adds after it. */
	msg_create(&out, 1, 0, -1);
	msg_add_data(&out, big, sizeof(big));
	msg_add_u8(&out, 1);
	CHECK(msg_close(&out, &ib) == -1);
	CHECK(!imsgbuf_queued(&ib));

	/* msg_create() starts afresh. */
	msg_create(&out, 1, 0, -1);
	msg_add_u32(&out, 1);
	CHECK(msg_close(&out, &ib) == 0);
	imsgbuf_clear(&ib);
	close(sp[0]);
	close(sp[1]);
}

int
main(void)
{
	test_roundtrip();
	test_get_past_end();
	test_strings();
	test_leftover();
	test_overflow();
	return unit_done();
}
