/* Hints key on the error code, never on the message text: these tests
 * name codes, so rewording a message cannot drop its hint.  Which code a
 * real libvirt failure gets is checked where it happens (test-host, and
 * the integration tests against real daemons). */
#include <criterion/criterion.h>
#include <string.h>

#include "hints.h"

/* The hint for `code`, which must exist and mention each of `words`. */
static const char *expect_hint(zr_error_code code, const char *const *words)
{
    const char *h = zr_hint_for(code);
    cr_assert_not_null(h, "no hint for code %d", (int)code);
    for (; *words; words++)
        cr_expect(strstr(h, *words), "the hint for code %d lacks '%s': %s", (int)code, *words, h);
    return h;
}

#define WORDS(...) ((const char *const[]){__VA_ARGS__, NULL})

Test(hints, vfio_missing_on_live_attach)
{
    expect_hint(ZR_ERR_NO_VFIO, WORDS("vfio-pci", "IOMMU", "--config-only"));
}

Test(hints, socket_permission_polkit_or_no_system_bus)
{
    expect_hint(ZR_ERR_AUTH, WORDS("root", "'libvirt' group", "qemu:///session"));
}

Test(hints, no_daemon)
{
    const char *h = expect_hint(ZR_ERR_NO_DAEMON, WORDS("libvirtd"));
    /* a socket we may not open is not a missing daemon */
    cr_expect_neq(zr_hint_for(ZR_ERR_AUTH), h);
}

Test(hints, guest_not_found_without_near_miss)
{
    expect_hint(ZR_ERR_NOT_FOUND, WORDS("virsh list --all"));
    /* the message already names the likely guest */
    cr_expect_null(zr_hint_for(ZR_ERR_NOT_FOUND_NEAR));
}

Test(hints, host_check)
{
    expect_hint(ZR_ERR_NO_FUNCTION, WORDS("nodedev-list", "--no-host-check"));
    expect_hint(ZR_ERR_NO_NODEDEVS,
                WORDS("--no-host-check", "the check that no other guest holds a function still "
                                         "runs"));
    expect_hint(ZR_ERR_NOT_VF, WORDS("sriov_numvfs"));
    expect_hint(ZR_ERR_IOMMU_GROUP, WORDS("nodedev-dumpxml", "ACS"));
}

Test(hints, detach_timeout)
{
    expect_hint(ZR_ERR_TIMEOUT, WORDS("--timeout", "--config-only"));
}

Test(hints, nothing_for_other_codes)
{
    static const zr_error_code none[] = {
        ZR_ERR_OTHER,      ZR_ERR_INVALID_INPUT, ZR_ERR_CONNECT, ZR_ERR_LIBVIRT_REFUSED,
        ZR_ERR_HOST_CHECK, ZR_ERR_CONFLICT,      ZR_ERR_LOCK,    ZR_ERR_INTERRUPTED,
    };
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++)
        cr_expect_null(zr_hint_for(none[i]), "code %d", (int)none[i]);
    cr_expect_null(zr_hint_for(ZR_ERR__COUNT));
}

Test(hints, pool_not_served)
{
    expect_hint(ZR_ERR_POOL, WORDS("virsh dumpxml", "a larger pool", "a lower count"));
}
