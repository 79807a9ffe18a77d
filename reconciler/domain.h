/* Domain XML <-> device model.  Reads the in-scope devices of a domain
 * (<hostdev mode='subsystem' type='pci'> and <interface type='hostdev'>)
 * and builds device XML for attach from the model with libxml2's tree API.
 * Never talks to libvirt and never prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "device.h"
#include "error.h"

/* Parses a whole <domain> document (never with network access or entity
 * expansion; a document with a DOCTYPE is refused, libvirt never writes
 * one).  Appends every in-scope device to `out`, each with its element's
 * text in `xml` as the input has it (the parser's byte offsets; written
 * again from the tree only when the input was decoded from another
 * encoding); out-of-scope devices are skipped.  `what` names the
 * input in messages (e.g. "linux1 (persistent)").  Returns 0 or -EINVAL
 * with err filled (file = what, line = the offending element's line); `out`
 * is left untouched on error.
 *
 * What the reader makes of libvirt's XML (see docs/domain-xml.md):
 * - Numbers are read as libvirt reads them (strtoul, base 0: "0x21" hex,
 *   "021" octal, "33" decimal; vlan tag ids base 10).
 * - A guest <address type='pci'> is a guest address only when domain, bus
 *   or slot is non-zero: libvirt treats 0000:00:00.x as "pick one for me".
 *   Its <zpci> child is read either way, so <address type='pci'><zpci
 *   uid=.../></address> gives zpci ids and no guest address.
 * - zPCI ids are kept as written, even values libvirt's validation refuses
 *   (uid 0): the reader reports what is there, libvirt judges it.
 * - <vlan> with one plain tag sets has_vlan; trunks, several tags or
 *   nativeMode set vlan_unrepresentable.  A <virtualport> other than
 *   802.1Qbh/802.1Qbg sets vport_unrepresentable.
 * - A missing or malformed host source address is an error: libvirt never
 *   writes one, and guessing would detach or keep the wrong device.
 * - <interface type='hostdev'> with a non-PCI (USB) source is out of scope. */
int zr_domain_parse_devices(const char *xml, size_t len, const char *what,
                            struct zr_device_list *out, struct zr_error *err);

/* zr_domain_parse_devices() from a tree of the whole document; the reader
 * above builds only the parts of the tree it reads (domain.c, struct
 * pruner).  The results are the same, which the domain tests and fuzzer
 * check with this. */
int zr_domain_parse_devices_whole(const char *xml, size_t len, const char *what,
                                  struct zr_device_list *out, struct zr_error *err);

/* Whether the domain XML `xml` (NUL-terminated) can hold an in-scope
 * device, from a scan of its text: false only when it has neither the word
 * "hostdev" nor a character reference ("&#"), without which no <hostdev>
 * element and no type='hostdev' interface can be written.  When false,
 * zr_domain_parse_devices() of well-formed XML finds no device, so a
 * reader that needs only the devices (the conflict check's other guests)
 * may skip the parse. */
bool zr_domain_may_hold_devices(const char *xml);

/* Parses a single device element (<hostdev> or <interface>) into `out`,
 * with the rules above ("device XML" names it in messages).  Returns 0,
 * -ENOENT when the element is well-formed but out of scope, or -EINVAL with
 * err filled. */
int zr_domain_parse_device(const char *xml, size_t len, struct zr_device *out,
                           struct zr_error *err);

/* Builds the device XML to attach `d`: <driver name='vfio'/>, the source,
 * managed, and each field that is set, in the order libvirt formats them.
 * zPCI ids alone give <address type='pci'><zpci .../></address>, so libvirt
 * picks the guest slot and fills the other id.  Never emits <model> for an
 * interface.  Returns a newly allocated string (no XML declaration); NULL
 * for a kind that is not a device or a profileid that fails
 * zr_profileid_ok() (pci.h). */
char *zr_domain_device_xml(const struct zr_device *d);

/* The XML to detach a device found in a domain: its element as it stands,
 * minus a libvirt-generated alias (anything but a "ua-" user alias).
 * Persistent definitions never hold generated aliases (libvirt drops them
 * when it parses inactive XML), so the element sent for LIVE|CONFIG must
 * not depend on one: it is matched by source (hostdev) or MAC and guest
 * address (interface).  A device without `xml` (not read from a domain)
 * gets zr_domain_device_xml().  Returns a newly allocated string, NULL if
 * `xml` does not parse. */
char *zr_domain_detach_xml(const struct zr_device *current);

/* The attach XML of a replacement: `current`'s element as it stands, minus
 * generated aliases, with only the fields where `target` differs from
 * `current` edited (managed, mac, vlan, virtualport, guest address, zPCI
 * ids, boot order, rom).  Everything else the element has (<teaming>,
 * <model>, <backend>, an unassigned address, unknown elements, attributes)
 * is carried over.  A guest address or zPCI id that `target` leaves out
 * while `current` has it is removed, so libvirt picks a new one.  A vlan
 * or virtualport beside which `target` puts the other is dropped (libvirt
 * refuses the pair): see zr_device_drops_vlan() and
 * zr_device_drops_virtualport().  A `current` without
 * `xml` gets zr_domain_device_xml(target).  NULL when the element does not
 * parse or for an unsafe profileid. */
char *zr_domain_edit_xml(const struct zr_device *current, const struct zr_device *target);
