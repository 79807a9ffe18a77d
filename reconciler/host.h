/* One host's whole run as a library function: connect, lock (apply), read
 * the guests, the preflight checks, plan and apply, into a report (a
 * zr_plan holding the host record, its guests and its actions).  The CLI,
 * the fleet supervisor, a long-running watcher and tests all call it.  It
 * must not print (apply's progress lines aside), exit, install signal
 * handlers or keep state between calls: everything comes in `options`. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "choose.h"
#include "export.h"
#include "inventory.h"
#include "plan.h"
#include "run.h"
#include "state.h"

/* Guests of one host read at once.  Each read is a round trip to the
 * daemon; a few in flight hide the latency, more gain little over one
 * connection (bench/plan.sh).  -j counts hosts, not these. */
#define ZR_READ_THREADS 4

/* Guests a caller read and planned before the run (watch's check of a
 * guest, its full pass), handed to zr_host_run() so that no guest is read
 * or planned twice.  A host that takes from pools is chosen for between
 * the read and the plan, as a run does (zr_host_choose()).  The run takes
 * over states, listing, choice and draft (and leaves them empty);
 * applying, it takes the lock and then reads the definitions of the
 * guests with an action once more (of every guest read when a choice was
 * made: it depends on what each holds): when one differs from the text
 * read before (another client changed it in between), the prepared part
 * is dropped and the run reads, chooses and plans as usual. */
struct zr_host_prepared {
    virConnectPtr conn;               /* borrowed: the run uses it, states' domains are its */
    struct zr_guest_state *states;    /* one per guest of the host, in order */
    struct zr_domain_listing listing; /* the host's domains, when listed */
    /* zr_host_choose()'s for the states; empty (errors NULL) when the host
     * takes from no pool. */
    struct zr_choice choice;
    struct zr_plan draft; /* zr_host_plan_guest() of each state, in order, nothing else */
};

struct zr_host_options {
    const char *uri;    /* wins over the host's uri; NULL: the host's */
    bool applying;      /* lock the host and apply the plan */
    bool config_only;   /* change only persistent definitions */
    bool host_check;    /* the node device part of the preflight */
    unsigned timeout_s; /* wait for a live detach to complete */
    bool atomic;        /* undo the host's done actions on failure */
    /* apply's "[3/120] attach ..." lines on stderr, once the host has at
     * least this many actions: 0 always, SIZE_MAX never. */
    size_t progress_from;
    unsigned read_threads;  /* 0: ZR_READ_THREADS */
    unsigned apply_threads; /* 0: ZR_APPLY_THREADS (apply.h) */
    /* How long the open may wait for a daemon that does not answer
     * (0: ZR_CONNECT_TIMEOUT_S, state.h). */
    unsigned connect_timeout_s;
    /* Set by the caller's signal handler: the open is given up, apply
     * stops after the current call.  May be NULL. */
    volatile sig_atomic_t *interrupt;
    /* What pool entries got on earlier runs, kept by a long-running caller
     * (watch) so that a guest gets back a function it lost while that one
     * is free; read and updated by the run.  NULL: none. */
    struct zr_pool_memory *pool_memory;
    /* NULL, or what the caller read and planned on its connection, which
     * the run uses instead of opening one (see zr_host_prepared). */
    struct zr_host_prepared *prepared;
};

/* Runs `host` and appends to `report` its host record, every guest of
 * the host in inventory order, and its actions, finalized (the plan);
 * when applying, their results (the run), and the wall time spent either
 * way.  A host that cannot be reached or locked is a failed host record
 * whose guests carry its message. */
void zr_host_run(const struct zr_host *host, const struct zr_host_options *o,
                 struct zr_report *report);

/* Starts opening `uri` (a daemon's; --connect) for a run that applies or
 * not, while the caller reads the inventory: the run's own open of the
 * same URI takes it over (zr_connect_early()). */
void zr_host_connect_early(const char *uri, bool applying);

/* The URI a run names for `conn`: as libvirt reports it, else `asked`,
 * else "libvirt's default URI". */
char *zr_host_conn_uri(virConnectPtr conn, const char *asked);

/* One guest read (st) into `draft` as a run plans it before the host
 * check: its read error (with the closest name in `listing`, listed when
 * needed, when it was not found) or its plan.  `uri` is
 * zr_host_conn_uri()'s. */
void zr_host_plan_guest(struct zr_plan *draft, const char *host, const char *uri,
                        virConnectPtr conn, struct zr_domain_listing *listing,
                        const struct zr_guest_state *st, bool config_only);

/* The chooser (choose.h) on a host's guests read (`states`, in inventory
 * order), as a run calls it between the read and the plan: when `host`
 * takes from pools, `choice` gets what each pool entry gets (with
 * o->pool_memory read and updated) and each state's `wanted` points at its
 * guest in choice->host, whose pool entries name functions.  Nothing when
 * the host takes from no pool (choice left empty).  `uri` is
 * zr_host_conn_uri()'s.  The facts it reads (facts.h) are dropped on
 * return: a run that goes on from this choice reads its own under its
 * lock (within one run, the chooser and the preflight share them). */
void zr_host_choose(virConnectPtr conn, const char *uri, const struct zr_host *host,
                    struct zr_guest_state *states, struct zr_domain_listing *listing,
                    const struct zr_host_options *o, struct zr_choice *choice);

/* Frees what `p` holds (not its connection) and empties it. */
void zr_host_prepared_finish(struct zr_host_prepared *p, size_t n_states);

/* Appends to `report` a host that did not run (its process died, a signal
 * came first): the host record and each guest carry `message`. */
void zr_host_not_run(const struct zr_host *host, const struct zr_host_options *o,
                     struct zr_report *report, zr_error_code code, const char *message);

/* ---- export: the current state of a host's guests ------------------------ */

struct zr_export_request {
    const char *uri;          /* NULL: libvirt's default */
    const char *const *names; /* the guests to export; none: every listed guest */
    size_t n_names;
    bool live; /* the running state, not the persistent definition */
    bool all;  /* also guests without devices */
    unsigned connect_timeout_s; /* 0: ZR_CONNECT_TIMEOUT_S (state.h) */
};

/* What export writes, read from one host. */
struct zr_export_found {
    struct zr_export_guest *guests; /* point into `states` */
    size_t n_guests;
    char **errors; /* per guest that could not be exported */
    size_t n_errors;
    /* owned */
    struct zr_host host;
    struct zr_guest_state *states;
};

/* Connects and reads the guests `req` asks for.  Returns 0 (a guest that
 * could not be read is in out->errors), or -EIO with err filled when the
 * host cannot be reached or its guests cannot be listed. */
int zr_export_read(const struct zr_export_request *req, struct zr_export_found *out,
                   struct zr_error *err);
void zr_export_found_finish(struct zr_export_found *r);
