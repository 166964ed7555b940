// Starting a service inside an instance. The caller is the init: single-threaded, so a
// plain fork is safe, and the child's steps are numbered for csbx_spawn_step_name.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

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
        csbx_reset_signals();
        if (setsid() < 0) goto fail;
        step = 2;
        int lifted[3 + 8];
        int n_extra = spec->n_extra > 8 ? 8 : spec->n_extra;
        const int sources[3] = {spec->stdin_fd, spec->stdout_fd, spec->stderr_fd};
        for (int i = 0; i < 3; i++) lifted[i] = csbx_lift_fd(sources[i]);
        for (int i = 0; i < n_extra; i++) lifted[3 + i] = csbx_lift_fd(spec->extra_fds[i]);
        for (int i = 0; i < 3 + n_extra; i++) {
            if (lifted[i] < 0) {
                if (i < 3) continue;   // a missing stdio fd stays as it was
                goto fail;
            }
            if (dup2(lifted[i], i) < 0) goto fail;
        }
        csbx_mark_cloexec_from((unsigned int)(3 + n_extra));
        step = 12;
        // A terminal's shell: its pty slave (stdin) becomes the new session's controlling tty.
        if (spec->controlling_tty && ioctl(0, TIOCSCTTY, 0) < 0) goto fail;
        step = 3;
        if (spec->drop_all_caps && csbx_limit_bounding_set(0) < 0) goto fail;
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
        if (spec->drop_all_caps && csbx_set_capability_sets(0) < 0) goto fail;
        step = 8;
        if (spec->cwd && chdir(spec->cwd) < 0) goto fail;
        step = 9;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) goto fail;
        step = 10;
        if (spec->seccomp_len && csbx_load_filter(spec->seccomp_filter, spec->seccomp_len) < 0) goto fail;
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

const char *csbx_spawn_step_name(int err) {
    static const char *const names[] = {"?", "setsid", "fds", "capability bounding set", "setgroups",
                                        "setresgid", "setresuid", "capabilities", "chdir", "no_new_privs",
                                        "seccomp", "exec", "controlling terminal"};
    int step = err >> 16;
    return step >= 0 && step < (int)(sizeof names / sizeof *names) ? names[step] : "?";
}

int csbx_pty_open(unsigned short cols, unsigned short rows, uid_t uid, gid_t gid, int *slave) {
    *slave = -1;
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) return -1;
    if (grantpt(master) < 0 || unlockpt(master) < 0) goto fail;
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    if (ioctl(master, TIOCSWINSZ, &ws) < 0) goto fail;
    // TIOCGPTPEER opens the slave of this very master (no path lookup in /dev/pts).
    int s = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) goto fail;
    // The shell's user owns its terminal, as login would arrange (tty, mesg, ssh-agent want it).
    if (fchown(s, uid, gid) < 0 || fchmod(s, 0620) < 0) {
        int e = errno;
        close(s);
        errno = e;
        goto fail;
    }
    *slave = s;
    return master;
fail:;
    int e = errno;
    close(master);
    errno = e;
    return -1;
}

int csbx_pty_resize(int master, unsigned short cols, unsigned short rows) {
    struct winsize ws = {.ws_row = rows, .ws_col = cols};
    return ioctl(master, TIOCSWINSZ, &ws);
}
