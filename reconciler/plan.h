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

/* What an action is for.  A replacement is a detach of the current device
 * (REPLACE_OUT) and an attach of the changed one (REPLACE_IN). */
typedef enum {
    ZR_ROLE_ADD,
    ZR_ROLE_REMOVE,
    ZR_ROLE_REPLACE_OUT,
    ZR_ROLE_REPLACE_IN,
    ZR_ROLE__COUNT,
} zr_role;

/* One difference a replacement makes, as values already formatted:
 * "zpci.uid", "0x0001", "0x0002".  `field` NULL: the guest's interface name
 * (a consequence of the uid, not a field of the device). */
struct zr_change {
    char *field;
    char *old, *new;
    /* A compared field that differs, named by the reason ("changed:
     * zpci.uid"); false: a consequence of those (a name, a dropped vlan). */
    bool listed;
};

#define ZR_NO_PAIR ((size_t)-1)

struct zr_action {
    size_t guest_index;  /* into zr_plan.guests */
    zr_op op;
    zr_role role;
    /* The other half of a replacement, as one line of the report shows it
     * (an index into zr_plan.actions, set by zr_plan_finalize()), else
     * ZR_NO_PAIR. */
    size_t pair;
    zr_kind kind;
    struct zr_pci_addr source;
    bool live, config;   /* VIR_DOMAIN_AFFECT_* to use */
    /* What a replacement changes, in the order the report names it; with
     * the role, the reason (zr_action_reason()). */
    struct zr_change *changes;
    size_t n_changes;
    char *note;          /* what the host check learned, e.g. a VF's physical function */
    /* Attach: the device to attach (a model).  Detach: the current device,
     * with its element as it stands in the domain XML. */
    struct zr_device device;
    /* REPLACE_IN: the current device it replaces, with the element the
     * attach XML edits in place (so what the model does not carry is
     * kept). */
    struct zr_device replaces;
    /* The device XML sent to libvirt: built from the above by
     * zr_render_plan() (render.h), never by plan.c. */
    char *xml;
    size_t *deps;        /* indices of detaches this attach waits for */
    size_t n_deps;
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

/* Records a guest that could not be planned: what kind of refusal, and
 * the message. */
void zr_plan_guest_error(struct zr_plan *plan, const char *host, const char *uri,
                         const char *guest, zr_error_code code, const char *fmt, ...)
    _printf_(6, 7);

/* Refuses planned guest gi after the fact (the host check): its error
 * replaces any it had.  Its actions go with zr_plan_drop_refused(). */
void zr_plan_refuse_guest(struct zr_plan *plan, size_t gi, zr_error_code code, const char *fmt,
                          ...) _printf_(4, 5);

/* Drops the actions of every guest with an error, in one pass: a refused
 * guest gets nothing half-done. */
void zr_plan_drop_refused(struct zr_plan *plan);

/* Drops the warnings planning guest gi gave (a guest the host check
 * refuses says only why). */
void zr_plan_drop_warnings(struct zr_plan *plan, size_t gi);

/* Records a warning: what kind of finding, and the message. */
void zr_plan_add_warning(struct zr_plan *plan, const char *host, const char *guest,
                         const struct zr_pci_addr *source, zr_error_code code, const char *fmt,
                         ...) _printf_(6, 7);

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
void zr_warning_finish(struct zr_warning *w);
void zr_action_finish(struct zr_action *a);

const char *zr_op_to_string(zr_op op);
/* Half of a replacement (either half). */
bool zr_action_is_replacement(const struct zr_action *a);
/* The reason as output shows it, made from the role and the listed
 * changes: "missing", "not in inventory", "changed: zpci.uid,mac".
 * Newly allocated. */
char *zr_action_reason(const struct zr_action *a);
/* Whether two actions have the same reason (role, and the fields a
 * replacement changes), compared as values. */
bool zr_action_same_reason(const struct zr_action *a, const struct zr_action *b);
/* The changes as the report prints them: "zpci.uid 0x0001 → 0x0002, ...". */
char *zr_changes_format(const struct zr_change *changes, size_t n);
/* The flavours an action changes: "live+config", "live" or "config". */
const char *zr_action_flags_string(const struct zr_action *a);
const char *zr_result_to_string(zr_result r);
