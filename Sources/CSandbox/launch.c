// The launch, parent side: csbx_launch_begin clones the child into its namespaces and writes
// its id maps, csbx_launch_finish sends "go" and reads how the child's way to exec ended
// (launch_child.c). Read docs/architecture.md ("Launch") for the sequence.
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

const uint64_t CSBX_CLONE_NEWNS = CLONE_NEWNS;
const uint64_t CSBX_CLONE_NEWPID = CLONE_NEWPID;
const uint64_t CSBX_CLONE_NEWUTS = CLONE_NEWUTS;
const uint64_t CSBX_CLONE_NEWIPC = CLONE_NEWIPC;
const uint64_t CSBX_CLONE_NEWNET = CLONE_NEWNET;
const uint64_t CSBX_CLONE_NEWUSER = CLONE_NEWUSER;
const uint64_t CSBX_CLONE_NEWCGROUP = CLONE_NEWCGROUP;

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)len ? 0 : -1;
}

static int write_maps(pid_t pid, const struct csbx_launch_spec *spec) {
    char path[64];
    const char *names[2] = {"uid_map", "gid_map"};
    const char *maps[2] = {spec->uid_map, spec->gid_map};
    for (int i = 0; i < 2; i++) {
        if (!maps[i]) continue;
        csbx_proc_path(path, pid, names[i]);
        if (write_file(path, maps[i]) < 0) return -1;
    }
    return 0;
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define CHILD_STACK_SIZE (256 * 1024)

struct child_start {
    const struct csbx_launch_spec *spec;
    int sync_fd;
};

// `arg` points into the child's own stack mapping (just above the guard page), which stays
// mapped until the launch is finished.
__attribute__((noreturn)) static void child_entry(void *arg) {
    const struct child_start *start = arg;
    csbx_child_main(start->spec, start->sync_fd);
}

// csbx_clone3_run(args, size, fn, arg): clone3 that runs fn(arg) on args->stack in the child.
// A plain syscall() cannot be used with a new stack: the child would return from it into a
// frame that is not on its stack. Returns the child's pid or -errno in the parent; never
// returns in the child.
#if defined(__x86_64__)
__asm__(".text\n"
        ".type csbx_clone3_run,@function\n"
        "csbx_clone3_run:\n"
        "    mov %rdx, %r8\n"            // fn and arg survive the syscall in r8/r9
        "    mov %rcx, %r9\n"
        "    mov $435, %eax\n"           // __NR_clone3 (rdi = args, rsi = size)
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jnz 1f\n"
        "    xor %ebp, %ebp\n"           // the child's outermost frame
        "    mov %r9, %rdi\n"
        "    call *%r8\n"
        "    mov $60, %eax\n"            // fn does not return; exit(127) if it ever did
        "    mov $127, %edi\n"
        "    syscall\n"
        "1:  ret\n"
        ".size csbx_clone3_run, .-csbx_clone3_run\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".type csbx_clone3_run,%function\n"
        "csbx_clone3_run:\n"
        "    mov x10, x2\n"
        "    mov x11, x3\n"
        "    mov x8, #435\n"
        "    svc #0\n"
        "    cbnz x0, 1f\n"
        "    mov x29, xzr\n"
        "    mov x30, xzr\n"
        "    mov x0, x11\n"
        "    blr x10\n"
        "    mov x8, #93\n"
        "    mov x0, #127\n"
        "    svc #0\n"
        "1:  ret\n"
        ".size csbx_clone3_run, .-csbx_clone3_run\n");
#else
#error "clone3_run needs a trampoline for this architecture"
#endif
long csbx_clone3_run(struct clone_args *args, size_t size, void (*fn)(void *), void *arg);

// Undoes what csbx_launch_begin set up for the launch itself (not the child).
static void release_launch(struct csbx_result *result) {
    if (result->child_stack) {
        munmap(result->child_stack, CHILD_STACK_SIZE);
        result->child_stack = NULL;
    }
    pthread_sigmask(SIG_SETMASK, &result->saved_mask, NULL);
}

int csbx_launch_begin(const struct csbx_launch_spec *spec, struct csbx_result *result) {
    uint64_t started = now_ns();
    memset(result, 0, sizeof *result);
    result->pid = -1;
    result->pidfd = -1;
    result->sync_fd = -1;

    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        result->stage = CSBX_STAGE_SYNC;
        result->err = errno;
        return -1;
    }

    // Block every signal in this thread until the launch is finished: no handler of the
    // daemon may run in the child before it has reset them (it starts with this mask), and
    // no signal may interrupt this thread's waits while the child writes to the errno they
    // share (see below).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &result->saved_mask);

    // The child shares the daemon's memory (CLONE_VM) on a stack of its own until its execve
    // gives it a fresh address space: copying, then tearing down, the page tables of a
    // daemon with tens of megabytes mapped would cost more than everything else the launch
    // does. It only reads what the parent prepared and writes its own stack (and errno).
    void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(sv[0]);
        close(sv[1]);
        pthread_sigmask(SIG_SETMASK, &result->saved_mask, NULL);
        result->stage = CSBX_STAGE_CLONE;
        result->err = e;
        return -1;
    }
    mprotect(stack, 4096, PROT_NONE);   // guard page: an overflow faults instead of corrupting
    result->child_stack = stack;

    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = spec->namespaces | CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND;
    if (spec->cgroup_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)spec->cgroup_fd;
    }
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = SIGCHLD;
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = CHILD_STACK_SIZE;
    struct child_start *start = (struct child_start *)((char *)stack + 4096);
    start->spec = spec;
    start->sync_fd = sv[1];
    long pid = csbx_clone3_run(&args, sizeof args, child_entry, start);
    if (pid == -EINVAL) {
        // Kernels before 5.5 do not know CLONE_CLEAR_SIGHAND. Without it a daemon handler
        // could run in the child before reset_signals: refuse rather than risk it.
        pid = -ENOSYS;
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        release_launch(result);
        result->stage = CSBX_STAGE_CLONE;
        result->err = (int)-pid;
        return -1;
    }
    result->pid = (pid_t)pid;
    result->pidfd = pidfd;
    result->sync_fd = sv[0];

    if ((spec->namespaces & CLONE_NEWUSER) && write_maps((pid_t)pid, spec) < 0) {
        int e = errno;
        csbx_launch_abort(result);
        result->stage = CSBX_STAGE_USERNS_MAPS;
        result->err = e;
        return -1;
    }
    result->clone_ns = now_ns() - started;
    return 0;
}

int csbx_launch_finish(struct csbx_result *result, int pass_fd) {
    uint64_t started = now_ns();
    result->go_at = started;
    struct csbx_child_report report = {0, 0, 0};
    if (csbx_send_with_fd(result->sync_fd, "G", 1, pass_fd) != 1) {
        report.stage = CSBX_STAGE_SYNC;
        report.err = errno;
    } else {
        ssize_t n;
        do { n = read(result->sync_fd, &report, sizeof report); } while (n < 0 && errno == EINTR);
        if (n < 0) {
            report.stage = CSBX_STAGE_SYNC;
            report.err = errno;
        } else if (n == 0) {
            report.stage = 0;   // EOF: the exec closed the child's end. The init runs.
        } else if (n != sizeof report) {
            report.stage = CSBX_STAGE_SYNC;
            report.err = EPROTO;
        }
    }
    close(result->sync_fd);
    result->sync_fd = -1;
    result->exec_at = now_ns();
    result->setup_ns = result->exec_at - started;
    if (report.stage == 0) {
        // The exec has replaced the child's memory: its stack here is free.
        release_launch(result);
        return 0;
    }
    csbx_launch_abort(result);
    result->stage = report.stage;
    result->err = report.err;
    result->detail = report.detail;
    return -1;
}

void csbx_launch_abort(struct csbx_result *result) {
    if (result->sync_fd >= 0) {
        close(result->sync_fd);   // a child still waiting for "go" sees EOF and exits
        result->sync_fd = -1;
    }
    if (result->pidfd >= 0) {
        int status;
        csbx_pidfd_signal(result->pidfd, SIGKILL);
        csbx_pidfd_wait(result->pidfd, -1, &status);
        close(result->pidfd);
    }
    result->pid = -1;
    result->pidfd = -1;
    release_launch(result);   // the child is reaped: nothing runs on its stack any more
}
