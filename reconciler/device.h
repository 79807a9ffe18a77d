/* The one device model that both sides fill: the inventory loader (what is
 * wanted) and the domain XML reader (what is there).  Every optional field
 * has an "is set" bit, because the plan compares only what the inventory
 * gives.  No I/O here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pci.h"

typedef enum {
    ZR_KIND_HOSTDEV,   /* <hostdev mode='subsystem' type='pci'> */
    ZR_KIND_INTERFACE, /* <interface type='hostdev'> */
    ZR_KIND__COUNT,
} zr_kind;

typedef enum {
    ZR_VPORT_NONE,
    ZR_VPORT_8021QBH, /* profileid */
    ZR_VPORT_8021QBG, /* managerid, typeid, typeidversion, instanceid */
    ZR_VPORT__COUNT,
} zr_vport_type;

/* A position in an input file, 1-based; 0 when unknown (e.g. from XML). */
struct zr_mark {
    unsigned line;
    unsigned column;
};

struct zr_virtualport {
    zr_vport_type type; /* ZR_VPORT_NONE: no <virtualport> */
    char *profileid;    /* 802.1Qbh; NULL when unset */
    bool has_managerid, has_typeid, has_typeidversion, has_instanceid;
    uint32_t managerid;     /* 0..255 */
    uint32_t typeid;        /* 0..0xffffff */
    uint32_t typeidversion; /* 0..255 */
    struct zr_uuid instanceid;
};

/* <rom bar='on|off' file='PATH' enabled='yes|no'/>: each part is compared
 * only where the inventory gives it. */
struct zr_rom {
    bool has_bar, has_file, has_enabled;
    bool bar, enabled;
    char *file; /* may be "" (libvirt: no ROM image); NULL when unset */
};

#define ZR_ROM_FILE_MAX 4096u
#define ZR_BOOT_ORDER_MAX 0xffffu

/* A guest-side value an out-of-scope device of the guest holds (a zPCI
 * virtio disk, a controller): wanted devices cannot take it, and the plan
 * must say so before libvirt says "already reserved". */
struct zr_held {
    bool has_zpci_uid, has_zpci_fid, has_guest_address, has_boot_order;
    uint32_t zpci_uid, zpci_fid, boot_order;
    struct zr_pci_addr guest_address;
    char *what; /* "<disk>", "<controller>": for messages */
};

#define ZR_VPORT_MANAGERID_MAX 0xffu
#define ZR_VPORT_TYPEID_MAX 0xffffffu
#define ZR_VPORT_TYPEIDVERSION_MAX 0xffu

struct zr_device {
    zr_kind kind;
    struct zr_pci_addr source; /* host PCI function: the device's identity */

    bool managed;     /* inventory: defaults to true; XML: absent means no */
    bool has_managed; /* inventory: written explicitly */

    bool has_zpci_uid, has_zpci_fid;
    uint32_t zpci_uid;
    uint32_t zpci_fid;

    bool has_guest_address;
    struct zr_pci_addr guest_address;

    bool has_mac; /* interfaces only */
    struct zr_mac mac;

    struct zr_virtualport vport; /* interfaces only */

    bool has_vlan; /* interfaces only: exactly one untagged-native-free tag */
    uint32_t vlan;
    /* XML side: a <vlan> the inventory format cannot express (trunk, several
     * tags, nativeMode).  Never equal to a wanted vlan. */
    bool vlan_unrepresentable;
    /* XML side: a <virtualport> the inventory format cannot express (a type
     * other than 802.1Qbh/802.1Qbg, e.g. openvswitch, or none at all); vport
     * then stays ZR_VPORT_NONE.  Export warns about it, and it never equals
     * a wanted virtualport. */
    bool vport_unrepresentable;

    bool has_boot_order; /* <boot order='N'/> */
    uint32_t boot_order;
    struct zr_rom rom;

    /* XML side: what the device has that format v1 cannot say (<teaming>,
     * <model>, <backend>, an unassigned address, unknown elements), as a
     * list for people ("<teaming>, an unassigned address"); NULL when
     * nothing.  A replacement keeps it (the element is edited in place),
     * export warns about it. */
    char *unrepresentable;

    /* XML side only. */
    char *alias;      /* <alias name=...>, NULL when absent */
    char *driver;     /* <driver name=...>, NULL when absent */
    char *xml;        /* the element as it stands in the domain XML */

    struct zr_mark mark; /* inventory side: where the list item starts */

    /* Inventory side: the entry takes its function from this pool (wanted.h)
     * instead of naming a source; `count` functions (1 unless given).  Once
     * the chooser (choose.h) picked the source, `pool` stays to say where it
     * came from; NULL for a named source and on the XML side. */
    char *pool;
    uint32_t count;
    bool has_count;
    struct zr_mark pool_mark; /* the pool's name */
};

#define ZR_POOL_COUNT_MAX 4096u

const char *zr_kind_to_string(zr_kind kind);       /* "hostdev" / "interface" */
const char *zr_vport_type_to_string(zr_vport_type t); /* "802.1Qbh" ... */

void zr_virtualport_finish(struct zr_virtualport *v);
void zr_virtualport_copy(struct zr_virtualport *dst, const struct zr_virtualport *src);
void zr_device_finish(struct zr_device *d);
void zr_device_copy(struct zr_device *dst, const struct zr_device *src);

/* Devices are identified by kind and host source address. */
bool zr_device_same_key(const struct zr_device *a, const struct zr_device *b);

/* A list of devices, owned. */
struct zr_device_list {
    struct zr_device *items;
    size_t n;
    /* Domain side: values out-of-scope devices hold (see struct zr_held). */
    struct zr_held *held;
    size_t n_held;
    /* Domain side: <os> has <boot dev=...>.  libvirt refuses per-device
     * boot orders beside it, and puts one there itself when the last
     * device with a boot order leaves the persistent definition. */
    bool os_boot;
};

struct zr_device *zr_device_list_append(struct zr_device_list *l);
void zr_device_list_finish(struct zr_device_list *l);
/* The device of `l` with this key (kind and host source), or NULL; `l` may
 * be NULL (no list: nothing found). */
const struct zr_device *zr_device_list_find(const struct zr_device_list *l, zr_kind kind,
                                            const struct zr_pci_addr *source);
/* Whether a device of `l` has host source `s` (any kind). */
bool zr_device_list_holds(const struct zr_device_list *l, const struct zr_pci_addr *s);

/* One line for people: "hostdev 0002:00:00.0 zpci uid=0x0001 fid=0x00000000".
 * Only the fields that are set; newly allocated. */
char *zr_device_describe(const struct zr_device *d);

/* Whether d holds a vlan (of any form) beside a virtualport (of any type):
 * a pair libvirt refuses at hotplug and start, which a replacement keeps
 * where the definition already has it. */
bool zr_device_has_vlan_beside_virtualport(const struct zr_device *d);

/* Whether a replacement of `current` by `target` drops the current vlan /
 * virtualport because `target` puts the other one beside it (libvirt
 * refuses the pair): the edited element loses it, and the plan says so.
 * A `current` that already has both keeps both (CONTRACT: a replacement
 * keeps what the inventory leaves out, even a vlan beside a virtualport). */
bool zr_device_drops_vlan(const struct zr_device *current, const struct zr_device *target);
bool zr_device_drops_virtualport(const struct zr_device *current, const struct zr_device *target);
