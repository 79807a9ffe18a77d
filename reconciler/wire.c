#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "field.h"
#include "wire.h"

/* Every field of these structs is written below; a new field must be too,
 * or a plan that crossed a process boundary silently loses it.  The sizes
 * trip when a struct changes (LP64 builds only, where they are known). */
#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8
_Static_assert(sizeof(struct zr_device) == 192, "struct zr_device changed: update wire.c");
_Static_assert(sizeof(struct zr_action) == 472, "struct zr_action changed: update wire.c");
_Static_assert(sizeof(struct zr_change) == 32, "struct zr_change changed: update wire.c");
_Static_assert(sizeof(struct zr_action_result) == 32,
               "struct zr_action_result changed: update wire.c");
_Static_assert(sizeof(struct zr_plan_guest) == 40, "struct zr_plan_guest changed: update wire.c");
_Static_assert(sizeof(struct zr_warning) == 48, "struct zr_warning changed: update wire.c");
_Static_assert(sizeof(struct zr_plan_host) == 40, "struct zr_plan_host changed: update wire.c");
_Static_assert(sizeof(struct zr_run_warning) == 56, "struct zr_run_warning changed: update wire.c");
#endif

#define WIRE_MAGIC "zr-wire-2"
#define NULL_STRING UINT32_MAX

/* ---- writing ------------------------------------------------------------- */

static void put(FILE *f, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, f) != n)
        abort();
}

static void put_u32(FILE *f, uint32_t v)
{
    put(f, &v, sizeof(v));
}

static void put_u64(FILE *f, uint64_t v)
{
    put(f, &v, sizeof(v));
}

static void put_bool(FILE *f, bool v)
{
    put_u32(f, v ? 1 : 0);
}

static void put_str(FILE *f, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n >= NULL_STRING)
        abort();
    put_u32(f, s ? (uint32_t)n : NULL_STRING);
    put(f, s, n);
}

static void put_pci(FILE *f, const struct zr_pci_addr *a)
{
    put_u32(f, a->domain);
    put_u32(f, (uint32_t)a->bus << 16 | (uint32_t)a->slot << 8 | a->function);
}

static void put_virtualport(FILE *f, const struct zr_virtualport *v)
{
    put_u32(f, (uint32_t)v->type);
    put_str(f, v->profileid);
    put_bool(f, v->has_managerid);
    put_bool(f, v->has_typeid);
    put_bool(f, v->has_typeidversion);
    put_bool(f, v->has_instanceid);
    put_u32(f, v->managerid);
    put_u32(f, v->typeid);
    put_u32(f, v->typeidversion);
    put(f, v->instanceid.b, sizeof(v->instanceid.b));
}

/* A field of the table (field.h): its bits, then its value. */
static void put_field(FILE *f, const struct zr_field *fd, const struct zr_device *d)
{
    const void *v = zr_field_at(fd, d);
    put_bool(f, zr_field_is_set(fd, d));
    put_bool(f, zr_field_is_odd(fd, d));
    switch (fd->type) {
    case ZR_VALUE_BOOL:
        put_bool(f, *(const bool *)v);
        break;
    case ZR_VALUE_U32:
        put_u32(f, *(const uint32_t *)v);
        break;
    case ZR_VALUE_PCI_ADDR:
        put_pci(f, v);
        break;
    case ZR_VALUE_MAC:
        put(f, ((const struct zr_mac *)v)->b, sizeof(((const struct zr_mac *)v)->b));
        break;
    case ZR_VALUE_STRING:
        put_str(f, *(char *const *)v);
        break;
    case ZR_VALUE_VIRTUALPORT:
        put_virtualport(f, v);
        break;
    case ZR_VALUE__COUNT:
        abort();
    }
}

/* The fields of the table, then what the device has beside them. */
static void put_device(FILE *f, const struct zr_device *d)
{
    put_u32(f, (uint32_t)d->kind);
    put_pci(f, &d->source);
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++)
        put_field(f, &zr_fields[i], d);
    put_bool(f, d->has_managed);
    put_bool(f, d->vport_unrepresentable);
    put_str(f, d->alias);
    put_str(f, d->driver);
    put_str(f, d->xml);
    put_str(f, d->unrepresentable);
    put_u32(f, d->mark.line);
    put_u32(f, d->mark.column);
    put_str(f, d->pool);
    put_u32(f, d->count);
    put_bool(f, d->has_count);
    put_u32(f, d->pool_mark.line);
    put_u32(f, d->pool_mark.column);
}

static void put_action(FILE *f, const struct zr_action *a)
{
    put_u64(f, a->guest_index);
    put_u32(f, (uint32_t)a->op);
    put_u32(f, (uint32_t)a->role);
    put_u64(f, a->pair);
    put_u32(f, (uint32_t)a->kind);
    put_pci(f, &a->source);
    put_bool(f, a->live);
    put_bool(f, a->config);
    put_u64(f, a->n_changes);
    for (size_t j = 0; j < a->n_changes; j++) {
        put_str(f, a->changes[j].field);
        put_str(f, a->changes[j].old);
        put_str(f, a->changes[j].new);
        put_bool(f, a->changes[j].listed);
    }
    put_str(f, a->note);
    put_str(f, a->xml);
    put_device(f, &a->device);
    if (a->role == ZR_ROLE_REPLACE_IN)
        put_device(f, &a->replaces);
    put_u64(f, a->n_deps);
    for (size_t j = 0; j < a->n_deps; j++)
        put_u64(f, a->deps[j]);
}

static void put_result(FILE *f, const struct zr_action_result *r)
{
    put_u32(f, (uint32_t)r->result);
    put_str(f, r->error);
    put_u32(f, (uint32_t)r->error_code);
    put_bool(f, r->config_removed);
    put_str(f, r->cause);
}

static void put_warning(FILE *f, const struct zr_warning *w)
{
    put_str(f, w->host);
    put_str(f, w->guest);
    put_bool(f, w->has_source);
    put_pci(f, &w->source);
    put_str(f, w->message);
    put_u32(f, (uint32_t)w->code);
}

static void put_plan(FILE *f, const struct zr_plan *plan)
{
    put_u64(f, plan->n_guests);
    for (size_t i = 0; i < plan->n_guests; i++) {
        const struct zr_plan_guest *g = &plan->guests[i];
        put_str(f, g->host);
        put_str(f, g->uri);
        put_str(f, g->guest);
        put_str(f, g->error);
        put_u32(f, (uint32_t)g->error_code);
        put_bool(f, g->changed);
    }
    put_u64(f, plan->n_actions);
    for (size_t i = 0; i < plan->n_actions; i++)
        put_action(f, &plan->actions[i]);
    put_u64(f, plan->n_warnings);
    for (size_t i = 0; i < plan->n_warnings; i++)
        put_warning(f, &plan->warnings[i]);
    put_u64(f, plan->n_hosts);
    for (size_t i = 0; i < plan->n_hosts; i++) {
        const struct zr_plan_host *h = &plan->hosts[i];
        put_str(f, h->name);
        put_str(f, h->uri);
        put_bool(f, h->reached);
        put_str(f, h->error);
        put_u32(f, (uint32_t)h->error_code);
    }
}

/* A result for every action (PLANNED where none was recorded), the run's
 * warnings, a time for every host. */
static void put_run(FILE *f, const struct zr_report *r)
{
    for (size_t i = 0; i < r->plan.n_actions; i++)
        put_result(f, zr_run_result(&r->run, i));
    put_u64(f, r->run.n_warnings);
    for (size_t i = 0; i < r->run.n_warnings; i++) {
        put_u64(f, r->run.warnings[i].after);
        put_warning(f, &r->run.warnings[i].w);
    }
    for (size_t i = 0; i < r->plan.n_hosts; i++) {
        double s = zr_run_seconds(&r->run, i);
        put(f, &s, sizeof(s));
    }
}

char *zr_wire_encode(const struct zr_report *report, size_t *len)
{
    struct zr_memstream m;
    FILE *f = zr_memstream_open(&m);
    put(f, WIRE_MAGIC, sizeof(WIRE_MAGIC));
    put_plan(f, &report->plan);
    put_run(f, report);
    char *buf = zr_memstream_close(&m);
    *len = m.len;
    return buf;
}

/* ---- reading ------------------------------------------------------------- */

/* A cursor that turns every read past the end into zeros and remembers it,
 * so the decoder checks once at the end instead of after every field. */
struct reader {
    const char *p;
    size_t left;
    bool bad;
};

static void get(struct reader *r, void *out, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p, n);
    r->p += n;
    r->left -= n;
}

static uint32_t get_u32(struct reader *r)
{
    uint32_t v;
    get(r, &v, sizeof(v));
    return v;
}

static uint64_t get_u64(struct reader *r)
{
    uint64_t v;
    get(r, &v, sizeof(v));
    return v;
}

static bool get_bool(struct reader *r)
{
    uint32_t v = get_u32(r);
    if (v > 1)
        r->bad = true;
    return v == 1;
}

static uint32_t get_enum(struct reader *r, uint32_t count)
{
    uint32_t v = get_u32(r);
    if (v >= count) {
        r->bad = true;
        return 0;
    }
    return v;
}

static char *get_str(struct reader *r)
{
    uint32_t n = get_u32(r);
    if (r->bad || n == NULL_STRING)
        return NULL;
    if (n > r->left || memchr(r->p, '\0', n)) {
        r->bad = true;
        return NULL;
    }
    char *s = zr_strndup(r->p, n);
    r->p += n;
    r->left -= n;
    return s;
}

/* A count of items that each take at least `min_size` bytes: more than the
 * rest of the input can hold is malformed, not a reason to allocate. */
static size_t get_count(struct reader *r, size_t min_size)
{
    uint64_t n = get_u64(r);
    if (r->bad || n > r->left / min_size) {
        r->bad = true;
        return 0;
    }
    return (size_t)n;
}

static void get_pci(struct reader *r, struct zr_pci_addr *a)
{
    a->domain = get_u32(r);
    uint32_t bsf = get_u32(r);
    a->bus = (uint8_t)(bsf >> 16);
    a->slot = (uint8_t)(bsf >> 8);
    a->function = (uint8_t)bsf;
}

static void get_virtualport(struct reader *r, struct zr_virtualport *v)
{
    v->type = (zr_vport_type)get_enum(r, ZR_VPORT__COUNT);
    v->profileid = get_str(r);
    v->has_managerid = get_bool(r);
    v->has_typeid = get_bool(r);
    v->has_typeidversion = get_bool(r);
    v->has_instanceid = get_bool(r);
    v->managerid = get_u32(r);
    v->typeid = get_u32(r);
    v->typeidversion = get_u32(r);
    get(r, v->instanceid.b, sizeof(v->instanceid.b));
}

static void get_field(struct reader *r, const struct zr_field *fd, struct zr_device *d)
{
    void *v = zr_field_at_mut(fd, d);
    bool set = get_bool(r), odd = get_bool(r);
    /* A field without a bit is always set: anything else is malformed. */
    if ((!set && !fd->has && fd->type != ZR_VALUE_VIRTUALPORT) || (odd && !fd->odd))
        r->bad = true;
    zr_field_mark(fd, d, set, odd);
    switch (fd->type) {
    case ZR_VALUE_BOOL:
        *(bool *)v = get_bool(r);
        break;
    case ZR_VALUE_U32:
        *(uint32_t *)v = get_u32(r);
        break;
    case ZR_VALUE_PCI_ADDR:
        get_pci(r, v);
        break;
    case ZR_VALUE_MAC:
        get(r, ((struct zr_mac *)v)->b, sizeof(((struct zr_mac *)v)->b));
        break;
    case ZR_VALUE_STRING:
        *(char **)v = get_str(r);
        break;
    case ZR_VALUE_VIRTUALPORT:
        get_virtualport(r, v);
        break;
    case ZR_VALUE__COUNT:
        abort();
    }
}

static void get_device(struct reader *r, struct zr_device *d)
{
    d->kind = (zr_kind)get_enum(r, ZR_KIND__COUNT);
    get_pci(r, &d->source);
    for (size_t i = 0; i < ZR_FIELD__COUNT; i++)
        get_field(r, &zr_fields[i], d);
    d->has_managed = get_bool(r);
    d->vport_unrepresentable = get_bool(r);
    d->alias = get_str(r);
    d->driver = get_str(r);
    d->xml = get_str(r);
    d->unrepresentable = get_str(r);
    d->mark.line = get_u32(r);
    d->mark.column = get_u32(r);
    d->pool = get_str(r);
    d->count = get_u32(r);
    d->has_count = get_bool(r);
    d->pool_mark.line = get_u32(r);
    d->pool_mark.column = get_u32(r);
}

/* One action of a plan with n_guests guests and n actions. */
static void get_action(struct reader *r, struct zr_action *a, size_t n_guests, size_t n)
{
    a->guest_index = (size_t)get_u64(r);
    if (a->guest_index >= n_guests)
        r->bad = true;
    a->op = (zr_op)get_enum(r, ZR_OP__COUNT);
    a->role = (zr_role)get_enum(r, ZR_ROLE__COUNT);
    a->pair = (size_t)get_u64(r);
    if (a->pair != ZR_NO_PAIR && a->pair >= n)
        r->bad = true;
    a->kind = (zr_kind)get_enum(r, ZR_KIND__COUNT);
    get_pci(r, &a->source);
    a->live = get_bool(r);
    a->config = get_bool(r);
    size_t n_changes = get_count(r, 4 * 4);
    a->changes = n_changes ? zr_new0(struct zr_change, n_changes) : NULL;
    for (; a->n_changes < n_changes; a->n_changes++) {
        struct zr_change *c = &a->changes[a->n_changes];
        c->field = get_str(r);
        c->old = get_str(r);
        c->new = get_str(r);
        c->listed = get_bool(r);
    }
    a->note = get_str(r);
    a->xml = get_str(r);
    get_device(r, &a->device);
    if (a->role == ZR_ROLE_REPLACE_IN)
        get_device(r, &a->replaces);
    size_t n_deps = get_count(r, 8);
    a->deps = n_deps ? zr_new0(size_t, n_deps) : NULL;
    for (; a->n_deps < n_deps; a->n_deps++) {
        a->deps[a->n_deps] = (size_t)get_u64(r);
        if (a->deps[a->n_deps] >= n)
            r->bad = true;
    }
}

static void get_result(struct reader *r, struct zr_action_result *res)
{
    res->result = (zr_result)get_enum(r, ZR_RESULT__COUNT);
    res->error = get_str(r);
    res->error_code = (zr_error_code)get_enum(r, ZR_ERR__COUNT);
    res->config_removed = get_bool(r);
    res->cause = get_str(r);
}

static void get_warning(struct reader *r, struct zr_warning *w)
{
    w->host = get_str(r);
    w->guest = get_str(r);
    w->has_source = get_bool(r);
    get_pci(r, &w->source);
    w->message = get_str(r);
    w->code = (zr_error_code)get_enum(r, ZR_ERR__COUNT);
}

/* Minimum sizes: a guest is 4 strings and a flag, an action at least its
 * fixed fields, a warning 3 strings and 3 words, a host 3 strings and 2
 * words. */
static void get_plan(struct reader *r, struct zr_plan *out)
{
    size_t n = get_count(r, 5 * 4);
    out->guests = zr_new0(struct zr_plan_guest, n);
    for (; out->n_guests < n; out->n_guests++) {
        struct zr_plan_guest *g = &out->guests[out->n_guests];
        g->host = get_str(r);
        g->uri = get_str(r);
        g->guest = get_str(r);
        g->error = get_str(r);
        g->error_code = (zr_error_code)get_enum(r, ZR_ERR__COUNT);
        g->changed = get_bool(r);
    }
    n = get_count(r, 100);
    out->actions = zr_new0(struct zr_action, n);
    for (; out->n_actions < n; out->n_actions++)
        get_action(r, &out->actions[out->n_actions], out->n_guests, n);
    n = get_count(r, 6 * 4);
    out->warnings = zr_new0(struct zr_warning, n);
    for (; out->n_warnings < n; out->n_warnings++)
        get_warning(r, &out->warnings[out->n_warnings]);
    n = get_count(r, 5 * 4);
    out->hosts = zr_new0(struct zr_plan_host, n);
    for (; out->n_hosts < n; out->n_hosts++) {
        struct zr_plan_host *h = &out->hosts[out->n_hosts];
        h->name = get_str(r);
        h->uri = get_str(r);
        h->reached = get_bool(r);
        h->error = get_str(r);
        h->error_code = (zr_error_code)get_enum(r, ZR_ERR__COUNT);
    }
}

static void get_run(struct reader *r, const struct zr_plan *plan, struct zr_run *out)
{
    out->results = zr_new0(struct zr_action_result, plan->n_actions);
    for (; out->n_results < plan->n_actions; out->n_results++)
        get_result(r, &out->results[out->n_results]);
    size_t n = get_count(r, 8 + 6 * 4);
    out->warnings = zr_new0(struct zr_run_warning, n);
    for (; out->n_warnings < n; out->n_warnings++) {
        struct zr_run_warning *w = &out->warnings[out->n_warnings];
        w->after = (size_t)get_u64(r);
        if (w->after > plan->n_warnings)
            r->bad = true;
        get_warning(r, &w->w);
    }
    out->seconds = zr_new0(double, plan->n_hosts);
    for (; out->n_seconds < plan->n_hosts; out->n_seconds++)
        get(r, &out->seconds[out->n_seconds], sizeof(double));
}

int zr_wire_decode(const char *data, size_t len, struct zr_report *out)
{
    struct reader r = {.p = data, .left = len};
    char magic[sizeof(WIRE_MAGIC)];
    get(&r, magic, sizeof(magic));
    if (r.bad || memcmp(magic, WIRE_MAGIC, sizeof(magic)) != 0)
        return -EBADMSG;
    get_plan(&r, &out->plan);
    get_run(&r, &out->plan, &out->run);
    if (r.bad || r.left) {
        zr_report_finish(out);
        return -EBADMSG;
    }
    return 0;
}
