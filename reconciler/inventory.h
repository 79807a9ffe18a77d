/* YAML inventory (format version 1, see docs/inventory.md and CONTRACT) ->
 * wanted model.  Keeps the position of every item so later checks point at
 * the right line.  Never talks to libvirt and never prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "wanted.h"

/* Inputs larger than this are refused before parsing: 65536 devices (the
 * most a host can hold, docs/inventory.md "Limits") of up to 512 bytes. */
#define ZR_INVENTORY_MAX_BYTES (32u * 1024u * 1024u)

/* What the rules need from the layer above: whether two URIs name one
 * libvirt connection is libvirt's business (uri.h), so the normaliser is
 * handed in.  NULL, or a NULL member: URIs are compared as written. */
struct zr_inventory_rules {
    char *(*uri_normalize)(const char *uri); /* a new string */
};

/* Parses `len` bytes of `data`; `file` is used in messages.  On failure
 * returns NULL and fills errs (every error found, up to the cap). */
struct zr_inventory *zr_inventory_parse_with(const char *file, const char *data, size_t len,
                                             const struct zr_inventory_rules *rules,
                                             struct zr_errors *errs);

/* Reads a path ("-" for standard input, named "<stdin>" in messages) and
 * parses it.  A path must be a regular file: directories, FIFOs and devices
 * are refused without blocking (a pipe is read through "-").  Input over
 * ZR_INVENTORY_MAX_BYTES is refused, by its size where known, else after
 * reading one byte more than the limit. */
struct zr_inventory *zr_inventory_load_with(const char *path,
                                            const struct zr_inventory_rules *rules,
                                            struct zr_errors *errs);

/* The two above with libvirt's URI rules (zr_uri_normalize): what the tool
 * uses.  Defined in the libvirt layer (inventory-uri.c), not the model. */
struct zr_inventory *zr_inventory_parse(const char *file, const char *data, size_t len,
                                        struct zr_errors *errs);

struct zr_inventory *zr_inventory_load(const char *path, struct zr_errors *errs);

