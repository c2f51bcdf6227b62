/*
 * Password hashing and checking, off the event loop.  argon2id is slow
 * on purpose, so a small pool of threads does it; each finished job
 * comes back to the main thread as a pointer written to a pipe, and
 * only the main thread touches store_db or the peers' channels.  The
 * threads are made before the sandbox; the seccomp filter is installed
 * with TSYNC, so it covers them too.
 */
#include <sys/random.h>

#include <argon2.h>
#include <errno.h>
#include <event.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "storaged.h"

static pthread_mutex_t	 auth_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 auth_wakeup = PTHREAD_COND_INITIALIZER;
static struct auth_job	*auth_head;	/* waiting for a thread */
static struct auth_job	**auth_tail = &auth_head;
static int		 auth_pending;	/* submitted, not yet done */
static int		 auth_started;	/* threads up and waiting */
static int		 auth_done_pipe[2] = { -1, -1 };
static struct event	 auth_done_ev;
static char		 auth_dummy[STORE_HASH_MAX];

static int
auth_hash(const char *password, size_t len, char *out, size_t outlen)
{
	unsigned char	 salt[STORE_ARGON2_SALT];
	int		 rc;

	if (getrandom(salt, sizeof(salt), 0) != sizeof(salt))
		return -1;
	rc = argon2id_hash_encoded(STORE_ARGON2_T, STORE_ARGON2_M,
	    STORE_ARGON2_P, password, len, salt, sizeof(salt),
	    STORE_ARGON2_HASHLEN, out, outlen);
	explicit_bzero(salt, sizeof(salt));
	if (rc != ARGON2_OK) {
		log_warnx("argon2id: %s", argon2_error_message(rc));
		return -1;
	}
	return 0;
}

static void
auth_run(struct auth_job *job)
{
	switch (job->kind) {
	case AUTH_JOB_HASH:
		job->ok = auth_hash(job->password, job->passwordlen,
		    job->hash, sizeof(job->hash)) == 0;
		break;
	case AUTH_JOB_VERIFY:
		job->ok = argon2id_verify(job->hash, job->password,
		    job->passwordlen) == ARGON2_OK;
		break;
	}
	explicit_bzero(job->password, sizeof(job->password));
}

static void *
auth_thread(void *arg)
{
	struct auth_job	*job;
	ssize_t		 n;

	(void)arg;
	pthread_mutex_lock(&auth_lock);
	auth_started++;
	pthread_cond_broadcast(&auth_wakeup);
	pthread_mutex_unlock(&auth_lock);
	for (;;) {
		pthread_mutex_lock(&auth_lock);
		while (auth_head == NULL)
			pthread_cond_wait(&auth_wakeup, &auth_lock);
		job = auth_head;
		if ((auth_head = job->next) == NULL)
			auth_tail = &auth_head;
		pthread_mutex_unlock(&auth_lock);
		job->next = NULL;

		auth_run(job);

		/* A pointer is less than PIPE_BUF: the write is whole. */
		do {
			n = write(auth_done_pipe[1], &job, sizeof(job));
		} while (n == -1 && errno == EINTR);
		if (n != sizeof(job))
			fatal("%s: write", __func__);
	}
	return NULL;
}

/* In the main thread: hands each finished job to its callback. */
static void
auth_done(int fd, short event, void *arg)
{
	struct auth_job	*job;
	ssize_t		 n;

	(void)event;
	(void)arg;
	for (;;) {
		n = read(fd, &job, sizeof(job));
		if (n == -1 && (errno == EINTR))
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n != sizeof(job))
			fatalx("%s: short read from the password threads",
			    __func__);
		auth_pending--;
		job->done(job);
		auth_job_free(job);
	}
}

/* Before the sandbox: the pipe, the threads and the dummy hash. */
void
auth_pool_init(void)
{
	pthread_t	 tid;
	sigset_t	 all, old;
	unsigned char	 junk[32];
	int		 i, rc, flags;

	/* Unknown users are checked against this, to take the same time. */
	if (getrandom(junk, sizeof(junk), 0) != sizeof(junk))
		fatal("getrandom");
	if (auth_hash((const char *)junk, sizeof(junk), auth_dummy,
	    sizeof(auth_dummy)) == -1)
		fatalx("cannot make the dummy password hash");
	explicit_bzero(junk, sizeof(junk));

	if (pipe2(auth_done_pipe, O_CLOEXEC) == -1)
		fatal("pipe2");
	if ((flags = fcntl(auth_done_pipe[0], F_GETFL)) == -1 ||
	    fcntl(auth_done_pipe[0], F_SETFL, flags | O_NONBLOCK) == -1)
		fatal("%s: fcntl", __func__);
	event_set(&auth_done_ev, auth_done_pipe[0], EV_READ | EV_PERSIST,
	    auth_done, NULL);
	event_add(&auth_done_ev, NULL);

	/* Signals are the main thread's (libevent's) business. */
	sigfillset(&all);
	if ((rc = pthread_sigmask(SIG_BLOCK, &all, &old)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));
	for (i = 0; i < STORE_AUTH_THREADS; i++) {
		if ((rc = pthread_create(&tid, NULL, auth_thread, NULL)) != 0)
			fatalx("pthread_create: %s", strerror(rc));
		if ((rc = pthread_detach(tid)) != 0)
			fatalx("pthread_detach: %s", strerror(rc));
	}
	if ((rc = pthread_sigmask(SIG_SETMASK, &old, NULL)) != 0)
		fatalx("pthread_sigmask: %s", strerror(rc));

	/*
	 * A new thread makes system calls of its own as it starts (rseq,
	 * set_robust_list) that the sandbox does not allow: wait for
	 * every one to be up before the sandbox goes on.
	 */
	pthread_mutex_lock(&auth_lock);
	while (auth_started < STORE_AUTH_THREADS)
		pthread_cond_wait(&auth_wakeup, &auth_lock);
	pthread_mutex_unlock(&auth_lock);
}

const char *
auth_dummy_hash(void)
{
	return auth_dummy;
}

/* NULL if the password is longer than STORE_PASSWORD_MAX. */
struct auth_job *
auth_job_new(enum auth_job_kind kind, const char *password,
    void (*done)(struct auth_job *))
{
	struct auth_job	*job;
	size_t		 len;

	if ((len = strlen(password)) > STORE_PASSWORD_MAX)
		return NULL;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		fatal("%s", __func__);
	job->kind = kind;
	memcpy(job->password, password, len);
	job->passwordlen = len;
	job->done = done;
	return job;
}

/* -1 if too many jobs are waiting; the caller answers and frees it. */
int
auth_job_submit(struct auth_job *job)
{
	if (auth_pending >= STORE_AUTH_QUEUE_MAX) {
		log_warnx("password checks: %d waiting, refusing more",
		    auth_pending);
		return -1;
	}
	auth_pending++;
	job->next = NULL;
	pthread_mutex_lock(&auth_lock);
	*auth_tail = job;
	auth_tail = &job->next;
	pthread_cond_signal(&auth_wakeup);
	pthread_mutex_unlock(&auth_lock);
	return 0;
}

void
auth_job_free(struct auth_job *job)
{
	if (job == NULL)
		return;
	explicit_bzero(job, sizeof(*job));
	free(job);
}
