/* Actions -> libvirt calls.  Exactly one mutating call per action.  A host's
 * detaches all run before its attaches; within each of the two phases the
 * guests' actions run in parallel (a guest's own in plan order, on one
 * worker).  A live detach counts only once libvirt reports the device gone.
 * With atomic, a host's done actions are undone, in reverse plan order, when
 * one fails.  Reports progress on stderr, in the plan's order. */
#pragma once

#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdbool.h>

#include "plan.h"
#include "run.h"

/* Guests of one host changed at once.  Each call is a round trip to the
 * daemon, which works on different domains at once (but one job per
 * domain at a time); a few calls in flight hide the latency
 * (bench/apply.sh, docs/design.md). */
#define ZR_APPLY_THREADS 4

struct zr_apply_options {
    unsigned timeout_s;               /* wait for a live detach to complete */
    bool atomic;                      /* undo the host's done actions on failure */
    bool progress;                    /* "[3/120] attach ..." on stderr */
    volatile sig_atomic_t *interrupt; /* set by a signal: start nothing more */
    unsigned threads;                 /* workers; 0: ZR_APPLY_THREADS */
};

/* Runs plan->actions[first, end), all of one host.  doms[i] is the domain
 * of plan->guests[i] (NULL when it has none).  Writes each action's result
 * and the run's warnings into `run`, never the plan; returns the number of
 * actions that failed. */
size_t zr_apply_host(const struct zr_plan *plan, struct zr_run *run, size_t first, size_t end,
                     virConnectPtr conn, virDomainPtr *doms, const struct zr_apply_options *o);

/* Where root's apply locks live: a directory root alone can write (the
 * systemd unit's RuntimeDirectory=).  Other users lock in
 * $XDG_RUNTIME_DIR/zpci-reconcile, else /tmp/zpci-reconcile-UID. */
#define ZR_LOCK_DIR "/run/zpci-reconcile"

/* An exclusive lock per libvirt URI (two spellings of one connection are
 * one lock, see zr_uri_normalize), so two apply runs never interleave on
 * one host.  A lock directory or file not owned by the caller is refused.
 * Returns an fd (>= 0) to keep open while applying, or -1 with a
 * message naming the holder in err. */
int zr_apply_lock(const char *uri, struct zr_error *err);
void zr_apply_unlock(int fd);
