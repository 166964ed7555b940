/* A hostile instance init for test_hostile_init.py: runs in place of claworc's init (the
 * daemon's hidden --unsafe-test-init), says hello like the real one, then floods the control
 * socket (fd 3) with replies nobody asked for, each carrying a descriptor, then junk.
 * Static, so it needs nothing from the instance's root. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int send_with_fd(int sock, const char *text, int fd) {
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof control.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    return (int)sendmsg(sock, &msg, MSG_NOSIGNAL);
}

static void leave(int sig) { (void)sig; _exit(0); }

int main(void) {
    /* PID 1 of a namespace gets from outside only signals it handles: take SIGTERM. */
    signal(SIGTERM, leave);
    if (send_with_fd(3, "{\"id\":0,\"ok\":true,\"version\":\"1.1\",\"services\":[]}", -1) < 0) return 1;
    char text[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(text, sizeof text, "{\"id\":%d,\"ok\":true}", 1000000 + i);
        if (send_with_fd(3, text, 0) < 0) break;
    }
    for (int i = 0; i < 3000; i++)
        if (send_with_fd(3, "{not json", -1) < 0) break;
    for (;;) pause();
}
