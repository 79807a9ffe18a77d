#include <criterion/criterion.h>
#include <string.h>

#include "hints.h"

/* The messages are what zpci-reconcile printed against real libvirt 9.0
 * (Debian 12); the comment above each says how it was produced. */

Test(hints, vfio_missing_on_live_attach)
{
    /* apply, qemu:///system, a running guest, no vfio-pci on the host */
    const char *h = zr_hint_for("unsupported configuration: host doesn't support VFIO PCI "
                                "passthrough");
    cr_assert_not_null(h);
    cr_expect(strstr(h, "vfio-pci"), "%s", h);
    cr_expect(strstr(h, "IOMMU"), "%s", h);
    cr_expect(strstr(h, "--config-only"), "%s", h);
    cr_expect_eq(zr_hint_for("unsupported configuration: host doesn't support passthrough of "
                             "host PCI devices"),
                 h);
}

Test(hints, socket_permission_denied)
{
    /* runuser -u nobody -- zpci-reconcile plan -c qemu:///system */
    const char *h = zr_hint_for("cannot connect to qemu:///system: Failed to connect socket to "
                                "'/var/run/libvirt/libvirt-sock': Permission denied");
    cr_assert_not_null(h);
    cr_expect(strstr(h, "root"), "%s", h);
    cr_expect(strstr(h, "'libvirt' group"), "%s", h);
    cr_expect(strstr(h, "qemu:///session"), "%s", h);
    /* polkit says no where the socket is open to everyone: same advice */
    cr_expect_eq(zr_hint_for("cannot connect to qemu:///system: authentication unavailable: no "
                             "polkit agent available to authenticate action "
                             "'org.libvirt.unix.manage'"),
                 h);
}

Test(hints, no_daemon)
{
    /* -c 'qemu+unix:///system?socket=/nonexistent' */
    const char *h = zr_hint_for("cannot connect to qemu:///system: Failed to connect socket to "
                                "'/var/run/libvirt/libvirt-sock': No such file or directory");
    cr_assert_not_null(h);
    cr_expect(strstr(h, "libvirtd"), "%s", h);
    cr_expect_eq(zr_hint_for("Failed to connect socket to '/run/libvirt/virtqemud-sock': "
                             "Connection refused"),
                 h);
    /* a socket that is there and refuses us is not a missing daemon */
    cr_expect_neq(zr_hint_for("Failed to connect socket to '/x': Permission denied"), h);
}

Test(hints, guest_not_found_without_near_miss)
{
    const char *h = zr_hint_for("guest 'ghost' not found");
    cr_assert_not_null(h);
    cr_expect(strstr(h, "virsh list --all"), "%s", h);
    /* the message already names the likely guest */
    cr_expect_null(zr_hint_for("guest 'linux01' not found (did you mean 'linux1'?)"));
}

Test(hints, host_check)
{
    cr_expect_not_null(zr_hint_for("host has no PCI function 0001:00:00.0"));
    cr_expect_not_null(zr_hint_for("host check skipped: qemu:///embed?root=/tmp/x lists no node "
                                   "devices"));
}

Test(hints, detach_timeout)
{
    const char *h = zr_hint_for("libvirt accepted the detach, but the guest still holds the device "
                                "after 30 s (--timeout)");
    cr_assert_not_null(h);
    cr_expect(strstr(h, "--timeout"), "%s", h);
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
