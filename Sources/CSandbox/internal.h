// What the C files of this module share and Swift never sees.
//
// Everything declared here is called between fork/clone and exec (the launch child, the
// service spawn): raw syscalls and async-signal-safe libc only, no malloc, no stdio, no locks.
#ifndef CSBX_INTERNAL_H
#define CSBX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "csandbox.h"

#define CSBX_HIDDEN __attribute__((visibility("hidden")))

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
#define CSBX_MOUNT_ATTR_IDMAP 0x00100000ULL

// exec_prep.c: the steps a launch child and a service child both take before exec.
// Default disposition for every signal, empty mask.
CSBX_HIDDEN void csbx_reset_signals(void);
// Moves fd out of the low range so dup2 into 0..3 cannot clobber another source fd.
CSBX_HIDDEN int csbx_lift_fd(int fd);
// Every fd from `first` up is closed by the exec.
CSBX_HIDDEN int csbx_mark_cloexec_from(unsigned int first);
// Bounding set = keep; ambient set empty.
CSBX_HIDDEN int csbx_limit_bounding_set(uint64_t keep);
// Permitted = effective = keep, inheritable empty.
CSBX_HIDDEN int csbx_set_capability_sets(uint64_t keep);
// Installs one classic-BPF seccomp filter (len in bytes).
CSBX_HIDDEN int csbx_load_filter(const void *filter, size_t len);
// "/proc/<pid>/<leaf>" into buf (at least 64 bytes), without stdio.
CSBX_HIDDEN void csbx_proc_path(char *buf, pid_t pid, const char *leaf);

// launch_mounts.c: one op of the mount table, applied below root (the stage directory).
CSBX_HIDDEN int csbx_apply_mount(const char *root, const struct csbx_mount *m, int passed_fd);

// launch_child.c: the child of csbx_launch_begin, from "go" to exec. Never returns.
__attribute__((noreturn)) CSBX_HIDDEN void csbx_child_main(const struct csbx_launch_spec *spec, int sync_fd);

// What a failed child writes on the sync socket (the parent reads it in csbx_launch_finish).
struct csbx_child_report {
    int32_t stage;
    int32_t err;
    int32_t detail;
};

#endif
