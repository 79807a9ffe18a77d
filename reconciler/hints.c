#include <stddef.h>

#include "hints.h"

/* One line of advice per error code that has one; the others have none. */
static const char *const hints[ZR_ERR__COUNT] = {
    /* A live attach (or the start of a guest holding a hostdev) on a
     * host without vfio-pci or without an IOMMU. */
    [ZR_ERR_NO_VFIO] =
        "load the vfio-pci module and enable the host's IOMMU (x86: intel_iommu=on or "
        "amd_iommu=on), or use --config-only to change only the persistent definitions",
    /* qemu:///system's socket is root:libvirt 0660 on Debian, polkit-
     * guarded where it is open to all, and polkit needs the system bus. */
    [ZR_ERR_AUTH] =
        "run as root, or add your user to the 'libvirt' group (usermod -aG libvirt USER, "
        "then log in again); qemu:///session reaches your own guests without privileges",
    [ZR_ERR_NO_DAEMON] =
        "is libvirt's daemon running? start libvirtd (or virtqemud where libvirt runs "
        "modular daemons), e.g. systemctl start libvirtd",
    /* A near-miss name (ZR_ERR_NOT_FOUND_NEAR) is suggested in the
     * message itself. */
    [ZR_ERR_NOT_FOUND] =
        "guests are named as libvirt names them (virsh list --all); is -c, or the "
        "inventory's uri, the right host?",
    [ZR_ERR_NO_FUNCTION] =
        "virsh nodedev-list --cap pci lists the host's functions (lspci -D gives the same "
        "addresses); --no-host-check skips this check",
    /* Only the node device lookups are missing there: the conflict
     * check still runs, with or without --no-host-check, so the hint
     * must not read as "turn the checks off". */
    [ZR_ERR_NO_NODEDEVS] =
        "this connection has no node devices (qemu:///embed has none), so functions, "
        "IOMMU groups, SR-IOV and drivers are not checked there; --no-host-check says you "
        "know (it skips only these lookups: the check that no other guest holds a function "
        "still runs)",
    [ZR_ERR_NOT_VF] =
        "a physical function gets virtual functions with echo N > "
        "/sys/bus/pci/devices/DDDD:BB:SS.F/sriov_numvfs; virsh nodedev-dumpxml on it lists "
        "them (capability virt_functions)",
    [ZR_ERR_IOMMU_GROUP] =
        "virsh nodedev-dumpxml pci_DDDD_BB_SS_F shows a function's IOMMU group; a group "
        "splits only where the platform isolates its functions (ACS)",
    [ZR_ERR_POOL] =
        "a function is free when no guest's definition holds it and no entry names it: "
        "virsh dumpxml shows who holds what; a larger pool or a lower count frees the guest",
    [ZR_ERR_TIMEOUT] =
        "a running guest's OS must release the device itself: a longer --timeout gives it "
        "more time, --config-only leaves running guests alone",
};

const char *zr_hint_for(zr_error_code code)
{
    return (unsigned)code < ZR_ERR__COUNT ? hints[code] : NULL;
}
