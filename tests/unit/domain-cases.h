/* Device models that cover every option combination the XML builder has
 * to get right, shared by test-domain (schema + round trip) and
 * zr-domain-gen (libvirt itself accepts them).  All of them fit in one
 * guest: sources, zPCI ids, MACs and guest addresses are distinct.
 * Also the unit tests' file readers. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "device.h"

struct zr_test_case {
    const char *name;
    struct zr_device device;
};

extern const struct zr_test_case zr_test_cases[];
extern const size_t zr_test_n_cases;

/* Compares a device read back with the one that was built.  exact: every
 * model field must be equal (our own round trip).  Otherwise only managed
 * and the fields `want` sets, since libvirt fills in the rest (guest
 * address, the other zPCI id, MAC, instanceid).  Returns NULL when they
 * match, else a malloc()ed description of the first difference. */
char *zr_test_device_diff(const struct zr_device *want, const struct zr_device *got, bool exact);

/* The whole file, NUL-terminated, with its length; NULL with errno set. */
char *zr_test_read_file(const char *path, size_t *len);

/* $ZR_SRCDIR/tests/data/`rel` (a test's fixture), whole and NUL-terminated;
 * NULL with errno set (EINVAL: ZR_SRCDIR is not set). */
char *zr_test_data_file(const char *rel);

/* A minimal s390x guest around `devices_xml`, valid against domain.rng and
 * definable in qemu:///embed.  Returns a malloc()ed document. */
char *zr_test_wrap_domain(const char *devices_xml);
