/* Current state -> an inventory (format version 1), written with libyaml's
 * emitter so quoting and escaping are never hand-made.  What the format
 * cannot express is left out and described in warnings, and the result is
 * always a valid inventory that plans to nothing against the state it came
 * from.  Writes only to the FILE it is given; never talks to libvirt. */
#pragma once

#include <stdio.h>

#include "device.h"
#include "error.h"

/* One guest to write: its name and its in-scope devices as the domain
 * reader returned them (document order). */
struct zr_export_guest {
    const char *name;
    const struct zr_device_list *devices;
};

/* Messages about what was left out, each naming guest and device. */
struct zr_export_warnings {
    char **items;
    size_t n;
};

void zr_export_warnings_finish(struct zr_export_warnings *w);

/* Writes `uri` (when not NULL) and `guests`, in the order given, as YAML.
 * Guest names must be distinct.  Left out, with a warning each:
 * - a vlan beside a virtualport (the inventory refuses the pair), a vlan
 *   the format cannot say (trunk, several tags, native mode);
 * - a virtualport of another type than 802.1Qbh/802.1Qbg, or one whose
 *   parameters the inventory would refuse (no or an unsafe profileid, an
 *   802.1Qbg port without managerid, typeid and typeidversion);
 * - a zPCI uid or guest address out of the inventory's range;
 * - a whole device whose source the inventory cannot hold: a domain above
 *   0xffff, a function the guest holds more than once, or one an earlier
 *   guest holds too (a source may appear once per host).  Its guest is
 *   then written with `prune: false`, so a plan keeps the device.
 * Returns 0, or -EIO with err filled when the emitter fails. */
int zr_export_write(FILE *f, const char *uri, const struct zr_export_guest *guests, size_t n,
                    struct zr_export_warnings *warnings, struct zr_error *err);
