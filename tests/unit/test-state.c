/* zr_libvirt_error_code() (state.c): which code a libvirt failure gets,
 * so that the hints (hints.c, tested in test-hints.c against the model
 * alone) point the right way.  These tests make real libvirt calls. */
#include <criterion/criterion.h>
#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "state.h"

/* Which code a connection that fails at libvirt's socket gets: the client's
 * RPC layer reports the errno of connect(). */
Test(state, socket_errors_name_the_daemon)
{
    virConnectPtr c = virConnectOpen("qemu:///system?socket=/nonexistent/zr-test/sock");
    cr_assert_null(c);
    cr_expect_eq(zr_libvirt_error_code(ZR_ERR_CONNECT), ZR_ERR_NO_DAEMON, "%s",
                 virGetLastErrorMessage());
}

/* A system error of the driver's own, with the same errno, is not about the
 * connection: libvirt 11.3's live attach fails with ENOENT when the host has
 * no modules.alias for its kernel and with EPERM when it may not raise QEMU's
 * locked-memory limit. Hints for a missing daemon or a refused user would send
 * the user the wrong way. The test driver's core dump to a missing directory
 * is such an error (VIR_FROM_TEST, VIR_ERR_SYSTEM_ERROR, ENOENT). */
Test(state, driver_system_errors_get_no_connection_hint)
{
    virConnectPtr c = virConnectOpen("test:///default");
    cr_assert_not_null(c);
    virDomainPtr d = virDomainLookupByName(c, "test");
    cr_assert_not_null(d);
    cr_assert_lt(virDomainCoreDump(d, "/nonexistent/zr-test/core", 0), 0);
    virErrorPtr e = virGetLastError();
    cr_assert_not_null(e);
    cr_expect_eq(e->code, VIR_ERR_SYSTEM_ERROR);
    cr_expect_eq(e->int1, ENOENT);
    cr_expect_eq(zr_libvirt_error_code(ZR_ERR_LIBVIRT_REFUSED), ZR_ERR_LIBVIRT_REFUSED, "%s",
                 e->message);
    virDomainFree(d);
    virConnectClose(c);
}
