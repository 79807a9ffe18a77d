/* The inventory's rules: the YAML tree (yaml-tree.h) walked through key
 * tables into the wanted model (wanted.h), every value checked, every
 * error placed (source.h).  See inventory.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <ctype.h>

#include "field.h"
#include "inventory.h"
#include "util.h"
#include "yaml-tree.h"

struct use {
    uint64_t value;
    struct zr_mark mark;
};

struct uses {
    struct use *items;
    size_t n;
};

/* Values that must not repeat: a device field's (zr_field.dup) per guest,
 * indexed by its zr_field_id, and a source per host. */
enum {
    USE_SOURCE = ZR_FIELD__COUNT,
    USE__COUNT,
};

struct loader {
    struct zr_source src;
    struct zr_ytree tree;
    const struct zr_inventory_rules *rules;
    struct uses uses[USE__COUNT];
    bool has_hosts;
    struct zr_pool *top_pools; /* every host sees them */
    size_t n_top_pools;
};

static void loader_finish(struct loader *l)
{
    zr_ytree_finish(&l->tree);
    for (size_t i = 0; i < USE__COUNT; i++)
        free(l->uses[i].items);
    for (size_t i = 0; i < l->n_top_pools; i++)
        zr_pool_finish(&l->top_pools[i]);
    free(l->top_pools);
}

_printf_(3, 4) static void report(struct loader *l, struct zr_mark m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    zr_source_vreport(&l->src, m, fmt, ap);
    va_end(ap);
}

/* ---- walking the tree: key tables --------------------------------------- */

struct field;
typedef int (*field_parser)(struct loader *l, const struct field *f, const struct node *v,
                            void *obj);

struct table;

/* How "'KEY' must be ..." states the limits: `expect`, then the range
 * ("0x0001 to 0xffff") or the maximum, then `tail`: made from the limits,
 * so a limit is written once. */
typedef enum {
    LIMIT_NONE,
    LIMIT_RANGE,
    LIMIT_MAX,
} limit_text;

struct field {
    const char *key;
    field_parser parse;
    /* A device field: offset, bit, limits and uniqueness are the
     * descriptor's (field.h), not written here. */
    const struct zr_field *dev;
    size_t offset; /* of the value in the object */
    size_t has;    /* HAS(): 1 + offset of its "is set" bit; 0 for none */
    bool required;
    uint64_t min, max;       /* numbers; max is also a string's length limit */
    bool hex;                /* the limits are shown in hex */
    limit_text limit;
    const char *expect, *tail; /* complete "'KEY' must be ..." */
    const struct table *sub;   /* a nested mapping filling the same object */
    size_t unique;             /* 1 + index into loader.uses; 0: may repeat */
};

/* Offset 0 is a valid place for a bit, and tables leave `has` out where
 * there is none, so it is stored one up. */
#define HAS(type, member) (offsetof(type, member) + 1)

struct table {
    const struct field *fields;
    size_t n_fields;
    /* Rules across keys, run after every key was read. */
    void (*check)(struct loader *l, const struct node *map, void *obj);
};

#define FIELD_PTR(obj, off, type) ((type *)(void *)((char *)(obj) + (off)))

static bool is_text(const struct node *n)
{
    return n->type == NODE_SCALAR && !n->null;
}

/* Where a mapping may be empty, null is one way to write that. */
static bool is_mapping_or_null(const struct node *n)
{
    return n->type == NODE_MAPPING || (n->type == NODE_SCALAR && n->null);
}

static void set_bit(const struct field *f, void *obj)
{
    if (f->has)
        *FIELD_PTR(obj, f->has - 1, bool) = true;
}

static int type_error(struct loader *l, const struct field *f, const struct node *v)
{
    _cleanup_free_ char *got = zr_ytree_describe(v);
    char limits[ZR_FIELD_STRLEN] = "";
    if (f->limit == LIMIT_RANGE)
        zr_limits_format((uint32_t)f->min, (uint32_t)f->max, f->hex, limits);
    else if (f->limit == LIMIT_MAX)
        snprintf(limits, sizeof(limits), "%" PRIu64, f->max);
    report(l, v->mark, "'%s' must be %s%s%s, got %s", f->key, f->expect, limits,
           f->tail ? f->tail : "", got);
    return -EINVAL;
}

/* A key as its parser sees it: a device field's offset, bit, limits and
 * uniqueness filled in from its descriptor. */
static struct field resolved(const struct field *f)
{
    struct field r = *f;
    if (!f->dev)
        return r;
    r.offset = f->dev->offset;
    r.has = f->dev->has;
    r.min = f->dev->min;
    r.max = f->dev->max;
    r.hex = f->dev->hex_digits != 0;
    r.unique = f->dev->dup ? 1 + (size_t)(f->dev - zr_fields) : 0;
    return r;
}

static const struct node *mapping_find(const struct node *map, const char *key)
{
    if (map->type != NODE_MAPPING)
        return NULL;
    for (size_t i = 0; i + 1 < map->n_items; i += 2)
        if (map->items[i]->type == NODE_SCALAR && strcmp(map->items[i]->text, key) == 0)
            return map->items[i];
    return NULL;
}

struct key_ref {
    const struct node *key;
    size_t index;
};

static int text_cmp(const struct node *a, const struct node *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return memcmp(a->text, b->text, a->len);
}

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = text_cmp(x->key, y->key);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Reports keys that are not strings and keys given twice (libyaml accepts
 * both); returns which pairs to skip.  Sorting keeps a mapping of many
 * guests from costing quadratic time. */
static bool *find_bad_keys(struct loader *l, const struct node *map, const char *noun,
                           const char *where)
{
    size_t n = map->n_items / 2, m = 0;
    bool *skip = zr_new0(bool, n);
    _cleanup_free_ struct key_ref *refs = zr_new0(struct key_ref, n);

    for (size_t i = 0; i < n; i++) {
        const struct node *key = map->items[2 * i];
        if (key->type != NODE_SCALAR) {
            _cleanup_free_ char *got = zr_ytree_describe(key);
            report(l, key->mark, "%s names %s must be strings, got %s", noun, where, got);
            skip[i] = true;
        } else
            refs[m++] = (struct key_ref){key, i};
    }
    qsort(refs, m, sizeof(*refs), key_ref_cmp);
    for (size_t j = 1, first = 0; j < m; j++) {
        if (text_cmp(refs[j].key, refs[first].key) != 0) {
            first = j;
            continue;
        }
        _cleanup_free_ char *s = zr_source_shown(refs[j].key->text, refs[j].key->len);
        report(l, refs[j].key->use, "duplicate %s '%s' %s (first used at line %u)", noun, s, where,
               refs[first].key->use.line);
        skip[refs[j].index] = true;
    }
    return skip;
}

static char *expected_keys(const struct table *t)
{
    struct zr_strbuf b = {0};
    for (size_t i = 0; i < t->n_fields; i++)
        zr_strbuf_addf(&b, ", ", "%s", t->fields[i].key);
    return b.s ? b.s : zr_strdup("");
}

/* `map` is a mapping or null (an empty mapping); `what` names it in
 * messages ("hostdev", "guest 'linux1'"). */
static void parse_mapping(struct loader *l, const struct node *map, const struct table *t,
                          const char *what, void *obj)
{
    uint64_t seen = 0; /* one bit per field: no table has more than 64 */

    if (map->type == NODE_MAPPING) {
        _cleanup_free_ char *where = zr_asprintf("in %s", what);
        _cleanup_free_ bool *skip = find_bad_keys(l, map, "key", where);
        for (size_t i = 0; i + 1 < map->n_items; i += 2) {
            const struct node *key = map->items[i];
            const struct field *f = NULL;
            if (skip[i / 2])
                continue;
            for (size_t j = 0; j < t->n_fields && !f; j++)
                if (strcmp(t->fields[j].key, key->text) == 0)
                    f = &t->fields[j];
            if (!f) {
                _cleanup_free_ char *s = zr_source_shown(key->text, key->len);
                _cleanup_free_ char *keys = expected_keys(t);
                report(l, key->mark, "unknown key '%s' %s (expected one of: %s)", s, where, keys);
                continue;
            }
            seen |= UINT64_C(1) << (f - t->fields);
            struct field r = resolved(f);
            f->parse(l, &r, map->items[i + 1], obj);
        }
    }
    for (size_t j = 0; j < t->n_fields; j++)
        if (t->fields[j].required && !(seen & (UINT64_C(1) << j)))
            report(l, map->mark, "missing required key '%s' in %s", t->fields[j].key, what);
    if (t->check)
        t->check(l, map, obj);
}

/* ---- field parsers ------------------------------------------------------ */

static uint64_t pci_addr_key(const struct zr_pci_addr *a)
{
    return (uint64_t)a->domain << 24 | (uint64_t)a->bus << 16 | (uint64_t)a->slot << 8 |
           a->function;
}

/* Remembers where a value that must be unique was used; the checks run
 * once the whole guest or host is read. */
static void track(struct loader *l, const struct field *f, uint64_t value, struct zr_mark use)
{
    if (!f->unique)
        return;
    struct uses *u = &l->uses[f->unique - 1];
    *ZR_APPEND(u->items, u->n) = (struct use){value, use};
}

static int parse_number(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    uint64_t n;
    if (!is_text(v) || zr_uint_parse(v->text, f->max, &n) < 0 || n < f->min)
        return type_error(l, f, v);
    *FIELD_PTR(obj, f->offset, uint32_t) = (uint32_t)n;
    set_bit(f, obj);
    track(l, f, n, v->use);
    return 0;
}

static int parse_version(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    uint64_t n;
    if (!is_text(v) || zr_uint_parse(v->text, UINT64_MAX, &n) < 0)
        return type_error(l, f, v);
    if (n != 1) {
        _cleanup_free_ char *s = zr_source_shown(v->text, v->len);
        report(l, v->mark, "unsupported inventory version %s; this zpci-reconcile reads version 1",
               s);
        return -EINVAL;
    }
    return parse_number(l, f, v, obj);
}

static int parse_bool(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    bool b;
    if (!is_text(v) || zr_bool_parse(v->text, &b) < 0)
        return type_error(l, f, v);
    *FIELD_PTR(obj, f->offset, bool) = b;
    set_bit(f, obj);
    return 0;
}

static int parse_string(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    if (!is_text(v) || v->len == 0 || (f->max && v->len > f->max))
        return type_error(l, f, v);
    char **dst = FIELD_PTR(obj, f->offset, char *);
    free(*dst);
    *dst = zr_strdup(v->text);
    return 0;
}

static int parse_pci_addr(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    struct zr_pci_addr a;
    if (!is_text(v) || zr_pci_addr_parse(v->text, &a) < 0)
        return type_error(l, f, v);
    *FIELD_PTR(obj, f->offset, struct zr_pci_addr) = a;
    set_bit(f, obj);
    track(l, f, pci_addr_key(&a), v->use);
    return 0;
}

/* libvirt takes a guest address whose domain, bus and slot are all zero as
 * "pick a slot" (virPCIDeviceAddressIsEmpty) and the domain reader reads it
 * as no address, so it could never compare equal: every run would replace
 * the device again. */
static int parse_guest_address(struct loader *l, const struct field *f, const struct node *v,
                               void *obj)
{
    int r = parse_pci_addr(l, f, v, obj);
    if (r < 0)
        return r;
    const struct zr_pci_addr *a = FIELD_PTR(obj, f->offset, struct zr_pci_addr);
    if (a->domain == 0 && a->bus == 0 && a->slot == 0) {
        _cleanup_free_ char *s = zr_source_shown(v->text, v->len);
        report(l, v->mark,
               "'%s' %s has domain, bus and slot 0, which libvirt reads as no address (it picks "
               "a slot itself); give a non-zero slot, or leave '%s' out",
               f->key, s, f->key);
        return -EINVAL;
    }
    return 0;
}

/* A profileid the device XML builder refuses would only fail at plan time,
 * after validate said yes: libvirt 9.0 writes it into the definition
 * unescaped (see zr_profileid_ok). */
static int parse_profileid(struct loader *l, const struct field *f, const struct node *v,
                           void *obj)
{
    /* libvirt's limit is 39 bytes; JSON Schema (schema/) can only count
     * characters.  ASCII makes the two one limit, and port profile names
     * (a switch's configuration) are ASCII. */
    for (size_t i = 0; is_text(v) && i < v->len; i++)
        if ((unsigned char)v->text[i] >= 0x80)
            return type_error(l, f, v);
    int r = parse_string(l, f, v, obj);
    if (r < 0)
        return r;
    if (!zr_profileid_ok(*FIELD_PTR(obj, f->offset, char *))) {
        _cleanup_free_ char *s = zr_source_shown(v->text, v->len);
        report(l, v->mark,
               "'%s' must not hold ', <, & or control characters (libvirt stores it "
               "unescaped and could not read the guest's definition back), got '%s'",
               f->key, s);
        return -EINVAL;
    }
    return 0;
}

static int parse_mac(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    struct zr_mac m;
    int r = is_text(v) ? zr_mac_parse(v->text, &m) : -EINVAL;
    if (r == -EDOM) {
        _cleanup_free_ char *s = zr_source_shown(v->text, v->len);
        report(l, v->mark,
               "'%s' %s is a multicast address; libvirt needs a unicast MAC (first octet even)",
               f->key, s);
        return r;
    }
    if (r < 0)
        return type_error(l, f, v);
    /* libvirt takes the all-zero address as given, and no NIC may use it
     * (it is not a valid station address); refused like a multicast one. */
    static const struct zr_mac zero = {{0}};
    if (zr_mac_eq(&m, &zero)) {
        _cleanup_free_ char *s = zr_source_shown(v->text, v->len);
        report(l, v->mark,
               "'%s' %s is the all-zero address, which no device may use; give a unicast MAC "
               "(first octet even), or leave '%s' out and libvirt picks one",
               f->key, s, f->key);
        return -EINVAL;
    }
    *FIELD_PTR(obj, f->offset, struct zr_mac) = m;
    set_bit(f, obj);
    uint64_t key = 0;
    for (size_t i = 0; i < sizeof(m.b); i++)
        key = key << 8 | m.b[i];
    track(l, f, key, v->use);
    return 0;
}

static int parse_uuid(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    struct zr_uuid u;
    if (!is_text(v) || zr_uuid_parse(v->text, &u) < 0)
        return type_error(l, f, v);
    *FIELD_PTR(obj, f->offset, struct zr_uuid) = u;
    set_bit(f, obj);
    return 0;
}

static int parse_vport_type(struct loader *l, const struct field *f, const struct node *v,
                            void *obj)
{
    static const zr_vport_type types[] = {ZR_VPORT_8021QBH, ZR_VPORT_8021QBG};
    for (size_t i = 0; is_text(v) && i < ELEMENTSOF(types); i++)
        if (strcmp(v->text, zr_vport_type_to_string(types[i])) == 0) {
            *FIELD_PTR(obj, f->offset, zr_vport_type) = types[i];
            return 0;
        }
    return type_error(l, f, v);
}

static int parse_submapping(struct loader *l, const struct field *f, const struct node *v,
                            void *obj)
{
    if (!is_mapping_or_null(v))
        return type_error(l, f, v);
    parse_mapping(l, v, f->sub, f->key, FIELD_PTR(obj, f->offset, void));
    return 0;
}

/* Keeps a mapping (or null) to walk once every key around it is known. */
static int keep_mapping(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    if (!is_mapping_or_null(v))
        return type_error(l, f, v);
    *FIELD_PTR(obj, f->offset, const struct node *) = v;
    return 0;
}

/* ---- devices ------------------------------------------------------------ */

static void check_zpci(struct loader *l, const struct node *map, void *obj)
{
    if (!mapping_find(map, "uid") && !mapping_find(map, "fid"))
        report(l, map->mark, "'zpci' needs 'uid', 'fid' or both");
}

#define DEV(member) offsetof(struct zr_device, member)
#define DEV_HAS(member) HAS(struct zr_device, member)

#define NUMBER_EXPECT .limit = LIMIT_RANGE, .expect = "a number from "
#define BOOL_EXPECT .expect = "true, false, yes or no"

static const struct field zpci_fields[] = {
    {.key = "uid", .parse = parse_number, .dev = &zr_fields[ZR_FIELD_ZPCI_UID], NUMBER_EXPECT},
    {.key = "fid", .parse = parse_number, .dev = &zr_fields[ZR_FIELD_ZPCI_FID], NUMBER_EXPECT},
};
static const struct table zpci_table = {zpci_fields, ELEMENTSOF(zpci_fields), check_zpci};

/* The keys each virtualport type takes; all but instanceid are required. */
static const char *const qbh_keys[] = {"profileid", NULL};
static const char *const qbg_keys[] = {"managerid", "typeid", "typeidversion", "instanceid", NULL};

static void check_virtualport(struct loader *l, const struct node *map, void *obj)
{
    const struct zr_virtualport *vp = obj;
    const char *const *own = NULL, *const *other = NULL;

    switch (vp->type) {
    case ZR_VPORT_8021QBH:
        own = qbh_keys;
        other = qbg_keys;
        break;
    case ZR_VPORT_8021QBG:
        own = qbg_keys;
        other = qbh_keys;
        break;
    case ZR_VPORT_NONE: /* no or a bad type: already reported */
    case ZR_VPORT__COUNT:
        return;
    }
    const char *type = zr_vport_type_to_string(vp->type);
    for (const char *const *k = other; *k; k++) {
        const struct node *key = mapping_find(map, *k);
        if (key)
            report(l, key->mark, "'%s' does not belong in an %s virtualport", *k, type);
    }
    for (const char *const *k = own; *k; k++)
        if (strcmp(*k, "instanceid") != 0 && !mapping_find(map, *k))
            report(l, map->mark, "missing required key '%s' in an %s virtualport", *k, type);
}

#define VP(member) offsetof(struct zr_virtualport, member)
#define VP_HAS(member) HAS(struct zr_virtualport, member)
static const struct field virtualport_fields[] = {
    {.key = "type",
     .parse = parse_vport_type,
     .offset = VP(type),
     .required = true,
     .expect = "802.1Qbh or 802.1Qbg"},
    {.key = "profileid",
     .parse = parse_profileid,
     .offset = VP(profileid),
     .min = 1,
     .max = ZR_VPORT_PROFILEID_MAX,
     .limit = LIMIT_RANGE,
     .expect = "a port profile name of ",
     .tail = " ASCII characters"},
    {.key = "managerid",
     .parse = parse_number,
     .offset = VP(managerid),
     .has = VP_HAS(has_managerid),
     .max = ZR_VPORT_MANAGERID_MAX,
     NUMBER_EXPECT},
    {.key = "typeid",
     .parse = parse_number,
     .offset = VP(typeid),
     .has = VP_HAS(has_typeid),
     .max = ZR_VPORT_TYPEID_MAX,
     .hex = true,
     NUMBER_EXPECT},
    {.key = "typeidversion",
     .parse = parse_number,
     .offset = VP(typeidversion),
     .has = VP_HAS(has_typeidversion),
     .max = ZR_VPORT_TYPEIDVERSION_MAX,
     NUMBER_EXPECT},
    {.key = "instanceid",
     .parse = parse_uuid,
     .offset = VP(instanceid),
     .has = VP_HAS(has_instanceid),
     .expect = "a UUID like 09b11c53-8b5c-4eeb-8f00-d84eaa0aaa4f"},
};
#undef VP
#undef VP_HAS
static const struct table virtualport_table = {virtualport_fields, ELEMENTSOF(virtualport_fields),
                                               check_virtualport};

/* A ROM image path; "" is libvirt's way to say "no ROM image". */
static int parse_rom_file(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    if (!is_text(v) || v->len > f->max || memchr(v->text, '\0', v->len))
        return type_error(l, f, v);
    char **dst = FIELD_PTR(obj, f->offset, char *);
    free(*dst);
    *dst = zr_strdup(v->text);
    set_bit(f, obj);
    return 0;
}

static void check_rom(struct loader *l, const struct node *map, void *obj)
{
    if (!mapping_find(map, "bar") && !mapping_find(map, "file") && !mapping_find(map, "enabled"))
        report(l, map->mark, "'rom' needs 'bar', 'file', 'enabled' or several of them");
}

static const struct field rom_fields[] = {
    {.key = "bar", .parse = parse_bool, .dev = &zr_fields[ZR_FIELD_ROM_BAR], BOOL_EXPECT},
    {.key = "file",
     .parse = parse_rom_file,
     .dev = &zr_fields[ZR_FIELD_ROM_FILE],
     .limit = LIMIT_MAX,
     .expect = "a path of at most ",
     .tail = " bytes (\"\" for no ROM image)"},
    {.key = "enabled", .parse = parse_bool, .dev = &zr_fields[ZR_FIELD_ROM_ENABLED], BOOL_EXPECT},
};
static const struct table rom_table = {rom_fields, ELEMENTSOF(rom_fields), check_rom};

/* Pool names are words: they show in plan lines and messages unquoted. */
static bool pool_name_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
            return false;
    return true;
}

static int parse_pool_ref(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    if (!is_text(v) || !pool_name_ok(v->text, v->len) || v->len > 64)
        return type_error(l, f, v);
    struct zr_device *d = obj;
    free(d->pool);
    d->pool = zr_strdup(v->text);
    d->pool_mark = v->mark;
    return 0;
}

/* With `count` above 1 every function taken would get the same value of
 * each key given: a field that must not repeat in a guest (zr_field.dup)
 * cannot be given.  Its key is the field's name up to a '.' ("zpci" for
 * zpci.uid and zpci.fid, reported once). */
static void check_count_keys(struct loader *l, const struct node *map, const struct node *count,
                             uint32_t n)
{
    const char *prev = "";
    size_t prev_len = 0;
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++) {
        const char *name = zr_fields[i].name;
        size_t len = strcspn(name, ".");
        if (!zr_fields[i].dup || (len == prev_len && strncmp(name, prev, len) == 0))
            continue;
        prev = name;
        prev_len = len;
        _cleanup_free_ char *key = zr_strndup(name, len);
        const struct node *k = mapping_find(map, key);
        if (k)
            report(l, k->mark,
                   "'%s' cannot be given with 'count: %u' (line %u): each function taken would "
                   "get the same value; write one entry per function instead",
                   key, (unsigned)n, count->mark.line);
    }
}

/* An entry names its function (`source`) or takes one from a pool. */
static void check_entry(struct loader *l, const struct node *map, void *obj)
{
    const struct zr_device *d = obj;
    const struct node *source = mapping_find(map, "source"), *pool = mapping_find(map, "pool");
    const struct node *count = mapping_find(map, "count");
    if (source && pool)
        report(l, pool->mark,
               "'pool' cannot be combined with 'source' (line %u): an entry names its function "
               "or takes one from a pool",
               source->mark.line);
    else if (!source && !pool && map->type == NODE_MAPPING)
        report(l, map->mark,
               "missing required key 'source' in %s (or 'pool', to take a "
               "function from a pool)",
               zr_kind_to_string(d->kind));
    if (count && !pool)
        report(l, count->mark, "'count' needs 'pool': a named source is one function");
    if (count && d->has_count && d->count > 1)
        check_count_keys(l, map, count, d->count);
}

#define PCI_ADDR_EXPECT                                                                            \
    "a PCI address DDDD:BB:SS.F or BB:SS.F (hex, slot up to 1f, function up to 7)"
#define SOURCE_FIELD                                                                               \
    {                                                                                              \
        .key = "source", .parse = parse_pci_addr, .offset = DEV(source),                           \
        .expect = PCI_ADDR_EXPECT, .unique = 1 + USE_SOURCE                                        \
    }
#define MANAGED_FIELD                                                                              \
    {                                                                                              \
        .key = "managed", .parse = parse_bool, .offset = DEV(managed),                             \
        .has = DEV_HAS(has_managed), BOOL_EXPECT                                                   \
    }
/* The ids are fields of the device itself, hence offset 0. */
#define ZPCI_FIELD                                                                                 \
    {                                                                                              \
        .key = "zpci", .parse = parse_submapping, .offset = 0,                                     \
        .expect = "a mapping with uid and/or fid", .sub = &zpci_table                              \
    }

#define GUEST_ADDRESS_FIELD                                                                        \
    {                                                                                              \
        .key = "guest_address", .parse = parse_guest_address,                                     \
        .dev = &zr_fields[ZR_FIELD_GUEST_ADDRESS], .expect = PCI_ADDR_EXPECT                       \
    }
/* libvirt refuses a boot order used twice in a guest. */
#define BOOT_ORDER_FIELD                                                                           \
    {                                                                                              \
        .key = "boot_order", .parse = parse_number, .dev = &zr_fields[ZR_FIELD_BOOT_ORDER],        \
        NUMBER_EXPECT                                                                              \
    }
/* The rom's keys are fields of the device itself, hence offset 0. */
#define ROM_FIELD                                                                                  \
    {                                                                                              \
        .key = "rom", .parse = parse_submapping, .offset = 0,                                      \
        .expect = "a mapping with bar, file and/or enabled", .sub = &rom_table                     \
    }

#define POOL_FIELD                                                                                 \
    {                                                                                              \
        .key = "pool", .parse = parse_pool_ref, .offset = DEV(pool),                               \
        .expect = "a pool name (letters, digits, '-' and '_')"                                     \
    }
#define COUNT_FIELD                                                                                \
    {                                                                                              \
        .key = "count", .parse = parse_number, .offset = DEV(count), .has = DEV_HAS(has_count),    \
        .min = 1, .max = ZR_POOL_COUNT_MAX, NUMBER_EXPECT                                          \
    }

static const struct field hostdev_fields[] = {
    SOURCE_FIELD, POOL_FIELD,          COUNT_FIELD,      MANAGED_FIELD,
    ZPCI_FIELD,   GUEST_ADDRESS_FIELD, BOOT_ORDER_FIELD, ROM_FIELD,
};
static const struct table hostdev_table = {hostdev_fields, ELEMENTSOF(hostdev_fields), check_entry};

/* libvirt refuses a <vlan> beside a <virtualport> when it starts or
 * hotplugs a hostdev interface; better to say so before anything is done. */
static void check_interface(struct loader *l, const struct node *map, void *obj)
{
    check_entry(l, map, obj);
    const struct node *vlan = mapping_find(map, "vlan");
    if (vlan && mapping_find(map, "virtualport"))
        report(l, vlan->mark,
               "'vlan' cannot be combined with 'virtualport' on a hostdev interface "
               "(libvirt refuses the pair)");
}

static const struct field interface_fields[] = {
    SOURCE_FIELD,
    POOL_FIELD,
    COUNT_FIELD,
    {.key = "mac",
     .parse = parse_mac,
     .dev = &zr_fields[ZR_FIELD_MAC],
     .expect = "a MAC address like 02:00:00:00:00:01"},
    MANAGED_FIELD,
    {.key = "virtualport",
     .parse = parse_submapping,
     .offset = DEV(vport), /* its keys are its own (struct zr_virtualport) */
     .expect = "a mapping with a type (802.1Qbh or 802.1Qbg)",
     .sub = &virtualport_table},
    {.key = "vlan", .parse = parse_number, .dev = &zr_fields[ZR_FIELD_VLAN], NUMBER_EXPECT},
    ZPCI_FIELD,
    GUEST_ADDRESS_FIELD,
    BOOT_ORDER_FIELD,
    ROM_FIELD,
};
static const struct table interface_table = {interface_fields, ELEMENTSOF(interface_fields),
                                             check_interface};
#undef DEV
#undef DEV_HAS

static const struct table *device_table(zr_kind kind)
{
    switch (kind) {
    case ZR_KIND_HOSTDEV:
        return &hostdev_table;
    case ZR_KIND_INTERFACE:
        return &interface_table;
    case ZR_KIND__COUNT:
        break;
    }
    abort();
}

static int parse_devices(struct loader *l, const struct field *f, const struct node *v, void *obj,
                         zr_kind kind)
{
    struct zr_device_list *list = FIELD_PTR(obj, f->offset, struct zr_device_list);

    if (v->type == NODE_SCALAR && v->null)
        return 0;
    if (v->type != NODE_SEQUENCE)
        return type_error(l, f, v);
    size_t n = 0;
    for (size_t i = 0; i < v->n_items; i++)
        n += v->items[i]->type == NODE_MAPPING;
    list->items = zr_new0(struct zr_device, n);
    /* Past the error cap nothing more would be shown: a huge broken list
     * costs no more than its first errors. */
    for (size_t i = 0; i < v->n_items && !l->src.errs->truncated; i++) {
        const struct node *item = v->items[i];
        if (item->type != NODE_MAPPING) {
            _cleanup_free_ char *got = zr_ytree_describe(item);
            report(l, item->mark, "each item of '%s' must be a mapping with a 'source', got %s",
                   f->key, got);
            continue;
        }
        struct zr_device *d = &list->items[list->n++];
        d->kind = kind;
        d->managed = true;
        d->mark = item->use;
        d->count = 1;
        parse_mapping(l, item, device_table(kind), zr_kind_to_string(kind), d);
    }
    return 0;
}

static int parse_hostdevs(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    return parse_devices(l, f, v, obj, ZR_KIND_HOSTDEV);
}

static int parse_interfaces(struct loader *l, const struct field *f, const struct node *v,
                            void *obj)
{
    return parse_devices(l, f, v, obj, ZR_KIND_INTERFACE);
}

/* ---- guests and hosts --------------------------------------------------- */

static int use_cmp(const void *a, const void *b)
{
    const struct use *x = a, *y = b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return zr_mark_cmp(x->mark, y->mark);
}

static struct zr_pci_addr pci_addr_from_key(uint64_t v)
{
    return (struct zr_pci_addr){(uint32_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
                                (uint8_t)v};
}

/* A tracked value for messages, "zPCI uid 0x0001": a device field's
 * (its key back in a device, shown as the plan shows it) or a source. */
static char *use_format(size_t kind, uint64_t v)
{
    char buf[ZR_FIELD_STRLEN];
    struct zr_pci_addr a = pci_addr_from_key(v);
    if (kind == USE_SOURCE)
        return zr_asprintf("source %s", zr_pci_addr_format(&a, buf));
    const struct zr_field *f = &zr_fields[kind];
    struct zr_device d = {0};
    switch (f->type) {
    case ZR_VALUE_U32:
        *FIELD_PTR(&d, f->offset, uint32_t) = (uint32_t)v;
        break;
    case ZR_VALUE_PCI_ADDR:
        *FIELD_PTR(&d, f->offset, struct zr_pci_addr) = a;
        break;
    case ZR_VALUE_MAC:
        for (size_t i = 0; i < sizeof(d.mac.b); i++)
            FIELD_PTR(&d, f->offset, struct zr_mac)->b[i] =
                (uint8_t)(v >> (8 * (sizeof(d.mac.b) - 1 - i)));
        break;
    case ZR_VALUE_BOOL:
    case ZR_VALUE_STRING:
    case ZR_VALUE_VIRTUALPORT:
    case ZR_VALUE__COUNT:
        abort(); /* never tracked */
    }
    return zr_asprintf("%s %s", f->dup, zr_field_format(f, &d, buf));
}

/* Reports every use of a value after its first, then forgets them all. */
static void check_uses(struct loader *l, size_t kind, const char *where)
{
    struct uses *u = &l->uses[kind];
    if (u->n == 0)
        return; /* items may be NULL, which qsort must not see */
    qsort(u->items, u->n, sizeof(*u->items), use_cmp);
    for (size_t j = 1, first = 0; j < u->n; j++) {
        if (u->items[j].value != u->items[first].value) {
            first = j;
            continue;
        }
        /* Both inside one alias: the anchored original reports it. */
        if (zr_mark_eq(u->items[j].mark, u->items[first].mark))
            continue;
        _cleanup_free_ char *what = use_format(kind, u->items[j].value);
        report(l, u->items[j].mark, "duplicate %s %s (first used at line %u)", what, where,
               u->items[first].mark.line);
    }
    u->n = 0;
}

struct guest_spec {
    bool prune;
    struct zr_device_list hostdevs, interfaces;
};

static const struct field guest_fields[] = {
    {.key = "prune", .parse = parse_bool, .offset = offsetof(struct guest_spec, prune), BOOL_EXPECT},
    {.key = "hostdevs",
     .parse = parse_hostdevs,
     .offset = offsetof(struct guest_spec, hostdevs),
     .expect = "a list of hostdevs"},
    {.key = "interfaces",
     .parse = parse_interfaces,
     .offset = offsetof(struct guest_spec, interfaces),
     .expect = "a list of interfaces"},
};
static const struct table guest_table = {guest_fields, ELEMENTSOF(guest_fields), NULL};

/* An entry under guests: or hosts:, named by its key. */
static void parse_named(struct loader *l, const struct node *key, const struct node *v,
                        const char *noun, const struct table *t, void *obj)
{
    _cleanup_free_ char *name = zr_source_shown(key->text, key->len);
    _cleanup_free_ char *what = zr_asprintf("%s '%s'", noun, name);

    if (key->len == 0)
        report(l, key->mark, "a %s name must not be empty", noun);
    if (is_mapping_or_null(v))
        parse_mapping(l, v, t, what, obj);
    else {
        _cleanup_free_ char *keys = expected_keys(t);
        _cleanup_free_ char *got = zr_ytree_describe(v);
        report(l, v->mark, "%s must be a mapping (%s), got %s", what, keys, got);
    }
}

static void parse_guest(struct loader *l, const struct node *key, const struct node *v,
                        struct zr_guest *g)
{
    struct guest_spec spec = {.prune = true};
    _cleanup_free_ char *name = zr_source_shown(key->text, key->len);
    _cleanup_free_ char *in = zr_asprintf("in guest '%s'", name);

    g->name = zr_strdup(key->text);
    g->mark = key->use;
    parse_named(l, key, v, "guest", &guest_table, &spec);

    g->prune = spec.prune;
    g->devices.n = spec.hostdevs.n + spec.interfaces.n;
    g->devices.items = zr_new0(struct zr_device, g->devices.n);
    if (spec.hostdevs.n)
        memcpy(g->devices.items, spec.hostdevs.items, spec.hostdevs.n * sizeof(struct zr_device));
    if (spec.interfaces.n)
        memcpy(g->devices.items + spec.hostdevs.n, spec.interfaces.items,
               spec.interfaces.n * sizeof(struct zr_device));
    free(spec.hostdevs.items);
    free(spec.interfaces.items);

    for (size_t k = 0; k < ZR_FIELD__COUNT; k++)
        if (zr_fields[k].dup)
            check_uses(l, k, in);
}

/* Guests of one host; `v` is a mapping or null. */
static void parse_guests(struct loader *l, const struct node *v, struct zr_host *h)
{
    _cleanup_free_ char *name = zr_source_shown(h->name, strlen(h->name));
    _cleanup_free_ char *where = zr_asprintf("on host '%s'", name);

    if (v && v->type == NODE_MAPPING) {
        _cleanup_free_ bool *skip = find_bad_keys(l, v, "guest", where);
        h->guests = zr_new0(struct zr_guest, v->n_items / 2);
        for (size_t i = 0; i + 1 < v->n_items; i += 2)
            if (!skip[i / 2])
                parse_guest(l, v->items[i], v->items[i + 1], &h->guests[h->n_guests++]);
    }
    check_uses(l, USE_SOURCE, where);
}

/* ---- one host, one uri ---------------------------------------------------- */

struct host_uri {
    char *norm;
    const struct zr_host *host;
};

static int host_uri_cmp(const void *a, const void *b)
{
    const struct host_uri *x = a, *y = b;
    int r = strcmp(x->norm, y->norm);
    return r ? r : zr_mark_cmp(x->host->mark, y->host->mark);
}

/* Two hosts on one libvirt connection would race for its lock (and an
 * embedded root can be opened by one process only), and applied one after
 * the other they would undo each other on every run: refused, however the
 * URIs are spelled. */
static char *host_uri_key(const struct loader *l, const char *uri)
{
    return l->rules && l->rules->uri_normalize ? l->rules->uri_normalize(uri) : zr_strdup(uri);
}

static void check_host_uris(struct loader *l, const struct zr_inventory *inv)
{
    if (inv->n_hosts < 2)
        return;
    struct host_uri *hu = zr_new0(struct host_uri, inv->n_hosts);
    size_t n = 0;
    for (size_t i = 0; i < inv->n_hosts; i++)
        if (inv->hosts[i].uri)
            hu[n++] = (struct host_uri){host_uri_key(l, inv->hosts[i].uri), &inv->hosts[i]};
    if (n)
        qsort(hu, n, sizeof(*hu), host_uri_cmp);
    for (size_t j = 1, first = 0; j < n; j++) {
        if (strcmp(hu[j].norm, hu[first].norm) != 0) {
            first = j;
            continue;
        }
        const struct zr_host *a = hu[first].host, *b = hu[j].host;
        _cleanup_free_ char *an = zr_source_shown(a->name, strlen(a->name));
        _cleanup_free_ char *bn = zr_source_shown(b->name, strlen(b->name));
        if (zr_streq(a->uri, b->uri))
            report(l, b->mark,
                   "host '%s' has the same uri as host '%s' (line %u); each host needs its own", bn,
                   an, a->mark.line);
        else
            report(l, b->mark,
                   "host '%s' has the same uri as host '%s' (line %u): both name %s; each host "
                   "needs its own",
                   bn, an, a->mark.line, hu[j].norm);
    }
    for (size_t i = 0; i < n; i++)
        free(hu[i].norm);
    free(hu);
}

/* ---- pools ---------------------------------------------------------------- */

static int parse_members(struct loader *l, const struct field *f, const struct node *v, void *obj)
{
    struct zr_pool *p = obj;
    if (v->type != NODE_SEQUENCE || v->n_items == 0)
        return type_error(l, f, v);
    p->members = zr_new0(struct zr_pci_addr, v->n_items);
    p->has_members = true;
    for (size_t i = 0; i < v->n_items; i++) {
        const struct node *item = v->items[i];
        struct zr_pci_addr a;
        if (!is_text(item) || zr_pci_addr_parse(item->text, &a) < 0) {
            _cleanup_free_ char *got = zr_ytree_describe(item);
            report(l, item->mark, "each item of 'members' must be %s, got %s", PCI_ADDR_EXPECT,
                   got);
            continue;
        }
        for (size_t j = 0; j < p->n_members; j++)
            if (zr_pci_addr_eq(&p->members[j], &a)) {
                report(l, item->mark, "duplicate member " ZR_PCI_ADDR_FMT " in pool '%s'",
                       ZR_PCI_ADDR_ARGS(a), p->name);
                break;
            }
        p->members[p->n_members++] = a;
    }
    return 0;
}

static const char *const pool_selectors[] = {"vendor", "product", "physical_function", "numa_node",
                                             "driver"};

static void check_pool(struct loader *l, const struct node *map, void *obj)
{
    const struct zr_pool *p = obj;
    const struct node *members = mapping_find(map, "members");
    const struct node *selector = NULL;
    for (size_t i = 0; i < ELEMENTSOF(pool_selectors) && !selector; i++)
        selector = mapping_find(map, pool_selectors[i]);
    if (!members && !selector)
        report(l, map->mark,
               "pool '%s' selects nothing: give 'members' or at least one of vendor, product, "
               "physical_function, numa_node, driver",
               p->name);
    else if (members && selector)
        report(l, selector->mark,
               "'%s' cannot be combined with 'members' (line %u) in pool '%s': a pool is a "
               "list or a selection",
               selector->text, members->mark.line, p->name);
}

#define POOL(member) offsetof(struct zr_pool, member)
#define POOL_HAS(member) HAS(struct zr_pool, member)
static const struct field pool_fields[] = {
    {.key = "members", .parse = parse_members, .expect = "a non-empty list of PCI addresses"},
    {.key = "vendor",
     .parse = parse_number,
     .offset = POOL(vendor),
     .has = POOL_HAS(has_vendor),
     .max = 0xffff,
     .hex = true,
     .limit = LIMIT_RANGE,
     .expect = "a PCI vendor id from "},
    {.key = "product",
     .parse = parse_number,
     .offset = POOL(product),
     .has = POOL_HAS(has_product),
     .max = 0xffff,
     .hex = true,
     .limit = LIMIT_RANGE,
     .expect = "a PCI product id from "},
    {.key = "physical_function",
     .parse = parse_pci_addr,
     .offset = POOL(physical_function),
     .has = POOL_HAS(has_physical_function),
     .expect = PCI_ADDR_EXPECT},
    {.key = "numa_node",
     .parse = parse_number,
     .offset = POOL(numa_node),
     .has = POOL_HAS(has_numa_node),
     .max = 0xffff,
     .limit = LIMIT_RANGE,
     .expect = "a NUMA node number from "},
    {.key = "driver",
     .parse = parse_string,
     .offset = POOL(driver),
     .max = 64,
     .expect = "a host driver name such as vfio-pci"},
};
#undef POOL
#undef POOL_HAS
static const struct table pool_table = {pool_fields, ELEMENTSOF(pool_fields), check_pool};

/* `v` (a mapping or null) of pool names to their definitions. */
static void parse_pools(struct loader *l, const struct node *v, const char *where,
                        struct zr_pool **pools, size_t *n)
{
    if (!v || v->type != NODE_MAPPING)
        return;
    _cleanup_free_ bool *skip = find_bad_keys(l, v, "pool", where);
    *pools = zr_new0(struct zr_pool, v->n_items / 2);
    for (size_t i = 0; i + 1 < v->n_items; i += 2) {
        const struct node *key = v->items[i];
        if (skip[i / 2])
            continue;
        struct zr_pool *p = &(*pools)[(*n)++];
        p->name = zr_strdup(key->text);
        p->mark = key->use;
        if (key->len && !pool_name_ok(key->text, key->len)) {
            _cleanup_free_ char *s = zr_source_shown(key->text, key->len);
            report(l, key->mark, "pool name '%s' must be letters, digits, '-' and '_' (at most 64)",
                   s);
        }
        parse_named(l, key, v->items[i + 1], "pool", &pool_table, p);
    }
}

/* The host's pools: its own, then the top-level ones of other names; then
 * every entry's pool must be one of them. */
static void resolve_pools(struct loader *l, struct zr_host *h, const struct node *own)
{
    _cleanup_free_ char *name = zr_source_shown(h->name, strlen(h->name));
    _cleanup_free_ char *where = zr_asprintf("on host '%s'", name);
    parse_pools(l, own, where, &h->pools, &h->n_pools);
    size_t n_own = h->n_pools;
    for (size_t i = 0; i < l->n_top_pools; i++) {
        bool shadowed = false;
        for (size_t j = 0; j < n_own && !shadowed; j++)
            shadowed = strcmp(h->pools[j].name, l->top_pools[i].name) == 0;
        if (shadowed)
            continue;
        zr_pool_copy(ZR_APPEND(h->pools, h->n_pools), &l->top_pools[i]);
    }
    struct zr_strbuf known = {0};
    for (size_t i = 0; i < h->n_pools; i++)
        zr_strbuf_addf(&known, ", ", "%s", h->pools[i].name);
    for (size_t g = 0; g < h->n_guests; g++)
        for (size_t d = 0; d < h->guests[g].devices.n; d++) {
            const struct zr_device *dev = &h->guests[g].devices.items[d];
            if (dev->pool && !zr_host_find_pool(h, dev->pool))
                report(l, dev->pool_mark, "unknown pool '%s'%s%s (%s%s)", dev->pool,
                       l->has_hosts ? " " : "", l->has_hosts ? where : "",
                       known.s ? "pools here: "
                               : "no pools are defined; 'pools:' goes at the "
                                 "top level or under a host",
                       known.s ? known.s : "");
        }
    free(known.s);
}

struct host_spec {
    char *uri;
    const struct node *guests, *pools;
};

static const struct field host_fields[] = {
    {.key = "uri",
     .parse = parse_string,
     .offset = offsetof(struct host_spec, uri),
     .required = true,
     .expect = "a libvirt URI"},
    {.key = "guests",
     .parse = keep_mapping,
     .offset = offsetof(struct host_spec, guests),
     .required = true,
     .expect = "a mapping of guest names to their devices"},
    {.key = "pools",
     .parse = keep_mapping,
     .offset = offsetof(struct host_spec, pools),
     .expect = "a mapping of pool names to their members or selectors"},
};
static const struct table host_table = {host_fields, ELEMENTSOF(host_fields), NULL};

static void parse_hosts(struct loader *l, const struct node *v, struct zr_inventory *inv)
{
    if (v->type != NODE_MAPPING)
        return;
    _cleanup_free_ bool *skip = find_bad_keys(l, v, "host", "under 'hosts'");
    inv->hosts = zr_new0(struct zr_host, v->n_items / 2);
    for (size_t i = 0; i + 1 < v->n_items; i += 2) {
        const struct node *key = v->items[i], *val = v->items[i + 1];
        struct host_spec spec = {0};
        if (skip[i / 2])
            continue;

        struct zr_host *h = &inv->hosts[inv->n_hosts++];
        h->name = zr_strdup(key->text);
        h->mark = key->use;
        parse_named(l, key, val, "host", &host_table, &spec);
        h->uri = TAKE_PTR(spec.uri);
        parse_guests(l, spec.guests, h);
        resolve_pools(l, h, spec.pools);
    }
    check_host_uris(l, inv);
}

struct top_spec {
    uint32_t version;
    char *uri;
    const struct node *guests, *hosts, *pools;
};

static const struct field top_fields[] = {
    {.key = "version",
     .parse = parse_version,
     .offset = offsetof(struct top_spec, version),
     .required = true,
     .min = 1,
     .max = 1,
     .expect = "1"},
    {.key = "uri",
     .parse = parse_string,
     .offset = offsetof(struct top_spec, uri),
     .expect = "a libvirt URI"},
    {.key = "guests",
     .parse = keep_mapping,
     .offset = offsetof(struct top_spec, guests),
     .expect = "a mapping of guest names to their devices"},
    {.key = "hosts",
     .parse = keep_mapping,
     .offset = offsetof(struct top_spec, hosts),
     .expect = "a mapping of host names to their uri and guests"},
    {.key = "pools",
     .parse = keep_mapping,
     .offset = offsetof(struct top_spec, pools),
     .expect = "a mapping of pool names to their members or selectors"},
};
static const struct table top_table = {top_fields, ELEMENTSOF(top_fields), NULL};

static void parse_top(struct loader *l, const struct node *root, struct zr_inventory *inv)
{
    _cleanup_free_ char *uri = NULL;
    struct top_spec spec = {0};
    /* The form is decided by the keys written, even when their value is
     * wrong, so a mistyped 'guests' is not also reported missing. */
    const struct node *hosts = mapping_find(root, "hosts");
    const struct node *guests = mapping_find(root, "guests");
    const struct node *uri_key = mapping_find(root, "uri");

    parse_mapping(l, root, &top_table, "the inventory", &spec);
    uri = spec.uri;

    if (hosts && uri_key)
        report(l, uri_key->mark,
               "top-level 'uri' cannot be combined with 'hosts' (line %u); give each host its "
               "own 'uri'",
               hosts->mark.line);
    if (hosts && guests)
        report(l, guests->mark,
               "top-level 'guests' cannot be combined with 'hosts' (line %u); list the guests "
               "under each host",
               hosts->mark.line);
    if (!hosts && !guests)
        report(l, root->mark,
               "missing required key 'guests' in the inventory (or 'hosts', for several "
               "hypervisors)");

    parse_pools(l, spec.pools, "at the top level", &l->top_pools, &l->n_top_pools);
    if (spec.hosts) {
        inv->has_hosts = l->has_hosts = true;
        parse_hosts(l, spec.hosts, inv);
    } else if (spec.guests) {
        inv->hosts = zr_new0(struct zr_host, 1);
        inv->n_hosts = 1;
        inv->hosts[0].name = zr_strdup("default");
        inv->hosts[0].uri = TAKE_PTR(uri);
        inv->hosts[0].mark = root->mark;
        parse_guests(l, spec.guests, &inv->hosts[0]);
        resolve_pools(l, &inv->hosts[0], NULL);
    }
}

/* ---- entry points ------------------------------------------------------- */

struct zr_inventory *zr_inventory_parse_with(const char *file, const char *data, size_t len,
                                             const struct zr_inventory_rules *rules,
                                             struct zr_errors *errs)
{
    _cleanup_(loader_finish) struct loader l = {
        .src = {.file = file, .data = data, .len = len, .errs = errs, .first_error = errs->n},
        .rules = rules,
    };
    l.tree.src = &l.src;
    _cleanup_(zr_inventory_freep) struct zr_inventory *inv = NULL;
    struct node *root = NULL;

    /* libyaml asserts on a NULL input, even an empty one. */
    if (!data) {
        l.src.data = "";
        l.src.len = 0;
    }
    if (len > ZR_INVENTORY_MAX_BYTES) {
        report(&l, (struct zr_mark){0, 0},
               "the inventory is %zu bytes; the limit is %u bytes (32 MiB)", len,
               ZR_INVENTORY_MAX_BYTES);
        return NULL;
    }
    /* Editors on Windows like to start UTF-8 with a byte order mark;
     * libyaml, told the encoding, would read it as text in column 1. */
    if (l.src.len >= 3 && memcmp(l.src.data, "\xef\xbb\xbf", 3) == 0) {
        l.src.data += 3;
        l.src.len -= 3;
    }
    if (zr_ytree_read(&l.tree, &root) < 0)
        return NULL;

    if (!root || (root->type == NODE_SCALAR && root->null))
        report(&l, (struct zr_mark){1, 1},
               "the inventory is empty; it must be a mapping that starts with 'version: 1'");
    else if (root->type != NODE_MAPPING) {
        _cleanup_free_ char *got = zr_ytree_describe(root);
        report(&l, root->mark,
               "the inventory must be a mapping that starts with 'version: 1', got %s", got);
    } else {
        inv = zr_new0(struct zr_inventory, 1);
        inv->file = zr_strdup(file);
        parse_top(&l, root, inv);
    }
    zr_source_sort_errors(&l.src);
    return l.src.failed ? NULL : TAKE_PTR(inv);
}

static int read_all(int fd, const char *name, char **data, size_t *len, struct zr_errors *errs)
{
    _cleanup_free_ char *buf = NULL;
    size_t n = 0, cap = 0;

    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? 2 * cap : 65536;
            /* One byte past the limit tells "too big" from "exactly the limit". */
            if (cap > (size_t)ZR_INVENTORY_MAX_BYTES + 1)
                cap = (size_t)ZR_INVENTORY_MAX_BYTES + 1;
            buf = zr_reallocarray(buf, cap, 1);
        }
        if (n == cap) {
            zr_errors_add(errs, name, 0, 0, NULL,
                          "larger than the limit of %u bytes (32 MiB); refusing to read it",
                          ZR_INVENTORY_MAX_BYTES);
            return -EFBIG;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            zr_errors_add(errs, name, 0, 0, NULL, "cannot read: %s", strerror(e));
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    *data = TAKE_PTR(buf);
    return 0;
}

static int read_path(const char *path, char **data, size_t *len, struct zr_errors *errs)
{
    struct stat st;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before we can
     * refuse it. */
    _cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0 || fstat(fd, &st) < 0) {
        int e = errno;
        zr_errors_add(errs, path, 0, 0, NULL, "cannot open: %s", strerror(e));
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        zr_errors_add(errs, path, 0, 0, NULL, "is a directory, not an inventory file");
        return -EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {
        zr_errors_add(errs, path, 0, 0, NULL,
                      "not a regular file; to read a pipe, give '-' and redirect it to "
                      "standard input");
        return -EINVAL;
    }
    if ((uintmax_t)st.st_size > ZR_INVENTORY_MAX_BYTES) {
        zr_errors_add(errs, path, 0, 0, NULL,
                      "is %jd bytes, larger than the limit of %u bytes (32 MiB); refusing "
                      "to read it",
                      (intmax_t)st.st_size, ZR_INVENTORY_MAX_BYTES);
        return -EFBIG;
    }
    return read_all(fd, path, data, len, errs);
}

struct zr_inventory *zr_inventory_load_with(const char *path,
                                            const struct zr_inventory_rules *rules,
                                            struct zr_errors *errs)
{
    bool from_stdin = zr_streq(path, "-");
    const char *name = from_stdin ? "<stdin>" : path;
    _cleanup_free_ char *data = NULL;
    size_t len = 0;

    int r = from_stdin ? read_all(STDIN_FILENO, name, &data, &len, errs)
                       : read_path(path, &data, &len, errs);
    if (r < 0)
        return NULL;
    return zr_inventory_parse_with(name, data, len, rules, errs);
}

static void guest_finish(struct zr_guest *g)
{
    free(g->name);
    zr_device_list_finish(&g->devices);
}

void zr_pool_finish(struct zr_pool *p)
{
    free(p->name);
    free(p->members);
    free(p->driver);
    *p = (struct zr_pool){0};
}

void zr_pool_copy(struct zr_pool *dst, const struct zr_pool *src)
{
    *dst = *src;
    dst->name = zr_strdup(src->name);
    dst->driver = zr_strdup(src->driver);
    dst->members = NULL;
    if (src->n_members) {
        dst->members = zr_new0(struct zr_pci_addr, src->n_members);
        memcpy(dst->members, src->members, src->n_members * sizeof(*src->members));
    }
}

const struct zr_pool *zr_host_find_pool(const struct zr_host *host, const char *name)
{
    for (size_t i = 0; name && i < host->n_pools; i++)
        if (strcmp(host->pools[i].name, name) == 0)
            return &host->pools[i];
    return NULL;
}

bool zr_pool_needs_node_devices(const struct zr_pool *p)
{
    return !p->has_members;
}

void zr_host_finish(struct zr_host *h)
{
    for (size_t i = 0; i < h->n_pools; i++)
        zr_pool_finish(&h->pools[i]);
    free(h->pools);
    free(h->name);
    free(h->uri);
    for (size_t i = 0; i < h->n_guests; i++)
        guest_finish(&h->guests[i]);
    free(h->guests);
}

void zr_inventory_free(struct zr_inventory *inv)
{
    if (!inv)
        return;
    for (size_t i = 0; i < inv->n_hosts; i++)
        zr_host_finish(&inv->hosts[i]);
    free(inv->hosts);
    free(inv->file);
    free(inv);
}

size_t zr_inventory_count_guests(const struct zr_inventory *inv)
{
    size_t n = 0;
    for (size_t i = 0; i < inv->n_hosts; i++)
        n += inv->hosts[i].n_guests;
    return n;
}

/* The functions the inventory asks for: a pool entry with `count: N`
 * counts N. */
size_t zr_inventory_count_devices(const struct zr_inventory *inv)
{
    size_t n = 0;
    for (size_t i = 0; i < inv->n_hosts; i++)
        for (size_t j = 0; j < inv->hosts[i].n_guests; j++) {
            const struct zr_device_list *l = &inv->hosts[i].guests[j].devices;
            for (size_t d = 0; d < l->n; d++)
                n += l->items[d].count > 0 ? l->items[d].count : 1;
        }
    return n;
}

