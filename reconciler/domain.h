/* Domain XML <-> device model.  Reads the in-scope devices of a domain
 * (<hostdev mode='subsystem' type='pci'> and <interface type='hostdev'>)
 * and builds device XML for attach from the model with libxml2's tree API.
 * Never talks to libvirt and never prints. */
#pragma once

#include <stddef.h>

#include "device.h"
#include "error.h"

/* Parses a whole <domain> document (never with network access or entity
 * expansion).  Appends every in-scope device to `out`, each with its element
 * serialised in `xml`; out-of-scope devices are skipped.  `what` names the
 * input in messages (e.g. "linux1 (persistent)").  Returns 0 or -EINVAL
 * with err filled. */
int zr_domain_parse_devices(const char *xml, size_t len, const char *what,
                            struct zr_device_list *out, struct zr_error *err);

/* Parses a single device element (<hostdev> or <interface>) into `out`.
 * Returns 0, -ENOENT when the element is well-formed but out of scope, or
 * -EINVAL with err filled. */
int zr_domain_parse_device(const char *xml, size_t len, struct zr_device *out,
                           struct zr_error *err);

/* Builds the device XML to attach `d`: <driver name='vfio'/>, the source,
 * managed, and each field that is set.  Never emits <model> for an
 * interface.  Returns a newly allocated string (no XML declaration). */
char *zr_domain_device_xml(const struct zr_device *d);

/* The XML to detach a device found in a domain: its element as it stands,
 * minus a libvirt-generated alias (persistent definitions do not carry
 * those, so keeping it would stop the config part from matching).
 * Returns a newly allocated string. */
char *zr_domain_detach_xml(const struct zr_device *current);
