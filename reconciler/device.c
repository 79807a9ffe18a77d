#include <stdlib.h>
#include <string.h>

#include "device.h"
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
    free(d->alias);
    free(d->driver);
    free(d->xml);
    *d = (struct zr_device){0};
}

void zr_device_copy(struct zr_device *dst, const struct zr_device *src)
{
    *dst = *src;
    zr_virtualport_copy(&dst->vport, &src->vport);
    dst->alias = zr_strdup(src->alias);
    dst->driver = zr_strdup(src->driver);
    dst->xml = zr_strdup(src->xml);
}

int zr_device_key_cmp(const struct zr_device *a, const struct zr_device *b)
{
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return zr_pci_addr_cmp(&a->source, &b->source);
}

bool zr_device_same_key(const struct zr_device *a, const struct zr_device *b)
{
    return zr_device_key_cmp(a, b) == 0;
}

struct zr_device *zr_device_list_append(struct zr_device_list *l)
{
    return ZR_APPEND(l->items, l->n);
}

void zr_device_list_finish(struct zr_device_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        zr_device_finish(&l->items[i]);
    free(l->items);
    *l = (struct zr_device_list){0};
}
