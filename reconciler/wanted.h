/* The wanted model: which guest of which host should hold which devices,
 * as the inventory says (inventory.h reads it from YAML).  Values only: the
 * decision stage takes these, never the reader. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "device.h"
#include "util.h"

struct zr_guest {
    char *name;                    /* libvirt domain name */
    bool prune;                    /* default true */
    struct zr_device_list devices; /* hostdevs first, then interfaces, in file order */
    struct zr_mark mark;           /* the guest's key */
};

/* A pool of host functions entries may take instead of naming one:
 * either an explicit list (`members`, in its order; no node devices
 * needed) or selectors that all must match a function's node device. */
struct zr_pool {
    char *name;
    struct zr_mark mark; /* the pool's key */
    struct zr_pci_addr *members;
    size_t n_members;
    bool has_members;
    bool has_vendor, has_product, has_physical_function, has_numa_node;
    uint32_t vendor, product, numa_node;
    struct zr_pci_addr physical_function;
    char *driver; /* NULL: any */
};

struct zr_host {
    char *name; /* key under hosts:, or "default" */
    char *uri;  /* NULL when the inventory gives none */
    struct zr_guest *guests;
    size_t n_guests;
    struct zr_mark mark;
    /* The pools its entries may name: its own, then the top-level ones it
     * does not define itself. */
    struct zr_pool *pools;
    size_t n_pools;
};

struct zr_inventory {
    char *file;     /* as given by the caller ("-" shown as "<stdin>") */
    bool has_hosts; /* written with hosts: rather than top-level guests: */
    struct zr_host *hosts;
    size_t n_hosts;
};

void zr_inventory_free(struct zr_inventory *inv);
void zr_host_finish(struct zr_host *h);
void zr_pool_finish(struct zr_pool *p);
void zr_pool_copy(struct zr_pool *dst, const struct zr_pool *src);
/* The pool named `name` on `host`, or NULL. */
const struct zr_pool *zr_host_find_pool(const struct zr_host *host, const char *name);
/* A selector pool needs the host's node devices; a members: pool does not. */
bool zr_pool_needs_node_devices(const struct zr_pool *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zr_inventory *, zr_inventory_free)

size_t zr_inventory_count_guests(const struct zr_inventory *inv);
/* Functions asked for: a pool entry counts its `count`. */
size_t zr_inventory_count_devices(const struct zr_inventory *inv);
