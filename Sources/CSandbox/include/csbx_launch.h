// The launch of an instance's init: the spec Swift prepares, the stages a failed child
// reports, the two-step begin/finish the daemon drives. Implemented by launch.c (parent
// side), launch_child.c (child side, in stage order) and launch_mounts.c (the mount table).
#ifndef CSBX_LAUNCH_H
#define CSBX_LAUNCH_H

#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

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
    CSBX_MASK_FILE,      // bind /dev/null (of the new root) over a file: reads empty, writes fail
    CSBX_MASK_DIR,       // an empty read-only tmpfs over a directory
    CSBX_BIND_SELF_RO,   // bind target onto itself, then read-only (e.g. /proc/sys)
    CSBX_SYSFS,          // a fresh read-only sysfs of the instance's net namespace; falls back
                         // to a read-only recursive bind of the host's /sys
    CSBX_CGROUP2,        // the cgroup2 hierarchy as seen from the instance's cgroup namespace
    CSBX_OVERLAY,        // overlay at target; data = "lowerdir=..,upperdir=..,workdir=.."
    CSBX_ATTACH_PASSED,  // attach the detached mount the parent passed with "go" (an
                         // id-mapped base tree) at target
};

struct csbx_mount {
    int kind;
    const char *source;    // host path (bind) or link text (symlink); NULL otherwise
    const char *target;    // absolute path inside the new root, e.g. "/usr"
    const char *data;      // filesystem options for tmpfs/devpts; NULL otherwise
    unsigned long flags;   // extra MS_* flags (MS_NOSUID, MS_NODEV, MS_NOEXEC)
    unsigned int mode;     // for MKDIR and FILE
    int optional;          // a failure of this op is ignored (e.g. cgroup2 on a v1 host)
};

struct csbx_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

// Stages reported by a child that failed before exec (with errno).
enum csbx_stage {
    CSBX_STAGE_CLONE = 1,
    CSBX_STAGE_SYNC = 2,
    CSBX_STAGE_MOUNT_PRIVATE = 3,
    CSBX_STAGE_ROOT_TMPFS = 4,
    CSBX_STAGE_MOUNTS = 5,          // + index of the failing op in csbx_result.detail
    CSBX_STAGE_PIVOT_ROOT = 6,
    CSBX_STAGE_HOSTNAME = 7,
    CSBX_STAGE_LOOPBACK = 8,
    CSBX_STAGE_FDS = 9,
    CSBX_STAGE_EXEC = 11,
    CSBX_STAGE_USERNS_MAPS = 12,
    CSBX_STAGE_IDENTITY = 13,       // setresuid/setresgid/setgroups to root of the new user namespace
    CSBX_STAGE_RLIMITS = 14,
    CSBX_STAGE_CAPS = 15,
    CSBX_STAGE_NO_NEW_PRIVS = 16,
    CSBX_STAGE_SECCOMP = 17,
    CSBX_STAGE_SESSION = 18,        // setsid: the init's own session, no controlling terminal
    CSBX_STAGE_INIT_ROOT = 19,      // chroot into the read-only tree the init is loaded from
};

// One compiled seccomp filter (struct sock_filter[], from csbx_seccomp_build).
struct csbx_bpf {
    const void *code;
    size_t len;                      // in bytes
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
    int listen_fd;                   // -1, or becomes fd 4 of the init (its control listener)
    int stdio_fd;                    // becomes fds 1 and 2 of the init; fd 0 is /dev/null
    uint64_t namespaces;             // CSBX_CLONE_NEW* flags
    int cgroup_fd;                   // -1: stay in the caller's cgroup (else CLONE_INTO_CGROUP)
    const char *uid_map;             // written by the parent before "go" when CLONE_NEWUSER
    const char *gid_map;
    const struct csbx_rlimit *rlimits;
    int n_rlimits;
    uint64_t keep_caps;              // capabilities the init keeps (bounding, permitted, effective)
    int no_new_privs;
    const struct csbx_bpf *filters;  // loaded in order (the kernel runs them all); may be empty
    int n_filters;
    // NULL, or a read-only directory of the new root holding only host system files: the init
    // is exec'd with this as its root (and the new root as its working directory), so its
    // loader and libraries never come from anything the instance can write. The init then
    // chroots to its working directory. Needs CAP_SYS_CHROOT in keep_caps.
    const char *init_root;
    // Benchmark only (NULL otherwise): a MAP_SHARED page where the child stamps
    // CLOCK_MONOTONIC nanoseconds as it passes each CSBX_CLOCK_* point.
    uint64_t *stage_clock;
};

// Points of the child's way from "go" to exec, for csbx_launch_spec.stage_clock.
enum csbx_clock_point {
    CSBX_CLOCK_GO = 0,        // "go" received
    CSBX_CLOCK_IDENTITY,      // root of the user namespace
    CSBX_CLOCK_MOUNTS,        // every op of the mount table applied
    CSBX_CLOCK_PIVOT,         // pivot_root done, old root detached
    CSBX_CLOCK_NET,           // hostname set, loopback up
    CSBX_CLOCK_FDS,           // fds arranged, rlimits set
    CSBX_CLOCK_CAPS,          // capabilities and no_new_privs
    CSBX_CLOCK_SECCOMP,       // filter loaded: the next call is execveat
    CSBX_CLOCK_POINTS
};

struct csbx_result {
    pid_t pid;
    int pidfd;
    int stage;      // 0 on success
    int err;        // errno at that stage
    int detail;     // e.g. failing mount op index
    int sync_fd;    // between csbx_launch_begin and csbx_launch_finish
    uint64_t clone_ns;   // clone3 + id maps, in the parent
    uint64_t setup_ns;   // "go" to exec: the child's mounts, pivot_root, confinement and execve
    uint64_t go_at;      // CLOCK_MONOTONIC ns when "go" was sent
    uint64_t exec_at;    // ... and when the exec closed the child's end
    // Held between begin and finish/abort: the child's stack, and the calling thread's
    // signal mask (every signal stays blocked in that thread meanwhile).
    void *child_stack;
    sigset_t saved_mask;
};

// Launch in two steps so the parent can prepare the child's outside world (a veth into its
// network namespace) between them. Both steps must run on the same thread, which keeps
// every signal blocked in between:
// begin: clone3 into new namespaces and write the id maps; the child waits for "go".
// finish: send "go" and wait until the init is exec'd (the child's CLOEXEC sync socket
//         closes) or the child reports (stage, errno). Both return 0 or -1; on -1 the child
//         has been killed and reaped.
int csbx_launch_begin(const struct csbx_launch_spec *spec, struct csbx_result *result);
// pass_fd >= 0 travels with "go" (SCM_RIGHTS) for CSBX_ATTACH_PASSED; the caller keeps its copy.
int csbx_launch_finish(struct csbx_result *result, int pass_fd);
// Abandons a begun launch: kills and reaps the waiting child.
void csbx_launch_abort(struct csbx_result *result);

// A detached copy of the tree at path, id-mapped through the user namespace of pid (on-disk id
// n appears as id n inside that namespace): the read-only base of an instance's overlay root.
// Returns a mount fd or -errno.
int csbx_idmapped_tree(const char *path, pid_t pid);

#ifdef __cplusplus
}
#endif
#endif
