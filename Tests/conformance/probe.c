// The conformance suite's payload: one static program, run inside an instance through the
// exec API, whose subcommands each try one syscall or behaviour and print exactly one JSON
// line {"check": "...", "errno": N, "value": ...} (errno 0 on success).
//
// Style of bubblewrap's tests/try-syscall.c and crun's tests/init.c: syscalls are called raw
// with harmless bad arguments (invalid fds, NULL pointers, bad magic numbers), so that when a
// protection is missing the call still fails in the kernel, harmlessly, with an errno that
// differs from the one the seccomp filter answers with.
//
// Build: gcc -static -O2 -o probe probe.c
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <linux/netlink.h>
#include <linux/kcmp.h>

// ---- a tiny JSON writer ------------------------------------------------------------------

static char out[1 << 16];
static size_t used;

static void emit(const char *fmt, ...) {
    if (used >= sizeof out) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + used, sizeof out - used, fmt, ap);
    va_end(ap);
    if (n > 0) used += (size_t)n < sizeof out - used ? (size_t)n : sizeof out - used - 1;
}

static void emit_str(const char *s, size_t len) {
    emit("\"");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') emit("\\%c", c);
        else if (c == '\n') emit("\\n");
        else if (c < 0x20 || c >= 0x7f) emit("\\u%04x", c);
        else emit("%c", c);
    }
    emit("\"");
}

static void emit_cstr(const char *s) { emit_str(s, strlen(s)); }

static const char *check_name = "";

// Starts the line: {"check": NAME, "errno": E, "value": ... (the caller writes the value).
static void begin(int err) {
    emit("{\"check\": ");
    emit_cstr(check_name);
    emit(", \"errno\": %d, \"value\": ", err);
}

static int finish(void) {
    emit("}\n");
    fwrite(out, 1, used, stdout);
    fflush(stdout);
    return 0;
}

// The common case: a return value (or null) and the errno of one call.
static int report(long rc, int err) {
    begin(rc < 0 ? err : 0);
    emit("%ld", rc);
    return finish();
}

#define TRY(expr) ({ errno = 0; long _rc = (long)(expr); int _e = errno; report(_rc, _e); })

// ---- syscalls with harmless arguments ----------------------------------------------------

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

static void *const BAD = (void *)1;   // a pointer the kernel refuses with EFAULT

struct named_call {
    const char *name;
    long (*call)(void);
};

static long c_keyctl(void) { return syscall(SYS_keyctl, 0x7fffffffL, 0, 0, 0, 0); }        // EOPNOTSUPP
static long c_add_key(void) { return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0); }        // EFAULT
static long c_request_key(void) { return syscall(SYS_request_key, NULL, NULL, NULL, 0); }   // EFAULT
static long c_bpf(void) { return syscall(SYS_bpf, -1L, NULL, 0); }                          // EINVAL / EPERM
static long c_perf_event_open(void) { return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); }   // EFAULT
static long c_userfaultfd(void) { return syscall(SYS_userfaultfd, ~0L); }                   // EINVAL
static long c_io_uring_setup(void) { return syscall(SYS_io_uring_setup, 1, NULL); }         // EFAULT
static long c_io_uring_enter(void) { return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0); }   // EBADF
static long c_io_uring_register(void) { return syscall(SYS_io_uring_register, -1, 0, NULL, 0); }   // EBADF
static long c_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, NULL, ~0UL); }
static long c_kexec_file_load(void) { return syscall(SYS_kexec_file_load, -1, -1, 0, NULL, ~0UL); }
static long c_init_module(void) { return syscall(SYS_init_module, NULL, 0, NULL); }
static long c_finit_module(void) { return syscall(SYS_finit_module, -1, NULL, ~0); }
static long c_delete_module(void) { return syscall(SYS_delete_module, NULL, 0); }
static long c_open_by_handle_at(void) { return syscall(SYS_open_by_handle_at, -1, NULL, 0); }
static long c_mount(void) { return syscall(SYS_mount, NULL, NULL, NULL, 0, NULL); }
static long c_umount2(void) { return syscall(SYS_umount2, NULL, ~0); }
static long c_pivot_root(void) { return syscall(SYS_pivot_root, NULL, NULL); }
static long c_setns(void) { return syscall(SYS_setns, -1, 0); }                             // EBADF
static long c_swapon(void) { return syscall(SYS_swapon, NULL, 0); }
static long c_swapoff(void) { return syscall(SYS_swapoff, NULL); }
static long c_reboot(void) { return syscall(SYS_reboot, 0, 0, 0, NULL); }                   // bad magic: EINVAL
static long c_acct(void) { return syscall(SYS_acct, BAD); }
static long c_ptrace(void) { return syscall(SYS_ptrace, PTRACE_PEEKDATA, -1, NULL, NULL); }   // ESRCH
static long c_process_vm_readv(void) { return syscall(SYS_process_vm_readv, -1, NULL, 0, NULL, 0, 0); }
static long c_process_vm_writev(void) { return syscall(SYS_process_vm_writev, -1, NULL, 0, NULL, 0, 0); }
static long c_pidfd_getfd(void) { return syscall(SYS_pidfd_getfd, -1, -1, 0); }             // EBADF
static long c_sethostname(void) { return syscall(SYS_sethostname, NULL, 100000); }           // EINVAL
static long c_setdomainname(void) { return syscall(SYS_setdomainname, NULL, 100000); }
static long c_settimeofday(void) { return syscall(SYS_settimeofday, BAD, NULL); }            // EFAULT
static long c_clock_settime(void) { return syscall(SYS_clock_settime, -1, NULL); }           // EINVAL
static long c_adjtimex(void) { return syscall(SYS_adjtimex, BAD); }                           // EFAULT
static long c_syslog(void) { return syscall(SYS_syslog, -1, NULL, 0); }                       // EINVAL
static long c_fsopen(void) { return syscall(SYS_fsopen, NULL, ~0U); }
static long c_fsmount(void) { return syscall(SYS_fsmount, -1, ~0U, 0); }
static long c_move_mount(void) { return syscall(SYS_move_mount, -1, NULL, -1, NULL, ~0U); }
static long c_open_tree(void) { return syscall(SYS_open_tree, -1, NULL, ~0U); }
static long c_mount_setattr(void) { return syscall(SYS_mount_setattr, -1, NULL, ~0U, NULL, 0); }
static long c_clone3(void) { return syscall(SYS_clone3, NULL, 0); }                          // EINVAL (size)
static long c_kcmp(void) { return syscall(SYS_kcmp, getpid(), getpid(), KCMP_VM, 0, 0); }         // 0 when allowed
static long c_get_mempolicy(void) { return syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0); }   // 0 when allowed
static long c_set_mempolicy(void) { return syscall(SYS_set_mempolicy, 0 /* MPOL_DEFAULT */, NULL, 0); }
static long c_mbind(void) { return syscall(SYS_mbind, NULL, 0, 0, NULL, 0, 0); }
static long c_unknown(void) { return syscall(1000); }

static const struct named_call calls[] = {
    {"keyctl", c_keyctl}, {"add_key", c_add_key}, {"request_key", c_request_key}, {"bpf", c_bpf},
    {"perf_event_open", c_perf_event_open}, {"userfaultfd", c_userfaultfd},
    {"io_uring_setup", c_io_uring_setup}, {"io_uring_enter", c_io_uring_enter},
    {"io_uring_register", c_io_uring_register}, {"kexec_load", c_kexec_load},
    {"kexec_file_load", c_kexec_file_load}, {"init_module", c_init_module},
    {"finit_module", c_finit_module}, {"delete_module", c_delete_module},
    {"open_by_handle_at", c_open_by_handle_at}, {"mount", c_mount}, {"umount2", c_umount2},
    {"pivot_root", c_pivot_root}, {"setns", c_setns}, {"swapon", c_swapon}, {"swapoff", c_swapoff},
    {"reboot", c_reboot}, {"acct", c_acct}, {"ptrace", c_ptrace},
    {"process_vm_readv", c_process_vm_readv}, {"process_vm_writev", c_process_vm_writev},
    {"pidfd_getfd", c_pidfd_getfd}, {"sethostname", c_sethostname},
    {"setdomainname", c_setdomainname}, {"settimeofday", c_settimeofday},
    {"clock_settime", c_clock_settime}, {"adjtimex", c_adjtimex}, {"syslog", c_syslog},
    {"fsopen", c_fsopen}, {"fsmount", c_fsmount}, {"move_mount", c_move_mount},
    {"open_tree", c_open_tree}, {"mount_setattr", c_mount_setattr}, {"clone3", c_clone3},
    {"kcmp", c_kcmp}, {"get_mempolicy", c_get_mempolicy}, {"set_mempolicy", c_set_mempolicy}, {"mbind", c_mbind},
    {"unknown", c_unknown},
};

static int cmd_syscall(int argc, char **argv) {
    if (argc < 1) return -1;
    for (size_t i = 0; i < sizeof calls / sizeof *calls; i++) {
        if (strcmp(calls[i].name, argv[0]) == 0) {
            errno = 0;
            long rc = calls[i].call();
            int e = errno;
            // Should a call succeed anyway (no filter), an fd it returned is closed again.
            if (rc > 2) close((int)rc);
            return report(rc, e);
        }
    }
    fprintf(stderr, "unknown syscall name %s\n", argv[0]);
    return -1;
}

// A raw syscall by number with all-zero arguments.
static int cmd_nr(int argc, char **argv) {
    if (argc < 1) return -1;
    return TRY(syscall(strtol(argv[0], NULL, 0), 0, 0, 0, 0, 0, 0));
}

// ---- namespaces --------------------------------------------------------------------------

static long ns_flag(const char *name) {
    if (!strcmp(name, "user")) return CLONE_NEWUSER;
    if (!strcmp(name, "net")) return CLONE_NEWNET;
    if (!strcmp(name, "mount")) return CLONE_NEWNS;
    if (!strcmp(name, "pid")) return CLONE_NEWPID;
    if (!strcmp(name, "uts")) return CLONE_NEWUTS;
    if (!strcmp(name, "ipc")) return CLONE_NEWIPC;
    if (!strcmp(name, "cgroup")) return CLONE_NEWCGROUP;
    return -1;
}

static int cmd_unshare(int argc, char **argv) {
    long flag = ns_flag(argc ? argv[0] : "user");
    if (flag < 0) return -1;
    return TRY(syscall(SYS_unshare, flag));
}

// clone(2) with a namespace flag, fork-like; a child that gets created exits at once.
static int cmd_clone_ns(int argc, char **argv) {
    long flag = ns_flag(argc ? argv[0] : "user");
    if (flag < 0) return -1;
    errno = 0;
    long pid = syscall(SYS_clone, flag | SIGCHLD, NULL, NULL, NULL, 0);
    int e = errno;
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return report(pid, e);
}

// ---- filesystem --------------------------------------------------------------------------

static int list_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    emit("[");
    int first = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!first) emit(", ");
        first = 0;
        emit_cstr(e->d_name);
    }
    emit("]");
    closedir(d);
    return 0;
}

static int cmd_ls(int argc, char **argv) {
    if (argc < 1) return -1;
    DIR *d = opendir(argv[0]);
    if (!d) {
        begin(errno);
        emit("null");
        return finish();
    }
    closedir(d);
    begin(0);
    list_dir(argv[0]);
    return finish();
}

// chdir("..") fifty times, then chroot("."): the classic escape from a chroot. Reports the
// chroot errno and what the directory reached holds, with its identity next to that of "/".
static int cmd_chroot_escape(int argc, char **argv) {
    (void)argc;
    (void)argv;
    for (int i = 0; i < 50; i++) {
        if (chdir("..") < 0) break;
    }
    errno = 0;
    long rc = syscall(SYS_chroot, ".");
    int e = errno;
    for (int i = 0; i < 50 && rc == 0; i++) {
        if (chdir("..") < 0) break;
    }
    struct stat here, root;
    stat(".", &here);
    stat("/", &root);
    char self_root[256] = "";
    ssize_t n = readlink("/proc/self/root", self_root, sizeof self_root - 1);
    if (n > 0) self_root[n] = '\0';
    begin(rc < 0 ? e : 0);
    emit("{\"same_as_root\": %s, \"proc_self_root\": ", (here.st_dev == root.st_dev && here.st_ino == root.st_ino) ? "true" : "false");
    emit_cstr(self_root);
    emit(", \"entries\": ");
    list_dir(".");
    emit("}");
    return finish();
}

static int cmd_mount_tmpfs(int argc, char **argv) {
    if (argc < 1) return -1;
    errno = 0;
    long rc = mount("tmpfs", argv[0], "tmpfs", 0, "size=1m");
    int e = errno;
    if (rc == 0) umount2(argv[0], MNT_DETACH);
    return report(rc, e);
}

// open O_WRONLY (no create), then write one byte.
static int cmd_open_write(int argc, char **argv) {
    if (argc < 1) return -1;
    int fd = open(argv[0], O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        begin(e);
        emit("\"open\"");
        return finish();
    }
    errno = 0;
    ssize_t n = write(fd, "\0", 1);
    int e = errno;
    close(fd);
    begin(n < 0 ? e : 0);
    emit(n < 0 ? "\"write\"" : "\"written\"");
    return finish();
}

// Creates (or truncates) PATH and writes DATA.
static int cmd_write(int argc, char **argv) {
    if (argc < 1) return -1;
    const char *data = argc > 1 ? argv[1] : "probe\n";
    int fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return report(-1, errno);
    errno = 0;
    ssize_t n = write(fd, data, strlen(data));
    int e = errno;
    close(fd);
    return report(n, e);
}

static int cmd_read(int argc, char **argv) {
    if (argc < 1) return -1;
    int fd = open(argv[0], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    static char buf[16384];
    ssize_t total = 0, n;
    while (total < (ssize_t)sizeof buf && (n = read(fd, buf + total, sizeof buf - (size_t)total)) > 0) total += n;
    int e = n < 0 ? errno : 0;
    close(fd);
    begin(e);
    emit_str(buf, (size_t)total);
    return finish();
}

static int cmd_readlink(int argc, char **argv) {
    if (argc < 1) return -1;
    char buf[4096];
    ssize_t n = readlink(argv[0], buf, sizeof buf - 1);
    if (n < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    begin(0);
    emit_str(buf, (size_t)n);
    return finish();
}

static int cmd_stat(int argc, char **argv) {
    if (argc < 1) return -1;
    struct stat st;
    if (lstat(argv[0], &st) < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    begin(0);
    emit("{\"mode\": %u, \"uid\": %u, \"gid\": %u, \"rdev\": [%u, %u], \"dev\": %lu, \"ino\": %lu, \"size\": %ld}",
         st.st_mode, st.st_uid, st.st_gid, major(st.st_rdev), minor(st.st_rdev), (unsigned long)st.st_dev,
         (unsigned long)st.st_ino, (long)st.st_size);
    return finish();
}

static int cmd_statfs(int argc, char **argv) {
    if (argc < 1) return -1;
    struct statfs s;
    if (statfs(argv[0], &s) < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    begin(0);
    emit("{\"type\": %ld, \"bsize\": %ld, \"blocks\": %lu, \"bfree\": %lu, \"bavail\": %lu, \"size\": %lu, \"flags\": %ld}",
         (long)s.f_type, (long)s.f_bsize, (unsigned long)s.f_blocks, (unsigned long)s.f_bfree,
         (unsigned long)s.f_bavail, (unsigned long)s.f_blocks * (unsigned long)s.f_bsize, (long)s.f_flags);
    return finish();
}

// Writes 4 MiB chunks to a new file PATH until BYTES are written or a write fails; reports the
// errno of the failing write and the bytes written, and removes the file.
static int cmd_fill(int argc, char **argv) {
    if (argc < 2) return -1;
    unsigned long long limit = strtoull(argv[1], NULL, 0);
    int fd = open(argv[0], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return report(-1, errno);
    static char chunk[4 << 20];
    memset(chunk, 0xa5, sizeof chunk);
    unsigned long long written = 0;
    int e = 0;
    while (written < limit) {
        size_t want = sizeof chunk;
        if (limit - written < want) want = (size_t)(limit - written);
        ssize_t n = write(fd, chunk, want);
        if (n < 0) {
            e = errno;
            break;
        }
        written += (unsigned long long)n;
        if ((size_t)n < want) {   // a short write: the next one reports why
            continue;
        }
    }
    close(fd);
    unlink(argv[0]);
    begin(e);
    emit("%llu", written);
    return finish();
}

static int cmd_mknod(int argc, char **argv) {
    if (argc < 1) return -1;
    errno = 0;
    long rc = mknod(argv[0], S_IFCHR | 0600, makedev(1, 3));   // /dev/null's numbers
    int e = errno;
    if (rc == 0) unlink(argv[0]);
    return report(rc, e);
}

static int cmd_openpt(int argc, char **argv) {
    (void)argc;
    (void)argv;
    int fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    if (grantpt(fd) < 0 || unlockpt(fd) < 0) {
        begin(errno);
        emit("null");
        return finish();
    }
    const char *name = ptsname(fd);
    begin(0);
    emit("{\"name\": ");
    emit_cstr(name ? name : "");
    emit(", \"pts\": ");
    list_dir("/dev/pts");
    emit("}");
    close(fd);
    return finish();
}


// Opens PATH read-write (the /proc/<pid>/mem route into another process's memory).
static int cmd_open_rw(int argc, char **argv) {
    if (argc < 1) return -1;
    errno = 0;
    int fd = open(argv[0], O_RDWR | O_CLOEXEC);
    int e = errno;
    if (fd >= 0) close(fd);
    return report(fd, e);
}

// socket(FAMILY, TYPE, PROTOCOL) as a raw syscall; HIGH adds bits above the low 32 of the
// family, which the kernel ignores (it takes an int) and a careless filter would not.
static int cmd_socket_raw(int argc, char **argv) {
    if (argc < 3) return -1;
    unsigned long family = strtoul(argv[0], NULL, 0);
    if (argc > 3) family |= strtoul(argv[3], NULL, 0) << 32;
    errno = 0;
    long fd = syscall(SYS_socket, family, strtol(argv[1], NULL, 0) | SOCK_CLOEXEC, strtol(argv[2], NULL, 0));
    int e = errno;
    if (fd >= 0) close((int)fd);
    return report(fd, e);
}

// The controlling-terminal attack: /dev/tty (the host's terminal if the session has one), then
// TIOCSTI and TIOCLINUX on a terminal of our own that is our controlling tty, where the
// kernel itself would allow TIOCSTI. Each errno is reported (0: it worked).
static int cmd_tty_inject(int argc, char **argv) {
    (void)argc;
    (void)argv;
    signal(SIGHUP, SIG_IGN);   // closing our own terminal hangs up its session
    errno = 0;
    int tty = open("/dev/tty", O_RDWR | O_CLOEXEC);
    int dev_tty = tty < 0 ? errno : 0;
    if (tty >= 0) close(tty);
    setsid();   // already a session leader under the exec API; harmless either way
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) return report(-1, errno);
    int slave = open(ptsname(master), O_RDWR | O_CLOEXEC);   // no O_NOCTTY: becomes our ctty
    if (slave < 0) return report(-1, errno);
    char c = 'x';
    errno = 0;
    long rc = syscall(SYS_ioctl, slave, (unsigned long)TIOCSTI, &c);
    int sti = rc < 0 ? errno : 0;
    errno = 0;
    rc = syscall(SYS_ioctl, slave, (unsigned long)TIOCSTI | (1UL << 32), &c);
    int sti_high = rc < 0 ? errno : 0;
    char sub = 12;   // TIOCL_GETSHIFTSTATE
    errno = 0;
    rc = syscall(SYS_ioctl, slave, (unsigned long)TIOCLINUX, &sub);
    int linux_ioctl = rc < 0 ? errno : 0;
    begin(0);
    emit("{\"dev_tty\": %d, \"tiocsti\": %d, \"tiocsti_high\": %d, \"tioclinux\": %d}", dev_tty, sti, sti_high, linux_ioctl);
    close(slave);
    close(master);
    return finish();
}

// personality(VALUE) as a raw syscall; the old persona is restored when the call succeeded.
static int cmd_personality(int argc, char **argv) {
    if (argc < 1) return -1;
    errno = 0;
    long old = syscall(SYS_personality, strtoul(argv[0], NULL, 0));
    int e = errno;
    if (old >= 0) syscall(SYS_personality, (unsigned long)old);
    return report(old, e);
}

// ---- identity and confinement ------------------------------------------------------------

static int cmd_status(int argc, char **argv) {
    (void)argc;
    (void)argv;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f) return report(-1, errno);
    static const char *keys[] = {"Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb",
                                 "NoNewPrivs", "Seccomp", "Seccomp_filters", "NSpid", "PPid"};
    char line[512];
    begin(0);
    emit("{");
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = '\0';
        for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
            if (strcmp(line, keys[i]) != 0) continue;
            char *v = colon + 1;
            while (*v == ' ' || *v == '\t') v++;
            size_t len = strcspn(v, "\n");
            if (!first) emit(", ");
            first = 0;
            emit_cstr(line);
            emit(": ");
            emit_str(v, len);
        }
    }
    fclose(f);
    emit("}");
    return finish();
}

static int cmd_fds(int argc, char **argv) {
    (void)argc;
    (void)argv;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return report(-1, errno);
    begin(0);
    emit("{");
    int first = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == dirfd(d)) continue;   // the listing's own descriptor
        char path[64], target[4096];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) n = 0;
        target[n] = '\0';
        if (!first) emit(", ");
        first = 0;
        emit("\"%d\": ", fd);
        emit_cstr(target);
    }
    closedir(d);
    emit("}");
    return finish();
}

static int cmd_limits(int argc, char **argv) {
    (void)argc;
    (void)argv;
    static const struct { const char *name; int res; } lims[] = {
        {"NOFILE", RLIMIT_NOFILE}, {"CORE", RLIMIT_CORE}, {"NPROC", RLIMIT_NPROC},
        {"MEMLOCK", RLIMIT_MEMLOCK}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"RTPRIO", RLIMIT_RTPRIO},
    };
    begin(0);
    emit("{");
    for (size_t i = 0; i < sizeof lims / sizeof *lims; i++) {
        struct rlimit r;
        getrlimit(lims[i].res, &r);
        if (i) emit(", ");
        emit("\"%s\": [", lims[i].name);
        if (r.rlim_cur == RLIM_INFINITY) emit("-1, "); else emit("%llu, ", (unsigned long long)r.rlim_cur);
        if (r.rlim_max == RLIM_INFINITY) emit("-1]"); else emit("%llu]", (unsigned long long)r.rlim_max);
    }
    emit("}");
    return finish();
}

static int cmd_euid(int argc, char **argv) {
    (void)argc;
    (void)argv;
    uid_t r, e, s;
    gid_t gr, ge, gs;
    getresuid(&r, &e, &s);
    getresgid(&gr, &ge, &gs);
    begin(0);
    emit("{\"ruid\": %u, \"euid\": %u, \"suid\": %u, \"rgid\": %u, \"egid\": %u, \"sgid\": %u, \"pid\": %d, \"ppid\": %d}",
         r, e, s, gr, ge, gs, getpid(), getppid());
    return finish();
}

// Pids of this pid namespace's /proc, as a JSON list: all of them, or (with a needle) those
// whose command line contains it, this probe excepted.
static int list_pids(const char *needle) {
    DIR *d = opendir("/proc");
    if (!d) return report(-1, errno);
    begin(0);
    emit("[");
    int first = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        if (needle) {
            if (atoi(e->d_name) == getpid()) continue;
            char path[300], buf[8192];
            snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) continue;
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n <= 0) continue;
            for (ssize_t i = 0; i < n; i++) if (buf[i] == '\0') buf[i] = ' ';
            buf[n] = '\0';
            if (!strstr(buf, needle)) continue;
        }
        if (!first) emit(", ");
        first = 0;
        emit("%s", e->d_name);
    }
    closedir(d);
    emit("]");
    return finish();
}

static int cmd_pids(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return list_pids(NULL);
}

static int cmd_hostname(int argc, char **argv) {
    (void)argc;
    (void)argv;
    char name[256] = "";
    gethostname(name, sizeof name);
    begin(0);
    emit_cstr(name);
    return finish();
}

static int cmd_sethostname(int argc, char **argv) {
    if (argc < 1) return -1;
    return TRY(sethostname(argv[0], strlen(argv[0])));
}

// ---- signals and tracing -----------------------------------------------------------------

static int cmd_kill(int argc, char **argv) {
    if (argc < 2) return -1;
    return TRY(kill((pid_t)atoi(argv[0]), atoi(argv[1])));
}

static int cmd_ptrace_attach(int argc, char **argv) {
    if (argc < 1) return -1;
    pid_t pid = (pid_t)atoi(argv[0]);
    errno = 0;
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    int e = errno;
    if (rc == 0) {
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    }
    return report(rc, e);
}

// What `strace self` needs first: a child asks to be traced by us.
static int cmd_ptrace_traceme(int argc, char **argv) {
    (void)argc;
    (void)argv;
    int p[2];
    if (pipe(p) < 0) return report(-1, errno);
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        int e = ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 ? errno : 0;
        ssize_t ignored = write(p[1], &e, sizeof e);
        (void)ignored;
        _exit(0);
    }
    close(p[1]);
    int e = EIO;
    ssize_t n = read(p[0], &e, sizeof e);
    (void)n;
    waitpid(pid, NULL, 0);
    return report(e ? -1 : 0, e);
}

// An orphaned grandchild exits; how long does it stay a zombie before PID 1 reaps it?
static int cmd_zombie(int argc, char **argv) {
    (void)argc;
    (void)argv;
    int p[2];
    if (pipe(p) < 0) return report(-1, errno);
    pid_t child = fork();
    if (child == 0) {
        pid_t me = getpid();
        pid_t grandchild = fork();
        if (grandchild == 0) {
            close(p[0]);
            // Wait until our parent is gone (we are an orphan, re-parented to PID 1), then
            // exit; our end of the pipe closes as we exit, which is the observer's signal.
            while (getppid() == me) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
            }
            _exit(0);
        }
        ssize_t ignored = write(p[1], &grandchild, sizeof grandchild);
        (void)ignored;
        _exit(0);
    }
    close(p[1]);
    pid_t grandchild = 0;
    ssize_t n = read(p[0], &grandchild, sizeof grandchild);
    waitpid(child, NULL, 0);
    if (n != sizeof grandchild) return report(-1, EIO);
    char buf[8];
    while (read(p[0], buf, sizeof buf) > 0) {}   // EOF: the grandchild has exited
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", grandchild);
    long waited_us = 0;
    char state = '?';
    int gone = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        waited_us = (t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000;
        FILE *f = fopen(path, "re");
        if (!f) {
            gone = 1;
            break;
        }
        char line[512];
        char *ok = fgets(line, sizeof line, f);
        fclose(f);
        char *close_paren = ok ? strrchr(line, ')') : NULL;
        state = close_paren && close_paren[1] ? close_paren[2] : '?';
        if (waited_us > 2000000) break;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    begin(gone ? 0 : EBUSY);
    emit("{\"grandchild\": %d, \"reaped_after_us\": %ld, \"gone\": %s, \"last_state\": \"%c\"}", grandchild, waited_us,
         gone ? "true" : "false", state);
    return finish();
}

// ---- sockets -----------------------------------------------------------------------------

static int family_of(const char *s) {
    if (!strcmp(s, "AF_UNIX")) return AF_UNIX;
    if (!strcmp(s, "AF_INET")) return AF_INET;
    if (!strcmp(s, "AF_INET6")) return AF_INET6;
    if (!strcmp(s, "AF_NETLINK")) return AF_NETLINK;
    if (!strcmp(s, "AF_PACKET")) return AF_PACKET;
    if (!strcmp(s, "AF_ALG")) return 38;
    if (!strcmp(s, "AF_VSOCK")) return 40;
    return atoi(s);
}

static int cmd_socket(int argc, char **argv) {
    if (argc < 1) return -1;
    int family = family_of(argv[0]);
    int type = family == 38 ? SOCK_SEQPACKET : (family == AF_NETLINK || family == AF_PACKET ? SOCK_DGRAM : SOCK_STREAM);
    if (argc > 1) type = atoi(argv[1]);
    errno = 0;
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    int e = errno;
    if (fd >= 0) close(fd);
    return report(fd, e);
}

static int cmd_connect_tcp(int argc, char **argv) {
    if (argc < 2) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return report(-1, errno);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, argv[0], &a.sin_addr);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = rc < 0 ? errno : 0;
    if (rc < 0 && e == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, 3000) == 1) {
            socklen_t len = sizeof e;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len);
        } else {
            e = ETIMEDOUT;
        }
    }
    close(fd);
    return report(e ? -1 : 0, e);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *name) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len > sizeof a->sun_path - 2) len = sizeof a->sun_path - 2;
    memcpy(a->sun_path + 1, name, len);   // sun_path[0] = 0: the abstract namespace
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

// Listens on the abstract socket NAME for up to SECONDS, accepting; a client that sends 'q'
// ends it early. Reports the number of connections seen.
static int cmd_listen_abstract(int argc, char **argv) {
    if (argc < 2) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return report(-1, errno);
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, argv[0]);
    if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 16) < 0) return report(-1, errno);
    long seconds = atol(argv[1]);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long accepted = 0;
    int quit = 0;
    while (!quit) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long left_ms = seconds * 1000 - ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
        if (left_ms <= 0) break;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)left_ms) != 1) continue;
        int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        accepted++;
        struct pollfd pc = {.fd = c, .events = POLLIN};
        char byte = 0;
        if (poll(&pc, 1, 500) == 1 && read(c, &byte, 1) == 1 && byte == 'q') quit = 1;
        close(c);
    }
    close(fd);
    return report(accepted, 0);
}

// Connects to the abstract socket NAME; with a MESSAGE, sends it before closing.
static int cmd_connect_abstract(int argc, char **argv) {
    if (argc < 1) return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return report(-1, errno);
    struct sockaddr_un a;
    socklen_t len = abstract_addr(&a, argv[0]);
    errno = 0;
    long rc = connect(fd, (struct sockaddr *)&a, len);
    int e = errno;
    if (rc == 0 && argc > 1) {
        ssize_t n = write(fd, argv[1], strlen(argv[1]));
        (void)n;
    }
    close(fd);
    return report(rc, e);
}

static int cmd_find_cmdline(int argc, char **argv) {
    if (argc < 1) return -1;
    return list_pids(argv[0]);
}

// ---- dispatch ----------------------------------------------------------------------------

static const struct {
    const char *name;
    int (*run)(int, char **);
} commands[] = {
    {"syscall", cmd_syscall}, {"nr", cmd_nr}, {"unshare", cmd_unshare}, {"clone-ns", cmd_clone_ns},
    {"ls", cmd_ls}, {"chroot-escape", cmd_chroot_escape}, {"mount-tmpfs", cmd_mount_tmpfs},
    {"open-write", cmd_open_write}, {"write", cmd_write}, {"read", cmd_read}, {"readlink", cmd_readlink},
    {"stat", cmd_stat}, {"statfs", cmd_statfs}, {"fill", cmd_fill}, {"mknod", cmd_mknod},
    {"openpt", cmd_openpt}, {"status", cmd_status}, {"fds", cmd_fds}, {"limits", cmd_limits},
    {"euid", cmd_euid}, {"pids", cmd_pids}, {"hostname", cmd_hostname}, {"sethostname", cmd_sethostname},
    {"kill", cmd_kill}, {"ptrace-attach", cmd_ptrace_attach}, {"ptrace-traceme", cmd_ptrace_traceme},
    {"zombie", cmd_zombie}, {"socket", cmd_socket}, {"connect-tcp", cmd_connect_tcp},
    {"listen-abstract", cmd_listen_abstract}, {"connect-abstract", cmd_connect_abstract},
    {"find-cmdline", cmd_find_cmdline}, {"open-rw", cmd_open_rw}, {"socket-raw", cmd_socket_raw},
    {"tty-inject", cmd_tty_inject}, {"personality", cmd_personality},
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: probe COMMAND [ARGS...]\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        if (strcmp(commands[i].name, argv[1]) == 0) {
            check_name = argc > 2 && !strcmp(argv[1], "syscall") ? argv[2] : argv[1];
            int rc = commands[i].run(argc - 2, argv + 2);
            if (rc < 0) {
                fprintf(stderr, "probe %s: bad arguments\n", argv[1]);
                return 2;
            }
            return 0;
        }
    }
    fprintf(stderr, "probe: unknown command %s\n", argv[1]);
    return 2;
}
