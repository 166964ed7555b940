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
};
// Returns the pid, or -1 with *err set: errno in the low 16 bits, the failing step of the
// child above them (0 when the parent failed); csbx_spawn_step_name names it.
pid_t csbx_spawn(const struct csbx_spawn_spec *spec, int *err);
const char *csbx_spawn_step_name(int err);

#ifdef __cplusplus
}
#endif
#endif
