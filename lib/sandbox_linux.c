/*
 * Linux: a seccomp-bpf allow-list per role (the shape of OpenSSH's
 * sandbox-seccomp-filter.c).  Anything not listed kills the process,
 * so the parent sees the role die of SIGSYS.
 */
#ifdef __linux__

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"

#ifndef SECCOMP_RET_KILL_PROCESS
#define SECCOMP_RET_KILL_PROCESS	0x80000000U
#endif
#ifndef SECCOMP_FILTER_FLAG_TSYNC
#define SECCOMP_FILTER_FLAG_TSYNC	1
#endif

#if defined(__x86_64__)
#define SECCOMP_AUDIT_ARCH	AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SECCOMP_AUDIT_ARCH	AUDIT_ARCH_AARCH64
#elif defined(__i386__)
#define SECCOMP_AUDIT_ARCH	AUDIT_ARCH_I386
#else
#error "seccomp sandbox: unsupported architecture"
#endif

#define SC_END	(-1)

/* Every role: its event loop, its channels, memory, time, exit. */
static const int sc_base[] = {
	__NR_read, __NR_write, __NR_readv, __NR_writev, __NR_close,
	__NR_recvmsg, __NR_sendmsg, __NR_recvfrom, __NR_sendto,
	__NR_epoll_ctl, __NR_epoll_pwait,
#ifdef __NR_epoll_wait
	__NR_epoll_wait,
#endif
#ifdef __NR_poll
	__NR_poll,
#endif
	__NR_ppoll,
	__NR_clock_gettime, __NR_gettimeofday, __NR_nanosleep,
	__NR_clock_nanosleep,
	/* glibc's qsort() asks how much memory there is for a long array. */
	__NR_sysinfo,
	__NR_getpid, __NR_gettid, __NR_getrandom,
	__NR_brk, __NR_mmap, __NR_munmap, __NR_mremap, __NR_madvise,
	__NR_mprotect, __NR_futex,
	__NR_rt_sigreturn, __NR_rt_sigprocmask, __NR_rt_sigaction,
	__NR_restart_syscall, __NR_sched_yield,
	__NR_exit, __NR_exit_group,
	/* Reading a passed descriptor at an offset: no more than lseek(). */
	__NR_fcntl, __NR_fstat, __NR_lseek, __NR_pread64,
	__NR_getsockopt, __NR_setsockopt, __NR_shutdown,
	__NR_getsockname, __NR_getpeername,
	SC_END
};

/* Roles that accept connections on sockets the parent bound. */
static const int sc_accept[] = {
	__NR_accept4, __NR_accept,
	SC_END
};

/* storaged: SQLite, the blob store and its worker threads. */
static const int sc_storage[] = {
	__NR_openat, __NR_pwrite64, __NR_fsync,
	__NR_fdatasync, __NR_ftruncate, __NR_newfstatat,
	__NR_unlinkat, __NR_renameat, __NR_mkdirat, __NR_getdents64,
	__NR_faccessat, __NR_readlinkat, __NR_getcwd, __NR_fchmod,
	__NR_fchown, __NR_statx, __NR_linkat,
#ifdef __NR_open
	__NR_open, __NR_stat, __NR_lstat, __NR_unlink, __NR_rename,
	__NR_mkdir, __NR_access, __NR_readlink, __NR_link,
#endif
#ifdef __NR_renameat2
	__NR_renameat2,
#endif
#ifdef __NR_faccessat2
	__NR_faccessat2,
#endif
	/* A message put together from its parts, handed out sealed. */
	__NR_memfd_create,
	/*
	 * A worker thread made before the sandbox may run its start-up
	 * (glibc's start_thread) after the filter is synced to it.
	 */
	__NR_set_robust_list,
#ifdef __NR_rseq
	__NR_rseq,
#endif
	/*
	 * glibc's malloc asks for the CPU count (sched_getaffinity) when
	 * a thread would make it open more arenas than its first guess.
	 */
	__NR_sched_getaffinity,
	SC_END
};

/*
 * Sanitizer builds only (tests and CI): what the ASan/UBSan runtime
 * does on its own at thread exit and when it reports an error, so a
 * report is printed instead of the process dying of SIGSYS midway.
 * Nothing that opens a file: the self-test relies on open() failing.
 */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || \
    __has_feature(undefined_behavior_sanitizer)
#define SANDBOX_SANITIZER	1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANDBOX_SANITIZER	1
#endif
#ifdef SANDBOX_SANITIZER
static const int sc_sanitizer[] = {
	__NR_sigaltstack, __NR_prctl, __NR_sched_getaffinity,
	__NR_prlimit64, __NR_getrlimit, __NR_tgkill,
	/* Writing a report: isatty(), readlink("/proc/self/exe"). */
	__NR_ioctl, __NR_readlinkat,
#ifdef __NR_readlink
	__NR_readlink,
#endif
#ifdef __NR_rseq
	__NR_rseq,
#endif
	SC_END
};
#endif

struct sc_prog {
	struct sock_filter	*f;
	size_t			 n;
	size_t			 max;
};

static void
sc_emit(struct sc_prog *p, struct sock_filter ins)
{
	if (p->n == p->max) {
		p->max = p->max ? p->max * 2 : 64;
		p->f = reallocarray(p->f, p->max, sizeof(*p->f));
		if (p->f == NULL)
			fatal("%s", __func__);
	}
	p->f[p->n++] = ins;
}

#ifdef SANDBOX_SANITIZER
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SC_ARG_LOW(n)	offsetof(struct seccomp_data, args[n])
#else
#define SC_ARG_LOW(n)	(offsetof(struct seccomp_data, args[n]) + 4)
#endif

/*
 * openat(2) for reading only, as a sanitizer's report reads
 * /proc/self/maps: anything that could write or create still dies.
 */
static void
sc_allow_openat_rdonly(struct sc_prog *p)
{
	sc_emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    __NR_openat, 0, 4));
	sc_emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    SC_ARG_LOW(2)));
	sc_emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K,
	    O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND, 1, 0));
	sc_emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_ALLOW));
	sc_emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr)));
}
#endif

static void
sc_allow(struct sc_prog *p, const int *list)
{
	for (; *list != SC_END; list++) {
		sc_emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ |
		    BPF_K, *list, 0, 1));
		sc_emit(p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
		    SECCOMP_RET_ALLOW));
	}
}

void
sandbox_enter(enum proc_id id)
{
	struct sc_prog		 p = { NULL, 0, 0 };
	struct sock_fprog	 prog;

	sc_emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, arch)));
	sc_emit(&p, (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
	    SECCOMP_AUDIT_ARCH, 1, 0));
	sc_emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_KILL_PROCESS));
	sc_emit(&p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
	    offsetof(struct seccomp_data, nr)));

	sc_allow(&p, sc_base);
#ifdef SANDBOX_SANITIZER
	sc_allow(&p, sc_sanitizer);
	sc_allow_openat_rdonly(&p);
#endif
	switch (id) {
	case PROC_CONTROL:
	case PROC_SMTPD:
	case PROC_IMAPD:
	case PROC_JMAPD:
	case PROC_DAVD:
		sc_allow(&p, sc_accept);
		break;
	case PROC_STORAGED:
		sc_allow(&p, sc_storage);
		break;
	case PROC_QUEUE:
		break;
	default:
		fatalx("%s: no sandbox for %s", __func__, proc_names[id]);
	}
	sc_emit(&p, (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
	    SECCOMP_RET_KILL_PROCESS));

	prog.len = p.n;
	prog.filter = p.f;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("prctl PR_SET_NO_NEW_PRIVS");
	/* TSYNC: storaged's worker threads get the filter too. */
	if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER,
	    SECCOMP_FILTER_FLAG_TSYNC, &prog) != 0)
		fatal("seccomp");
	free(p.f);
}

/*
 * POSTERN_SANDBOX_SELFTEST=<role> makes that role do, once sandboxed,
 * what its sandbox forbids, so a test can watch it die.
 */
void
sandbox_selftest(enum proc_id id)
{
	const char	*want = getenv("POSTERN_SANDBOX_SELFTEST");
	int		 fd;

	if (want == NULL || strcmp(want, proc_names[id]) != 0)
		return;
	log_warnx("sandbox self-test: making a forbidden system call");
	if (id == PROC_STORAGED)
		fd = socket(AF_INET, SOCK_STREAM, 0);
	else
		fd = open("/postern-selftest", O_WRONLY | O_CREAT, 0600);
	fatalx("sandbox self-test: forbidden call returned %d", fd);
}

#endif /* __linux__ */
