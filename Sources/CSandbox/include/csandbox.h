// The syscall layer of Claworc's sandbox: the only code that runs between clone and exec.
//
// Swift prepares every string, path and table in the parent; the child side only walks
// those plain C structures with raw syscalls, because it is a copy of a multi-threaded
// process where malloc, locks and the Swift runtime are off limits.
#ifndef CSANDBOX_H
#define CSANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

// Namespace flags, re-exported because Swift's Glibc module does not see the _GNU_SOURCE
// CLONE_* macros.
extern const uint64_t CSBX_CLONE_NEWNS;
extern const uint64_t CSBX_CLONE_NEWPID;
extern const uint64_t CSBX_CLONE_NEWUTS;
extern const uint64_t CSBX_CLONE_NEWIPC;
extern const uint64_t CSBX_CLONE_NEWNET;
extern const uint64_t CSBX_CLONE_NEWUSER;
extern const uint64_t CSBX_CLONE_NEWCGROUP;

enum csbx_mount_kind {
    CSBX_MKDIR = 1,      // mkdir -p target (mode)
    CSBX_FILE,           // create an empty file at target (a bind target for a device node)
    CSBX_SYMLINK,        // symlink(source, target)
    CSBX_BIND,           // recursive bind of host source onto target, writable
    CSBX_BIND_RO,        // recursive bind, then read-only on the whole subtree
    CSBX_TMPFS,          // tmpfs with data options (size=, mode=)
    CSBX_PROC,           // fresh procfs of the new pid namespace
    CSBX_DEVPTS,         // private devpts instance
    CSBX_MAKE_RO,        // make the mount at target read-only (after everything is mounted in it)
};

struct csbx_mount {
    int kind;
    const char *source;    // host path (bind) or link text (symlink); NULL otherwise
    const char *target;    // absolute path inside the new root, e.g. "/usr"
    const char *data;      // filesystem options for tmpfs/devpts; NULL otherwise
    unsigned long flags;   // extra MS_* flags (MS_NOSUID, MS_NODEV, MS_NOEXEC)
    unsigned int mode;     // for MKDIR and FILE
};

// Stages reported by a child that failed before exec (with errno).
enum csbx_stage {
    CSBX_STAGE_CLONE = 1,
    CSBX_STAGE_SYNC,
    CSBX_STAGE_MOUNT_PRIVATE,
    CSBX_STAGE_ROOT_TMPFS,
    CSBX_STAGE_MOUNTS,          // + index of the failing op in csbx_result.detail
    CSBX_STAGE_PIVOT_ROOT,
    CSBX_STAGE_HOSTNAME,
    CSBX_STAGE_LOOPBACK,
    CSBX_STAGE_FDS,
    CSBX_STAGE_SIGNALS,
    CSBX_STAGE_EXEC,
    CSBX_STAGE_USERNS_MAPS,
};

struct csbx_launch_spec {
    int exec_fd;                     // the init binary, run with execveat(AT_EMPTY_PATH)
    char *const *argv;
    char *const *envp;
    const char *stage_dir;           // empty host directory the new root is assembled on
    const struct csbx_mount *mounts;
    int n_mounts;
    const char *hostname;
    int control_fd;                  // becomes fd 3 of the init
    int stdio_fd;                    // becomes fds 1 and 2 of the init; fd 0 is /dev/null
    uint64_t namespaces;             // CSBX_CLONE_NEW* flags
    // Slots for the next hardening steps; zero/NULL means "not used".
    int cgroup_fd;                   // -1: stay in the caller's cgroup
    const char *uid_map;             // written by the parent before "go" when CLONE_NEWUSER
    const char *gid_map;
};

struct csbx_result {
    pid_t pid;
    int pidfd;
    int stage;      // 0 on success
    int err;        // errno at that stage
    int detail;     // e.g. failing mount op index
};

// Launch: clone3 into new namespaces, assemble the root, exec the init. Returns 0 when the
// init has been exec'd (the child's CLOEXEC sync socket closed), -1 with result->stage/err.
int csbx_launch(const struct csbx_launch_spec *spec, struct csbx_result *result);

// Process-control helpers over a pidfd.
int csbx_pidfd_signal(int pidfd, int sig);
// Waits up to timeout_ms (-1: forever) for the process to exit and reaps it.
// Returns 1 when reaped (status in *wstatus as from waitpid), 0 on timeout, -1 on error.
int csbx_pidfd_wait(int pidfd, int timeout_ms, int *wstatus);

// SCM_RIGHTS over a connected Unix socket (SOCK_SEQPACKET keeps each message whole).
ssize_t csbx_send_with_fd(int sock, const void *buf, size_t len, int fd);
// Receives one message; *fd_out = received descriptor (CLOEXEC) or -1.
ssize_t csbx_recv_with_fd(int sock, void *buf, size_t cap, int *fd_out);

// Starting a service inside an instance (called by the single-threaded init).
struct csbx_spawn_spec {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    uid_t uid;
    gid_t gid;
    int stdin_fd;
    int stdout_fd;
    int stderr_fd;
    const int *extra_fds;            // become fds 3, 4, ... in the child
    int n_extra;
};
// Returns the pid, or -1 with *err set (errno of the failing step in the child or parent).
pid_t csbx_spawn(const struct csbx_spawn_spec *spec, int *err);

// signalfd (not exported by Swift's Glibc module): a CLOEXEC, non-blocking fd for mask.
int csbx_signalfd(const sigset_t *mask);
// Reads one queued signal; returns its number, or -1 when none is pending.
int csbx_signalfd_next(int fd);

// A readiness pipe: both ends close-on-exec, the read end (fds[0]) non-blocking.
int csbx_notify_pipe(int fds[2]);

// prctl wrappers (prctl is variadic, so Swift cannot call it).
int csbx_set_dumpable(int on);
int csbx_set_child_subreaper(void);
int csbx_set_pdeathsig(int sig);

#ifdef __cplusplus
}
#endif
#endif
