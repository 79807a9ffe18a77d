#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "field.h"
#include "util.h"

const char *zr_kind_to_string(zr_kind kind)
{
    switch (kind) {
    case ZR_KIND_HOSTDEV:
        return "hostdev";
    case ZR_KIND_INTERFACE:
        return "interface";
    case ZR_KIND__COUNT:
        break;
    }
    return "?";
}

const char *zr_vport_type_to_string(zr_vport_type t)
{
    switch (t) {
    case ZR_VPORT_NONE:
        return "none";
    case ZR_VPORT_8021QBH:
        return "802.1Qbh";
    case ZR_VPORT_8021QBG:
        return "802.1Qbg";
    case ZR_VPORT__COUNT:
        break;
    }
    return "?";
}

static void rom_finish(struct zr_rom *r)
{
    free(r->file);
    *r = (struct zr_rom){0};
}

static void rom_copy(struct zr_rom *dst, const struct zr_rom *src)
{
    *dst = *src;
    dst->file = zr_strdup(src->file);
}

void zr_virtualport_finish(struct zr_virtualport *v)
{
    free(v->profileid);
    *v = (struct zr_virtualport){0};
}

void zr_virtualport_copy(struct zr_virtualport *dst, const struct zr_virtualport *src)
{
    *dst = *src;
    dst->profileid = zr_strdup(src->profileid);
}

void zr_device_finish(struct zr_device *d)
{
    zr_virtualport_finish(&d->vport);
    rom_finish(&d->rom);
    free(d->unrepresentable);
    free(d->alias);
    free(d->driver);
    free(d->xml);
    free(d->pool);
    *d = (struct zr_device){0};
}

void zr_device_copy(struct zr_device *dst, const struct zr_device *src)
{
    *dst = *src;
    zr_virtualport_copy(&dst->vport, &src->vport);
    rom_copy(&dst->rom, &src->rom);
    dst->unrepresentable = zr_strdup(src->unrepresentable);
    dst->alias = zr_strdup(src->alias);
    dst->driver = zr_strdup(src->driver);
    dst->xml = zr_strdup(src->xml);
    dst->pool = zr_strdup(src->pool);
}

static int device_key_cmp(const struct zr_device *a, const struct zr_device *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return zr_pci_addr_cmp(&a->source, &b->source);
}

bool zr_device_same_key(const struct zr_device *a, const struct zr_device *b)
{
    return device_key_cmp(a, b) == 0;
}

struct zr_device *zr_device_list_append(struct zr_device_list *l)
{
    return ZR_APPEND(l->items, l->n);
}

const struct zr_device *zr_device_list_find(const struct zr_device_list *l, zr_kind kind,
                                            const struct zr_pci_addr *source)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->items[i].kind == kind && zr_pci_addr_eq(&l->items[i].source, source))
            return &l->items[i];
    return NULL;
}

bool zr_device_list_holds(const struct zr_device_list *l, const struct zr_pci_addr *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (zr_pci_addr_eq(&l->items[i].source, s))
            return true;
    return false;
}

void zr_device_list_finish(struct zr_device_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        zr_device_finish(&l->items[i]);
    free(l->items);
    for (size_t i = 0; i < l->n_held; i++)
        free(l->held[i].what);
    free(l->held);
    *l = (struct zr_device_list){0};
}

/* One field as describe shows it: " mac=...", " zpci uid=... fid=..."
 * (a grouped field names its group before the first of it that is set). */
static void describe_field(FILE *f, const struct zr_field *fd, const struct zr_device *d,
                           const char **group)
{
    char buf[ZR_FIELD_STRLEN];
    const char *dot = strchr(fd->name, '.');
    if (fd->type == ZR_VALUE_VIRTUALPORT) {
        fd->describe(&d->vport, f);
        return;
    }
    if (!fd->grouped) {
        fprintf(f, " %s=%s", fd->name, zr_field_format(fd, d, buf));
        return;
    }
    size_t glen = (size_t)(dot - fd->name);
    if (!*group || strncmp(*group, fd->name, glen) != 0)
        fprintf(f, " %.*s", (int)glen, fd->name);
    *group = fd->name;
    fprintf(f, " %s=%s", dot + 1, zr_field_format(fd, d, buf));
}

char *zr_device_describe(const struct zr_device *d)
{
    struct zr_memstream m;
    FILE *f = zr_memstream_open(&m);
    const char *group = NULL;
    fprintf(f, "%s " ZR_PCI_ADDR_FMT, zr_kind_to_string(d->kind), ZR_PCI_ADDR_ARGS(d->source));
    /* Where the function came from, when a pool entry took it (choose.h):
     * not a field the plan compares, so not in the field table. */
    if (d->pool)
        fprintf(f, " (pool %s)", d->pool);
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const struct zr_field *fd = &zr_fields[zr_field_describe_order[i]];
        /* A field without an "is set" bit (managed) shows only when off. */
        bool shown = zr_field_is_set(fd, d);
        if (!fd->has && fd->type == ZR_VALUE_BOOL)
            shown = !zr_field_bool(fd, d);
        if (shown)
            describe_field(f, fd, d, &group);
    }
    return zr_memstream_close(&m);
}

static bool has_any_vlan(const struct zr_device *d)
{
    return d->has_vlan || d->vlan_unrepresentable;
}

static bool has_any_virtualport(const struct zr_device *d)
{
    return d->vport.type != ZR_VPORT_NONE || d->vport_unrepresentable;
}

bool zr_device_has_vlan_beside_virtualport(const struct zr_device *d)
{
    return has_any_vlan(d) && has_any_virtualport(d);
}

/* Only a pair the replacement would make is dropped: a vlan that already
 * sits beside a virtualport is a value the inventory leaves out, and kept. */
bool zr_device_drops_vlan(const struct zr_device *current, const struct zr_device *target)
{
    return !target->has_vlan && has_any_vlan(current) && target->vport.type != ZR_VPORT_NONE &&
           !has_any_virtualport(current);
}

bool zr_device_drops_virtualport(const struct zr_device *current, const struct zr_device *target)
{
    return target->vport.type == ZR_VPORT_NONE && target->has_vlan &&
           has_any_virtualport(current) && !has_any_vlan(current);
}
