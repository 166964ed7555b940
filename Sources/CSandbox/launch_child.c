// The launch child: from "go" to the exec of the init, one path in stage order. Read
// docs/architecture.md ("Launch", child side) for why each step is where it is.
//
// Rule for everything reachable from here: raw syscalls and async-signal-safe libc only, no
// malloc, no stdio, no locks. Until its execve the child runs on its own stack inside the
// multi-threaded daemon's memory (CLONE_VM, see launch.c); whatever lock another thread
// holds stays held for it.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

__attribute__((noreturn)) static void report_and_die(int sync_fd, int stage, int err, int detail) {
    struct csbx_child_report r = {stage, err, detail};
    ssize_t ignored = write(sync_fd, &r, sizeof r);
    (void)ignored;
    _exit(127);
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

static void stamp(const struct csbx_launch_spec *spec, int point) {
    if (!spec->stage_clock) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);   // vDSO: no lock, safe here
    spec->stage_clock[point] = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void csbx_child_main(const struct csbx_launch_spec *spec, int sync_fd) {
    // 1. Go. Until "go" the parent thread is still running on the memory and thread-local storage
    // this child shares (see csbx_launch_begin): wait without touching anything but the
    // stack. Every signal is blocked and every handler was reset by CLONE_CLEAR_SIGHAND.
    char go = 0;
    int passed_fd = -1;
    ssize_t n = csbx_recv_with_fd(sync_fd, &go, 1, &passed_fd);
    if (n != 1 || go != 'G') report_and_die(sync_fd, CSBX_STAGE_SYNC, n < 0 ? errno : EPIPE, 0);
    csbx_reset_signals();
    // The daemon's umask (0o077) keeps its own files private; an instance builds its root
    // and runs its services with the conventional one.
    umask(022);
    // A session of its own, with no controlling terminal: the daemon may run in the foreground
    // of an operator's terminal, which nothing in an instance may ever open or type into.
    if (setsid() < 0) report_and_die(sync_fd, CSBX_STAGE_SESSION, errno, 0);
    stamp(spec, CSBX_CLOCK_GO);

    // 2. Identity.
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

    // 3. Mounts. Nothing mounted from here on propagates back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        report_and_die(sync_fd, CSBX_STAGE_MOUNT_PRIVATE, errno, 0);
    // The new root is a small tmpfs holding only mount points and symlinks; it is made
    // read-only by the caller's last op once everything is mounted into it.
    if (mount("tmpfs", spec->stage_dir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
        report_and_die(sync_fd, CSBX_STAGE_ROOT_TMPFS, errno, 0);
    for (int i = 0; i < spec->n_mounts; i++) {
        if (csbx_apply_mount(spec->stage_dir, &spec->mounts[i], passed_fd) < 0 && !spec->mounts[i].optional)
            report_and_die(sync_fd, CSBX_STAGE_MOUNTS, errno, i);
    }
    stamp(spec, CSBX_CLOCK_MOUNTS);

    // 4. pivot_root.
    if (chdir(spec->stage_dir) < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 0);
    // Pivot onto itself, then detach the old root stacked underneath: no put_old directory
    // remains inside the instance.
    if (syscall(SYS_pivot_root, ".", ".") < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 1);
    if (umount2(".", MNT_DETACH) < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 2);
    if (chdir("/") < 0) report_and_die(sync_fd, CSBX_STAGE_PIVOT_ROOT, errno, 3);
    stamp(spec, CSBX_CLOCK_PIVOT);

    // 5. Hostname and loopback: the uts and net namespaces are the instance's own.
    if (spec->hostname && sethostname(spec->hostname, strlen(spec->hostname)) < 0)
        report_and_die(sync_fd, CSBX_STAGE_HOSTNAME, errno, 0);
    if ((spec->namespaces & CLONE_NEWNET) && bring_loopback_up() < 0)
        report_and_die(sync_fd, CSBX_STAGE_LOOPBACK, errno, 0);
    stamp(spec, CSBX_CLOCK_NET);

    // 6. Descriptors: 0 /dev/null, 1 and 2 the instance log, 3 the control socket, 4 the
    // control listener a restarted daemon connects to. Every source is first lifted above 64
    // so no dup2 below clobbers another.
    int sync_hi = csbx_lift_fd(sync_fd);
    int exec_hi = csbx_lift_fd(spec->exec_fd);
    int stdio_hi = csbx_lift_fd(spec->stdio_fd);
    int control_hi = csbx_lift_fd(spec->control_fd);
    int listen_hi = csbx_lift_fd(spec->listen_fd);
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
    csbx_mark_cloexec_from(listen_hi >= 0 ? 5 : control_hi >= 0 ? 4 : 3);

    // 7. Limits, lowered only: the parent capped them at the daemon's own hard limits.
    for (int i = 0; i < spec->n_rlimits; i++) {
        struct rlimit lim = {.rlim_cur = spec->rlimits[i].soft, .rlim_max = spec->rlimits[i].hard};
        if (setrlimit(spec->rlimits[i].resource, &lim) < 0) report_and_die(sync_fd, CSBX_STAGE_RLIMITS, errno, i);
    }
    stamp(spec, CSBX_CLOCK_FDS);
    // 8. Capabilities and no_new_privs: what the init keeps acts only inside its user
    // namespace; nothing it execs can gain more.
    if (spec->namespaces & CLONE_NEWUSER) {
        if (csbx_limit_bounding_set(spec->keep_caps) < 0 || csbx_set_capability_sets(spec->keep_caps) < 0)
            report_and_die(sync_fd, CSBX_STAGE_CAPS, errno, 0);
    }
    if (spec->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        report_and_die(sync_fd, CSBX_STAGE_NO_NEW_PRIVS, errno, 0);
    stamp(spec, CSBX_CLOCK_CAPS);
    // 9. Init root (image mode). The loader reads the init's interpreter, libraries and /etc/ld.so.preload relative to
    // the root at exec: make that a tree of host files only, keeping the new root as the
    // working directory for the init to return to (see InstanceInit).
    if (spec->init_root && chroot(spec->init_root) < 0) report_and_die(sync_fd, CSBX_STAGE_INIT_ROOT, errno, 0);
    // 10. Seccomp. Last, so the filters only have to allow what the init itself does after exec.
    for (int i = 0; i < spec->n_filters; i++) {
        if (csbx_load_filter(spec->filters[i].code, spec->filters[i].len) < 0)
            report_and_die(sync_fd, CSBX_STAGE_SECCOMP, errno, i);
    }
    stamp(spec, CSBX_CLOCK_SECCOMP);

    // 11. Exec from the sealed memfd: its close-on-exec closes the sync socket, which the
    // parent reads as success.
    syscall(SYS_execveat, exec_hi, "", spec->argv, spec->envp, AT_EMPTY_PATH);
    report_and_die(sync_fd, CSBX_STAGE_EXEC, errno, 0);
}
