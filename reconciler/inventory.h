/* YAML inventory (format version 1, see docs/inventory.md and CONTRACT) ->
 * wanted model.  Keeps the position of every item so later checks point at
 * the right line.  Never talks to libvirt and never prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "device.h"
#include "error.h"
#include "uri.h"

/* Inputs larger than this are refused before parsing: 65536 devices (the
 * most a host can hold, docs/inventory.md "Limits") of up to 512 bytes. */
#define ZR_INVENTORY_MAX_BYTES (32u * 1024u * 1024u)

struct zr_guest {
    char *name;              /* libvirt domain name */
    bool prune;              /* default true */
    struct zr_device_list devices; /* hostdevs first, then interfaces, in file order */
    struct zr_mark mark;     /* the guest's key */
};

struct zr_host {
    char *name;   /* key under hosts:, or "default" */
    char *uri;    /* NULL when the inventory gives none */
    struct zr_guest *guests;
    size_t n_guests;
    struct zr_mark mark;
};

struct zr_inventory {
    char *file; /* as given by the caller ("-" shown as "<stdin>") */
    bool has_hosts; /* written with hosts: rather than top-level guests: */
    struct zr_host *hosts;
    size_t n_hosts;
};

/* Parses `len` bytes of `data`; `file` is used in messages.  On failure
 * returns NULL and fills errs (every error found, up to the cap). */
struct zr_inventory *zr_inventory_parse(const char *file, const char *data, size_t len,
                                        struct zr_errors *errs);

/* Reads a path ("-" for standard input, named "<stdin>" in messages) and
 * parses it.  A path must be a regular file: directories, FIFOs and devices
 * are refused without blocking (a pipe is read through "-").  Input over
 * ZR_INVENTORY_MAX_BYTES is refused, by its size where known, else after
 * reading one byte more than the limit. */
struct zr_inventory *zr_inventory_load(const char *path, struct zr_errors *errs);

void zr_inventory_free(struct zr_inventory *inv);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct zr_inventory *, zr_inventory_free)


size_t zr_inventory_count_guests(const struct zr_inventory *inv);
size_t zr_inventory_count_devices(const struct zr_inventory *inv);
