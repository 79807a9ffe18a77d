/* `watch`: converge once, then keep one host's guests true on libvirt's
 * events, a poll of their persistent definitions, a full pass every
 * resync interval and after each reconnect; the inventory file is
 * re-read when it changes.  Every change goes through zr_host_run()
 * (host.h).  One sd-event loop holds it all: SIGTERM/SIGINT (stop) and
 * SIGHUP (re-read) as signal sources, inotify, timers, libvirt's events
 * handed over by libvirt's own thread, the watchdog.  Must not print (the
 * caller's ops do).  It exits in one case only: a stop that a libvirt call
 * keeps waiting longer than a short grace ends the process with status 0. */
#pragma once

#include <signal.h>
#include <stdbool.h>

#include "host.h"

/* What the caller is told, in the watching process. */
struct zr_watch_stats {
    unsigned long repairs; /* runs that did at least one action */
    double last_event;     /* Unix time of the last change seen (a libvirt event or a
                            * changed definition), 0: none yet */
    size_t guests, in_sync;
    bool definitions_followed;  /* the daemon's definitions directory is watched */
    bool definitions_announced; /* the daemon sends an event for a config-only attach/detach */
};

struct zr_watch_ops {
    void *data;
    /* One repair's report, as apply's (results filled). */
    void (*report)(void *data, const struct zr_report *report, const struct zr_watch_stats *stats);
    /* A new inventory that does not validate; the last good one stays. */
    void (*invalid)(void *data, const struct zr_errors *errs);
    /* A line for stderr: a host lost or back, a guest changed by someone else. */
    void (*notice)(void *data, const char *message);
};

struct zr_watch_options {
    const char *path;      /* the inventory file; "-": read once, never again */
    const char *host_name; /* the host of the inventory to watch */
    struct zr_host_options host;
    unsigned resync_s;             /* full pass interval */
    bool notify;       /* systemd's notify protocol (READY=1, STATUS=, ...) */
    struct zr_watch_ops ops;
};

/* Default full pass interval: 15 minutes. */
#define ZR_WATCH_RESYNC_S (15 * 60)

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, for the
 * watch's signal sources: call before any thread is started (threads
 * inherit the mask) and before reading the inventory (a SIGHUP then must
 * not end the process).  zr_watch_run() and zr_watch_fleet() block them
 * too. */
void zr_watch_block_signals(void);

/* Watches o->host_name of `inv` (taken over) until SIGTERM or SIGINT.
 * Returns 0 then, or a negative errno with err filled when watching
 * cannot start (no inotify, no event loop).  A host that cannot be reached
 * is retried, never a reason to return. */
int zr_watch_run(struct zr_inventory *inv, const struct zr_watch_options *o, struct zr_error *err);

/* Several hosts: one child process per host runs zr_watch_run(); SIGHUP
 * is passed on to them, and a stop as SIGTERM.  A child that dies is
 * started again after a pause.  Returns 0 once every child ended after a
 * stop, else 1 when one of them failed. */
int zr_watch_fleet(struct zr_inventory *inv, const struct zr_watch_options *o);
