// The seccomp profiles of an instance, compiled with libseccomp in the caller (never in a
// forked child: libseccomp allocates) and handed to the launcher as ready BPF.
//
// Model: Docker's default profile. Default action ENOSYS, so a libc meeting a syscall newer
// than this list falls back instead of failing hard; an allowlist of what ordinary programs
// need; and an explicit EPERM for the syscalls that reach the kernel's most exposed surfaces.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <linux/netlink.h>
#include <unistd.h>

static const char *const allowed[] = {
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "cachestat", "capget",
    "capset", "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchmodat2",
    "fchown", "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork",
    "fremovexattr", "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex",
    "futex_requeue", "futex_wait", "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd",
    "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch",
    "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "kill", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat",
    "listen", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise",
    "map_shadow_stack", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat",
    "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "modify_ldt", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedsend", "mq_unlink",
    "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap",
    "name_to_handle_at", "nanosleep", "newfstatat", "open", "openat", "openat2", "pause",
    "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg", "recvmsg", "remap_file_pages",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_getaffinity",
    "sched_getattr", "sched_getparam", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getscheduler", "sched_rr_get_interval", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
    "semget", "semop", "semtimedop", "sendfile", "sendmmsg", "sendmsg", "sendto", "setfsgid",
    "setfsuid", "setgid", "setgroups", "setitimer", "setpgid", "setpriority",
    "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "socketpair", "splice",
    "stat", "statfs", "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs",
    "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun",
    "timer_gettime", "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime",
    "times", "tkill", "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat",
    "utimes", "vfork", "vmsplice", "wait4", "waitid", "write", "writev",
    // Chromium's namespace sandbox, in the baseline; the add-on filter takes them from
    // every other service.
    "unshare", "chroot",
};

// Known and deliberately refused: EPERM, as Docker answers them.
static const char *const refused[] = {
    "acct", "add_key", "bpf", "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen",
    "fspick", "init_module", "io_uring_enter", "io_uring_register", "io_uring_setup", "ioperm",
    "iopl", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mount",
    "mount_setattr", "move_mount", "nfsservctl", "open_by_handle_at", "open_tree",
    "perf_event_open", "pidfd_getfd", "pivot_root", "process_madvise", "process_vm_readv",
    "process_vm_writev", "ptrace", "quotactl", "quotactl_fd", "reboot", "request_key",
    "setdomainname", "sethostname", "setns", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "swapoff", "swapon", "syslog", "umount2", "userfaultfd", "vhangup",
    "memfd_secret", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    // Docker allows these only with CAP_SYS_PTRACE (kcmp) or CAP_SYS_NICE (NUMA policy),
    // which nothing in an instance has.
    "kcmp", "mbind", "get_mempolicy", "set_mempolicy",
};

#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \\
                         CLONE_NEWPID | CLONE_NEWNET | 0x00000080 /* CLONE_NEWTIME */)

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, const struct scmp_arg_cmp *args) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return 0;   // not a syscall on this architecture
    return seccomp_rule_add_array(ctx, action, nr, n, args);
}

static int build_instance(scmp_filter_ctx ctx) {
    int rc = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed && rc == 0; i++) rc = add(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL);
    for (size_t i = 0; i < sizeof refused / sizeof *refused && rc == 0; i++) rc = add(ctx, SCMP_ACT_ERRNO(EPERM), refused[i], 0, NULL);
    if (rc) return rc;
    // clone: threads and forks, and (for Chromium) new namespaces. clone3 is left to the
    // default ENOSYS on purpose: its flags live in memory a filter cannot read, and libc
    // falls back to clone, whose flags the add-on filter can inspect.
    if ((rc = add(ctx, SCMP_ACT_ALLOW, "clone", 0, NULL))) return rc;
    // socket and ioctl are allowed here; CSBX_SECCOMP_ARGUMENTS, always stacked on this
    // filter, refuses the families and requests nothing in an instance needs.
    if ((rc = add(ctx, SCMP_ACT_ALLOW, "socket", 0, NULL))) return rc;
    // personality: only the values Docker allows (the kernel reads the low 32 bits).
    static const unsigned long personas[] = {0x0, 0x8 /* PER_LINUX32 */, 0x20000 /* UNAME26 */, 0x20008,
                                             0xffffffff /* query */};
    for (size_t i = 0; i < sizeof personas / sizeof *personas && rc == 0; i++) {
        struct scmp_arg_cmp persona = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, personas[i]);
        rc = add(ctx, SCMP_ACT_ALLOW, "personality", 1, &persona);
    }
    return rc;
}

// Argument checks, stacked on the baseline for every process of the instance. libseccomp
// cannot give one syscall both an unconditional rule and conditional ones with another
// action, nor two comparisons of one argument in a rule, so "allow socket except these
// families" is a filter of its own that allows by default and refuses by exact value.
// Values are compared on their low 32 bits: the kernel reads these arguments as int, so
// bits above would slip past a 64-bit comparison and be dropped by the kernel.
static int build_arguments(scmp_filter_ctx ctx) {
    int rc = 0;
    // Socket families: only Unix, IPv4, IPv6 and (below) two netlink protocols. Refused
    // among others: AF_PACKET, AF_KEY, AF_ALG (kernel crypto), AF_VSOCK (the hypervisor),
    // AF_XDP, AF_TIPC, AF_RDS, AF_CAN, AF_BLUETOOTH. Numbers past the kernel's AF_MAX fail
    // there with EAFNOSUPPORT.
    for (unsigned long family = 0; family < 64 && rc == 0; family++) {
        if (family == AF_UNIX || family == AF_INET || family == AF_INET6 || family == AF_NETLINK) continue;
        struct scmp_arg_cmp is = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, family);
        rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 1, &is);
    }
    // Netlink: NETLINK_ROUTE and NETLINK_KOBJECT_UEVENT are what Chromium opens (measured
    // with strace: its network change notifier and device monitor). Everything else is
    // refused, NETLINK_NETFILTER (nf_tables, the surface behind many container escapes from a
    // nested user namespace) and NETLINK_GENERIC, NETLINK_XFRM, NETLINK_AUDIT,
    // NETLINK_SOCK_DIAG among them.
    for (unsigned long protocol = 1; protocol < 32 && rc == 0; protocol++) {
        if (protocol == NETLINK_KOBJECT_UEVENT) continue;
        struct scmp_arg_cmp both[2] = {SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, AF_NETLINK),
                                       SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffUL, protocol)};
        rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "socket", 2, both);
    }
    // Terminal requests that type into or act on a terminal: TIOCSTI injects input into the
    // terminal a process can open; TIOCLINUX reaches the virtual console's selection buffer.
    static const unsigned long tty_requests[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; i < sizeof tty_requests / sizeof *tty_requests && rc == 0; i++) {
        struct scmp_arg_cmp request = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, tty_requests[i]);
        rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &request);
    }
    return rc;
}

// Stacked on the baseline (which still decides everything else): clone with any namespace
// flag, unshare and chroot fail with EPERM. libseccomp compares masked values for equality,
// so "any namespace bit set" is one rule per bit.
static int build_no_namespaces(scmp_filter_ctx ctx) {
    static const unsigned long bits[] = {CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
                                         CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, 0x00000080 /* NEWTIME */};
    int rc = 0;
    for (size_t i = 0; i < sizeof bits / sizeof *bits && rc == 0; i++) {
        struct scmp_arg_cmp bit = SCMP_A0(SCMP_CMP_MASKED_EQ, bits[i], bits[i]);
        rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &bit);
    }
    if (rc == 0) rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "unshare", 0, NULL);
    if (rc == 0) rc = add(ctx, SCMP_ACT_ERRNO(EPERM), "chroot", 0, NULL);
    return rc;
}

long csbx_seccomp_build(int profile, unsigned char **out) {
    *out = NULL;
    // Only the baseline denies by default; the filters stacked on it refuse what they name
    // and leave everything else to it.
    scmp_filter_ctx ctx = seccomp_init(profile == CSBX_SECCOMP_INSTANCE ? SCMP_ACT_ERRNO(ENOSYS) : SCMP_ACT_ALLOW);
    if (!ctx) return -ENOMEM;
    long result;
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);   // the launcher sets no_new_privs itself
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0) rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
    if (rc == 0) {
        if (profile == CSBX_SECCOMP_INSTANCE) rc = build_instance(ctx);
        else if (profile == CSBX_SECCOMP_ARGUMENTS) rc = build_arguments(ctx);
        else if (profile == CSBX_SECCOMP_NO_NAMESPACES) rc = build_no_namespaces(ctx);
        else rc = -EINVAL;
    }
    if (rc == 0) {
        int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
        if (fd < 0) rc = -errno;
        else {
            rc = seccomp_export_bpf(ctx, fd);
            off_t len = lseek(fd, 0, SEEK_END);
            if (rc == 0 && len > 0) {
                unsigned char *buf = malloc((size_t)len);
                if (buf && pread(fd, buf, (size_t)len, 0) == len) {
                    *out = buf;
                    result = (long)len;
                    close(fd);
                    seccomp_release(ctx);
                    return result;
                }
                free(buf);
                rc = -EIO;
            } else if (rc == 0) rc = -EIO;
            close(fd);
        }
    }
    seccomp_release(ctx);
    return rc < 0 ? rc : -EINVAL;
}
