/* The host's PCI topology and a guest's side of it, as libvirt's XML
 * describes them: node device XML -> one PCI function (driver, IOMMU group,
 * SR-IOV, NUMA node), a net or storage node device -> what the host uses on
 * a function, domain XML -> the guest's NUMA pinning and hotplug ports.
 * Pure parsing with libxml2: no libvirt calls, no decisions (preflight.c
 * decides). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "pci.h"

struct zr_pci_function {
    struct zr_pci_addr addr;
    char *driver; /* bound host driver; NULL: none */
    bool bridge;  /* a bridge or root port, not an endpoint */
    /* An endpoint without PCI Express capability (no <pci-express>): libvirt
     * hot-plugs it only into a conventional PCI slot, never a PCIe port. */
    bool conventional;
    int numa_node; /* -1: libvirt gives none */
    bool has_iommu_group;
    unsigned iommu_group;
    struct zr_pci_addr *group; /* every function of the group, itself included */
    size_t n_group;
    bool is_vf;            /* <capability type='phys_function'> */
    struct zr_pci_addr pf; /* its physical function */
    bool is_pf;            /* <capability type='virt_functions'> */
    unsigned vfs_max;      /* maxCount, 0 when not given */
    /* <vendor id=...>, <product id=...>: 0 when libvirt gives none (no
     * real device has id 0, PCI reserves 0xffff and 0x0000) */
    uint32_t vendor, product;
};

/* One PCI node device's XML (virNodeDeviceGetXMLDesc).  Returns 0, or a
 * negative value with err naming `what` when it is not a PCI function's. */
int zr_pci_function_parse(const char *xml, size_t len, const char *what,
                          struct zr_pci_function *out, struct zr_error *err);
void zr_pci_function_finish(struct zr_pci_function *f);

/* What the host itself uses on a PCI function, from a net or storage node
 * device: a network interface whose link is up, or a disk.  `in_use` stays
 * false for an interface that is down (or a device of another kind). */
struct zr_host_use {
    char *parent; /* the node device it sits on, e.g. pci_0000_00_03_0 */
    bool in_use;
    char *what; /* "network interface eth0 (link up)", "disk /dev/vda" */
};

int zr_host_use_parse(const char *xml, size_t len, const char *what, struct zr_host_use *out,
                      struct zr_error *err);
void zr_host_use_finish(struct zr_host_use *u);

/* A PCIe port a device can be hot-plugged into, or a PCI bridge
 * (pcie-to-pci-bridge, pci-bridge) whose slots take conventional ones. */
struct zr_guest_port {
    unsigned index;    /* the controller's index: the bus its device sits on */
    bool free;         /* a port: no device sits on it */
    bool conventional; /* a PCI bridge: ZR_PCI_BRIDGE_SLOTS slots */
    unsigned used;     /* a PCI bridge: devices on its bus */
};

/* Slots 1-31 of a PCI bridge take devices (libvirt keeps slot 0). */
#define ZR_PCI_BRIDGE_SLOTS 31

struct zr_guest_topology {
    char *nodeset;               /* <numatune><memory nodeset=...>, NULL when not pinned */
    bool q35;                    /* x86 q35: a hotplugged PCIe device needs a free root port */
    struct zr_guest_port *ports; /* hotpluggable pcie-root-ports, switch downstream ports
                                    and PCI bridges */
    size_t n_ports;
};

/* A domain's XML (live for a running guest).  Returns 0 or a negative value
 * with err filled. */
int zr_guest_topology_parse(const char *xml, size_t len, const char *what,
                            struct zr_guest_topology *out, struct zr_error *err);
void zr_guest_topology_finish(struct zr_guest_topology *t);
size_t zr_guest_topology_free_ports(const struct zr_guest_topology *t);
/* Free slots on its hotpluggable PCI bridges, for conventional functions. */
size_t zr_guest_topology_free_pci_slots(const struct zr_guest_topology *t);
