// The instance's seccomp profiles (seccomp_profile.c).
#ifndef CSBX_SECCOMP_H
#define CSBX_SECCOMP_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Seccomp profiles, compiled with libseccomp in the caller into classic BPF.
enum csbx_seccomp_profile {
    // Every process of an instance: a default-deny allowlist (unknown syscalls: ENOSYS;
    // known-dangerous ones: EPERM). Namespace creation is allowed here only because
    // Chromium's own sandbox needs it; CSBX_SECCOMP_NO_NAMESPACES is stacked on top for
    // every other service.
    CSBX_SECCOMP_INSTANCE = 1,
    // Add-on filter: clone with CLONE_NEW* flags, unshare and chroot fail with EPERM.
    CSBX_SECCOMP_NO_NAMESPACES = 2,
    // Argument checks stacked on the baseline for every process: socket families and
    // netlink protocols nothing needs, TIOCSTI and TIOCLINUX fail with EPERM.
    CSBX_SECCOMP_ARGUMENTS = 3,
};
// Returns the filter's length in bytes and stores a malloc'd copy in *out; -errno on failure.
long csbx_seccomp_build(int profile, unsigned char **out);

#ifdef __cplusplus
}
#endif
#endif
