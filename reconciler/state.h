/* What is there: opens libvirt connections (with libvirt's event loop
 * where they need it: qemu:///embed, domain events; with a deadline and an
 * interrupt flag, for a daemon that does not answer) and reads each inventory guest's
 * persistent and live devices, several guests at once.  Returns errors as
 * values; never prints and never changes a guest. */
#pragma once

#include <libvirt/libvirt.h>
#include <signal.h>
#include <stdbool.h>

#include "device.h"
#include "error.h"
#include "inventory.h"
#include "nearmiss.h"

/* Cleanup functions for libvirt's handles, as libvirt's own autoptr
 * cleanups: _cleanup_(virConnectClosep), so no path closes by hand. */
DEFINE_TRIVIAL_CLEANUP_FUNC(virConnectPtr, virConnectClose)
DEFINE_TRIVIAL_CLEANUP_FUNC(virDomainPtr, virDomainFree)
DEFINE_TRIVIAL_CLEANUP_FUNC(virNodeDevicePtr, virNodeDeviceFree)

/* Registers libvirt's default event loop and runs it on a thread.  Safe to
 * call more than once; must precede the first connection that needs it. */
int zr_libvirt_init(struct zr_error *err);

/* What a connection is for, which decides whether it needs libvirt's
 * event loop (state.c, needs_event_loop). */
enum zr_conn_use {
    ZR_CONN_READ,   /* reads only (plan, export): a loop only where the URI needs one */
    ZR_CONN_EVENTS, /* waits for domain events (apply, watch): always a loop */
    ZR_CONN__COUNT
};

/* How long an open waits for a daemon that accepts the socket but does not
 * answer (a stopped libvirtd), by default. */
#define ZR_CONNECT_TIMEOUT_S 30

struct zr_connect_options {
    enum zr_conn_use use;
    /* Seconds the open may take on a daemon URI (0: ZR_CONNECT_TIMEOUT_S);
     * with the event loop, a call that gets no answer fails after about
     * as long too (libvirt's keepalive).  qemu:///embed has no daemon and
     * no deadline. */
    double timeout_s;
    /* Set by the caller's signal handler: the open is given up at once.
     * May be NULL. */
    volatile sig_atomic_t *interrupt;
};

/* Opens `uri` (NULL: libvirt's default) read-write for `use`, starting
 * the event loop first when that needs it, with a deadline and an
 * interrupt flag: an open that
 * does not come back in time, or before a signal, fails with
 * ZR_ERR_CONNECT ("URI did not answer within N s") or ZR_ERR_INTERRUPTED,
 * and is abandoned to a thread that closes what it may still get. */
virConnectPtr zr_connect_with(const char *uri, const struct zr_connect_options *o,
                              struct zr_error *err);

/* Starts opening the daemon URI `uri` for `use` on a thread of its own
 * and returns at once: the next zr_connect_with() of the same URI takes
 * that open over, with its own deadline, so a caller can read its input
 * meanwhile.  An open nobody takes ends with the process.  Does nothing for
 * NULL, an embedded URI (its open starts QEMU probes and locks the root),
 * or when no thread can be started. */
void zr_connect_early(const char *uri, enum zr_conn_use use);

/* Whether a zr_connect_with() of this process is waiting for its open
 * (async-signal-safe: a handler may ask). */
bool zr_connect_waiting(void);

/* zr_connect_with() for ZR_CONN_EVENTS with the default deadline. */
virConnectPtr zr_connect(const char *uri, struct zr_error *err);

/* The URI libvirt actually connected to; newly allocated. */
char *zr_connect_uri(virConnectPtr conn);

struct zr_guest_state {
    const struct zr_guest *wanted;
    virDomainPtr dom; /* NULL when the guest could not be found */
    bool active;
    struct zr_device_list config; /* persistent definition */
    struct zr_device_list live;   /* running guest (active only) */
    char *error;                  /* why the guest could not be read */
    zr_error_code error_code;
    bool listed; /* dom and active come from the host's domain listing */
    /* dom is the listing's handle, not a reference of the state's own
     * (a virDomainRef and a virDomainFree less per guest): the listing
     * must outlive the state, or zr_state_own_domains() first. */
    bool borrowed;
    /* The XML the device lists came from, kept for the host check, which
     * reads more of it only for guests that get a device. */
    char *config_xml;
    char *live_xml;
};

/* One listing of a host's domains, shared by every part of a host's run
 * that needs one: finding the inventory's guests, the conflict check and
 * the "did you mean" hint.  A host with thousands of guests then costs one
 * listing per run, not one per part (or per missing guest). */
struct zr_domain_listing {
    bool listed;        /* doms holds the host's domains */
    unsigned failures;  /* listings tried and failed */
    virDomainPtr *doms; /* sorted by name */
    /* names[i] is doms[i]'s (owned by the handle): read once, since each
     * virDomainGetName() formats the UUID for libvirt's debug log. */
    const char **names;
    size_t n;
    bool indexed; /* index is built (on the first near miss) */
    struct zr_name_index index;
};

/* Lists the host's domains unless `l` holds them already; a listing that
 * failed is tried again on the next call.  Returns 0, or -EIO with err
 * filled. */
int zr_domain_listing_ensure(virConnectPtr conn, struct zr_domain_listing *l, struct zr_error *err);
void zr_domain_listing_finish(struct zr_domain_listing *l);

/* Reads every guest of `host` with up to `jobs` threads.  Returns an array
 * of host->n_guests states, in inventory order. */
struct zr_guest_state *zr_state_read(virConnectPtr conn, const struct zr_host *host, unsigned jobs);
/* The same, finding the guests in `listing` (listed first if it is not
 * yet); when the host cannot list, each guest is looked up instead. */
struct zr_guest_state *zr_state_read_listed(virConnectPtr conn, const struct zr_host *host,
                                            unsigned jobs, struct zr_domain_listing *listing);
void zr_state_free(struct zr_guest_state *states, size_t n);
/* Gives states that borrow their listing's domain handles references of
 * their own, before that listing is finished. */
void zr_state_own_domains(struct zr_guest_state *states, size_t n);

/* Re-reads one guest (after apply changed it). */
int zr_state_read_guest(virConnectPtr conn, struct zr_guest_state *st);

/* libvirt's last error message on this thread, or a fallback. */
const char *zr_libvirt_error(void);

/* What libvirt's last error on this thread was, as far as a hint can
 * tell (no access, no daemon, no VFIO), else `fallback`.  The one place
 * that reads libvirt's error: callers and hints use the code. */
zr_error_code zr_libvirt_error_code(zr_error_code fallback);

/* The name of a defined guest closest to `name` (a likely typo), or NULL,
 * from a listing (listed once if it is not yet; a host that has failed to
 * list gets no more tries here): no round trip per name. */
char *zr_state_near_miss_listed(virConnectPtr conn, struct zr_domain_listing *l, const char *name);

/* The host's PCI functions, from one node device listing, sorted by
 * address; the handles stay open so that a function's XML can be read
 * later without a lookup by name. */
struct zr_host_pci {
    struct zr_pci_addr *addrs;
    virNodeDevicePtr *devs; /* devs[i] is the node device of addrs[i] */
    size_t n;
};

/* Returns 0, -ENOTSUP when the connection has no node devices
 * (qemu:///embed), or another negative value with err filled. */
int zr_state_host_pci(virConnectPtr conn, struct zr_host_pci *out, struct zr_error *err);
void zr_host_pci_finish(struct zr_host_pci *pci);
/* Index of `a` in pci->addrs, or -1. */
long zr_host_pci_find(const struct zr_host_pci *pci, const struct zr_pci_addr *a);

/* The node device XML of the functions pci->addrs[idx[i]], read on up to
 * `jobs` threads: xml[i] is newly allocated, or NULL with errors[i] set. */
void zr_state_read_node_devices(const struct zr_host_pci *pci, const size_t *idx, size_t n,
                                unsigned jobs, char **xml, char **errors);

/* The XML of every net and storage node device of the host (one listing,
 * then one read each on up to `jobs` threads): what the host uses on its
 * functions.  Returns 0 with *n documents (newly allocated, NULL for one
 * that could not be read), or a negative value with err filled. */
int zr_state_read_host_uses(virConnectPtr conn, unsigned jobs, char ***xml, size_t *n,
                            struct zr_error *err);

/* A guest of the host that the inventory does not name, as far as the
 * conflict check and the chooser need it: the in-scope devices it holds in
 * its persistent definition or, running, in its live one (a function
 * hot-plugged without --config is held all the same; CONTRACT.md: "free").
 * A device in both is listed once. */
struct zr_other_guest {
    char *name;
    struct zr_device_list devices;
    bool gone;   /* undefined between the listing and the read */
    char *error; /* could not be read */
};

/* Every guest of the host that `host` does not name, with the in-scope
 * devices it holds: from `listing` (listed first if it is not yet), then
 * one persistent XMLDesc per guest, and one live XMLDesc per running one,
 * on up to `jobs` threads.  Returns 0, or a negative value with err filled
 * when the host cannot list its guests (a guest that cannot be read has its
 * error set). */
int zr_state_read_others(virConnectPtr conn, const struct zr_host *host,
                         struct zr_domain_listing *listing, unsigned jobs,
                         struct zr_other_guest **out, size_t *n, struct zr_error *err);
void zr_other_guests_free(struct zr_other_guest *others, size_t n);
