#include <stddef.h>

#include "hints.h"

const char *zr_hint_for(zr_error_code code)
{
    switch (code) {
    case ZR_ERR_NO_VFIO:
        /* A live attach (or the start of a guest holding a hostdev) on a
         * host without vfio-pci or without an IOMMU. */
        return "load the vfio-pci module and enable the host's IOMMU (x86: intel_iommu=on or "
               "amd_iommu=on), or use --config-only to change only the persistent definitions";
    case ZR_ERR_AUTH:
        /* qemu:///system's socket is root:libvirt 0660 on Debian, polkit-
         * guarded where it is open to all, and polkit needs the system bus. */
        return "run as root, or add your user to the 'libvirt' group (usermod -aG libvirt USER, "
               "then log in again); qemu:///session reaches your own guests without privileges";
    case ZR_ERR_NO_DAEMON:
        return "is libvirt's daemon running? start libvirtd (or virtqemud where libvirt runs "
               "modular daemons), e.g. systemctl start libvirtd";
    case ZR_ERR_NOT_FOUND:
        /* A near-miss name (ZR_ERR_NOT_FOUND_NEAR) is suggested in the
         * message itself. */
        return "guests are named as libvirt names them (virsh list --all); is -c, or the "
               "inventory's uri, the right host?";
    case ZR_ERR_NO_FUNCTION:
        return "virsh nodedev-list --cap pci lists the host's functions (lspci -D gives the same "
               "addresses); --no-host-check skips this check";
    case ZR_ERR_NO_NODEDEVS:
        /* Only the node device lookups are missing there: the conflict
         * check still runs, with or without --no-host-check, so the hint
         * must not read as "turn the checks off". */
        return "this connection has no node devices (qemu:///embed has none), so functions, "
               "IOMMU groups, SR-IOV and drivers are not checked there; --no-host-check says you "
               "know (it skips only these lookups: the check that no other guest holds a function "
               "still runs)";
    case ZR_ERR_NOT_VF:
        return "a physical function gets virtual functions with echo N > "
               "/sys/bus/pci/devices/DDDD:BB:SS.F/sriov_numvfs; virsh nodedev-dumpxml on it lists "
               "them (capability virt_functions)";
    case ZR_ERR_IOMMU_GROUP:
        return "virsh nodedev-dumpxml pci_DDDD_BB_SS_F shows a function's IOMMU group; a group "
               "splits only where the platform isolates its functions (ACS)";
    case ZR_ERR_POOL:
        return "a function is free when no guest's definition holds it and no entry names it: "
               "virsh dumpxml shows who holds what; a larger pool or a lower count frees the guest";
    case ZR_ERR_TIMEOUT:
        return "a running guest's OS must release the device itself: a longer --timeout gives it "
               "more time, --config-only leaves running guests alone";
    case ZR_ERR_OTHER:
    case ZR_ERR_INVALID_INPUT:
    case ZR_ERR_CONNECT:
    case ZR_ERR_NOT_FOUND_NEAR:
    case ZR_ERR_LIBVIRT_REFUSED:
    case ZR_ERR_HOST_CHECK:
    case ZR_ERR_CONFLICT:
    case ZR_ERR_LOCK:
    case ZR_ERR_INTERRUPTED:
    case ZR_ERR_HELD:
    case ZR_ERR_BOOT_ORDER:
    case ZR_ERR_KIND_KEPT:
    case ZR_ERR_UNBUILDABLE:
    case ZR_ERR_LIVE_DRIFT:
    case ZR_ERR_ROLLBACK:
    case ZR_ERR__COUNT:
        break;
    }
    return NULL;
}
