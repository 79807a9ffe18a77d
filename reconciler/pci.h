/* Value types of the domain: host/guest PCI addresses, MAC addresses, zPCI
 * ids, VLAN tags, UUIDs, and the strict scalar parsers the inventory and
 * the domain XML reader share.  Pure functions: no allocation, no I/O. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Limits libvirt enforces (virPCIDeviceAddress, zPCI, 802.1Q). */
#define ZR_PCI_DOMAIN_MAX 0xffffu
#define ZR_PCI_BUS_MAX 0xffu
#define ZR_PCI_SLOT_MAX 0x1fu
#define ZR_PCI_FUNCTION_MAX 0x7u
#define ZR_ZPCI_UID_MIN 0x0001u
#define ZR_ZPCI_UID_MAX 0xffffu
#define ZR_ZPCI_FID_MAX 0xffffffffu
#define ZR_VLAN_MAX 4095u

struct zr_pci_addr {
    uint32_t domain;
    uint8_t bus;
    uint8_t slot;
    uint8_t function;
};

#define ZR_PCI_ADDR_FMT "%04x:%02x:%02x.%x"
#define ZR_PCI_ADDR_ARGS(a) (unsigned)(a).domain, (unsigned)(a).bus, (unsigned)(a).slot, (unsigned)(a).function
#define ZR_PCI_ADDR_STRLEN 24 /* "ffff:ff:1f.7" with room for any uint32 domain */

/* "DDDD:BB:SS.F" or "BB:SS.F" (domain 0000), hex digits in any case.
 * Returns 0, or -EINVAL for a malformed string, -ERANGE for a field out of
 * range. */
int zr_pci_addr_parse(const char *s, struct zr_pci_addr *out);
int zr_pci_addr_cmp(const struct zr_pci_addr *a, const struct zr_pci_addr *b);
bool zr_pci_addr_eq(const struct zr_pci_addr *a, const struct zr_pci_addr *b);
/* Writes the canonical form into buf (at least ZR_PCI_ADDR_STRLEN bytes). */
const char *zr_pci_addr_format(const struct zr_pci_addr *a, char *buf);

struct zr_mac {
    uint8_t b[6];
};

#define ZR_MAC_FMT "%02x:%02x:%02x:%02x:%02x:%02x"
#define ZR_MAC_ARGS(m) (m).b[0], (m).b[1], (m).b[2], (m).b[3], (m).b[4], (m).b[5]
#define ZR_MAC_STRLEN 18

/* Six colon-separated two-digit hex octets.  -EINVAL malformed, -EDOM for a
 * multicast address (libvirt refuses those for a NIC). */
int zr_mac_parse(const char *s, struct zr_mac *out);
bool zr_mac_eq(const struct zr_mac *a, const struct zr_mac *b);
const char *zr_mac_format(const struct zr_mac *m, char *buf);

struct zr_uuid {
    uint8_t b[16];
};

#define ZR_UUID_STRLEN sizeof("00000000-0000-0000-0000-000000000000")
/* 8-4-4-4-12 hex digits (libvirt's canonical form); -EINVAL otherwise. */
int zr_uuid_parse(const char *s, struct zr_uuid *out);
bool zr_uuid_eq(const struct zr_uuid *a, const struct zr_uuid *b);
const char *zr_uuid_format(const struct zr_uuid *u, char *buf);

/* An unsigned number as the inventory defines it: decimal (leading zeros
 * stay decimal, never octal) or "0x"/"0X" hex.  -EINVAL malformed, -ERANGE
 * above max. */
int zr_uint_parse(const char *s, uint64_t max, uint64_t *out);

/* "true"/"false"/"yes"/"no" (libvirt also writes yes/no); -EINVAL otherwise. */
int zr_bool_parse(const char *s, bool *out);

/* zPCI uid must be 1..0xffff (libvirt refuses 0), fid 0..0xffffffff. */
int zr_zpci_uid_parse(const char *s, uint32_t *out);
int zr_zpci_fid_parse(const char *s, uint32_t *out);
int zr_vlan_parse(const char *s, uint32_t *out);

/* An 802.1Qbh port profile name.  libvirt 9.0 writes <parameters
 * profileid='...'/> without escaping it: a profileid holding ' < or &
 * leaves a persistent definition libvirt cannot read back (the guest is
 * gone at the next daemon start), and a control character comes back as a
 * space.  libvirt refuses an empty one or one over 39 bytes.  True when
 * `s` is safe to send: the inventory refuses the others, the XML builder
 * refuses them too. */
#define ZR_VPORT_PROFILEID_MAX 39
bool zr_profileid_ok(const char *s);

/* Whether libvirt's nodeset syntax ("0-3,^2,5") names `node`: 1 yes, 0 no,
 * -EINVAL when the set is malformed. */
int zr_nodeset_has(const char *nodeset, unsigned node);
