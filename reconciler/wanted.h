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

struct zr_host {
    char *name; /* key under hosts:, or "default" */
    char *uri;  /* NULL when the inventory gives none */
    struct zr_guest *guests;
    size_t n_guests;
    struct zr_mark mark;
};

struct zr_inventory {
    char *file;     /* as given by the caller ("-" shown as "<stdin>") */
    bool has_hosts; /* written with hosts: rather than top-level guests: */
    struct zr_host *hosts;
    size_t n_hosts;
};

void zr_inventory_free(struct zr_inventory *inv);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zr_inventory *, zr_inventory_free)

size_t zr_inventory_count_guests(const struct zr_inventory *inv);
size_t zr_inventory_count_devices(const struct zr_inventory *inv);
