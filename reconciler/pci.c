#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "pci.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads 1..maxdigits hex digits at *p; advances *p.  -EINVAL if none. */
static int read_hex(const char **p, unsigned maxdigits, uint32_t *out)
{
    uint32_t v = 0;
    unsigned n = 0;
    while (n < maxdigits && hexval(**p) >= 0) {
        v = v * 16 + (uint32_t)hexval(**p);
        (*p)++;
        n++;
    }
    if (n == 0 || hexval(**p) >= 0)
        return -EINVAL;
    *out = v;
    return 0;
}

int zr_pci_addr_parse(const char *s, struct zr_pci_addr *out)
{
    if (!s || !*s)
        return -EINVAL;

    /* Count the colons to tell "DDDD:BB:SS.F" from "BB:SS.F". */
    unsigned colons = 0;
    for (const char *c = s; *c; c++)
        colons += *c == ':';
    if (colons != 1 && colons != 2)
        return -EINVAL;

    const char *p = s;
    uint32_t domain = 0, bus, slot, function;
    if (colons == 2) {
        if (read_hex(&p, 4, &domain) < 0 || *p++ != ':')
            return -EINVAL;
    }
    if (read_hex(&p, 2, &bus) < 0 || *p++ != ':')
        return -EINVAL;
    if (read_hex(&p, 2, &slot) < 0 || *p++ != '.')
        return -EINVAL;
    if (read_hex(&p, 1, &function) < 0 || *p != '\0')
        return -EINVAL;
    if (domain > ZR_PCI_DOMAIN_MAX || bus > ZR_PCI_BUS_MAX || slot > ZR_PCI_SLOT_MAX ||
        function > ZR_PCI_FUNCTION_MAX)
        return -ERANGE;

    *out = (struct zr_pci_addr){
        .domain = domain,
        .bus = (uint8_t)bus,
        .slot = (uint8_t)slot,
        .function = (uint8_t)function,
    };
    return 0;
}

int zr_pci_addr_cmp(const struct zr_pci_addr *a, const struct zr_pci_addr *b)
{
    if (a->domain != b->domain)
        return a->domain < b->domain ? -1 : 1;
    if (a->bus != b->bus)
        return a->bus < b->bus ? -1 : 1;
    if (a->slot != b->slot)
        return a->slot < b->slot ? -1 : 1;
    if (a->function != b->function)
        return a->function < b->function ? -1 : 1;
    return 0;
}

bool zr_pci_addr_eq(const struct zr_pci_addr *a, const struct zr_pci_addr *b)
{
    return zr_pci_addr_cmp(a, b) == 0;
}

const char *zr_pci_addr_format(const struct zr_pci_addr *a, char *buf)
{
    snprintf(buf, ZR_PCI_ADDR_STRLEN, ZR_PCI_ADDR_FMT, ZR_PCI_ADDR_ARGS(*a));
    return buf;
}

int zr_mac_parse(const char *s, struct zr_mac *out)
{
    struct zr_mac m;
    if (!s || strlen(s) != 17)
        return -EINVAL;
    for (unsigned i = 0; i < 6; i++) {
        const char *p = s + i * 3;
        int hi = hexval(p[0]), lo = hexval(p[1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        if (i < 5 && p[2] != ':')
            return -EINVAL;
        m.b[i] = (uint8_t)(hi * 16 + lo);
    }
    if (m.b[0] & 0x01)
        return -EDOM;
    *out = m;
    return 0;
}

bool zr_mac_eq(const struct zr_mac *a, const struct zr_mac *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

const char *zr_mac_format(const struct zr_mac *m, char *buf)
{
    snprintf(buf, ZR_MAC_STRLEN, ZR_MAC_FMT, ZR_MAC_ARGS(*m));
    return buf;
}

int zr_uuid_parse(const char *s, struct zr_uuid *out)
{
    static const unsigned groups[] = {8, 4, 4, 4, 12};
    struct zr_uuid u;
    unsigned byte = 0;
    const char *p = s;

    if (!s || strlen(s) != 36)
        return -EINVAL;
    for (unsigned g = 0; g < 5; g++) {
        for (unsigned i = 0; i < groups[g]; i += 2) {
            int hi = hexval(p[0]), lo = hexval(p[1]);
            if (hi < 0 || lo < 0)
                return -EINVAL;
            u.b[byte++] = (uint8_t)(hi * 16 + lo);
            p += 2;
        }
        if (g < 4 && *p++ != '-')
            return -EINVAL;
    }
    *out = u;
    return 0;
}

bool zr_uuid_eq(const struct zr_uuid *a, const struct zr_uuid *b)
{
    return memcmp(a->b, b->b, sizeof(a->b)) == 0;
}

const char *zr_uuid_format(const struct zr_uuid *u, char *buf)
{
    const uint8_t *b = u->b;
    snprintf(buf, ZR_UUID_STRLEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
             b[12], b[13], b[14], b[15]);
    return buf;
}

int zr_uint_parse(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    bool hex = false;
    const char *p = s;

    if (!s || !*s)
        return -EINVAL;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        hex = true;
        p += 2;
        if (!*p)
            return -EINVAL;
    }
    for (; *p; p++) {
        int d = hex ? hexval(*p) : (*p >= '0' && *p <= '9' ? *p - '0' : -1);
        if (d < 0)
            return -EINVAL;
        unsigned base = hex ? 16 : 10;
        if (v > (UINT64_MAX - (uint64_t)d) / base)
            return -ERANGE;
        v = v * base + (uint64_t)d;
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

int zr_bool_parse(const char *s, bool *out)
{
    if (!s)
        return -EINVAL;
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0) {
        *out = false;
        return 0;
    }
    return -EINVAL;
}

static int parse_u32_range(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    int r = zr_uint_parse(s, max, &v);
    if (r < 0)
        return r;
    if (v < min)
        return -ERANGE;
    *out = (uint32_t)v;
    return 0;
}

int zr_zpci_uid_parse(const char *s, uint32_t *out)
{
    return parse_u32_range(s, ZR_ZPCI_UID_MIN, ZR_ZPCI_UID_MAX, out);
}

int zr_zpci_fid_parse(const char *s, uint32_t *out)
{
    return parse_u32_range(s, 0, ZR_ZPCI_FID_MAX, out);
}

int zr_vlan_parse(const char *s, uint32_t *out)
{
    return parse_u32_range(s, 0, ZR_VLAN_MAX, out);
}

bool zr_profileid_ok(const char *s)
{
    if (!s || !*s || strlen(s) > ZR_VPORT_PROFILEID_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f || *p == '\'' || *p == '<' || *p == '&')
            return false;
    return true;
}

/* One decimal number of a nodeset, advancing *p. */
static int nodeset_number(const char **p, unsigned long *out)
{
    if (**p < '0' || **p > '9')
        return -EINVAL;
    char *end;
    errno = 0;
    *out = strtoul(*p, &end, 10);
    if (errno || *out > UINT_MAX)
        return -EINVAL;
    *p = end;
    return 0;
}

int zr_nodeset_has(const char *nodeset, unsigned node)
{
    /* Items apply in order, as in libvirt's virBitmapParse: "N", "N-M" add,
     * "^N" removes. */
    bool has = false;
    const char *p = nodeset;
    for (;;) {
        while (*p == ' ')
            p++;
        bool negate = *p == '^';
        if (negate)
            p++;
        unsigned long lo, hi;
        if (nodeset_number(&p, &lo) < 0)
            return -EINVAL;
        hi = lo;
        if (!negate && *p == '-') {
            p++;
            if (nodeset_number(&p, &hi) < 0 || hi < lo)
                return -EINVAL;
        }
        if (node >= lo && node <= hi)
            has = !negate;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return has;
        if (*p != ',')
            return -EINVAL;
        p++;
    }
}
