// The launcher and its helpers. Read docs/architecture.md ("Launch") for the sequence.
//
// Rule for everything reachable from child_main: raw syscalls and async-signal-safe libc
// only, no malloc, no stdio, no locks. The child is a copy of the multi-threaded Swift
// daemon; whatever lock another thread held at clone time stays held forever in it.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <grp.h>
#include <unistd.h>
#include <limits.h>
#include <time.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/resource.h>
#include <seccomp.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/vfs.h>

const uint64_t CSBX_CLONE_NEWNS = CLONE_NEWNS;
const uint64_t CSBX_CLONE_NEWPID = CLONE_NEWPID;
const uint64_t CSBX_CLONE_NEWUTS = CLONE_NEWUTS;
const uint64_t CSBX_CLONE_NEWIPC = CLONE_NEWIPC;
const uint64_t CSBX_CLONE_NEWNET = CLONE_NEWNET;
const uint64_t CSBX_CLONE_NEWUSER = CLONE_NEWUSER;
const uint64_t CSBX_CLONE_NEWCGROUP = CLONE_NEWCGROUP;
const int CSBX_O_TMPFILE = O_TMPFILE;
const int CSBX_AT_EMPTY_PATH = AT_EMPTY_PATH;

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

// Our own copy of the mount_setattr argument: glibc's and the kernel's headers collide.
struct csbx_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};
#define CSBX_MOUNT_ATTR_RDONLY 0x00000001ULL
#define CSBX_MOUNT_ATTR_NOSUID 0x00000002ULL
#define CSBX_MOUNT_ATTR_NODEV 0x00000004ULL
#define CSBX_MOUNT_ATTR_NOEXEC 0x00000008ULL

struct child_report {
    int32_t stage;
    int32_t err;
    int32_t detail;
};

// ---------------------------------------------------------------------------------------
// Child side
// ---------------------------------------------------------------------------------------

__attribute__((noreturn)) static void report_and_die(int sync_fd, int stage, int err, int detail) {
    struct child_report r = {stage, err, detail};
    ssize_t ignored = write(sync_fd, &r, sizeof r);
    (void)ignored;
    _exit(127);
}

// dst = a + b, bounded. Returns 0 or -1 when it does not fit.
static int join_path(char *dst, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > cap) return -1;
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 0;
}

// mkdir -p, creating only components after the first `skip` bytes (a prefix known to exist).
static int mkdir_p_from(const char *path, size_t skip, mode_t mode) {
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof buf) return -1;
    memcpy(buf, path, len + 1);
    for (size_t i = skip > 0 ? skip : 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char saved = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
            buf[i] = saved;
        }
    }
    return 0;
}

static int mkdir_p(const char *path, mode_t mode) { return mkdir_p_from(path, 0, mode); }

// Adds restrictions to a mount (and, if recursive, every mount under it) without touching
// its other flags. A plain MS_REMOUNT would have to restate every locked flag of a mount
// inherited into a user namespace, and fails with EPERM when it does not.
static int restrict_mount(const char *path, int recursive, int read_only, unsigned long ms_flags) {
    struct csbx_mount_attr attr = {0};
    if (read_only) attr.attr_set |= CSBX_MOUNT_ATTR_RDONLY;
    if (ms_flags & MS_NOSUID) attr.attr_set |= CSBX_MOUNT_ATTR_NOSUID;
    if (ms_flags & MS_NODEV) attr.attr_set |= CSBX_MOUNT_ATTR_NODEV;
    if (ms_flags & MS_NOEXEC) attr.attr_set |= CSBX_MOUNT_ATTR_NOEXEC;
    if (attr.attr_set == 0) return 0;
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof attr) == 0)
        return 0;
    if (errno != ENOSYS) return -1;
    // Pre-5.12 kernels: only the top mount can be changed.
    return mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | (read_only ? MS_RDONLY : 0) | ms_flags, NULL);
}

static int make_read_only(const char *path, int recursive) { return restrict_mount(path, recursive, 1, 0); }

static int apply_mount(const char *root, const struct csbx_mount *m, int passed_fd) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, root, strcmp(m->target, "/") == 0 ? "" : m->target) < 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    switch (m->kind) {
    case CSBX_MKDIR:
        return mkdir_p_from(path, strlen(root) + 1, m->mode);
    case CSBX_FILE: {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, m->mode);
        if (fd < 0) return -1;
        close(fd);
        return 0;
    }
    case CSBX_SYMLINK:
        return symlink(m->source, path);
    case CSBX_BIND:
        if (mount(m->source, path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        return restrict_mount(path, 0, 0, m->flags);
    case CSBX_BIND_RO:
        if (mount(m->source, path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        return restrict_mount(path, 1, 1, m->flags);
    case CSBX_TMPFS:
        return mount("tmpfs", path, "tmpfs", m->flags, m->data);
    case CSBX_PROC:
        return mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | m->flags, NULL);
    case CSBX_DEVPTS:
        return mount("devpts", path, "devpts", MS_NOSUID | MS_NOEXEC | m->flags, m->data);
    case CSBX_MAKE_RO:
        return make_read_only(path, 0);
    case CSBX_MASK_FILE:
        return mount(m->source ? m->source : "/dev/null", path, NULL, MS_BIND, NULL);
    case CSBX_MASK_DIR:
        return mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555");
    case CSBX_BIND_SELF_RO:
        if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        return make_read_only(path, 1);
    case CSBX_SYSFS:
        if (mount("sysfs", path, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0) return 0;
        // Only a user namespace that owns the network namespace may mount sysfs.
        if (mount("/sys", path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
        return restrict_mount(path, 1, 1, MS_NOSUID | MS_NODEV | MS_NOEXEC);
    case CSBX_CGROUP2:
        return mount("cgroup2", path, "cgroup2", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    case CSBX_OVERLAY:
        return mount("overlay", path, "overlay", m->flags, m->data);
    case CSBX_ATTACH_PASSED:
        if (passed_fd < 0) {
            errno = EBADF;
            return -1;
        }
        if (mkdir_p(path, 0700) < 0) return -1;
        return (int)syscall(SYS_move_mount, passed_fd, "", AT_FDCWD, path, 0x00000004 /* MOVE_MOUNT_F_EMPTY_PATH */);
    default:
        errno = EINVAL;
        return -1;
    }
}

static int bring_loopback_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return rc;
}

static void reset_signals(void) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        sigaction(sig, &dfl, NULL);   // fails harmlessly for glibc-reserved signals
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

// Moves fd out of the low range so dup2 into 0..3 cannot clobber another source fd.
static int lift_fd(int fd) {
    if (fd < 0) return -1;
    return fcntl(fd, F_DUPFD_CLOEXEC, 64);
}

static int mark_cloexec_from(unsigned int first) {
    if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
    // Pre-5.11 kernels: walk the table.
    for (int fd = (int)first; fd < 4096; fd++) fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

static int set_capability_sets(uint64_t keep);

// Keeps exactly `keep` in the bounding, permitted and effective sets; empties inheritable and
// ambient. Capabilities of a process in a user namespace only ever act inside it.
static int set_capabilities(uint64_t keep) {
    for (int cap = 0; cap < 64; cap++) {
        if (keep & (1ULL << cap)) continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL) break;   // past the kernel's last capability
            return -1;
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) return -1;
    return set_capability_sets(keep);
}

// permitted = effective = keep, inheritable = 0.
static int set_capability_sets(uint64_t keep) {
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    data[0].effective = data[0].permitted = (uint32_t)keep;
    data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
    return (int)syscall(SYS_capset, &header, data);
}

static int load_filter(const void *filter, size_t len) {
    struct sock_fprog prog = {.len = (unsigned short)(len / sizeof(struct sock_filter)),
                              .filter = (struct sock_filter *)filter};
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static void stamp(const struct csbx_launch_spec *spec, int point) {
    if (!spec->stage_clock) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   // vDSO: no lock, safe here
    spec->stage_clock[point] = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

__attribute__((noreturn)) static void child_main(const struct csbx_launch_spec *spec, int sync_fd) {
    // Until "go" the parent thread is still running on the memory and thread-local storage
    // this child shares (see csbx_launch_begin): wait without touching anything but the
    // stack. Every signal is blocked and every handler was reset by CLONE_CLEAR_SIGHAND.
    char go = 0;
    int passed_fd = -1;
    ssize_t n = csbx_recv_with_fd(sync_fd, &go, 1, &passed_fd);
    if (n != 1 || go != 'G') report_and_die(sync_fd, CSBX_STAGE_SYNC, n < 0 ? errno : EPIPE, 0);
    reset_signals();
    // The daemon's umask (0o077) keeps its own files private; an instance builds its root
    // and runs its services with the conventional one.
    umask(022);
    // A session of its own, with no controlling terminal: the daemon may run in the foreground
    // of an operator's terminal, which nothing in an instance may ever open or type into.
    if (setsid() < 0) report_and_die(sync_fd, CSBX_STAGE_SESSION, errno, 0);
    stamp(spec, CSBX_CLOCK_GO);

    if (spec->namespaces & CLONE_NEWUSER) {
        // Until now the child still carries the host's root ids (shown as the overflow id in
        // its namespace). Becoming root *of the namespace* makes every file access from here on
        // run as the instance's unprivileged host uid.
        // Raw syscalls: glibc's wrappers would try to broadcast the change to the threads
        // of the daemon this child was copied from, which do not exist here.
        if (syscall(SYS_setresgid, 0, 0, 0) < 0) report_and_die(sync_fd, CSBX_STAGE_IDENTITY, errno, 0);
        if (syscall(SYS_setgroups, 0, NULL) < 0) report_and_die(sync_fd, CSBX_STAGE_IDENTITY, errno, 1);
        if (syscall(SYS_setresuid, 0, 0, 0) < 0) report_and_die(sync_fd, CSBX_STAGE_IDENTITY, errno, 2);
    }
    stamp(spec, CSBX_CLOCK_IDENTITY);

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        report_and_die(sync_fd, CSBX_STAGE_MOUNT_PRIVATE, errno, 0);
    // The new root is a small tmpfs holding only mount points and symlinks; it is made
    // read-only by the caller's last op once everything is mounted into it.
    if (mount("tmpfs", spec->stage_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
        report_and_die(sync_fd, CSBX_STAGE_ROOT_TMPFS, errno, 0);
    for (int i = 0; i < spec->n_mounts; i++) {
        if (apply_mount(spec->stage_dir, &spec->mounts[i], passed_fd) < 0 && !spec->mounts[i].optional)
            report_and_die(sync_fd, CSBX_STAGE_MOUNTS, errno, i);
    }
    stamp(spec, CSBX_CLOCK_MOUNTS);

    if (chdir(spec->stage_dir) < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 0);
    // Pivot onto itself, then detach the old root stacked underneath: no put_old directory
    // remains inside the instance.
    if (syscall(SYS_pivot_root, ".", ".") < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 1);
    if (umount2(".", MNT_DETACH) < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 2);
    if (chdir("/") < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 3);
    stamp(spec, CSBX_CLOCK_PIVOT);

    if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        report_and_die(sync_fd, CSBX_STAGE_HOSTNAME, errno, 0);
    if ((spec->namespaces & CLONE_NEWNET) && bring_loopback_up() < 0)
        report_and_die(sync_fd, CSBX_STAGE_LOOPBACK, errno, 0);
    stamp(spec, CSBX_CLOCK_NET);

    int sync_hi = lift_fd(sync_fd);
    int exec_hi = lift_fd(spec->exec_fd);
    int stdio_hi = lift_fd(spec->stdio_fd);
    int control_hi = lift_fd(spec->control_fd);
    int listen_hi = lift_fd(spec->listen_fd);
    if (sync_hi < 0 || exec_hi < 0 || (spec->stdio_fd >= 0 && stdio_hi < 0) ||
        (spec->control_fd >= 0 && control_hi < 0) || (spec->listen_fd >= 0 && listen_hi < 0))
        report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 0);
    sync_fd = sync_hi;
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0) report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 1);
    if (dup2(null_fd, 0) < 0) report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 2);
    int out = stdio_hi >= 0 ? stdio_hi : null_fd;
    if (dup2(out, 1) < 0 || dup2(out, 2) < 0) report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 3);
    if (control_hi >= 0 && dup2(control_hi, 3) < 0) report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 4);
    if (listen_hi >= 0 && dup2(listen_hi, 4) < 0) report_and_die(sync_fd, CSBX_STAGE_FDS, errno, 5);
    // Everything above the fds we hand over (the daemon's listeners, its database, other
    // instances' sockets) is closed by the exec.
    mark_cloexec_from(listen_hi >= 0 ? 5 : control_hi >= 0 ? 4 : 3);

    for (int i = 0; i < spec->n_rlimits; i++) {
        struct rlimit lim = {.rlim_cur = spec->rlimits[i].soft, .rlim_max = spec->rlimits[i].hard};
        if (setrlimit(spec->rlimits[i].resource, &lim) < 0) report_and_die(sync_fd, CSBX_STAGE_RLIMITS, errno, i);
    }
    stamp(spec, CSBX_CLOCK_FDS);
    if (spec->namespaces & CLONE_NEWUSER) {
        if (set_capabilities(spec->keep_caps) < 0) report_and_die(sync_fd, CSBX_STAGE_CAPS, errno, 0);
    }
    if (spec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        report_and_die(sync_fd, CSBX_STAGE_NO_NEW_PRIVS, errno, 0);
    stamp(spec, CSBX_CLOCK_CAPS);
    // The loader reads the init's interpreter, libraries and /etc/ld.so.preload relative to
    // the root at exec: make that a tree of host files only, keeping the new root as the
    // working directory for the init to return to (see InstanceInit).
    if (spec->init_root && chroot(spec->init_root) < 0) report_and_die(sync_fd, CSBX_STAGE_INIT_ROOT, errno, 0);
    // Last, so the filters only have to allow what the init itself does after exec.
    for (int i = 0; i < spec->n_filters; i++) {
        if (load_filter(spec->filters[i].code, spec->filters[i].len) < 0)
            report_and_die(sync_fd, CSBX_STAGE_SECCOMP, errno, i);
    }
    stamp(spec, CSBX_CLOCK_SECCOMP);

    syscall(SYS_execveat, exec_hi, "", spec->argv, spec->envp, AT_EMPTY_PATH);
    report_and_die(sync_fd, CSBX_STAGE_EXEC, errno, 0);
}

// ---------------------------------------------------------------------------------------
// Parent side
// ---------------------------------------------------------------------------------------

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static int write_maps(pid_t pid, const struct csbx_launch_spec *spec) {
    char path[64];
    const char *names[2] = {"uid_map", "gid_map"};
    const char *maps[2] = {spec->uid_map, spec->gid_map};
    for (int i = 0; i < 2; i++) {
        if (!maps[i]) continue;
        // pid is a positive int; format it by hand to stay away from stdio locks.
        char digits[16];
        int nd = 0;
        for (pid_t v = pid; v > 0; v /= 10) digits[nd++] = (char)('0' + v % 10);
        char *p = path;
        memcpy(p, "/proc/", 6);
        p += 6;
        while (nd > 0) *p++ = digits[--nd];
        *p++ = '/';
        size_t ln = strlen(names[i]);
        memcpy(p, names[i], ln + 1);
        if (write_file(path, maps[i]) < 0) return -1;
    }
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define CHILD_STACK_SIZE (256 * 1024)

struct child_start {
    const struct csbx_launch_spec *spec;
    int sync_fd;
};

// `arg` points into the child's own stack mapping (just above the guard page), which stays
// mapped until the launch is finished.
__attribute__((noreturn)) static void child_entry(void *arg) {
    const struct child_start *start = arg;
    child_main(start->spec, start->sync_fd);
}

// csbx_clone3_run(args, size, fn, arg): clone3 that runs fn(arg) on args->stack in the child.
// A plain syscall() cannot be used with a new stack: the child would return from it into a
// frame that is not on its stack. Returns the child's pid or -errno in the parent; never
// returns in the child.
#if defined(__x86_64__)
__asm__(".text\n"
        ".type csbx_clone3_run,@function\n"
        "csbx_clone3_run:\n"
        "    mov %rdx, %r8\n"            // fn and arg survive the syscall in r8/r9
        "    mov %rcx, %r9\n"
        "    mov $435, %eax\n"           // __NR_clone3 (rdi = args, rsi = size)
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    xor %ebp, %ebp\n"           // the child's outermost frame
        "    mov %r9, %rdi\n"
        "    call *%r8\n"
        "    mov $60, %eax\n"            // fn does not return; exit(127) if it ever did
        "    mov $127, %edi\n"
        "    syscall\n"
        "1:  ret\n"
        ".size csbx_clone3_run, .-csbx_clone3_run\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".type csbx_clone3_run,%function\n"
        "csbx_clone3_run:\n"
        "    mov x10, x2\n"
        "    mov x11, x3\n"
        "    mov x8, #435\n"
        "    svc #0\n"
        "    cbnz x0, 1f\n"
        "    mov x29, xzr\n"
        "    mov x30, xzr\n"
        "    mov x0, x11\n"
        "    blr x10\n"
        "    mov x8, #93\n"
        "    mov x0, #127\n"
        "    svc #0\n"
        "1:  ret\n"
        ".size csbx_clone3_run, .-csbx_clone3_run\n");
#else
#error "clone3_run needs a trampoline for this architecture"
#endif
long csbx_clone3_run(struct clone_args *args, size_t size, void (*fn)(void *), void *arg);

// Undoes what csbx_launch_begin set up for the launch itself (not the child).
static void release_launch(struct csbx_result *result) {
    if (result->child_stack) {
        munmap(result->child_stack, CHILD_STACK_SIZE);
        result->child_stack = NULL;
    }
    pthread_sigmask(SIG_SETMASK, &result->saved_mask, NULL);
}

int csbx_launch_begin(const struct csbx_launch_spec *spec, struct csbx_result *result) {
    uint64_t started = now_ns();
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->pidfd = -1;
    result->sync_fd = -1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        result->stage = CSBX_STAGE_SYNC;
        result->err = errno;
        return -1;
    }

    // Block every signal in this thread until the launch is finished: no handler of the
    // daemon may run in the child before it has reset them (it starts with this mask), and
    // no signal may interrupt this thread's waits while the child writes to the errno they
    // share (see below).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &result->saved_mask);

    // The child shares the daemon's memory (CLONE_VM) on a stack of its own until its execve
    // gives it a fresh address space: copying, then tearing down, the page tables of a
    // daemon with tens of megabytes mapped would cost more than everything else the launch
    // does. It only reads what the parent prepared and writes its own stack (and errno).
    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        pthread_sigmask(SIG_SETMASK, &result->saved_mask, NULL);
        result->stage = CSBX_STAGE_CLONE;
        result->err = e;
        return -1;
    }
    mprotect(stack, 4096, PROT_NONE);   // guard page: an overflow faults instead of corrupting
    result->child_stack = stack;

    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = spec->namespaces | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    if (spec->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)spec->cgroup_fd;
    }
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = CHILD_STACK_SIZE;
    struct child_start *start = (struct child_start *)((char *)stack + 4096);
    start->spec = spec;
    start->sync_fd = sv[1];
    long pid = csbx_clone3_run(&args, sizeof args, child_entry, start);
    if (pid == -EINVAL) {
        // Kernels before 5.5 do not know CLONE_CLEAR_SIGHAND. Without it a daemon handler
        // could run in the child before reset_signals: refuse rather than risk it.
        pid = -ENOSYS;
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        release_launch(result);
        result->stage = CSBX_STAGE_CLONE;
        result->err = (int)-pid;
        return -1;
    }
    result->pid = (pid_t)pid;
    result->pidfd = pidfd;
    result->sync_fd = sv[0];

    if ((spec->namespaces & CLONE_NEWUSER) && write_maps((pid_t)pid, spec) < 0) {
        int e = errno;
        csbx_launch_abort(result);
        result->stage = CSBX_STAGE_USERNS_MAPS;
        result->err = e;
        return -1;
    }
    result->clone_ns = now_ns() - started;
    return 0;
}

int csbx_launch_finish(struct csbx_result *result, int pass_fd) {
    uint64_t started = now_ns();
    result->go_at = started;
    struct child_report report = {0, 0, 0};
    if (csbx_send_with_fd(result->sync_fd, "G", 1, pass_fd) != 1) {
        report.stage = CSBX_STAGE_SYNC;
        report.err = errno;
    } else {
        ssize_t n;
        do { n = read(result->sync_fd, &report, sizeof report); } while (n < 0 && errno == EINTR);
        if (n < 0) {
            report.stage = CSBX_STAGE_SYNC;
            report.err = errno;
        } else if (n == 0) {
            report.stage = 0;   // EOF: the exec closed the child's end. The init runs.
        } else if (n != sizeof report) {
            report.stage = CSBX_STAGE_SYNC;
            report.err = EPROTO;
        }
    }
    close(result->sync_fd);
    result->sync_fd = -1;
    result->exec_at = now_ns();
    result->setup_ns = result->exec_at - started;
    if (report.stage == 0) {
        // The exec has replaced the child's memory: its stack here is free.
        release_launch(result);
        return 0;
    }
    csbx_launch_abort(result);
    result->stage = report.stage;
    result->err = report.err;
    result->detail = report.detail;
    return -1;
}

void csbx_launch_abort(struct csbx_result *result) {
    if (result->sync_fd >= 0) {
        close(result->sync_fd);   // a child still waiting for "go" sees EOF and exits
        result->sync_fd = -1;
    }
    if (result->pidfd >= 0) {
        int status;
        csbx_pidfd_signal(result->pidfd, SIGKILL);
        csbx_pidfd_wait(result->pidfd, -1, &status);
        close(result->pidfd);
    }
    result->pid = -1;
    result->pidfd = -1;
    release_launch(result);   // the child is reaped: nothing runs on its stack any more
}

int csbx_launch(const struct csbx_launch_spec *spec, struct csbx_result *result) {
    if (csbx_launch_begin(spec, result) < 0) return -1;
    return csbx_launch_finish(result, -1);
}

int csbx_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);   // pidfds are always close-on-exec
}

int csbx_pidfd_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int csbx_pidfd_wait(int pidfd, int timeout_ms, int *wstatus) {
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        break;
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do { rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED); } while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno == ECHILD) {   // someone else reaped it: it has exited all the same
        if (wstatus) *wstatus = 0;
        return 1;
    }
    if (rc < 0) return -1;
    if (wstatus) {
        if (info.si_code == CLD_EXITED) *wstatus = (info.si_status & 0xff) << 8;
        else *wstatus = (info.si_status & 0x7f) | (info.si_code == CLD_DUMPED ? 0x80 : 0);
    }
    return 1;
}

ssize_t csbx_send_with_fd(int sock, const void *buf, size_t len, int fd) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    if (fd >= 0) {
        memset(&control, 0, sizeof control);
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    ssize_t n;
    do { n = sendmsg(sock, &msg, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t csbx_recv_with_fd(int sock, void *buf, size_t cap, int *fd_out) {
    *fd_out = -1;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    union {
        char buf[CMSG_SPACE(sizeof(int) * 4)];
        struct cmsghdr align;
    } control;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    ssize_t n;
    do { n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int fds[4];
        memcpy(fds, CMSG_DATA(c), count * sizeof(int));
        for (size_t i = 0; i < count; i++) {
            if (*fd_out < 0) *fd_out = fds[i];
            else close(fds[i]);   // only one descriptor is ever expected
        }
    }
    if (msg.msg_flags & MSG_TRUNC) {
        errno = EMSGSIZE;
        if (*fd_out >= 0) close(*fd_out);
        *fd_out = -1;
        return -1;
    }
    return n;
}

pid_t csbx_spawn(const struct csbx_spawn_spec *spec, int *err) {
    *err = 0;
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0) {
        *err = errno;
        return -1;
    }
    // The init is single-threaded, so a plain fork is safe here.
    pid_t pid = fork();
    if (pid < 0) {
        *err = errno;
        close(ep[0]);
        close(ep[1]);
        return -1;
    }
    if (pid == 0) {
        close(ep[0]);
        int e = 0, step = 1;
        reset_signals();
        if (setsid() < 0) goto fail;
        step = 2;
        int lifted[3 + 8];
        int n_extra = spec->n_extra > 8 ? 8 : spec->n_extra;
        const int sources[3] = {spec->stdin_fd, spec->stdout_fd, spec->stderr_fd};
        for (int i = 0; i < 3; i++) lifted[i] = lift_fd(sources[i]);
        for (int i = 0; i < n_extra; i++) lifted[3 + i] = lift_fd(spec->extra_fds[i]);
        for (int i = 0; i < 3 + n_extra; i++) {
            if (lifted[i] < 0) {
                if (i < 3) continue;   // a missing stdio fd stays as it was
                goto fail;
            }
            if (dup2(lifted[i], i) < 0) goto fail;
        }
        mark_cloexec_from((unsigned int)(3 + n_extra));
        step = 3;
        if (spec->drop_all_caps) {
            for (int cap = 0; cap < 64; cap++) {
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                    if (errno == EINVAL) break;   // past the kernel's last capability
                    goto fail;
                }
            }
            if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL) goto fail;
        }
        gid_t gid = spec->gid;
        step = 4;
        if (setgroups(1, &gid) < 0) goto fail;
        step = 5;
        if (setresgid(spec->gid, spec->gid, spec->gid) < 0) goto fail;
        step = 6;
        if (setresuid(spec->uid, spec->uid, spec->uid) < 0) goto fail;
        step = 7;
        // The bounding set is already empty (dropping needed CAP_SETPCAP, gone since setuid);
        // what remains is clearing inheritable, which capset may always lower.
        if (spec->drop_all_caps && set_capability_sets(0) < 0) goto fail;
        step = 8;
        if (spec->cwd && chdir(spec->cwd) < 0) goto fail;
        step = 9;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto fail;
        step = 10;
        if (spec->seccomp_len && load_filter(spec->seccomp_filter, spec->seccomp_len) < 0) goto fail;
        step = 11;
        execve(spec->path, spec->argv, spec->envp);
    fail:
        // errno in the low 16 bits, the failing step above it (see csbx_spawn_step_name).
        e = (errno & 0xffff) | (step << 16);
        ssize_t ignored = write(ep[1], &e, sizeof e);
        (void)ignored;
        _exit(127);
    }
    close(ep[1]);
    int child_errno = 0;
    ssize_t n;
    do { n = read(ep[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *err = child_errno;
        return -1;
    }
    return pid;
}

int csbx_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct {
        uint64_t flags, mode, resolve;
    } how = {(uint64_t)(unsigned int)(flags | O_CLOEXEC), mode, resolve};
    long fd;
    do { fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : (int)fd;
}

int csbx_drop_capability(int cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -1;
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    uint32_t keep = ~(1U << (cap % 32));
    data[cap / 32].effective &= keep;
    data[cap / 32].permitted &= keep;
    data[cap / 32].inheritable &= keep;
    return (int)syscall(SYS_capset, &header, data);
}

int csbx_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }
int csbx_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }
int csbx_set_pdeathsig(int sig) { return prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0); }

int csbx_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }

int csbx_signalfd_next(int fd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int csbx_notify_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) < 0) return -1;
    // Only our read end is non-blocking; the service's write end behaves as it expects.
    return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

int csbx_sealed_copy(int source_fd, const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(source_fd, &st) < 0) goto fail;
    off_t offset = 0;
    while (offset < st.st_size) {
        ssize_t n = sendfile(fd, source_fd, &offset, (size_t)(st.st_size - offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) goto fail;
    return fd;
fail:;
    int e = errno ? errno : EIO;
    close(fd);
    return -e;
}

int csbx_getrlimit_max(int resource, struct rlimit *out) { return getrlimit(resource, out); }

const char *csbx_spawn_step_name(int err) {
    static const char *const names[] = {"?", "setsid", "fds", "capability bounding set", "setgroups",
                                        "setresgid", "setresuid", "capabilities", "chdir", "no_new_privs",
                                        "seccomp", "exec"};
    int step = err >> 16;
    return step >= 0 && step < (int)(sizeof names / sizeof *names) ? names[step] : "?";
}

unsigned long csbx_fs_magic(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 ? (unsigned long)fs.f_type : 0;
}

int csbx_idmapped_tree(const char *path, pid_t pid) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) return -errno;
    char ns[64];
    // "/proc/<pid>/ns/user" without stdio.
    char digits[16];
    int nd = 0;
    for (pid_t v = pid; v > 0; v /= 10) digits[nd++] = (char)('0' + v % 10);
    char *p = ns;
    memcpy(p, "/proc/", 6);
    p += 6;
    while (nd > 0) *p++ = digits[--nd];
    memcpy(p, "/ns/user", 9);
    int userns = open(ns, O_RDONLY | O_CLOEXEC);
    if (userns < 0) {
        int e = errno;
        close(tree);
        return -e;
    }
    struct csbx_mount_attr attr = {.attr_set = 0x00100000 /* MOUNT_ATTR_IDMAP */, .userns_fd = (uint64_t)userns};
    long rc = syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
    int e = errno;
    close(userns);
    if (rc < 0) {
        close(tree);
        return -e;
    }
    return tree;
}
