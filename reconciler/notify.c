/* systemd's notify protocol, never blocking.  See notify.h. */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"

/* $NOTIFY_SOCKET as an address: 1, 0 when unset, -EAFNOSUPPORT for what
 * is not a unix socket (systemd's vsock: form). */
static int notify_address(struct sockaddr_un *sa, socklen_t *len)
{
    const char *e = getenv("NOTIFY_SOCKET");
    if (!e || !*e)
        return 0;
    size_t n = strlen(e);
    if ((e[0] != '/' && e[0] != '@') || n >= sizeof(sa->sun_path))
        return -EAFNOSUPPORT;
    *sa = (struct sockaddr_un){.sun_family = AF_UNIX};
    memcpy(sa->sun_path, e, n);
    if (e[0] == '@') /* abstract: the name is the n bytes, no NUL after */
        sa->sun_path[0] = '\0';
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
    return 1;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int zr_notify(zr_notify_kind kind, const char *text)
{
    struct sockaddr_un sa;
    socklen_t len;
    int r = notify_address(&sa, &len);
    if (r <= 0)
        return r;
    _cleanup_(closep) int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    /* Connected, so that poll() says when the receiver's queue has room. */
    if (connect(fd, (const struct sockaddr *)&sa, len) < 0)
        return -errno;
    long long deadline = now_ms() + (kind == ZR_NOTIFY_STATE ? ZR_NOTIFY_WAIT_MS : 0);
    for (;;) {
        if (send(fd, text, strlen(text), MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 1;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        long long left = deadline - now_ms();
        if (left <= 0)
            return -EAGAIN;
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        (void)poll(&pfd, 1, (int)left); /* a signal ends the wait early: tried again */
    }
}

int zr_notifyf(zr_notify_kind kind, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *text = zr_vasprintf(fmt, ap);
    va_end(ap);
    return zr_notify(kind, text);
}
