#include <stddef.h>
#include <string.h>

#include "hints.h"
#include "util.h"

/* libvirt's words are matched, not its error codes: the messages reach
 * output as text (a guest's error, an action's error), and the same code
 * (VIR_ERR_SYSTEM_ERROR, VIR_ERR_CONFIG_UNSUPPORTED) covers many causes. */
struct hint_rule {
    const char *all[2]; /* every one must occur (NULL ends) */
    const char *unless; /* must not occur, or NULL */
    const char *hint;
};

#define HINT_VFIO                                                                                  \
    "load the vfio-pci module and enable the host's IOMMU (x86: intel_iommu=on or "                \
    "amd_iommu=on), or use --config-only to change only the persistent definitions"
#define HINT_SOCKET_ACCESS                                                                         \
    "run as root, or add your user to the 'libvirt' group (usermod -aG libvirt USER, "             \
    "then log in again); qemu:///session reaches your own guests without privileges"
#define HINT_NO_DAEMON                                                                             \
    "is libvirt's daemon running? start libvirtd (or virtqemud where libvirt runs "                \
    "modular daemons), e.g. systemctl start libvirtd"

static const struct hint_rule rules[] = {
    /* A live attach (or the start of a guest holding a hostdev) on a host
     * without vfio-pci or without an IOMMU. */
    {{"doesn't support VFIO PCI passthrough"}, NULL, HINT_VFIO},
    {{"doesn't support passthrough of host PCI devices"}, NULL, HINT_VFIO},
    /* qemu:///system's socket is root:libvirt 0660 on Debian ... */
    {{"Failed to connect socket", "Permission denied"}, NULL, HINT_SOCKET_ACCESS},
    /* ... and polkit-guarded where the socket is open to all. */
    {{"no polkit agent available to authenticate"}, NULL, HINT_SOCKET_ACCESS},
    {{"Failed to connect socket", "No such file or directory"}, NULL, HINT_NO_DAEMON},
    {{"Failed to connect socket", "Connection refused"}, NULL, HINT_NO_DAEMON},
    /* A near-miss name is already suggested in the message itself. */
    {{"guest '", "' not found"},
     "did you mean",
     "guests are named as libvirt names them (virsh list --all); is -c, or the "
     "inventory's uri, the right host?"},
    {{"host has no PCI function"},
     NULL,
     "virsh nodedev-list --cap pci lists the host's functions (lspci -D gives the same "
     "addresses); --no-host-check skips this check"},
    /* Only the node device lookups are missing there: the conflict check
     * (no other guest holds the function) still runs, with or without
     * --no-host-check, so the hint must not read as "turn the checks off". */
    {{"lists no node devices"},
     NULL,
     "this connection has no node devices (qemu:///embed has none), so functions, IOMMU "
     "groups, SR-IOV and drivers are not checked there; --no-host-check says you know (it "
     "skips only these lookups: the check that no other guest holds a function still runs)"},
    {{"is not an SR-IOV virtual function"},
     NULL,
     "a physical function gets virtual functions with echo N > "
     "/sys/bus/pci/devices/DDDD:BB:SS.F/sriov_numvfs; virsh nodedev-dumpxml on it lists them "
     "(capability virt_functions)"},
    {{"IOMMU group"},
     NULL,
     "virsh nodedev-dumpxml pci_DDDD_BB_SS_F shows a function's IOMMU group; a group splits "
     "only where the platform isolates its functions (ACS)"},
    {{"still holds the device after"},
     NULL,
     "a running guest's OS must release the device itself: a longer --timeout gives it "
     "more time, --config-only leaves running guests alone"},
};

const char *zr_hint_for(const char *message)
{
    if (!message)
        return NULL;
    for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
        const struct hint_rule *r = &rules[i];
        bool match = true;
        for (size_t k = 0; k < ELEMENTSOF(r->all) && r->all[k]; k++)
            if (!strstr(message, r->all[k]))
                match = false;
        if (match && r->unless && strstr(message, r->unless))
            match = false;
        if (match)
            return r->hint;
    }
    return NULL;
}
