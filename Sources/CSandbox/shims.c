// Calls Swift's Glibc module cannot make (no glibc wrapper, variadic prctl, missing
// constants) and the small helpers built on them. Each is one system call or a short,
// self-contained sequence; none runs between fork and exec.
#define _GNU_SOURCE
#include "csandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <linux/capability.h>
#include <poll.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

const int CSBX_O_TMPFILE = O_TMPFILE;
const int CSBX_AT_EMPTY_PATH = AT_EMPTY_PATH;

// Pidfds: signals and waits can never hit a recycled pid.

int csbx_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);   // pidfds are always close-on-exec
}

int csbx_pidfd_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int csbx_pidfd_wait(int pidfd, int timeout_ms, int *wstatus) {
    struct pollfd p = {.fd = pidfd, .events = POLLIN};
    for (;;) {
        int r = poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -1;
        if (r == 0) return 0;
        break;
    }
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc;
    do { rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED); } while (rc < 0 && errno == EINTR);
    if (rc < 0 && errno == ECHILD) {   // someone else reaped it: it has exited all the same
        if (wstatus) *wstatus = 0;
        return 1;
    }
    if (rc < 0) return -1;
    if (wstatus) {
        if (info.si_code == CLD_EXITED) *wstatus = (info.si_status & 0xff) << 8;
        else *wstatus = (info.si_status & 0x7f) | (info.si_code == CLD_DUMPED ? 0x80 : 0);
    }
    return 1;
}

int csbx_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }

int csbx_signalfd_next(int fd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do { n = read(fd, &info, sizeof info); } while (n < 0 && errno == EINTR);
    return n == (ssize_t)sizeof info ? (int)info.ssi_signo : -1;
}

int csbx_notify_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) < 0) return -1;
    // Only our read end is non-blocking; the service's write end behaves as it expects.
    return fcntl(fds[0], F_SETFL, O_NONBLOCK);
}

int csbx_sealed_copy(int source_fd, const char *name) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    struct stat st;
    if (fstat(source_fd, &st) < 0) goto fail;
    off_t offset = 0;
    while (offset < st.st_size) {
        ssize_t n = sendfile(fd, source_fd, &offset, (size_t)(st.st_size - offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) goto fail;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0) goto fail;
    return fd;
fail:;
    int e = errno ? errno : EIO;
    close(fd);
    return -e;
}

int csbx_getrlimit_max(int resource, struct rlimit *out) { return getrlimit(resource, out); }

int csbx_openat2(int dirfd, const char *path, int flags, unsigned int mode, uint64_t resolve) {
    struct {
        uint64_t flags, mode, resolve;
    } how = {(uint64_t)(unsigned int)(flags | O_CLOEXEC), mode, resolve};
    long fd;
    do { fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how); } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : (int)fd;
}

int csbx_drop_capability(int cap) {
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) return -1;
    struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    uint32_t keep = ~(1U << (cap % 32));
    data[cap / 32].effective &= keep;
    data[cap / 32].permitted &= keep;
    data[cap / 32].inheritable &= keep;
    return (int)syscall(SYS_capset, &header, data);
}

int csbx_set_dumpable(int on) { return prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0); }
int csbx_set_child_subreaper(void) { return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); }

unsigned long csbx_fs_magic(const char *path) {
    struct statfs fs;
    return statfs(path, &fs) == 0 ? (unsigned long)fs.f_type : 0;
}

// Drops this process's page-table entries for the read-only, never-written segments of every
// loaded object (text, rodata; not the vDSO): the pages stay in the page cache (for the init,
// the sealed memfd every init runs from) and those still used fault back in on next use.
// Only PT_LOAD segments without PF_W, shrunk inward to whole pages, and only in objects
// without text relocations: MADV_DONTNEED on a private mapping discards its written (copied)
// pages, which would revert relocated data (RELRO lies in a writable PT_LOAD) or any other
// state to the file's bytes. Anonymous memory is never touched.
static int drop_readonly_segments(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    size_t *dropped = data;
    const uintptr_t vdso = (uintptr_t)getauxval(AT_SYSINFO_EHDR);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD && ph->p_offset == 0 && info->dlpi_addr + ph->p_vaddr == vdso) return 0;
        if (ph->p_type != PT_DYNAMIC) continue;
        for (const ElfW(Dyn) *d = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr); d->d_tag != DT_NULL; d++) {
            if (d->d_tag == DT_TEXTREL || (d->d_tag == DT_FLAGS && (d->d_un.d_val & DF_TEXTREL))) return 0;
        }
    }
    const uintptr_t page = (uintptr_t)getpagesize();
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W)) continue;
        uintptr_t start = (info->dlpi_addr + ph->p_vaddr + page - 1) & ~(page - 1);
        uintptr_t end = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
        if (end > start && madvise((void *)start, end - start, MADV_DONTNEED) == 0) *dropped += end - start;
    }
    return 0;
}

size_t csbx_drop_readonly_pages(void) {
    size_t dropped = 0;
    dl_iterate_phdr(drop_readonly_segments, &dropped);
    return dropped;
}

int csbx_malloc_trim(void) { return malloc_trim(0); }
