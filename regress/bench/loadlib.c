/*
 * loadlib: what the benchmarks' load generators share.  See loadlib.h.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loadlib.h"

double
load_now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

long long
load_number(const char *s, long long min, long long max, const char *what,
    int suffix)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s)
		goto bad;
	if (suffix && (*end == 'k' || *end == 'K')) {
		v *= 1024;
		end++;
	} else if (suffix && (*end == 'm' || *end == 'M')) {
		v *= 1024 * 1024;
		end++;
	}
	if (*end != '\0' || v < min || v > max)
		goto bad;
	return v;
bad:
	fprintf(stderr, "%s: %s \"%s\": must be a number from %lld "
	    "to %lld\n", load_name, what, s, min, max);
	exit(2);
}

void
load_addr(struct sockaddr_in *addr, const char *host, int port)
{
	addr->sin_family = AF_INET;
	addr->sin_port = htons(port);
	if (inet_pton(AF_INET, host, &addr->sin_addr) != 1) {
		fprintf(stderr, "%s: %s: not an IPv4 address\n", load_name,
		    host);
		exit(2);
	}
}

void
load_note(int id, const char *fmt, ...)
{
	struct load_errors	*e = &load_errors;
	va_list			 ap;
	char			 msg[240];
	size_t			 max = e->msgmax;

	if (max > sizeof(msg))
		max = sizeof(msg);
	va_start(ap, fmt);
	vsnprintf(msg, max, fmt, ap);
	va_end(ap);
	pthread_mutex_lock(e->lock);
	if (e->first[0] == '\0')
		snprintf(e->first, e->firstlen, "session %d: %s", id, msg);
	pthread_mutex_unlock(e->lock);
	if (e->verbose)
		fprintf(stderr, "%s: session %d: %s\n", load_name, id, msg);
}

int
load_connect(const struct sockaddr_in *addr, int timeout,
    const char **failed)
{
	struct timeval	tv = { timeout, 0 };
	int		fd, one = 1, saved;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1) {
		*failed = "socket";
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		*failed = "connect";
		return -1;
	}
	return fd;
}

int
load_probe_connect(const struct sockaddr_in *addr)
{
	struct timeval	tv = { 5, 0 };
	int		fd;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1) {
		printf("no answer: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int
load_write_all(int fd, const char *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= n;
	}
	return 0;
}

long
load_slot(const long long *slots, long n, long long total, double q)
{
	long long	seen = 0, want;
	long		i;

	want = (long long)(total * q + 0.5);
	if (want < 1)
		want = 1;
	for (i = 0; i < n; i++) {
		seen += slots[i];
		if (seen >= want)
			return i;
	}
	return n;
}

void
load_threads(int n, void *(*fn)(void *), void *(*arg)(int),
    pthread_barrier_t *barrier)
{
	pthread_t	*threads;
	int		 i;

	if ((threads = calloc(n, sizeof(*threads))) == NULL) {
		fprintf(stderr, "%s: calloc: %s\n", load_name, strerror(errno));
		exit(1);
	}
	if (barrier != NULL &&
	    (errno = pthread_barrier_init(barrier, NULL, n)) != 0) {
		fprintf(stderr, "%s: pthread_barrier_init: %s\n", load_name,
		    strerror(errno));
		exit(1);
	}
	for (i = 0; i < n; i++) {
		if ((errno = pthread_create(&threads[i], NULL, fn,
		    arg(i))) != 0) {
			fprintf(stderr, "%s: pthread_create: %s\n", load_name,
			    strerror(errno));
			exit(1);
		}
	}
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	free(threads);
}
