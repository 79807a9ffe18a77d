/* Pools on a live host: see choose-host.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "choose-host.h"
#include "topology.h"
#include "util.h"

/* What the chooser made of the host's facts, owned; the facts themselves
 * (other guests, the PCI listing) are the run's (facts.h). */
struct seen {
    struct zr_pci_addr *held;
    size_t n_held;
    struct zr_pci_function *fns;
    struct zr_choose_function *cfns;
    size_t n_fns;
    bool have_functions;
    char *no_functions;
    struct zr_guest_topology *topo; /* per guest */
    size_t n_topo;
};

static void seen_finish(struct seen *f)
{
    free(f->held);
    for (size_t i = 0; i < f->n_fns; i++)
        zr_pci_function_finish(&f->fns[i]);
    free(f->fns);
    free(f->cfns);
    free(f->no_functions);
    for (size_t i = 0; i < f->n_topo; i++)
        zr_guest_topology_finish(&f->topo[i]);
    free(f->topo);
}

/* What the guests the inventory does not name hold.  A host that cannot
 * list them is refused by the conflict check, which reports the same
 * failed read. */
static void read_held(struct zr_host_facts *facts, struct seen *f)
{
    const struct zr_other_guest *others;
    size_t n;
    const struct zr_error *err;
    if (zr_host_facts_others(facts, &others, &n, &err) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        const struct zr_other_guest *o = &others[i];
        for (size_t d = 0; !o->gone && !o->error && d < o->devices.n; d++)
            *ZR_APPEND(f->held, f->n_held) = o->devices.items[d].source;
    }
}

/* Whether function `a` is one the host's pools need read: every function
 * for a selector pool, else the members (for their NUMA nodes). */
static bool wanted_function(const struct zr_host *host, bool selector, const struct zr_pci_addr *a)
{
    if (selector)
        return true;
    for (size_t p = 0; p < host->n_pools; p++)
        for (size_t m = 0; m < host->pools[p].n_members; m++)
            if (zr_pci_addr_eq(&host->pools[p].members[m], a))
                return true;
    return false;
}

static void parse_functions(struct seen *f, const struct zr_host_pci *pci, const size_t *idx,
                            size_t n, const char **xml)
{
    f->fns = zr_new0(struct zr_pci_function, n);
    f->cfns = zr_new0(struct zr_choose_function, n);
    for (size_t i = 0; i < n; i++) {
        struct zr_error err = {0};
        const struct zr_pci_addr *a = &pci->addrs[idx[i]];
        _cleanup_free_ char *what =
            zr_asprintf("node device of " ZR_PCI_ADDR_FMT, ZR_PCI_ADDR_ARGS(*a));
        if (xml[i] &&
            zr_pci_function_parse(xml[i], strlen(xml[i]), what, &f->fns[f->n_fns], &err) == 0) {
            const struct zr_pci_function *fn = &f->fns[f->n_fns];
            f->cfns[f->n_fns++] = (struct zr_choose_function){
                fn->addr, fn->vendor, fn->product, fn->is_vf, fn->pf, fn->numa_node, fn->driver};
        }
        zr_error_finish(&err);
    }
}

/* The host's PCI functions the pools need, unless the host check is off
 * or the connection has no node devices (then `no_functions` says so). */
static void read_functions(struct zr_host_facts *facts, const char *uri, const struct zr_host *host,
                           const struct zr_choose_host_options *o, bool selector, struct seen *f)
{
    if (!o->host_check) {
        f->no_functions = zr_strdup("--no-host-check skips reading them");
        return;
    }
    const struct zr_host_pci *pci;
    const struct zr_error *err;
    int r = zr_host_facts_pci(facts, &pci, &err);
    if (r < 0) {
        f->no_functions = r == -ENOTSUP ? zr_asprintf("%s lists no node devices", uri)
                                        : zr_asprintf("listing them failed: %s", err->message);
        return;
    }
    _cleanup_free_ size_t *idx = zr_new0(size_t, pci->n);
    size_t n = 0;
    for (size_t i = 0; i < pci->n; i++)
        if (wanted_function(host, selector, &pci->addrs[i]))
            idx[n++] = i;
    _cleanup_free_ const char **xml = zr_new0(const char *, n);
    zr_host_facts_nodedev_xml(facts, idx, n, xml, NULL); /* unreadable: not offered */
    parse_functions(f, pci, idx, n, xml);
    f->have_functions = true;
}

/* Where each guest that takes from a pool pins its memory. */
static void read_nodesets(const struct zr_host *host, const struct zr_guest_state *states,
                          const struct zr_pool_memory *memory, struct seen *f,
                          struct zr_choose_guest *guests)
{
    f->topo = zr_new0(struct zr_guest_topology, host->n_guests);
    f->n_topo = host->n_guests;
    for (size_t g = 0; g < host->n_guests; g++) {
        const struct zr_guest_state *st = &states[g];
        guests[g] = (struct zr_choose_guest){
            .readable = !st->error, .config = &st->config, .live = st->active ? &st->live : NULL};
        const struct zr_pool_memory_guest *had = zr_pool_memory_find(memory, host->guests[g].name);
        if (had) {
            guests[g].had = had->addrs;
            guests[g].n_had = had->n;
        }
        const char *x = st->active && st->live_xml ? st->live_xml : st->config_xml;
        if (st->error || !x || !zr_guest_takes_from_pool(&host->guests[g]))
            continue;
        struct zr_error err = {0};
        if (zr_guest_topology_parse(x, strlen(x), host->guests[g].name, &f->topo[g], &err) == 0)
            guests[g].nodeset = f->topo[g].nodeset;
        zr_error_finish(&err); /* domain.c read it already; no preference then */
    }
}

void zr_choose_host(struct zr_host_facts *facts, const char *uri, const struct zr_host *host,
                    const struct zr_guest_state *states, const struct zr_choose_host_options *o,
                    struct zr_choice *out)
{
    struct seen f = {0};
    bool selector = false;
    zr_host_uses_pools(host, &selector);
    _cleanup_free_ struct zr_choose_guest *guests = zr_new0(struct zr_choose_guest, host->n_guests);
    read_held(facts, &f);
    read_functions(facts, uri, host, o, selector, &f);
    read_nodesets(host, states, o->memory, &f, guests);
    struct zr_choose_input in = {
        .host = host,
        .guests = guests,
        .held = f.held,
        .n_held = f.n_held,
        .have_functions = f.have_functions,
        .functions = f.cfns,
        .n_functions = f.n_fns,
        .no_functions = f.no_functions,
    };
    zr_choose(&in, out);
    if (o->memory)
        zr_pool_memory_record(o->memory, out);
    seen_finish(&f);
}
