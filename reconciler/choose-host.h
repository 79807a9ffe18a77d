/* Pools on a live host: gathers the facts the chooser (choose.h) decides
 * from — what the guests the inventory does not name hold and the host's
 * PCI functions (the run's facts.h record, shared with the preflight), the
 * pool functions' node devices, each guest's NUMA pinning — and runs it.
 * Never changes a guest; the decision itself stays in choose.c. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "choose.h"
#include "facts.h"
#include "state.h"

struct zr_choose_host_options {
    bool host_check; /* off: no node devices are read (selector pools refuse) */
    unsigned jobs;   /* reads at once */
    /* What the guests had when last chosen (read, then updated with this
     * choice); NULL: no memory (one-shot runs). */
    struct zr_pool_memory *memory;
};

/* Chooses for every pool entry of `host`, whose guests `states` holds (in
 * inventory order, read already), into `out`.  The other guests and the
 * PCI listing come from `facts` (read there on first need, kept for the
 * rest of the run); a listing that failed is left to the preflight to
 * report. */
void zr_choose_host(struct zr_host_facts *facts, const char *uri, const struct zr_host *host,
                    const struct zr_guest_state *states, const struct zr_choose_host_options *o,
                    struct zr_choice *out);
