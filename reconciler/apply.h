/* Actions -> libvirt calls.  Exactly one mutating call per action, in the
 * plan's order (a host's detaches before its attaches); a live detach counts
 * only once libvirt reports the device gone.  With atomic, a host's done
 * actions are undone when one fails.  Reports progress on stderr. */
#pragma once

#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdbool.h>

#include "plan.h"

struct zr_apply_options {
    unsigned timeout_s;               /* wait for a live detach to complete */
    bool atomic;                      /* undo the host's done actions on failure */
    bool progress;                    /* "[3/120] attach ..." on stderr */
    volatile sig_atomic_t *interrupt; /* set by a signal: stop after the current call */
};

/* Runs plan->actions[first, end), all of one host.  doms[i] is the domain
 * of plan->guests[i] (NULL when it has none).  Fills each action's result
 * and error; returns the number of actions that failed. */
size_t zr_apply_host(struct zr_plan *plan, size_t first, size_t end, virConnectPtr conn,
                     virDomainPtr *doms, const struct zr_apply_options *o);

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
