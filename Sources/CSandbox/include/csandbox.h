// The syscall layer of Claworc's sandbox: the only code that runs between clone and exec,
// and the few calls Swift's Glibc module cannot make.
//
// Swift prepares every string, path and table in the parent; the child side only walks
// those plain C structures with raw syscalls, because it is a copy of a multi-threaded
// process where malloc, locks and the Swift runtime are off limits.
//
// One module, one header per concern: csbx_launch.h (the instance launch), csbx_spawn.h
// (services started by the init), csbx_seccomp.h (the filters), csbx_sys.h (pidfds, fd
// passing and other shims).
#ifndef CSANDBOX_H
#define CSANDBOX_H

#include <stdint.h>

#include "csbx_launch.h"
#include "csbx_seccomp.h"
#include "csbx_spawn.h"
#include "csbx_sys.h"

#ifdef __cplusplus
extern "C" {
#endif

// Namespace flags, re-exported because Swift's Glibc module does not see the _GNU_SOURCE
// CLONE_* macros.
extern const uint64_t CSBX_CLONE_NEWNS;
extern const uint64_t CSBX_CLONE_NEWPID;
extern const uint64_t CSBX_CLONE_NEWUTS;
extern const uint64_t CSBX_CLONE_NEWIPC;
extern const uint64_t CSBX_CLONE_NEWNET;
extern const uint64_t CSBX_CLONE_NEWUSER;
extern const uint64_t CSBX_CLONE_NEWCGROUP;
// open/link flags Swift's Glibc module does not see either.
extern const int CSBX_O_TMPFILE;
extern const int CSBX_AT_EMPTY_PATH;

#ifdef __cplusplus
}
#endif
#endif
