/* The field table (field.h): every consumer walks it, so its own rules are
 * checked here, on the model alone. */
#include <criterion/criterion.h>
#include <string.h>

#include "field.h"
#include "util.h"

Test(field, describe_order_names_every_field_once)
{
    bool seen[ZR_FIELD__COUNT] = {0};
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        zr_field_id id = zr_field_describe_order[i];
        cr_assert(id < ZR_FIELD__COUNT && !seen[id], "describe order entry %zu", i);
        seen[id] = true;
    }
}

Test(field, each_field_is_complete)
{
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const struct zr_field *f = &zr_fields[i];
        cr_assert(f->name && *f->name, "field %zu has no name", i);
        cr_expect(f->kinds != 0 && (f->kinds & ~ZR_KINDS_ALL) == 0, "%s: kinds", f->name);
        cr_expect(f->min <= f->max, "%s: limits", f->name);
        if (f->type == ZR_VALUE_BOOL)
            cr_expect(f->words[0] && f->words[1], "%s: no words", f->name);
        if (f->type == ZR_VALUE_VIRTUALPORT)
            cr_expect(f->diff && f->describe, "%s: no callbacks", f->name);
        if (f->held)
            cr_expect(f->held_has && f->has, "%s: held without its bit", f->name);
        /* A value libvirt picks can move, and a moved one is kept unless it must. */
        if (f->libvirt_picks)
            cr_expect(f->kept && f->has, "%s", f->name);
        if (f->grouped)
            cr_expect(strchr(f->name, '.') != NULL, "%s: grouped without a group", f->name);
    }
}

Test(field, limits_are_made_from_the_numbers)
{
    char buf[ZR_FIELD_STRLEN];
    cr_expect_str_eq(zr_field_limits(&zr_fields[ZR_FIELD_ZPCI_UID], buf), "0x0001 to 0xffff");
    cr_expect_str_eq(zr_field_limits(&zr_fields[ZR_FIELD_ZPCI_FID], buf), "0 to 0xffffffff");
    cr_expect_str_eq(zr_field_limits(&zr_fields[ZR_FIELD_BOOT_ORDER], buf), "1 to 65535");
    cr_expect_str_eq(zr_field_limits(&zr_fields[ZR_FIELD_VLAN], buf), "0 to 4095");
    cr_expect_str_eq(zr_limits_format(0, 0xffffff, true, buf), "0 to 0xffffff");
    cr_expect(zr_field_in_range(&zr_fields[ZR_FIELD_BOOT_ORDER], 1));
    cr_expect(!zr_field_in_range(&zr_fields[ZR_FIELD_BOOT_ORDER], 0));
    cr_expect(!zr_field_in_range(&zr_fields[ZR_FIELD_ZPCI_UID], 0x10000));
}

struct seen {
    char text[256];
};

static void collect(void *ctx, const char *name, const char *old, const char *new)
{
    struct seen *s = ctx;
    size_t n = strlen(s->text);
    snprintf(s->text + n, sizeof(s->text) - n, "%s%s:%s>%s", n ? ";" : "", name, old, new);
}

/* Only what the wanted side sets is compared (managed always), in the
 * table's order, with "(none)" and the odd text for what the current side
 * lacks or cannot say. */
Test(field, diff_compares_what_the_wanted_side_sets)
{
    struct zr_device w = {.kind = ZR_KIND_INTERFACE, .managed = true}, c = w;
    w.has_vlan = true;
    w.vlan = 42;
    c.vlan_unrepresentable = true;
    w.has_zpci_uid = true;
    w.zpci_uid = 2;
    c.has_zpci_fid = true; /* not wanted: never a difference */
    c.managed = false;
    struct seen s = {{0}};
    zr_field_diff(&w, &c, collect, &s);
    cr_expect_str_eq(s.text, "managed:no>yes;zpci.uid:(none)>0x0002;vlan:(several tags or trunk)>42");
}

Test(field, keep_current_takes_what_the_inventory_leaves_out_but_moving_values)
{
    struct zr_device w = {.kind = ZR_KIND_HOSTDEV, .managed = true}, c = w, out = w;
    c.has_zpci_uid = c.has_zpci_fid = c.has_boot_order = true;
    c.zpci_uid = 7;
    c.zpci_fid = 9;
    c.boot_order = 3;
    zr_field_keep_current(&out, &w, &c, ZR_FIELD_BIT(ZR_FIELD_ZPCI_FID));
    cr_expect(out.has_zpci_uid && out.zpci_uid == 7);
    cr_expect(!out.has_zpci_fid, "a moving value is left to libvirt");
    cr_expect(out.has_boot_order && out.boot_order == 3);
}
