/* fuzz-plan with structure: the bytes are decisions, not text.  Each byte
 * picks the next choice (how many guests and devices, which of four host
 * functions, which optional fields, which values from small pools, which
 * out-of-scope bystanders), and the target writes an inventory and domain
 * XML from them, then runs fuzz-plan's checks (zr_fuzz_plan_check) on the
 * result.  Raw-byte fuzz-plan spends nearly all its time on inputs the
 * parsers refuse; here nearly every input is a plan, and the small pools
 * make wanted and current devices share sources, ids and MACs, where
 * replacements, moves and swaps happen.  The validity rules stay the
 * loader's: an inventory it refuses is simply skipped. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

struct gen {
    const uint8_t *p;
    size_t n;
};

/* The next choice in 0..n-1; 0 once the bytes run out. */
static unsigned pick(struct gen *g, unsigned n)
{
    if (g->n == 0)
        return 0;
    g->n--;
    return *g->p++ % n;
}

static bool maybe(struct gen *g)
{
    return pick(g, 2) == 1;
}

/* A choice in 0..n-1 not yet in *used (then marked), or -1 when all are:
 * the loader refuses a source twice on a host and a zPCI id twice in a
 * guest, and refused inventories teach the plan nothing. */
static int pick_unused(struct gen *g, unsigned n, unsigned *used)
{
    unsigned v = pick(g, n);
    for (unsigned i = 0; i < n; i++, v = (v + 1) % n)
        if (!(*used & (1u << v))) {
            *used |= 1u << v;
            return (int)v;
        }
    return -1;
}

#define N_SOURCES 4

struct ids {
    unsigned uids, fids; /* used in this guest */
};

static void yaml_zpci(struct gen *g, FILE *f, struct ids *ids)
{
    unsigned what = pick(g, 4);
    int uid = what & 1 ? pick_unused(g, 3, &ids->uids) : -1;
    int fid = what & 2 ? pick_unused(g, 3, &ids->fids) : -1;
    if (uid >= 0 && fid >= 0)
        fprintf(f, "        zpci: {uid: %d, fid: 0x%x}\n", 1 + uid, (unsigned)fid);
    else if (uid >= 0)
        fprintf(f, "        zpci: {uid: 0x%04x}\n", 1 + (unsigned)uid);
    else if (fid >= 0)
        fprintf(f, "        zpci: {fid: %d}\n", fid);
}

static void yaml_managed(struct gen *g, FILE *f)
{
    static const char *const v[] = {NULL, "true", "false", "no"};
    const char *m = v[pick(g, 4)];
    if (m)
        fprintf(f, "        managed: %s\n", m);
}

static void yaml_guest(struct gen *g, FILE *f, unsigned k, unsigned *sources)
{
    struct ids ids = {0};
    fprintf(f, "  g%u:\n", k);
    if (maybe(g))
        fprintf(f, "    prune: %s\n", maybe(g) ? "true" : "false");

    unsigned n = pick(g, 4);
    for (unsigned i = 0; i < n; i++) {
        int s = pick_unused(g, N_SOURCES, sources);
        if (s < 0)
            break;
        if (i == 0)
            fputs("    hostdevs:\n", f);
        fprintf(f, "      - source: %04x:00:00.0\n", 1 + (unsigned)s);
        yaml_managed(g, f);
        yaml_zpci(g, f, &ids);
        if (maybe(g)) /* slot 0 too: the loader must refuse what never converges */
            fprintf(f, "        guest_address: 0000:00:%02x.%u\n", pick(g, 4), pick(g, 2));
    }
    n = pick(g, 4);
    for (unsigned i = 0; i < n; i++) {
        int s = pick_unused(g, N_SOURCES, sources);
        if (s < 0)
            break;
        if (i == 0)
            fputs("    interfaces:\n", f);
        fprintf(f, "      - source: %04x:00:00.0\n", 1 + (unsigned)s);
        yaml_managed(g, f);
        if (maybe(g))
            fprintf(f, "        mac: \"02:00:00:00:00:%02x\"\n", 1 + pick(g, 3));
        switch (pick(g, 4)) {
        case 1:
            fprintf(f, "        vlan: %u\n", 1 + pick(g, 3));
            break;
        case 2:
            fprintf(f, "        virtualport: {type: 802.1Qbh, profileid: p%u}\n", pick(g, 3));
            break;
        case 3:
            fprintf(f,
                    "        virtualport: {type: 802.1Qbg, managerid: %u, typeid: %u, "
                    "typeidversion: %u%s}\n",
                    pick(g, 2), pick(g, 2), pick(g, 2),
                    maybe(g) ? ", instanceid: 7f8a8e0d-3c3e-4b4e-9a7a-000000000001" : "");
            break;
        default:
            break;
        }
        yaml_zpci(g, f, &ids);
    }
}

static void xml_pci(FILE *f, unsigned domain, unsigned slot, bool typed)
{
    fprintf(f, "<address%s domain='0x%04x' bus='0x00' slot='0x%02x' function='0x0'", typed ? " type='pci'" : "", domain, slot);
}

/* What libvirt fills in or a user may have written: alias, guest address,
 * zPCI ids. */
static void xml_tail(struct gen *g, FILE *f)
{
    switch (pick(g, 3)) {
    case 1:
        fputs("<alias name='hostdev0'/>", f);
        break;
    case 2:
        fputs("<alias name='ua-x'/>", f);
        break;
    default:
        break;
    }
    unsigned a = pick(g, 4);
    if (a == 0)
        return;
    xml_pci(f, 0, a - 1, true);
    if (maybe(g)) {
        fputs("><zpci", f);
        if (maybe(g))
            fprintf(f, " uid='0x%04x'", 1 + pick(g, 3));
        if (maybe(g))
            fprintf(f, " fid='0x%08x'", pick(g, 3));
        fputs("/></address>", f);
    } else {
        fputs("/>", f);
    }
}

static const char *xml_managed(struct gen *g)
{
    static const char *const v[] = {"", " managed='yes'", " managed='no'"};
    return v[pick(g, 3)];
}

static void xml_device(struct gen *g, FILE *f)
{
    unsigned s = 1 + pick(g, N_SOURCES);
    switch (pick(g, 6)) {
    case 0:
    case 1:
        fprintf(f, "<hostdev mode='subsystem' type='pci'%s><driver name='vfio'/><source>",
                xml_managed(g));
        xml_pci(f, s, 0, false);
        fputs("/></source>", f);
        xml_tail(g, f);
        fputs("</hostdev>\n", f);
        return;
    case 2:
    case 3:
        fprintf(f, "<interface type='hostdev'%s>", xml_managed(g));
        if (maybe(g))
            fprintf(f, "<mac address='02:00:00:00:00:%02x'/>", 1 + pick(g, 3));
        fputs("<driver name='vfio'/><source>", f);
        xml_pci(f, s, 0, true);
        fputs("/></source>", f);
        switch (pick(g, 4)) {
        case 1:
            fprintf(f, "<vlan><tag id='%u'/></vlan>", 1 + pick(g, 3));
            break;
        case 2:
            fprintf(f, "<vlan trunk='yes'><tag id='1'/><tag id='%u'/></vlan>", 2 + pick(g, 2));
            break;
        case 3:
            fprintf(f, "<vlan><tag id='%u' nativeMode='untagged'/></vlan>", 1 + pick(g, 3));
            break;
        default:
            break;
        }
        switch (pick(g, 4)) {
        case 1:
            fprintf(f, "<virtualport type='802.1Qbh'><parameters profileid='p%u'/></virtualport>",
                    pick(g, 3));
            break;
        case 2:
            fprintf(f,
                    "<virtualport type='802.1Qbg'><parameters managerid='%u' typeid='%u' "
                    "typeidversion='%u' instanceid='7f8a8e0d-3c3e-4b4e-9a7a-00000000000%u'/>"
                    "</virtualport>",
                    pick(g, 2), pick(g, 2), pick(g, 2), pick(g, 2));
            break;
        case 3:
            fputs("<virtualport type='openvswitch'/>", f);
            break;
        default:
            break;
        }
        xml_tail(g, f);
        fputs("</interface>\n", f);
        return;
    case 4: /* out of scope: must never be touched */
        fputs("<hostdev mode='subsystem' type='mdev' model='vfio-ap'><source><address "
              "uuid='8ef0b8e4-e5a9-4cc3-a44a-2b1d8e3b8b3a'/></source></hostdev>\n",
              f);
        return;
    default:
        fprintf(f, "<interface type='hostdev'><source><address type='usb' bus='%u' "
                   "device='2'/></source></interface>\n<interface type='network'><source "
                   "network='default'/></interface>\n",
                s);
        return;
    }
}

static void xml_domain(struct gen *g, FILE *f, unsigned k)
{
    fprintf(f, "<domain type='kvm'><name>g%u</name><devices>\n", k);
    for (unsigned i = pick(g, 5); i > 0; i--)
        xml_device(g, f);
    fputs("</devices></domain>\n", f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gen g = {data, size};
    struct zr_fuzz_sink sink;
    zr_fuzz_sink_open(&sink);
    FILE *f = sink.f;

    fputs(maybe(&g) ? "config-only" : "", f);
    fputc('\0', f);
    unsigned n_guests = 1 + pick(&g, 3), sources = 0;
    fputs("version: 1\nguests:\n", f);
    for (unsigned k = 0; k < n_guests; k++)
        yaml_guest(&g, f, k, &sources);
    for (unsigned k = 0; k < n_guests; k++) {
        fputc('\0', f);
        struct gen at_config = g;
        if (pick(&g, 8) != 0) /* a guest not found, now and then */
            xml_domain(&g, f, k);
        fputc('\0', f);
        switch (pick(&g, 3)) {
        case 1: /* running, live devices of its own */
            xml_domain(&g, f, k);
            break;
        case 2: /* running, live as defined: the config's choices again */
            (void)pick(&at_config, 8); /* the not-found choice */
            xml_domain(&at_config, f, k);
            break;
        default: /* not running */
            break;
        }
    }
    zr_fuzz_sink_close(&sink);
    zr_fuzz_plan_check((const uint8_t *)sink.buf, sink.len);
    zr_fuzz_sink_free(&sink);
    return 0;
}
