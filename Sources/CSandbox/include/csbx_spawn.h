// Starting a service inside an instance: called by the single-threaded init (spawn.c).
#ifndef CSBX_SPAWN_H
#define CSBX_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

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
    int drop_all_caps;               // empty bounding/ambient/inheritable sets before exec
    const void *seccomp_filter;      // an add-on filter stacked on the inherited one; NULL: none
    size_t seccomp_len;
    int controlling_tty;             // make stdin (a pty slave) the new session's controlling terminal
};
// Returns the pid, or -1 with *err set: errno in the low 16 bits, the failing step of the
// child above them (0 when the parent failed); csbx_spawn_step_name names it.
pid_t csbx_spawn(const struct csbx_spawn_spec *spec, int *err);
const char *csbx_spawn_step_name(int err);

// A new pseudo-terminal of cols x rows: returns the master (CLOEXEC, O_NOCTTY) and stores
// the slave (CLOEXEC, O_NOCTTY, owned by uid/gid) in *slave; -1 with errno on failure.
int csbx_pty_open(unsigned short cols, unsigned short rows, uid_t uid, gid_t gid, int *slave);
// TIOCSWINSZ on a pty master; 0 or -1 with errno.
int csbx_pty_resize(int master, unsigned short cols, unsigned short rows);

#ifdef __cplusplus
}
#endif
#endif
