#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "field.h"
#include "util.h"

#define AT(type, obj, off) ((type *)(void *)((char *)(obj) + (off)))
#define AT_CONST(type, obj, off) ((const type *)(const void *)((const char *)(obj) + (off)))

/* ---- virtualport: a nested value, compared and shown by its own rules ---- */

static void report_u32(zr_field_report report, void *ctx, const char *name, bool old_set,
                       uint32_t old, uint32_t new)
{
    char o[32] = "(none)", n[32];
    if (old_set)
        snprintf(o, sizeof(o), "%u", old);
    snprintf(n, sizeof(n), "%u", new);
    report(ctx, name, o, n);
}

static void vport_diff_qbg(const struct zr_virtualport *w, const struct zr_virtualport *c,
                           zr_field_report report, void *ctx)
{
    if (w->has_managerid && (!c->has_managerid || c->managerid != w->managerid))
        report_u32(report, ctx, "virtualport.managerid", c->has_managerid, c->managerid,
                   w->managerid);
    if (w->has_typeid && (!c->has_typeid || c->typeid != w->typeid))
        report_u32(report, ctx, "virtualport.typeid", c->has_typeid, c->typeid, w->typeid);
    if (w->has_typeidversion && (!c->has_typeidversion || c->typeidversion != w->typeidversion))
        report_u32(report, ctx, "virtualport.typeidversion", c->has_typeidversion,
                   c->typeidversion, w->typeidversion);
    if (w->has_instanceid && (!c->has_instanceid || !zr_uuid_eq(&c->instanceid, &w->instanceid))) {
        char o[ZR_UUID_STRLEN] = "(none)", n[ZR_UUID_STRLEN];
        if (c->has_instanceid)
            zr_uuid_format(&c->instanceid, o);
        report(ctx, "virtualport.instanceid", o, zr_uuid_format(&w->instanceid, n));
    }
}

static void vport_diff(const struct zr_virtualport *w, const struct zr_virtualport *c,
                       zr_field_report report, void *ctx)
{
    if (w->type == ZR_VPORT_NONE)
        return;
    if (w->type != c->type) {
        report(ctx, "virtualport.type",
               c->type == ZR_VPORT_NONE ? "(none)" : zr_vport_type_to_string(c->type),
               zr_vport_type_to_string(w->type));
        return;
    }
    switch (w->type) {
    case ZR_VPORT_8021QBH:
        if (!zr_streq(w->profileid, c->profileid))
            report(ctx, "virtualport.profileid", c->profileid ? c->profileid : "(none)",
                   w->profileid);
        break;
    case ZR_VPORT_8021QBG:
        vport_diff_qbg(w, c, report, ctx);
        break;
    case ZR_VPORT_NONE:
    case ZR_VPORT__COUNT:
        break;
    }
}

/* " virtualport=802.1Qbg managerid=1 ...": the parts that are set. */
static void vport_describe(const struct zr_virtualport *v, FILE *f)
{
    char uuid[ZR_UUID_STRLEN];
    switch (v->type) {
    case ZR_VPORT_8021QBH:
        fprintf(f, " virtualport=802.1Qbh profileid=%s", v->profileid ? v->profileid : "");
        break;
    case ZR_VPORT_8021QBG:
        fputs(" virtualport=802.1Qbg", f);
        if (v->has_managerid)
            fprintf(f, " managerid=%u", v->managerid);
        if (v->has_typeid)
            fprintf(f, " typeid=%u", v->typeid);
        if (v->has_typeidversion)
            fprintf(f, " typeidversion=%u", v->typeidversion);
        if (v->has_instanceid)
            fprintf(f, " instanceid=%s", zr_uuid_format(&v->instanceid, uuid));
        break;
    case ZR_VPORT_NONE:
    case ZR_VPORT__COUNT:
        break;
    }
}

/* ---- the table ------------------------------------------------------------ */

#define DEV(m) offsetof(struct zr_device, m)
#define DEV_HAS(m) (offsetof(struct zr_device, m) + 1)
#define HELD(m) (offsetof(struct zr_held, m) + 1)
#define IFACE ZR_KIND_BIT(ZR_KIND_INTERFACE)

const struct zr_field zr_fields[ZR_FIELD__COUNT] = {
    [ZR_FIELD_MANAGED] = {.name = "managed", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_BOOL,
                          .offset = DEV(managed), .words = {"no", "yes"}},
    [ZR_FIELD_ZPCI_UID] = {.name = "zpci.uid", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_U32,
                           .offset = DEV(zpci_uid), .has = DEV_HAS(has_zpci_uid),
                           .min = ZR_ZPCI_UID_MIN, .max = ZR_ZPCI_UID_MAX, .hex_digits = 4,
                           .noun = "zPCI uid", .dup = "zPCI uid", .held = HELD(zpci_uid),
                           .held_has = HELD(has_zpci_uid), .libvirt_picks = true, .kept = true,
                           .grouped = true},
    [ZR_FIELD_ZPCI_FID] = {.name = "zpci.fid", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_U32,
                           .offset = DEV(zpci_fid), .has = DEV_HAS(has_zpci_fid),
                           .max = ZR_ZPCI_FID_MAX, .hex_digits = 8, .noun = "zPCI fid",
                           .dup = "zPCI fid", .held = HELD(zpci_fid),
                           .held_has = HELD(has_zpci_fid), .libvirt_picks = true, .kept = true,
                           .grouped = true},
    [ZR_FIELD_GUEST_ADDRESS] = {.name = "guest_address", .kinds = ZR_KINDS_ALL,
                                .type = ZR_VALUE_PCI_ADDR, .offset = DEV(guest_address),
                                .has = DEV_HAS(has_guest_address), .noun = "guest address",
                                .dup = "guest_address", .held = HELD(guest_address),
                                .held_has = HELD(has_guest_address), .libvirt_picks = true,
                                .kept = true},
    [ZR_FIELD_MAC] = {.name = "mac", .kinds = IFACE, .type = ZR_VALUE_MAC, .offset = DEV(mac),
                      .has = DEV_HAS(has_mac), .dup = "mac", .kept = true},
    [ZR_FIELD_VIRTUALPORT] = {.name = "virtualport", .kinds = IFACE,
                              .type = ZR_VALUE_VIRTUALPORT, .offset = DEV(vport),
                              .diff = vport_diff, .describe = vport_describe},
    [ZR_FIELD_BOOT_ORDER] = {.name = "boot_order", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_U32,
                             .offset = DEV(boot_order), .has = DEV_HAS(has_boot_order), .min = 1,
                             .max = ZR_BOOT_ORDER_MAX, .noun = "boot order", .dup = "boot_order",
                             .held = HELD(boot_order), .held_has = HELD(has_boot_order),
                             .kept = true},
    [ZR_FIELD_ROM_BAR] = {.name = "rom.bar", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_BOOL,
                          .offset = DEV(rom.bar), .has = DEV_HAS(rom.has_bar),
                          .words = {"off", "on"}, .kept = true},
    [ZR_FIELD_ROM_FILE] = {.name = "rom.file", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_STRING,
                           .offset = DEV(rom.file), .has = DEV_HAS(rom.has_file),
                           .max = ZR_ROM_FILE_MAX, .kept = true},
    [ZR_FIELD_ROM_ENABLED] = {.name = "rom.enabled", .kinds = ZR_KINDS_ALL, .type = ZR_VALUE_BOOL,
                              .offset = DEV(rom.enabled), .has = DEV_HAS(rom.has_enabled),
                              .words = {"no", "yes"}, .kept = true},
    /* A replacement's vlan and virtualport are kept by the rule for the
     * pair libvirt refuses (plan.c), not one by one. */
    [ZR_FIELD_VLAN] = {.name = "vlan", .kinds = IFACE, .type = ZR_VALUE_U32, .offset = DEV(vlan),
                       .has = DEV_HAS(has_vlan), .max = ZR_VLAN_MAX,
                       .odd = DEV_HAS(vlan_unrepresentable), .odd_text = "(several tags or trunk)"},
};

const zr_field_id zr_field_describe_order[ZR_FIELD__COUNT] = {
    ZR_FIELD_MANAGED,     ZR_FIELD_MAC,        ZR_FIELD_ZPCI_UID, ZR_FIELD_ZPCI_FID,
    ZR_FIELD_GUEST_ADDRESS, ZR_FIELD_VIRTUALPORT, ZR_FIELD_VLAN,   ZR_FIELD_BOOT_ORDER,
    ZR_FIELD_ROM_BAR,     ZR_FIELD_ROM_FILE,   ZR_FIELD_ROM_ENABLED,
};

#undef DEV
#undef DEV_HAS
#undef HELD
#undef IFACE

/* ---- values --------------------------------------------------------------- */

const void *zr_field_at(const struct zr_field *f, const struct zr_device *d)
{
    return AT_CONST(char, d, f->offset);
}

void *zr_field_at_mut(const struct zr_field *f, struct zr_device *d)
{
    return AT(char, d, f->offset);
}

void zr_field_mark(const struct zr_field *f, struct zr_device *d, bool set, bool odd)
{
    if (f->has)
        *AT(bool, d, f->has - 1) = set;
    if (f->odd)
        *AT(bool, d, f->odd - 1) = odd;
}

bool zr_field_bool(const struct zr_field *f, const struct zr_device *d)
{
    return *AT_CONST(bool, d, f->offset);
}

void zr_field_take(const struct zr_field *f, struct zr_device *dst, const struct zr_device *src)
{
    switch (f->type) {
    case ZR_VALUE_BOOL:
        *AT(bool, dst, f->offset) = *AT_CONST(bool, src, f->offset);
        break;
    case ZR_VALUE_U32:
        *AT(uint32_t, dst, f->offset) = *AT_CONST(uint32_t, src, f->offset);
        break;
    case ZR_VALUE_PCI_ADDR:
        *AT(struct zr_pci_addr, dst, f->offset) = *AT_CONST(struct zr_pci_addr, src, f->offset);
        break;
    case ZR_VALUE_MAC:
        *AT(struct zr_mac, dst, f->offset) = *AT_CONST(struct zr_mac, src, f->offset);
        break;
    case ZR_VALUE_STRING:
        free(*AT(char *, dst, f->offset));
        *AT(char *, dst, f->offset) = zr_strdup(*AT_CONST(char *, src, f->offset));
        break;
    case ZR_VALUE_VIRTUALPORT:
        zr_virtualport_finish(AT(struct zr_virtualport, dst, f->offset));
        zr_virtualport_copy(AT(struct zr_virtualport, dst, f->offset),
                            AT_CONST(struct zr_virtualport, src, f->offset));
        return;
    case ZR_VALUE__COUNT:
        abort();
    }
    if (f->has)
        *AT(bool, dst, f->has - 1) = *AT_CONST(bool, src, f->has - 1);
}

const char *zr_field_format_u32(const struct zr_field *f, uint32_t v, char buf[ZR_FIELD_STRLEN])
{
    if (f->hex_digits)
        snprintf(buf, ZR_FIELD_STRLEN, "0x%0*x", (int)f->hex_digits, v);
    else
        snprintf(buf, ZR_FIELD_STRLEN, "%u", v);
    return buf;
}

const char *zr_field_format(const struct zr_field *f, const struct zr_device *d,
                            char buf[ZR_FIELD_STRLEN])
{
    switch (f->type) {
    case ZR_VALUE_BOOL:
        return f->words[*AT_CONST(bool, d, f->offset)];
    case ZR_VALUE_U32:
        return zr_field_format_u32(f, *AT_CONST(uint32_t, d, f->offset), buf);
    case ZR_VALUE_PCI_ADDR:
        return zr_pci_addr_format(AT_CONST(struct zr_pci_addr, d, f->offset), buf);
    case ZR_VALUE_MAC:
        return zr_mac_format(AT_CONST(struct zr_mac, d, f->offset), buf);
    case ZR_VALUE_STRING:
        return *AT_CONST(char *, d, f->offset);
    case ZR_VALUE_VIRTUALPORT:
    case ZR_VALUE__COUNT:
        break;
    }
    abort();
}

static const char *format_bound(uint32_t v, unsigned digits, char *buf, size_t size)
{
    if (digits && v)
        snprintf(buf, size, "0x%0*x", (int)digits, v);
    else
        snprintf(buf, size, "%u", v);
    return buf;
}

const char *zr_limits_format(uint32_t min, uint32_t max, bool hex, char buf[ZR_FIELD_STRLEN])
{
    unsigned digits = 0;
    for (uint32_t m = max; hex && m; m >>= 4)
        digits++;
    char lo[24], hi[24];
    snprintf(buf, ZR_FIELD_STRLEN, "%s to %s", format_bound(min, digits, lo, sizeof(lo)),
             format_bound(max, digits, hi, sizeof(hi)));
    return buf;
}

const char *zr_field_limits(const struct zr_field *f, char buf[ZR_FIELD_STRLEN])
{
    return zr_limits_format(f->min, f->max, f->hex_digits != 0, buf);
}

bool zr_field_in_range(const struct zr_field *f, uint32_t v)
{
    return v >= f->min && v <= f->max;
}

static size_t value_size(const struct zr_field *f)
{
    switch (f->type) {
    case ZR_VALUE_U32:
        return sizeof(uint32_t);
    case ZR_VALUE_PCI_ADDR:
        return sizeof(struct zr_pci_addr);
    case ZR_VALUE_BOOL:
    case ZR_VALUE_MAC:
    case ZR_VALUE_STRING:
    case ZR_VALUE_VIRTUALPORT:
    case ZR_VALUE__COUNT:
        break;
    }
    abort(); /* no such value is held */
}

void zr_field_from_held(struct zr_device *v, const struct zr_held *h)
{
    *v = (struct zr_device){0};
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const struct zr_field *f = &zr_fields[i];
        if (!f->held)
            continue;
        memcpy((char *)v + f->offset, (const char *)h + f->held - 1, value_size(f));
        *AT(bool, v, f->has - 1) = *AT_CONST(bool, h, f->held_has - 1);
    }
}

/* ---- what the plan does with them ---------------------------------------- */

void zr_field_diff(const struct zr_device *w, const struct zr_device *c, zr_field_report report,
                   void *ctx)
{
    char o[ZR_FIELD_STRLEN], n[ZR_FIELD_STRLEN];
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const struct zr_field *f = &zr_fields[i];
        if (f->type == ZR_VALUE_VIRTUALPORT) {
            f->diff(AT_CONST(struct zr_virtualport, w, f->offset),
                    AT_CONST(struct zr_virtualport, c, f->offset), report, ctx);
            continue;
        }
        if (!zr_field_is_set(f, w))
            continue;
        bool odd = zr_field_is_odd(f, c), set = zr_field_is_set(f, c);
        if (set && !odd && zr_field_same(f, w, c))
            continue;
        report(ctx, f->name, odd ? f->odd_text : set ? zr_field_format(f, c, o) : "(none)",
               zr_field_format(f, w, n));
    }
}

void zr_field_keep_current(struct zr_device *out, const struct zr_device *w,
                           const struct zr_device *c, unsigned moving)
{
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const struct zr_field *f = &zr_fields[i];
        if (f->kept && !(moving & ZR_FIELD_BIT(i)) && !zr_field_is_set(f, w) &&
            zr_field_is_set(f, c))
            zr_field_take(f, out, c);
    }
}
