/* systemd's notify protocol (sd_notify(3)) for watch, without ever
 * blocking the caller: a datagram socket's receiver queues ~10 messages,
 * and a NOTIFY_SOCKET nobody reads would otherwise stop watch in
 * sendmsg() for good, repairs and SIGTERM with it.  No printing: the
 * caller says what could not be sent. */
#pragma once

#include "util.h"

/* How hard to try when the receiver's queue is full. */
typedef enum {
    /* STATUS=, WATCHDOG=1: dropped at once, the next one follows soon. */
    ZR_NOTIFY_DROPPABLE,
    /* READY=1, RELOADING=1, STOPPING=1: waits up to ZR_NOTIFY_WAIT_MS for room. */
    ZR_NOTIFY_STATE,
    ZR_NOTIFY__COUNT,
} zr_notify_kind;

#define ZR_NOTIFY_WAIT_MS 1000

/* Sends `text` as one datagram to $NOTIFY_SOCKET (a path, or '@' for the
 * abstract namespace).  Returns 1 when sent, 0 without NOTIFY_SOCKET, else
 * a negative errno: -EAGAIN when the receiver's queue had no room in time
 * (the message is dropped), another one when the socket cannot be used. */
int zr_notify(zr_notify_kind kind, const char *text);
int zr_notifyf(zr_notify_kind kind, const char *fmt, ...) _printf_(2, 3);
