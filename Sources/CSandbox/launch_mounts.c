// The mount table of a launch: what each csbx_mount op does (applied by the child, in
// launch_child.c, below the stage directory that becomes the instance's root), and the
// id-mapped base tree the parent prepares for image mode.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

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

// The child runs these as root of the instance's user namespace, below the stage directory;
// a failure of a non-optional op fails the launch (CSBX_STAGE_MOUNTS with its index).
int csbx_apply_mount(const char *root, const struct csbx_mount *m, int passed_fd) {
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

// Parent side, image mode: made between begin and finish, passed to the child with "go".
int csbx_idmapped_tree(const char *path, pid_t pid) {
    int tree = (int)syscall(SYS_open_tree, AT_FDCWD, path, 1 /* OPEN_TREE_CLONE */ | O_CLOEXEC | AT_RECURSIVE);
    if (tree < 0) return -errno;
    char ns[64];
    csbx_proc_path(ns, pid, "ns/user");
    int userns = open(ns, O_RDONLY | O_CLOEXEC);
    if (userns < 0) {
        int e = errno;
        close(tree);
        return -e;
    }
    struct csbx_mount_attr attr = {.attr_set = CSBX_MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
    long rc = syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr);
    int e = errno;
    close(userns);
    if (rc < 0) {
        close(tree);
        return -e;
    }
    return tree;
}
