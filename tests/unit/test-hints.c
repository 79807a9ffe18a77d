#include <criterion/criterion.h>
#include <string.h>

#include "hints.h"

/* The messages are what zpci-reconcile printed against real libvirt 9.0
 * (Debian 12); the comment above each says how it was produced. */

/* The hint for `message`, which must exist and mention each of `words`. */
static const char *expect_hint(const char *message, const char *const *words)
{
    const char *h = zr_hint_for(message);
    cr_assert_not_null(h, "no hint for: %s", message);
    for (; *words; words++)
        cr_expect(strstr(h, *words), "the hint for '%s' lacks '%s': %s", message, *words, h);
    return h;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(hints, vfio_missing_on_live_attach)
{
    /* apply, qemu:///system, a running guest, no vfio-pci on the host */
    const char *h = expect_hint("unsupported configuration: host doesn't support VFIO PCI "
                                "passthrough",
                                WORDS("vfio-pci", "IOMMU", "--config-only"));
    cr_expect_eq(zr_hint_for("unsupported configuration: host doesn't support passthrough of "
                             "host PCI devices"),
                 h);
}

Test(hints, socket_permission_denied)
{
    /* runuser -u nobody -- zpci-reconcile plan -c qemu:///system */
    const char *h = expect_hint("cannot connect to qemu:///system: Failed to connect socket to "
                                "'/var/run/libvirt/libvirt-sock': Permission denied",
                                WORDS("root", "'libvirt' group", "qemu:///session"));
    /* polkit says no where the socket is open to everyone: same advice */
    cr_expect_eq(zr_hint_for("cannot connect to qemu:///system: authentication unavailable: no "
                             "polkit agent available to authenticate action "
                             "'org.libvirt.unix.manage'"),
                 h);
}

Test(hints, no_daemon)
{
    /* -c 'qemu+unix:///system?socket=/nonexistent' */
    const char *h = expect_hint("cannot connect to qemu:///system: Failed to connect socket to "
                                "'/var/run/libvirt/libvirt-sock': No such file or directory",
                                WORDS("libvirtd"));
    /* a socket file left behind by a daemon that is gone */
    cr_expect_eq(zr_hint_for("Failed to connect socket to '/run/libvirt/virtqemud-sock': "
                             "Connection refused"),
                 h);
    /* a socket we may not open is not a missing daemon */
    cr_expect_neq(zr_hint_for("Failed to connect socket to '/x': Permission denied"), h);
}

Test(hints, guest_not_found_without_near_miss)
{
    expect_hint("guest 'ghost' not found", WORDS("virsh list --all"));
    /* the message already names the likely guest */
    cr_expect_null(zr_hint_for("guest 'linux01' not found (did you mean 'linux1'?)"));
}

Test(hints, host_check)
{
    expect_hint("host has no PCI function 0001:00:00.0", WORDS("nodedev-list", "--no-host-check"));
    expect_hint("host check skipped: qemu:///embed?root=/tmp/x lists no node devices",
                WORDS("--no-host-check", "the check that no other guest holds a function still "
                                         "runs"));
    expect_hint("0000:00:03.0: 0000:00:03.0 is not an SR-IOV virtual function (it is a plain "
                "PCI function, driver virtio-pci); ...",
                WORDS("sriov_numvfs"));
    expect_hint("IOMMU group 12 of 0000:02:00.0 also holds 0000:02:00.1 (driver igb); ...",
                WORDS("nodedev-dumpxml", "ACS"));
}

Test(hints, detach_timeout)
{
    expect_hint("libvirt accepted the detach, but the guest still holds the device after 30 s "
                "(--timeout)",
                WORDS("--timeout", "--config-only"));
}

Test(hints, nothing_for_other_messages)
{
    cr_expect_null(zr_hint_for(NULL));
    cr_expect_null(zr_hint_for(""));
    cr_expect_null(zr_hint_for("cannot connect to qemu+ssh://nosuchhost/system: Cannot recv data: "
                               "ssh: Could not resolve hostname nosuchhost: Name or service not "
                               "known: Connection reset by peer"));
    cr_expect_null(zr_hint_for("another zpci-reconcile apply (pid 42) is changing qemu:///system; "
                               "lock file /run/lock/zpci-reconcile-0123456789abcdef.lock"));
    /* one word of a rule is not enough */
    cr_expect_null(zr_hint_for("Permission denied"));
    cr_expect_null(zr_hint_for("guest 'x' has no PCI hostdev"));
}
