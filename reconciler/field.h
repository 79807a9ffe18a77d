/* The one description of a device's fields: what each is called in the
 * inventory and the plan, which kinds have it, where it sits in struct
 * zr_device with its "is set" bit, how it is compared and shown, its
 * limits.  The inventory reader, the diff, a replacement's merge, describe,
 * wire, export and the limit messages are driven from this table; the XML
 * mapping (domain.c) is the one other place a new field goes.  No I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "device.h"
#include "util.h"

/* In the plan's order: the "changed: a,b" reason names fields in it. */
typedef enum {
    ZR_FIELD_MANAGED,
    ZR_FIELD_ZPCI_UID,
    ZR_FIELD_ZPCI_FID,
    ZR_FIELD_GUEST_ADDRESS,
    ZR_FIELD_MAC,
    ZR_FIELD_VIRTUALPORT,
    ZR_FIELD_BOOT_ORDER,
    ZR_FIELD_ROM_BAR,
    ZR_FIELD_ROM_FILE,
    ZR_FIELD_ROM_ENABLED,
    ZR_FIELD_VLAN,
    ZR_FIELD__COUNT,
} zr_field_id;

typedef enum {
    ZR_VALUE_BOOL,
    ZR_VALUE_U32,
    ZR_VALUE_PCI_ADDR,
    ZR_VALUE_MAC,
    ZR_VALUE_STRING,      /* char *, may be "" */
    ZR_VALUE_VIRTUALPORT, /* struct zr_virtualport: compared and shown by callbacks */
    ZR_VALUE__COUNT,
} zr_value_type;

#define ZR_KIND_BIT(k) (1u << (k))
#define ZR_KINDS_ALL (ZR_KIND_BIT(ZR_KIND_HOSTDEV) | ZR_KIND_BIT(ZR_KIND_INTERFACE))

/* Receives one difference: the field as the plan names it, the current and
 * the wanted value as people read them ("(none)" when not set). */
typedef void (*zr_field_report)(void *ctx, const char *name, const char *old, const char *new);

struct zr_field {
    const char *name; /* as the plan and describe name it: "zpci.uid" */
    unsigned kinds;   /* ZR_KIND_BIT()s of the kinds that have it */
    zr_value_type type;
    size_t offset; /* of the value in struct zr_device */
    size_t has;    /* 1 + offset of its "is set" bit; 0: always set, always compared */
    /* Numbers: the inventory's range.  Strings: the longest the inventory
     * takes (bytes).  Limit messages are made from these. */
    uint32_t min, max;
    unsigned hex_digits;  /* numbers shown as 0x and this many digits; 0: decimal */
    const char *words[2]; /* booleans as people read them: {false, true} */
    /* XML side: 1 + offset of a bit saying the device has a form the
     * inventory cannot state (a vlan trunk); such a value never equals a
     * wanted one, and shows as `odd_text`. */
    size_t odd;
    const char *odd_text;
    /* Names in messages: a guest-side value that a kept device holding it
     * blocks ("zPCI uid 0x0001, which ... holds"), and the duplicate check
     * of the inventory ("duplicate zPCI uid 0x0001"); NULL: neither. */
    const char *noun, *dup;
    /* 1 + offset of the value and its bit in struct zr_held, for values
     * out-of-scope devices hold (0: they hold none). */
    size_t held, held_has;
    bool libvirt_picks; /* libvirt picks one when none is given, so a current one may move */
    bool kept;          /* a replacement keeps the current value the inventory leaves out */
    bool grouped;       /* describe: under its group's word ("zpci uid=... fid=...") */
    /* ZR_VALUE_VIRTUALPORT: what differs, and the text describe shows. */
    void (*diff)(const struct zr_virtualport *w, const struct zr_virtualport *c,
                 zr_field_report report, void *ctx);
    void (*describe)(const struct zr_virtualport *v, FILE *f);
};

extern const struct zr_field zr_fields[ZR_FIELD__COUNT];

/* The order describe shows them in (people read a device's identity
 * first); each field once (test-model checks). */
extern const zr_field_id zr_field_describe_order[ZR_FIELD__COUNT];

/* Inline: the plan asks these for every field of every device pair. */
#define ZR_FIELD_AT(type, d, off) ((const type *)(const void *)((const char *)(d) + (off)))

static inline bool zr_field_is_set(const struct zr_field *f, const struct zr_device *d)
{
    if (f->type == ZR_VALUE_VIRTUALPORT)
        return ZR_FIELD_AT(struct zr_virtualport, d, f->offset)->type != ZR_VPORT_NONE;
    return !f->has || *ZR_FIELD_AT(bool, d, f->has - 1);
}

/* The XML side has a form of it the inventory cannot state. */
static inline bool zr_field_is_odd(const struct zr_field *f, const struct zr_device *d)
{
    return f->odd && *ZR_FIELD_AT(bool, d, f->odd - 1);
}

/* Whether both hold the same value (set bits not looked at; not for
 * ZR_VALUE_VIRTUALPORT). */
static inline bool zr_field_same(const struct zr_field *f, const struct zr_device *a,
                                 const struct zr_device *b)
{
    switch (f->type) {
    case ZR_VALUE_BOOL:
        return *ZR_FIELD_AT(bool, a, f->offset) == *ZR_FIELD_AT(bool, b, f->offset);
    case ZR_VALUE_U32:
        return *ZR_FIELD_AT(uint32_t, a, f->offset) == *ZR_FIELD_AT(uint32_t, b, f->offset);
    case ZR_VALUE_PCI_ADDR:
        return zr_pci_addr_eq(ZR_FIELD_AT(struct zr_pci_addr, a, f->offset),
                              ZR_FIELD_AT(struct zr_pci_addr, b, f->offset));
    case ZR_VALUE_MAC:
        return zr_mac_eq(ZR_FIELD_AT(struct zr_mac, a, f->offset),
                         ZR_FIELD_AT(struct zr_mac, b, f->offset));
    case ZR_VALUE_STRING:
        return zr_streq(*ZR_FIELD_AT(char *, a, f->offset), *ZR_FIELD_AT(char *, b, f->offset));
    case ZR_VALUE_VIRTUALPORT:
    case ZR_VALUE__COUNT:
        break;
    }
    abort();
}
/* Where the value is, for code that moves values as they are (wire.c). */
const void *zr_field_at(const struct zr_field *f, const struct zr_device *d);
void *zr_field_at_mut(const struct zr_field *f, struct zr_device *d);
/* Sets the "is set" bit (a field without one: nothing) and the odd bit. */
void zr_field_mark(const struct zr_field *f, struct zr_device *d, bool set, bool odd);

/* The values an out-of-scope device holds, as a device (the fields with
 * `held`), so the plan compares them like any other. */
void zr_field_from_held(struct zr_device *v, const struct zr_held *h);
/* A ZR_VALUE_BOOL field's value. */
bool zr_field_bool(const struct zr_field *f, const struct zr_device *d);
/* Copies the value and its "is set" bit from src to dst. */
void zr_field_take(const struct zr_field *f, struct zr_device *dst, const struct zr_device *src);

/* The value as people read it (not for ZR_VALUE_VIRTUALPORT); `buf` has
 * room for any value but strings, which are returned as they are. */
#define ZR_FIELD_STRLEN 64
const char *zr_field_format(const struct zr_field *f, const struct zr_device *d,
                            char buf[ZR_FIELD_STRLEN]);
/* A number as the field shows it: hex_digits or decimal. */
const char *zr_field_format_u32(const struct zr_field *f, uint32_t v, char buf[ZR_FIELD_STRLEN]);
/* The inventory's range, "0x0001 to 0xffff", "1 to 65535": 0 is "0", and a
 * hex field's other bounds have as many digits as its maximum. */
const char *zr_field_limits(const struct zr_field *f, char buf[ZR_FIELD_STRLEN]);
/* The same for any range: hex bounds (but 0) with as many digits as max. */
const char *zr_limits_format(uint32_t min, uint32_t max, bool hex, char buf[ZR_FIELD_STRLEN]);
/* Whether a number is inside the inventory's range. */
bool zr_field_in_range(const struct zr_field *f, uint32_t v);

/* What differs between a wanted device and the current one with the same
 * key, in table order: only fields the wanted side sets, and those without
 * a bit (managed) always. */
void zr_field_diff(const struct zr_device *w, const struct zr_device *c, zr_field_report report,
                   void *ctx);

/* For a replacement: the current value of every `kept` field the wanted
 * side leaves out, except those in `moving` (ZR_FIELD_BIT()s). */
#define ZR_FIELD_BIT(id) (1u << (id))
void zr_field_keep_current(struct zr_device *out, const struct zr_device *w,
                           const struct zr_device *c, unsigned moving);
