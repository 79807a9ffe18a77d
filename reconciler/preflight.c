#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "preflight.h"

static bool list_holds(const struct zr_device_list *l, const struct zr_pci_addr *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (zr_pci_addr_eq(&l->items[i].source, s))
            return true;
    return false;
}

static bool host_has(const struct zr_preflight_input *in, const struct zr_pci_addr *s)
{
    for (size_t i = 0; i < in->n_pci; i++)
        if (zr_pci_addr_eq(&in->pci[i], s))
            return true;
    return false;
}

/* Who else keeps `s` after this run, as words for a message ("guest 'x',
 * which the inventory does not name"), or NULL.  A guest of the inventory
 * gives the function up when it is planned and prunes; `errors` says
 * which guests will not be planned. */
static char *holder(const struct zr_preflight_input *in, size_t self, char *const *errors,
                    const struct zr_pci_addr *s)
{
    for (size_t i = 0; i < in->n_others; i++) {
        const struct zr_other_guest *o = &in->others[i];
        if (!o->gone && !o->error && list_holds(&o->config, s))
            return zr_asprintf("guest '%s', which the inventory does not name", o->name);
    }
    for (size_t g = 0; g < in->wanted->n_guests; g++) {
        const struct zr_guest_state *st = &in->states[g];
        if (g == self || st->error || !list_holds(&st->config, s))
            continue;
        if (!st->wanted->prune)
            return zr_asprintf("guest '%s', whose prune: false keeps it", st->wanted->name);
        if (errors[g])
            return zr_asprintf("guest '%s', which this run leaves alone (it has an error)",
                               st->wanted->name);
    }
    return NULL;
}

/* One pass over every wanted source.  Sets errors of guests that must not
 * be changed; with `warn`, adds the warnings.  Returns true when it
 * refused a guest that was fine before. */
static bool check_pass(struct zr_plan *plan, const struct zr_preflight_input *in, bool applying,
                       bool warn, char **errors)
{
    bool refused = false;
    for (size_t g = 0; g < in->wanted->n_guests; g++) {
        const struct zr_guest_state *st = &in->states[g];
        const struct zr_guest *guest = st->wanted;
        if (st->error)
            continue;
        for (size_t d = 0; d < guest->devices.n; d++) {
            const struct zr_pci_addr *s = &guest->devices.items[d].source;
            char src[ZR_PCI_ADDR_STRLEN];
            zr_pci_addr_format(s, src);

            if (in->have_pci && !host_has(in, s)) {
                if (applying && !errors[g]) {
                    errors[g] = zr_asprintf("host has no PCI function %s (node device "
                                            "pci_%04x_%02x_%02x_%x); nothing changed on this guest",
                                            src, s->domain, s->bus, s->slot, s->function);
                    refused = true;
                } else if (warn && !applying) {
                    zr_plan_add_warning(plan, in->host, guest->name, s,
                                        "host has no PCI function %s", src);
                }
            }

            _cleanup_free_ char *who = holder(in, g, errors, s);
            if (!who)
                continue;
            if (list_holds(&st->config, s)) {
                /* Nothing new is attached here; it is only worth knowing. */
                if (warn)
                    zr_plan_add_warning(plan, in->host, guest->name, s,
                                        "also held by %s: both definitions hold this function",
                                        who);
            } else if (applying) {
                if (!errors[g]) {
                    errors[g] = zr_asprintf("%s is held by %s; libvirt would let both "
                                            "definitions hold it, so nothing changed on this "
                                            "guest",
                                            src, who);
                    refused = true;
                }
            } else if (warn) {
                zr_plan_add_warning(plan, in->host, guest->name, s,
                                    "held by %s; apply will refuse to attach it here", who);
            }
        }
    }
    return refused;
}

char **zr_preflight_check(struct zr_plan *plan, const struct zr_preflight_input *in, bool applying)
{
    char **errors = zr_new0(char *, in->wanted->n_guests);
    /* A refused guest keeps what it holds, which may refuse another one:
     * repeat until nothing changes (each pass refuses a guest or stops). */
    if (applying)
        while (check_pass(plan, in, applying, false, errors))
            ;
    check_pass(plan, in, applying, true, errors);
    return errors;
}

/* A listing the check needs failed: plan warns; apply refuses the host
 * (the first reason wins). */
static void listing_failed(struct zr_plan *plan, const char *host, const char *check, bool applying,
                           struct zr_error *err, char **refuse)
{
    if (!applying)
        zr_plan_add_warning(plan, host, NULL, NULL, "%s skipped: %s", check, err->message);
    else if (!*refuse)
        *refuse =
            zr_asprintf("%s; nothing changed (--no-host-check skips this check)", err->message);
    zr_error_finish(err);
}

char **zr_preflight_host(struct zr_plan *plan, virConnectPtr conn, const char *uri,
                         const struct zr_host *wanted, const struct zr_guest_state *states,
                         unsigned jobs, bool applying)
{
    struct zr_preflight_input in = {.host = wanted->name, .wanted = wanted, .states = states};
    size_t n_wanted = 0;
    for (size_t g = 0; g < wanted->n_guests; g++)
        n_wanted += states[g].error ? 0 : wanted->guests[g].devices.n;
    /* Nothing to attach, nothing to check: spare the listings. */
    if (n_wanted == 0)
        return zr_new0(char *, wanted->n_guests);

    _cleanup_free_ struct zr_pci_addr *pci = NULL;
    struct zr_other_guest *others = NULL;
    _cleanup_free_ char *refuse = NULL; /* apply: why no guest of the host is changed */
    struct zr_error err = {0};

    int r = zr_state_host_pci(conn, &pci, &in.n_pci, &err);
    if (r == -ENOTSUP) {
        zr_plan_add_warning(plan, wanted->name, NULL, NULL,
                            "host check skipped: %s lists no node devices", uri);
    } else if (r < 0) {
        listing_failed(plan, wanted->name, "host check", applying, &err, &refuse);
    } else {
        in.have_pci = true;
        in.pci = pci;
    }

    r = zr_state_read_others(conn, wanted, jobs, &others, &in.n_others, &err);
    if (r < 0) {
        listing_failed(plan, wanted->name, "conflict check", applying, &err, &refuse);
    } else {
        in.have_others = true;
        in.others = others;
        for (size_t i = 0; i < in.n_others; i++)
            if (others[i].error)
                zr_plan_add_warning(plan, wanted->name, NULL, NULL,
                                    "conflict check cannot read guest '%s': %s", others[i].name,
                                    others[i].error);
    }

    char **errors = zr_preflight_check(plan, &in, applying);
    zr_other_guests_free(others, in.n_others);
    if (refuse)
        for (size_t g = 0; g < wanted->n_guests; g++) {
            free(errors[g]);
            errors[g] = zr_strdup(refuse);
        }
    return errors;
}

void zr_preflight_errors_free(char **errors, size_t n)
{
    if (!errors)
        return;
    for (size_t i = 0; i < n; i++)
        free(errors[i]);
    free(errors);
}
