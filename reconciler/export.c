#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "domain.h"
#include "export.h"
#include "field.h"

void zr_export_warnings_finish(struct zr_export_warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->items[i]);
    free(w->items);
    *w = (struct zr_export_warnings){0};
}

/* ---- which devices can be written ---------------------------------------- */

/* Why a whole device stays out. */
enum drop {
    KEEP,
    DROP_DOMAIN,      /* source domain above what the inventory can hold */
    DROP_TWICE,       /* the guest holds the function more than once */
    DROP_OTHER_GUEST, /* an earlier guest holds it too */
};

struct use {
    struct zr_pci_addr source;
    size_t guest, device; /* device: index into the flat per-device arrays */
};

static int use_cmp(const void *pa, const void *pb)
{
    const struct use *a = pa, *b = pb;
    int r = zr_pci_addr_cmp(&a->source, &b->source);
    if (r)
        return r;
    if (a->guest != b->guest)
        return a->guest < b->guest ? -1 : 1;
    return a->device < b->device ? -1 : a->device > b->device;
}

struct selection {
    size_t *first;   /* per guest: index of its first device in drop/holder */
    enum drop *drop; /* per device */
    size_t *holder;  /* DROP_OTHER_GUEST: the guest that keeps the function */
    bool *prune;     /* per guest */
};

static void selection_finish(struct selection *s)
{
    free(s->first);
    free(s->drop);
    free(s->holder);
    free(s->prune);
}

/* A source may appear once per host in an inventory.  Sorting every use
 * by source finds the repeats in O(n log n), however many guests. */
static void select_devices(const struct zr_export_guest *guests, size_t n, struct selection *s)
{
    size_t total = 0;
    s->first = zr_new0(size_t, n);
    s->prune = zr_new0(bool, n);
    for (size_t g = 0; g < n; g++) {
        s->first[g] = total;
        s->prune[g] = true;
        total += guests[g].devices ? guests[g].devices->n : 0;
    }
    s->drop = zr_new0(enum drop, total);
    s->holder = zr_new0(size_t, total);

    _cleanup_free_ struct use *uses = zr_new0(struct use, total);
    size_t n_uses = 0;
    for (size_t g = 0; g < n; g++) {
        for (size_t d = 0; guests[g].devices && d < guests[g].devices->n; d++) {
            const struct zr_device *dev = &guests[g].devices->items[d];
            size_t i = s->first[g] + d;
            if (dev->source.domain > ZR_PCI_DOMAIN_MAX) {
                s->drop[i] = DROP_DOMAIN;
                s->prune[g] = false;
                continue;
            }
            uses[n_uses++] = (struct use){dev->source, g, i};
        }
    }
    if (n_uses)
        qsort(uses, n_uses, sizeof(*uses), use_cmp);

    for (size_t i = 0; i < n_uses;) {
        size_t end = i + 1;
        while (end < n_uses && zr_pci_addr_eq(&uses[end].source, &uses[i].source))
            end++;
        size_t keeper = uses[i].guest;
        bool twice = end - i > 1 && uses[i + 1].guest == keeper;
        for (size_t k = i; k < end; k++) {
            if (uses[k].guest == keeper && !twice)
                continue;
            s->drop[uses[k].device] = uses[k].guest == keeper ? DROP_TWICE : DROP_OTHER_GUEST;
            s->holder[uses[k].device] = keeper;
            s->prune[uses[k].guest] = false;
        }
        i = end;
    }
}

/* ---- the emitter ---------------------------------------------------------- */

struct emitter {
    yaml_emitter_t e;
    bool failed;
    struct zr_export_warnings *warnings;
};

static void emit(struct emitter *em, yaml_event_t *ev, int ok)
{
    if (!ok)
        abort(); /* libyaml's event constructors fail only without memory */
    if (em->failed) {
        yaml_event_delete(ev);
        return;
    }
    /* The emitter owns the event from here, also when it fails. */
    if (!yaml_emitter_emit(&em->e, ev))
        em->failed = true;
}

static void emit_scalar(struct emitter *em, const char *s, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    emit(em, &ev,
         yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), 1, 1,
                                      style));
}

static void emit_plain(struct emitter *em, const char *s)
{
    emit_scalar(em, s, YAML_PLAIN_SCALAR_STYLE);
}

_printf_(2, 3) static void emit_plainf(struct emitter *em, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *s = zr_vasprintf(fmt, ap);
    va_end(ap);
    emit_plain(em, s);
}

/* A string of the user's (guest name, URI, profileid) is written plain only
 * when no YAML reader takes it for anything but a string: the inventory
 * loader reads null words as null, and YAML 1.1 tools read yes/on/0x10/1:20
 * as booleans and numbers.  Everything else is double-quoted, which libyaml
 * escapes as needed; it also quotes a plain request it cannot honour
 * (": ", a leading "-", flow indicators inside a flow mapping). */
static bool plain_is_string(const char *s)
{
    static const char *const words[] = {"null", "~",  "true", "false", "yes",
                                        "no",   "on", "off",  "y",     "n"};
    if (!*s)
        return false;
    for (size_t i = 0; i < ELEMENTSOF(words); i++)
        if (strcasecmp(s, words[i]) == 0)
            return false;
    unsigned char c = (unsigned char)s[0];
    return c >= 0x80 || c == '_' || c == '/' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void emit_string(struct emitter *em, const char *s)
{
    emit_scalar(em, s,
                plain_is_string(s) ? YAML_PLAIN_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
}

static void emit_mapping_start(struct emitter *em, bool flow)
{
    yaml_event_t ev;
    emit(em, &ev,
         yaml_mapping_start_event_initialize(
             &ev, NULL, NULL, 1, flow ? YAML_FLOW_MAPPING_STYLE : YAML_BLOCK_MAPPING_STYLE));
}

static void emit_mapping_end(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_mapping_end_event_initialize(&ev));
}

static void emit_sequence_start(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev,
         yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
}

static void emit_sequence_end(struct emitter *em)
{
    yaml_event_t ev;
    emit(em, &ev, yaml_sequence_end_event_initialize(&ev));
}

_printf_(4, 5) static void warn(struct emitter *em, const char *guest, const struct zr_device *d,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = zr_vasprintf(fmt, ap);
    va_end(ap);
    char src[ZR_PCI_ADDR_STRLEN];
    *ZR_APPEND(em->warnings->items, em->warnings->n) =
        zr_asprintf("guest '%s': %s %s: %s", guest, zr_kind_to_string(d->kind),
                    zr_pci_addr_format(&d->source, src), msg);
}

/* ---- devices -------------------------------------------------------------- */

/* A number field under its inventory key, as the plan shows it. */
static void emit_number(struct emitter *em, const char *key, zr_field_id id,
                        const struct zr_device *d)
{
    char buf[ZR_FIELD_STRLEN];
    emit_plain(em, key);
    emit_plain(em, zr_field_format(&zr_fields[id], d, buf));
}

static void emit_zpci(struct emitter *em, const char *guest, const struct zr_device *d)
{
    const struct zr_field *f = &zr_fields[ZR_FIELD_ZPCI_UID];
    char limits[ZR_FIELD_STRLEN];
    bool uid = d->has_zpci_uid && zr_field_in_range(f, d->zpci_uid);
    if (d->has_zpci_uid && !uid)
        warn(em, guest, d, "zpci uid %#x left out: the inventory takes %s", d->zpci_uid,
             zr_field_limits(f, limits));
    if (!uid && !d->has_zpci_fid)
        return;
    emit_plain(em, "zpci");
    emit_mapping_start(em, true);
    if (uid)
        emit_number(em, "uid", ZR_FIELD_ZPCI_UID, d);
    if (d->has_zpci_fid)
        emit_number(em, "fid", ZR_FIELD_ZPCI_FID, d);
    emit_mapping_end(em);
}

/* Returns whether a virtualport was written. */
static bool emit_virtualport(struct emitter *em, const char *guest, const struct zr_device *d)
{
    const struct zr_virtualport *v = &d->vport;
    char uuid[ZR_UUID_STRLEN];

    if (d->vport_unrepresentable) {
        warn(em, guest, d, "virtualport left out: only 802.1Qbh and 802.1Qbg ports can be written");
        return false;
    }
    switch (v->type) {
    case ZR_VPORT_NONE:
    case ZR_VPORT__COUNT:
        return false;
    case ZR_VPORT_8021QBH:
        if (!v->profileid || !*v->profileid || strlen(v->profileid) > ZR_VPORT_PROFILEID_MAX) {
            warn(em, guest, d,
                 "802.1Qbh virtualport left out: the inventory needs a profileid of 1 to %d bytes",
                 ZR_VPORT_PROFILEID_MAX);
            return false;
        }
        emit_plain(em, "virtualport");
        emit_mapping_start(em, true);
        emit_plain(em, "type");
        emit_plain(em, zr_vport_type_to_string(v->type));
        emit_plain(em, "profileid");
        emit_string(em, v->profileid);
        emit_mapping_end(em);
        return true;
    case ZR_VPORT_8021QBG:
        if (!v->has_managerid || !v->has_typeid || !v->has_typeidversion) {
            warn(em, guest, d,
                 "802.1Qbg virtualport left out: the inventory needs managerid, typeid and "
                 "typeidversion");
            return false;
        }
        emit_plain(em, "virtualport");
        emit_mapping_start(em, true);
        emit_plain(em, "type");
        emit_plain(em, zr_vport_type_to_string(v->type));
        emit_plain(em, "managerid");
        emit_plainf(em, "%u", v->managerid);
        emit_plain(em, "typeid");
        emit_plainf(em, "%u", v->typeid);
        emit_plain(em, "typeidversion");
        emit_plainf(em, "%u", v->typeidversion);
        if (v->has_instanceid) {
            emit_plain(em, "instanceid");
            emit_plain(em, zr_uuid_format(&v->instanceid, uuid));
        }
        emit_mapping_end(em);
        return true;
    }
    return false;
}

static void emit_guest_address(struct emitter *em, const char *guest, const struct zr_device *d)
{
    char buf[ZR_PCI_ADDR_STRLEN];
    if (d->has_guest_address && d->guest_address.domain > ZR_PCI_DOMAIN_MAX) {
        warn(em, guest, d, "guest_address %s left out: the inventory takes domains up to %x",
             zr_pci_addr_format(&d->guest_address, buf), ZR_PCI_DOMAIN_MAX);
    } else if (d->has_guest_address) {
        emit_plain(em, "guest_address");
        emit_plain(em, zr_pci_addr_format(&d->guest_address, buf));
    }
}

static void emit_boot_rom(struct emitter *em, const char *guest, const struct zr_device *d)
{
    const struct zr_field *boot = &zr_fields[ZR_FIELD_BOOT_ORDER];
    char limits[ZR_FIELD_STRLEN];
    if (d->has_boot_order && !zr_field_in_range(boot, d->boot_order)) {
        warn(em, guest, d, "%s %u left out: the inventory takes %s", boot->noun, d->boot_order,
             zr_field_limits(boot, limits));
    } else if (d->has_boot_order) {
        emit_number(em, "boot_order", ZR_FIELD_BOOT_ORDER, d);
    }
    const struct zr_rom *r = &d->rom;
    uint32_t file_max = zr_fields[ZR_FIELD_ROM_FILE].max;
    bool file = r->has_file && strlen(r->file) <= file_max;
    if (r->has_file && !file)
        warn(em, guest, d, "rom file left out: the inventory takes paths up to %u bytes",
             file_max);
    if (!r->has_bar && !file && !r->has_enabled)
        return;
    emit_plain(em, "rom");
    emit_mapping_start(em, true);
    if (r->has_bar) {
        emit_plain(em, "bar");
        emit_plain(em, r->bar ? "true" : "false");
    }
    if (file) {
        emit_plain(em, "file");
        emit_string(em, r->file);
    }
    if (r->has_enabled) {
        emit_plain(em, "enabled");
        emit_plain(em, r->enabled ? "true" : "false");
    }
    emit_mapping_end(em);
}

/* What only an interface has: mac, managed (in its place), virtualport,
 * vlan.  `mac_twin`: see emit_device(). */
static void emit_interface_keys(struct emitter *em, const char *guest, const struct zr_device *d,
                                const struct zr_device *mac_twin)
{
    char buf[ZR_PCI_ADDR_STRLEN > ZR_MAC_STRLEN ? ZR_PCI_ADDR_STRLEN : ZR_MAC_STRLEN];
    if (d->has_mac && mac_twin) {
        char twin[ZR_PCI_ADDR_STRLEN];
        warn(em, guest, d,
             "mac %s left out: interface %s of the guest has it too (the inventory gives a "
             "MAC once per guest)",
             zr_mac_format(&d->mac, buf), zr_pci_addr_format(&mac_twin->source, twin));
    } else if (d->has_mac) {
        emit_plain(em, "mac");
        /* Quoted: YAML 1.1 tools read an unquoted MAC as a number. */
        emit_scalar(em, zr_mac_format(&d->mac, buf), YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    }
    emit_plain(em, "managed");
    emit_plain(em, d->managed ? "true" : "false");
    bool vport = emit_virtualport(em, guest, d);
    if (d->vlan_unrepresentable) {
        warn(em, guest, d,
             "vlan left out: the inventory holds one tag, not a trunk, several tags or a "
             "native vlan");
    } else if (d->has_vlan && vport) {
        warn(em, guest, d,
             "vlan %u left out: the inventory cannot hold a vlan beside a virtualport "
             "(libvirt refuses the pair when it starts the guest)",
             d->vlan);
    } else if (d->has_vlan) {
        emit_number(em, "vlan", ZR_FIELD_VLAN, d);
    }
}

/* Keys in the order docs/inventory.md lists them.  `mac_twin`: an earlier
 * interface of the guest written with the same MAC, or NULL. */
static void emit_device(struct emitter *em, const char *guest, const struct zr_device *d,
                        const struct zr_device *mac_twin)
{
    char buf[ZR_PCI_ADDR_STRLEN > ZR_MAC_STRLEN ? ZR_PCI_ADDR_STRLEN : ZR_MAC_STRLEN];

    /* A replacement edits the element in place and keeps these; a detach
     * and a fresh attach (the device removed from the inventory and added
     * again) builds it from the inventory and cannot. */
    if (d->unrepresentable)
        warn(em, guest, d,
             "%s left out: inventory format v1 cannot say it; a replacement keeps it, but it is "
             "lost if the device is detached and attached again",
             d->unrepresentable);

    emit_mapping_start(em, false);
    emit_plain(em, "source");
    emit_plain(em, zr_pci_addr_format(&d->source, buf));
    if (d->kind == ZR_KIND_INTERFACE) {
        emit_interface_keys(em, guest, d, mac_twin);
    } else {
        emit_plain(em, "managed");
        emit_plain(em, d->managed ? "true" : "false");
    }
    emit_zpci(em, guest, d);
    emit_guest_address(em, guest, d);
    emit_boot_rom(em, guest, d);
    emit_mapping_end(em);
}

/* An interface before device d of guest gi, written too, with d's MAC. */
static const struct zr_device *mac_twin(const struct zr_export_guest *g, const struct selection *s,
                                        size_t gi, size_t d)
{
    const struct zr_device *dev = &g->devices->items[d];
    if (dev->kind != ZR_KIND_INTERFACE || !dev->has_mac)
        return NULL;
    for (size_t i = 0; i < d; i++) {
        const struct zr_device *o = &g->devices->items[i];
        if (o->kind == ZR_KIND_INTERFACE && o->has_mac && zr_mac_eq(&o->mac, &dev->mac) &&
            s->drop[s->first[gi] + i] == KEEP)
            return o;
    }
    return NULL;
}

static void emit_device_list(struct emitter *em, const struct zr_export_guest *guests, size_t gi,
                             const struct selection *s, zr_kind kind, const char *key)
{
    const struct zr_export_guest *g = &guests[gi];
    const struct zr_device_list *l = g->devices;
    bool started = false;
    for (size_t d = 0; l && d < l->n; d++) {
        const struct zr_device *dev = &l->items[d];
        if (dev->kind != kind)
            continue;
        enum drop drop = s->drop[s->first[gi] + d];
        switch (drop) {
        case KEEP:
            break;
        case DROP_DOMAIN:
            warn(em, g->name, dev,
                 "left out: the inventory takes source domains up to ffff; prune: false keeps it");
            continue;
        case DROP_TWICE:
            warn(em, g->name, dev,
                 "left out: the guest holds this function more than once; prune: false keeps it");
            continue;
        case DROP_OTHER_GUEST:
            warn(em, g->name, dev,
                 "left out: guest '%s' holds this function too (a source appears once per "
                 "host); prune: false keeps it",
                 guests[s->holder[s->first[gi] + d]].name);
            continue;
        }
        if (!started) {
            emit_plain(em, key);
            emit_sequence_start(em);
            started = true;
        }
        emit_device(em, g->name, dev, mac_twin(g, s, gi, d));
    }
    if (started)
        emit_sequence_end(em);
}

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
    return fwrite(buffer, 1, size, data) == size;
}

int zr_export_write(FILE *f, const char *uri, const struct zr_export_guest *guests, size_t n,
                    struct zr_export_warnings *warnings, struct zr_error *err)
{
    _cleanup_(selection_finish) struct selection s = {0};
    select_devices(guests, n, &s);

    struct emitter em = {.warnings = warnings};
    if (!yaml_emitter_initialize(&em.e))
        abort();
    yaml_emitter_set_output(&em.e, write_handler, f);
    yaml_emitter_set_unicode(&em.e, 1);
    yaml_emitter_set_width(&em.e, -1); /* never fold a long name */

    yaml_event_t ev;
    emit(&em, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
    emit(&em, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    emit_mapping_start(&em, false);
    emit_plain(&em, "version");
    emit_plain(&em, "1");
    if (uri) {
        emit_plain(&em, "uri");
        emit_string(&em, uri);
    }
    emit_plain(&em, "guests");
    emit_mapping_start(&em, false);
    for (size_t g = 0; g < n; g++) {
        emit_string(&em, guests[g].name);
        emit_mapping_start(&em, false);
        if (!s.prune[g]) {
            emit_plain(&em, "prune");
            emit_plain(&em, "false");
        }
        emit_device_list(&em, guests, g, &s, ZR_KIND_HOSTDEV, "hostdevs");
        emit_device_list(&em, guests, g, &s, ZR_KIND_INTERFACE, "interfaces");
        emit_mapping_end(&em);
    }
    emit_mapping_end(&em);
    emit_mapping_end(&em);
    emit(&em, &ev, yaml_document_end_event_initialize(&ev, 1));
    emit(&em, &ev, yaml_stream_end_event_initialize(&ev));

    int r = 0;
    if (em.failed || !yaml_emitter_flush(&em.e)) {
        zr_error_set(err, NULL, 0, 0, "cannot write the inventory: %s",
                     em.e.problem ? em.e.problem : "write error");
        r = -EIO;
    }
    yaml_emitter_delete(&em.e);
    return r;
}
