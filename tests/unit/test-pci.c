#include <criterion/criterion.h>
#include <errno.h>

#include "pci.h"

Test(pci_addr, full_and_short_forms)
{
    struct zr_pci_addr a;
    char buf[ZR_PCI_ADDR_STRLEN];

    cr_assert_eq(zr_pci_addr_parse("0002:00:00.0", &a), 0);
    cr_assert_str_eq(zr_pci_addr_format(&a, buf), "0002:00:00.0");
    cr_assert_eq(zr_pci_addr_parse("ffff:FF:1f.7", &a), 0);
    cr_assert_str_eq(zr_pci_addr_format(&a, buf), "ffff:ff:1f.7");
    cr_assert_eq(zr_pci_addr_parse("03:00.1", &a), 0);
    cr_assert_str_eq(zr_pci_addr_format(&a, buf), "0000:03:00.1");
    cr_assert_eq(zr_pci_addr_parse("2:0:1.0", &a), 0);
    cr_assert_str_eq(zr_pci_addr_format(&a, buf), "0002:00:01.0");
}

Test(pci_addr, rejects_malformed)
{
    static const char *bad[] = {
        "", "0002", "0002:00:00", "0002:00:00.", "00002:00:00.0", "0002:000:00.0",
        "0002:00:00.0 ", " 0002:00:00.0", "0002-00-00.0", "0002:00:00.08", "g002:00:00.0",
        "0002:00:00:00.0", "0002::00.0", "0x02:00:00.0", "0002:00:00.-1",
    };
    struct zr_pci_addr a;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_expect_eq(zr_pci_addr_parse(bad[i], &a), -EINVAL, "'%s'", bad[i]);
}

Test(pci_addr, rejects_out_of_range)
{
    struct zr_pci_addr a;
    cr_assert_eq(zr_pci_addr_parse("0000:00:20.0", &a), -ERANGE);
    cr_assert_eq(zr_pci_addr_parse("0000:00:00.8", &a), -ERANGE);
}

Test(pci_addr, ordering)
{
    struct zr_pci_addr a, b;
    zr_pci_addr_parse("0001:ff:1f.7", &a);
    zr_pci_addr_parse("0002:00:00.0", &b);
    cr_assert_lt(zr_pci_addr_cmp(&a, &b), 0);
    cr_assert_gt(zr_pci_addr_cmp(&b, &a), 0);
    cr_assert(zr_pci_addr_eq(&a, &a));
}

Test(mac, parse_and_format)
{
    struct zr_mac m;
    char buf[ZR_MAC_STRLEN];
    cr_assert_eq(zr_mac_parse("02:00:00:AB:cd:01", &m), 0);
    cr_assert_str_eq(zr_mac_format(&m, buf), "02:00:00:ab:cd:01");
    cr_assert_eq(zr_mac_parse("01:00:5e:00:00:01", &m), -EDOM);
    cr_assert_eq(zr_mac_parse("ff:ff:ff:ff:ff:ff", &m), -EDOM);
    cr_assert_eq(zr_mac_parse("02:00:00:00:00", &m), -EINVAL);
    cr_assert_eq(zr_mac_parse("02-00-00-00-00-01", &m), -EINVAL);
    cr_assert_eq(zr_mac_parse("02:00:00:00:00:0g", &m), -EINVAL);
    cr_assert_eq(zr_mac_parse("2:0:0:0:0:1", &m), -EINVAL);
}

Test(uuid, parse_and_format)
{
    struct zr_uuid u;
    char buf[ZR_UUID_STRLEN];
    cr_assert_eq(zr_uuid_parse("09B11C53-8b5c-4eeb-8f00-d84eaa0aaa4f", &u), 0);
    cr_assert_str_eq(zr_uuid_format(&u, buf), "09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f");
    cr_assert_eq(zr_uuid_parse("09b11c538b5c4eeb8f00d84eaa0aaa4f", &u), -EINVAL);
    cr_assert_eq(zr_uuid_parse("09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4", &u), -EINVAL);
    cr_assert_eq(zr_uuid_parse("09b11c53-8b5c-4eeb-8f00_d84eaa0aaa4f", &u), -EINVAL);
}

Test(numbers, decimal_and_hex_never_octal)
{
    uint64_t v;
    cr_assert_eq(zr_uint_parse("0010", 100, &v), 0);
    cr_assert_eq(v, 10);
    cr_assert_eq(zr_uint_parse("0x10", 100, &v), 0);
    cr_assert_eq(v, 16);
    cr_assert_eq(zr_uint_parse("0XfF", 0xff, &v), 0);
    cr_assert_eq(v, 255);
    cr_assert_eq(zr_uint_parse("0x100", 0xff, &v), -ERANGE);
    cr_assert_eq(zr_uint_parse("99999999999999999999999", UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(zr_uint_parse("0x", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("-1", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("1_000", 10000, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("1:00", 10000, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("+1", 10, &v), -EINVAL);
}

Test(numbers, zpci_and_vlan_ranges)
{
    uint32_t v;
    cr_assert_eq(zr_zpci_uid_parse("0x0000", &v), -ERANGE);
    cr_assert_eq(zr_zpci_uid_parse("0x0001", &v), 0);
    cr_assert_eq(zr_zpci_uid_parse("0xffff", &v), 0);
    cr_assert_eq(zr_zpci_uid_parse("0x10000", &v), -ERANGE);
    cr_assert_eq(zr_zpci_fid_parse("0", &v), 0);
    cr_assert_eq(zr_zpci_fid_parse("0xffffffff", &v), 0);
    cr_assert_eq(v, 0xffffffffu);
    cr_assert_eq(zr_zpci_fid_parse("0x100000000", &v), -ERANGE);
    cr_assert_eq(zr_vlan_parse("4095", &v), 0);
    cr_assert_eq(zr_vlan_parse("4096", &v), -ERANGE);
}

Test(booleans, yaml_core_words_only)
{
    bool b;
    cr_assert_eq(zr_bool_parse("true", &b), 0);
    cr_assert(b);
    cr_assert_eq(zr_bool_parse("no", &b), 0);
    cr_assert_not(b);
    cr_assert_eq(zr_bool_parse("yes", &b), 0);
    cr_assert_eq(zr_bool_parse("false", &b), 0);
    cr_assert_eq(zr_bool_parse("True", &b), -EINVAL);
    cr_assert_eq(zr_bool_parse("on", &b), -EINVAL);
    cr_assert_eq(zr_bool_parse("1", &b), -EINVAL);
}

Test(numbers, uint64_edges_and_no_whitespace)
{
    uint64_t v;
    cr_assert_eq(zr_uint_parse("18446744073709551615", UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(zr_uint_parse("18446744073709551616", UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(zr_uint_parse("0xffffffffffffffff", UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(zr_uint_parse("0x10000000000000000", UINT64_MAX, &v), -ERANGE);
    cr_assert_eq(zr_uint_parse(" 1", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("1 ", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("0o7", 10, &v), -EINVAL);
    cr_assert_eq(zr_uint_parse("1e3", 10000, &v), -EINVAL);
}

Test(numbers, decimal_range_edges)
{
    uint32_t v;
    cr_assert_eq(zr_zpci_uid_parse("1", &v), 0);
    cr_assert_eq(zr_zpci_uid_parse("0", &v), -ERANGE);
    cr_assert_eq(zr_zpci_uid_parse("65535", &v), 0);
    cr_assert_eq(v, 0xffff);
    cr_assert_eq(zr_zpci_uid_parse("65536", &v), -ERANGE);
    cr_assert_eq(zr_zpci_fid_parse("4294967295", &v), 0);
    cr_assert_eq(zr_zpci_fid_parse("4294967296", &v), -ERANGE);
    cr_assert_eq(zr_vlan_parse("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(zr_vlan_parse("0x1000", &v), -ERANGE);
}

Test(parsers, null_and_empty_are_malformed)
{
    uint64_t n;
    struct zr_pci_addr a;
    struct zr_mac m;
    struct zr_uuid u;
    bool b;
    cr_assert_eq(zr_uint_parse(NULL, 10, &n), -EINVAL);
    cr_assert_eq(zr_pci_addr_parse(NULL, &a), -EINVAL);
    cr_assert_eq(zr_mac_parse(NULL, &m), -EINVAL);
    cr_assert_eq(zr_mac_parse("", &m), -EINVAL);
    cr_assert_eq(zr_uuid_parse(NULL, &u), -EINVAL);
    cr_assert_eq(zr_uuid_parse("", &u), -EINVAL);
    cr_assert_eq(zr_bool_parse(NULL, &b), -EINVAL);
    cr_assert_eq(zr_bool_parse("", &b), -EINVAL);
    cr_assert_eq(zr_bool_parse("yes ", &b), -EINVAL);
}

Test(pci_addr, edges)
{
    struct zr_pci_addr a;
    char buf[ZR_PCI_ADDR_STRLEN];
    cr_assert_eq(zr_pci_addr_parse("0:0:0.0", &a), 0);
    cr_assert_str_eq(zr_pci_addr_format(&a, buf), "0000:00:00.0");
    cr_assert_eq(zr_pci_addr_parse("0000:00:1f.8", &a), -ERANGE);
    cr_assert_eq(zr_pci_addr_parse("0000:100:00.0", &a), -EINVAL);
    cr_assert_eq(zr_pci_addr_parse("0000:00:00.0\n", &a), -EINVAL);
}

Test(mac, trailing_text_and_wrong_separator)
{
    struct zr_mac m;
    cr_assert_eq(zr_mac_parse("02:00:00:00:00:01 ", &m), -EINVAL);
    cr_assert_eq(zr_mac_parse("02:00:00:00:00-01", &m), -EINVAL);
    /* Locally administered unicast (02) is fine; the multicast bit is bit 0. */
    cr_assert_eq(zr_mac_parse("fe:ff:ff:ff:ff:ff", &m), 0);
    cr_assert_eq(zr_mac_parse("03:00:00:00:00:00", &m), -EDOM);
}

Test(uuid, dashes_must_be_in_place)
{
    struct zr_uuid u;
    cr_assert_eq(zr_uuid_parse("09b11c538-b5c-4eeb-8f00-d84eaa0aaa4f", &u), -EINVAL);
    cr_assert_eq(zr_uuid_parse("09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4g", &u), -EINVAL);
}
