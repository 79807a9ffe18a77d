/* What a host run reads about the host for more than one stage — the
 * guests the inventory does not name and the host's PCI functions — read
 * on first need and kept, failures included, so that the chooser and the
 * preflight of one run see one read.  Lives for one host run only, under
 * its lock: never kept across runs.  Decides nothing, reports nothing. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "error.h"
#include "inventory.h"
#include "state.h"

/* One read and its outcome: r is the reader's return value, err what it
 * filled (empty when r is 0 or -ENOTSUP). */
struct zr_host_facts {
    virConnectPtr conn;                /* borrowed */
    const struct zr_host *host;        /* borrowed: whose guests are not others */
    struct zr_domain_listing *listing; /* borrowed, shared with the run */
    unsigned jobs;                     /* reads at once */

    bool others_read;
    int others_r;
    struct zr_error others_err;
    struct zr_other_guest *others;
    size_t n_others;

    bool pci_read;
    int pci_r;
    struct zr_error pci_err;
    struct zr_host_pci pci;

    /* Node device XML of pci's functions, by index into pci, each read
     * at most once (NULL arrays until the first need). */
    bool *nodedev_done;
    char **nodedev_xml, **nodedev_err;
};

/* Nothing read yet; the record borrows everything it is given. */
void zr_host_facts_init(struct zr_host_facts *f, virConnectPtr conn, const struct zr_host *host,
                        struct zr_domain_listing *listing, unsigned jobs);
void zr_host_facts_finish(struct zr_host_facts *f);

/* zr_state_read_others() on the first call, its outcome on every call:
 * returns its value, *others and *n (empty on failure), *err its error. */
int zr_host_facts_others(struct zr_host_facts *f, const struct zr_other_guest **others, size_t *n,
                         const struct zr_error **err);

/* zr_state_host_pci() on the first call, its outcome on every call:
 * returns 0, -ENOTSUP (no node devices) or another negative value, with
 * *pci (empty unless 0) and *err. */
int zr_host_facts_pci(struct zr_host_facts *f, const struct zr_host_pci **pci,
                      const struct zr_error **err);

/* The node device XML of functions idx[0..n) of the PCI listing (after
 * zr_host_facts_pci() returned 0), reading those not read yet on `jobs`
 * threads: xml[i] its text, or NULL and errors[i] why not (errors may be
 * NULL).  Both borrowed from the facts.  The chooser reads the pools' functions, the host check
 * the attached ones and their IOMMU groups: a function both need is read
 * once. */
void zr_host_facts_nodedev_xml(struct zr_host_facts *f, const size_t *idx, size_t n,
                               const char **xml, const char **errors);
