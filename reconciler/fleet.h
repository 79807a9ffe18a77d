/* Several hosts at once, one child process each: libvirt lets a process
 * open one qemu:///embed root in its life and no local daemon URI after
 * it, and a hosts: inventory may name several roots and qemu:///system.
 *
 * One supervisor serves both callers: apply/plan (zr_fleet_run(), each
 * child sends its report back over a pipe, wire.h) and watch
 * (zr_watch_fleet() in watch.c, children restarted when they fail).  It
 * is an sd-event loop: a child source per process, an io source per
 * result pipe, signal sources, and whatever timers the caller adds to
 * zr_supervisor_event().  Must not talk to libvirt in the parent (it
 * forks, so it stays single-threaded) or print. */
#pragma once

#include <signal.h>
#include <systemd/sd-event.h>

#include "host.h"

struct zr_supervisor;

struct zr_supervisor_ops {
    void *data;
    bool pipe; /* each child gets a pipe for its result */
    /* In the child: runs slot i and returns its exit status.  fd: the
     * write end of the result pipe, -1 without. */
    int (*child)(void *data, size_t i, int fd);
    /* In the parent: the child of slot i ended (si: as waitid() tells) and
     * its pipe, if any, reached its end; out/len: what it wrote. */
    void (*ended)(void *data, size_t i, const siginfo_t *si, const char *out, size_t len);
    /* In the parent: one of the signals asked for came. */
    void (*signal)(void *data, int sig);
};

/* A supervisor of `n` slots taking `signals` (0-terminated) as sources:
 * they, and SIGCHLD, are blocked until zr_supervisor_free(), which puts
 * the mask back.  NULL with -errno in *r when the loop cannot be set up. */
struct zr_supervisor *zr_supervisor_new(size_t n, const int *signals,
                                        const struct zr_supervisor_ops *ops, int *r);
void zr_supervisor_free(struct zr_supervisor *s);

/* The loop, for the caller's own sources (sd_event_new(): a child's
 * sd_event_default() is its own). */
sd_event *zr_supervisor_event(struct zr_supervisor *s);

/* Starts slot i's process (not running); <0: -errno, nothing started. */
int zr_supervisor_start(struct zr_supervisor *s, size_t i);
bool zr_supervisor_running(const struct zr_supervisor *s, size_t i);
/* Sends sig to every running child. */
void zr_supervisor_kill(struct zr_supervisor *s, int sig);
/* Sends sig to every running child and waits for them, without the loop;
 * returns 1 when one did not exit with status 0. */
int zr_supervisor_stop(struct zr_supervisor *s, int sig);
/* Runs the loop until zr_supervisor_exit(). */
int zr_supervisor_loop(struct zr_supervisor *s);
void zr_supervisor_exit(struct zr_supervisor *s);

/* Runs every host of `inv`, at most `jobs` at once, and appends their
 * reports to `report` in inventory order, so output never depends on
 * which host finished first.  A host whose process fails, or that a
 * signal keeps from starting, is a failed host record.  SIGINT and SIGTERM
 * are the loop's while it runs (o->interrupt is set to the signal); one
 * that arrives is passed on to the running children. */
void zr_fleet_run(const struct zr_inventory *inv, const struct zr_host_options *o, unsigned jobs,
                  struct zr_report *report);
