/* Pools: which host function each pool entry of the inventory gets.  A
 * decision, so a pure one: from the host's pools, what every guest of the
 * host holds and the host's PCI functions (as read beforehand) to the
 * host's guests with every pool entry turned into named sources.  No
 * libvirt, no XML, no I/O (zr-model).  The rules are CONTRACT's "Pools:
 * how a function is chosen" and docs/design.md's "Pools". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "wanted.h"

/* One PCI function of the host, as its node device describes it. */
struct zr_choose_function {
    struct zr_pci_addr addr;
    uint32_t vendor, product; /* 0: not known */
    bool is_vf;
    struct zr_pci_addr pf; /* is_vf: its physical function */
    int numa_node;         /* -1: not known */
    const char *driver;    /* bound host driver; NULL: none */
};

/* What one guest of the inventory holds, and where its memory is pinned. */
struct zr_choose_guest {
    bool readable;                       /* false: not read; it holds and gets nothing */
    const struct zr_device_list *config; /* its persistent definition; NULL: none */
    const struct zr_device_list *live;   /* its running state; NULL: not running */
    const char *nodeset;                 /* <numatune><memory nodeset>, NULL: not pinned */
    /* What its pool entries had when last chosen (a long-running caller's
     * memory, see zr_pool_memory): kept after what it holds, while free. */
    const struct zr_pci_addr *had;
    size_t n_had;
};

struct zr_choose_input {
    const struct zr_host *host;
    const struct zr_choose_guest *guests; /* host->n_guests, in inventory order */
    /* Functions that guests the inventory does not name hold. */
    const struct zr_pci_addr *held;
    size_t n_held;
    /* The host's PCI functions (any order); without them a selector pool
     * cannot be served and `no_functions` says why. */
    bool have_functions;
    const struct zr_choose_function *functions;
    size_t n_functions;
    const char *no_functions;
};

struct zr_choice {
    /* The inventory's host with each pool entry replaced by `count` entries
     * naming the functions chosen (their `pool` kept, `count` 1), in the
     * entry's place; a guest with an error keeps only what it holds. */
    struct zr_host host;
    /* Per guest: why its pool entries could not be served (message NULL:
     * they were), with code ZR_ERR_POOL. */
    struct zr_error *errors;
    size_t n_pool_entries; /* how many entries took from a pool */
};

/* Chooses for every pool entry of in->host (see the header comment). */
void zr_choose(const struct zr_choose_input *in, struct zr_choice *out);
void zr_choice_finish(struct zr_choice *c);
/* Whether some guest's pool entries could not be served (false for an
 * empty choice: nothing was chosen). */
bool zr_choice_refuses(const struct zr_choice *c);

/* What a long-running caller (watch) remembers between runs: the
 * functions each guest's pool entries got.  A guest that lost one gets it
 * back on the next run while no one else holds it. */
struct zr_pool_memory_guest {
    char *guest;
    struct zr_pci_addr *addrs;
    size_t n;
};

struct zr_pool_memory {
    struct zr_pool_memory_guest *items;
    size_t n;
};

const struct zr_pool_memory_guest *zr_pool_memory_find(const struct zr_pool_memory *m,
                                                       const char *guest);
/* Remembers what the choice gave each guest it served (in->host order). */
void zr_pool_memory_record(struct zr_pool_memory *m, const struct zr_choice *c);
void zr_pool_memory_finish(struct zr_pool_memory *m);

/* Whether guest `g` has an entry that takes from a pool. */
bool zr_guest_takes_from_pool(const struct zr_guest *g);

/* Whether the host's inventory has an entry that takes from a pool, and
 * whether one of those pools selects by node devices. */
bool zr_host_uses_pools(const struct zr_host *host, bool *needs_node_devices);
