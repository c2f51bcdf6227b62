/*
 * loadlib: what the benchmarks' load generators (imap/imapload.c,
 * smtp/smtpload.c) share.  Built into each by its bench.py.
 */
#ifndef LOADLIB_H
#define LOADLIB_H

#include <sys/types.h>
#include <netinet/in.h>

#include <pthread.h>
#include <stdarg.h>

/* The program's name for its messages: defined by each program. */
extern const char	*load_name;

/* Seconds on the monotonic clock. */
double		 load_now(void);

/*
 * s as a number from min to max, with a k or M suffix (x 1024,
 * x 1024 * 1024) if suffix; else a message and exit 2.
 */
long long	 load_number(const char *s, long long min, long long max,
		    const char *what, int suffix);

/* addr gets host (IPv4 only, else a message and exit 2) and port. */
void		 load_addr(struct sockaddr_in *addr, const char *host,
		    int port);

/*
 * Where load_note keeps the first problem, under lock: defined by each
 * program.  Messages are cut to msgmax - 1 characters (at most 239).
 */
struct load_errors {
	pthread_mutex_t	*lock;
	char		*first;
	size_t		 firstlen;
	size_t		 msgmax;
	int		 verbose;	/* print every problem to stderr */
};
extern struct load_errors	load_errors;

/* A problem of session id: kept as "session ID: ..." if the first. */
void		 load_note(int id, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * A TCP connection to addr with receive and send timeouts of timeout
 * seconds and TCP_NODELAY: the descriptor, or -1 with errno set and
 * *failed the call that failed ("socket" or "connect").
 */
int		 load_connect(const struct sockaddr_in *addr, int timeout,
		    const char **failed);

/*
 * For -P: a connection to addr with a 5 second receive timeout, or -1
 * ("no answer: ..." on stdout if connect fails).
 */
int		 load_probe_connect(const struct sockaddr_in *addr);

/*
 * Runs fn(arg(i)) for i from 0 to n - 1, each in a thread of its own,
 * and waits for all; barrier, unless NULL, is first set up for the n
 * threads.  A message and exit 1 if any of it fails.
 */
void		 load_threads(int n, void *(*fn)(void *), void *(*arg)(int),
		    pthread_barrier_t *barrier);

/* Writes all of p (no SIGPIPE); -1 on error. */
int		 load_write_all(int fd, const char *p, size_t len);

/*
 * The first of n latency slots at which the running count reaches
 * q of total (at least 1), or n if none does.
 */
long		 load_slot(const long long *slots, long n, long long total,
		    double q);

#endif
