/* Wanted model + current models -> ordered list of actions.  A pure
 * function of its inputs: no libvirt, no XML, no files, no clock, no
 * printing, so nearly all behaviour is unit-tested without a hypervisor.
 * It says what to do (the device to attach, the current device it
 * replaces); render.h builds the XML libvirt gets from that. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "device.h"
#include "error.h"
#include "wanted.h"

typedef enum {
    ZR_OP_DETACH,
    ZR_OP_ATTACH,
    ZR_OP__COUNT,
} zr_op;

typedef enum {
    ZR_RESULT_PLANNED,
    ZR_RESULT_DONE,
    ZR_RESULT_FAILED,
    ZR_RESULT_SKIPPED,
    ZR_RESULT_ROLLED_BACK,
    ZR_RESULT__COUNT,
} zr_result;

struct zr_action {
    size_t guest_index;  /* into zr_plan.guests */
    zr_op op;
    zr_kind kind;
    struct zr_pci_addr source;
    bool live, config;   /* VIR_DOMAIN_AFFECT_* to use */
    char *reason;        /* "missing", "not in inventory", "changed: a,b" */
    char *changes;       /* for a replacement: "zpci.uid 0x0001 → 0x0002, ..." */
    char *note;          /* what the host check learned, e.g. a VF's physical function */
    /* Attach: the device to attach (a model).  Detach: the current device,
     * with its element as it stands in the domain XML. */
    struct zr_device device;
    /* Attach of a replacement: the current device it replaces, with the
     * element the attach XML edits in place (so what the model does not
     * carry is kept). */
    bool has_replaces;
    struct zr_device replaces;
    /* The device XML sent to libvirt: built from the above by
     * zr_render_plan() (render.h), never by plan.c. */
    char *xml;
    size_t *deps;        /* indices of detaches this attach waits for */
    size_t n_deps;

    zr_result result;    /* filled by apply */
    char *error;         /* FAILED: libvirt's message; SKIPPED: why */
    zr_error_code error_code; /* what kind of failure (hints key on it) */
};

struct zr_warning {
    char *host;
    char *guest;  /* NULL when not about one guest */
    bool has_source;
    struct zr_pci_addr source;
    char *message;
    zr_error_code code; /* what kind of finding (hints key on it) */
};

/* One guest the plan covered, in inventory order. */
struct zr_plan_guest {
    char *host;
    char *uri;     /* the URI actually used, NULL for libvirt's default */
    char *guest;
    char *error;   /* the guest could not be planned (not found, unreadable) */
    zr_error_code error_code;
    bool changed;  /* at least one action */
};

/* One host the run covered, in inventory order.  The caller records it;
 * plan.c only carries it (so output and metrics see every host, also one
 * without guests or one that could not be reached). */
struct zr_plan_host {
    char *name;
    char *uri;      /* as libvirt reports it, else as configured; NULL: default */
    bool reached;   /* connected (and, for apply, locked) */
    char *error;    /* why the host as a whole failed; NULL when it did not */
    zr_error_code error_code;
    double seconds; /* wall time spent on the host, filled by the caller */
};

struct zr_plan {
    struct zr_plan_guest *guests;
    size_t n_guests;
    struct zr_action *actions;
    size_t n_actions;
    struct zr_warning *warnings;
    size_t n_warnings;
    struct zr_plan_host *hosts;
    size_t n_hosts;
    /* The inventory has a hosts: section, so text names each host (one
     * may be called "default"); set by the caller, kept by append. */
    bool has_hosts;
};

struct zr_plan_options {
    /* Only the persistent definition is changed; live drift becomes a
     * warning. */
    bool config_only;
};

/* Plans one guest.  `config` is the persistent definition's devices, `live`
 * the running guest's (NULL when the guest is not running).  Actions are
 * appended; once every guest is planned, zr_render_plan() (render.h) adds
 * their XML, then zr_plan_finalize() orders them. */
void zr_plan_guest(struct zr_plan *plan, const char *host, const char *uri,
                   const struct zr_guest *wanted, const struct zr_device_list *config,
                   const struct zr_device_list *live, const struct zr_plan_options *opts);

/* Records a guest that could not be planned; returns it, for the caller
 * to set its error_code. */
struct zr_plan_guest *zr_plan_guest_error(struct zr_plan *plan, const char *host,
                                          const char *uri, const char *guest, const char *fmt,
                                          ...) _printf_(5, 6);

/* Records a warning; returns it, for the caller to set its code. */
struct zr_warning *zr_plan_add_warning(struct zr_plan *plan, const char *host,
                                       const char *guest, const struct zr_pci_addr *source,
                                       const char *fmt, ...) _printf_(5, 6);

/* Records a host; returns it for the caller to fill in. */
struct zr_plan_host *zr_plan_add_host(struct zr_plan *plan, const char *name, const char *uri);

/* Moves everything `src` holds to the end of `dst` (guest and action
 * indices renumbered) and leaves `src` empty.  For plans of different
 * hosts, each finalized on its own: the result keeps every host's order. */
void zr_plan_append(struct zr_plan *dst, struct zr_plan *src);

/* Orders the actions (per host: every detach before any attach, guests in
 * inventory order, devices by source) and records which detaches each
 * attach depends on. */
void zr_plan_finalize(struct zr_plan *plan);

void zr_plan_finish(struct zr_plan *plan);
void zr_action_finish(struct zr_action *a);

const char *zr_op_to_string(zr_op op);
/* The flavours an action changes: "live+config", "live" or "config". */
const char *zr_action_flags_string(const struct zr_action *a);
const char *zr_result_to_string(zr_result r);
