// Small system-call shims Swift's Glibc module cannot reach (variadic prctl, no glibc
// wrapper, missing constants): descriptors over Unix sockets (fd_passing.c), pidfds and
// the rest (shims.c).
#ifndef CSBX_SYS_H
#define CSBX_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/resource.h>

#ifdef __cplusplus
extern "C" {
#endif

// Process-control helpers over a pidfd.
// A pidfd (CLOEXEC) for any process, child or not; -1 with errno on failure.
int csbx_pidfd_open(pid_t pid);
int csbx_pidfd_signal(int pidfd, int sig);
// Waits up to timeout_ms (-1: forever) for the process to exit and reaps it.
// Returns 1 when reaped (status in *wstatus as from waitpid), 0 on timeout, -1 on error.
int csbx_pidfd_wait(int pidfd, int timeout_ms, int *wstatus);

// SCM_RIGHTS over a connected Unix socket (SOCK_SEQPACKET keeps each message whole).
ssize_t csbx_send_with_fd(int sock, const void *buf, size_t len, int fd);
// Receives one message; *fd_out = received descriptor (CLOEXEC) or -1.
ssize_t csbx_recv_with_fd(int sock, void *buf, size_t cap, int *fd_out);

// signalfd (not exported by Swift's Glibc module): a CLOEXEC, non-blocking fd for mask.
int csbx_signalfd(const sigset_t *mask);
// Reads one queued signal; returns its number, or -1 when none is pending.
int csbx_signalfd_next(int fd);

// A readiness pipe: both ends close-on-exec, the read end (fds[0]) non-blocking.
int csbx_notify_pipe(int fds[2]);

// A memfd holding a copy of the file at source_fd, sealed against every change; CLOEXEC.
// Returns the fd or -errno.
int csbx_sealed_copy(int source_fd, const char *name);

// getrlimit by number (Swift's Glibc types the resource as an enum).
int csbx_getrlimit_max(int resource, struct rlimit *out);

// statfs(path).f_type, or 0 on error (Swift's Glibc module lacks statfs).
unsigned long csbx_fs_magic(const char *path);

// openat2(2) (no glibc wrapper): path resolved below dirfd under `resolve` (RESOLVE_* flags);
// always O_CLOEXEC. Returns the fd or -errno.
#define CSBX_RESOLVE_NO_XDEV 0x01
#define CSBX_RESOLVE_NO_MAGICLINKS 0x02
#define CSBX_RESOLVE_NO_SYMLINKS 0x04
#define CSBX_RESOLVE_BENEATH 0x08
#define CSBX_RESOLVE_IN_ROOT 0x10
int csbx_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve);
// Removes one capability from the bounding, permitted, effective and inheritable sets.
int csbx_drop_capability(int cap);
// prctl wrappers (prctl is variadic, so Swift cannot call it).
int csbx_set_dumpable(int on);
int csbx_set_child_subreaper(void);

// Unmaps (MADV_DONTNEED) this process's resident pages of read-only file segments (text,
// rodata) of every loaded object; what is used again faults back in from the page cache.
// Returns the bytes of address range released. Never touches written or anonymous memory.
size_t csbx_drop_readonly_pages(void);
// malloc_trim(0): the heap's free pages go back to the kernel.
int csbx_malloc_trim(void);

#ifdef __cplusplus
}
#endif
#endif
