/* systemd's notify protocol without blocking (issue 22 #5): a receiver that
 * never reads fills its queue after ~10 datagrams; from then on a status
 * line is dropped at once and a state change gives up after its bounded
 * wait, where sd_notify() would block in sendmsg() for good. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

/* A bound datagram socket in a fresh directory, its path in `path`. */
static int bind_receiver(char *path, size_t size)
{
    char dir[] = "/tmp/zr-notify-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, size, "%s/notify", dir);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
    return fd;
}

static void unbind(int fd, char *path)
{
    close(fd);
    unlink(path);
    *strrchr(path, '/') = '\0';
    rmdir(path);
}

Test(notify, no_socket_is_nothing_to_do)
{
    unsetenv("NOTIFY_SOCKET");
    cr_expect_eq(zr_notify(ZR_NOTIFY_STATE, "READY=1"), 0);
}

Test(notify, messages_arrive_as_sent)
{
    char path[108];
    int fd = bind_receiver(path, sizeof(path));
    setenv("NOTIFY_SOCKET", path, 1);
    cr_assert_eq(zr_notifyf(ZR_NOTIFY_STATE, "READY=1\nSTATUS=%s", "watching"), 1);
    char buf[64] = {0};
    cr_assert_eq(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 23);
    cr_expect_str_eq(buf, "READY=1\nSTATUS=watching");
    unbind(fd, path);
}

Test(notify, a_receiver_that_never_reads_blocks_nothing, .timeout = 30)
{
    char path[108];
    int fd = bind_receiver(path, sizeof(path));
    setenv("NOTIFY_SOCKET", path, 1);
    int sent = 0, dropped = 0;
    for (int i = 0; i < 100; i++) {
        int r = zr_notify(ZR_NOTIFY_DROPPABLE, "STATUS=busy");
        cr_assert(r == 1 || r == -EAGAIN, "%d: %s", r, strerror(-r));
        sent += r == 1;
        dropped += r == -EAGAIN;
    }
    cr_expect_gt(sent, 0);
    cr_expect_gt(dropped, 0, "the queue never filled (%d sent)", sent);
    /* a state change is tried, waits its bounded time, and says it failed */
    cr_expect_eq(zr_notify(ZR_NOTIFY_STATE, "STOPPING=1"), -EAGAIN);
    unbind(fd, path);
}

Test(notify, abstract_socket)
{
    char name[64];
    snprintf(name, sizeof(name), "@zr-notify-test-%d", (int)getpid());
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t n = strlen(name);
    memcpy(sa.sun_path, name, n);
    sa.sun_path[0] = '\0';
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0);
    setenv("NOTIFY_SOCKET", name, 1);
    cr_assert_eq(zr_notify(ZR_NOTIFY_STATE, "READY=1"), 1);
    char buf[16] = {0};
    cr_expect_eq(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), 7);
    close(fd);
}

Test(notify, not_a_unix_socket)
{
    setenv("NOTIFY_SOCKET", "vsock:2:1234", 1);
    cr_expect_eq(zr_notify(ZR_NOTIFY_STATE, "READY=1"), -EAFNOSUPPORT);
}
