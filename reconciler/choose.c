/* Choosing pool members: see choose.h and docs/design.md "Pools". */
#include <stdlib.h>
#include <string.h>

#include "choose.h"
#include "util.h"

/* Every function some pool of the host offers, sorted and unique: a
 * function in two pools is one function, taken once. */
struct universe {
    struct zr_pci_addr *addrs;
    int *numa; /* per function, -1: not known */
    size_t n;
    bool *taken; /* held, named, or chosen this run */
    bool *named; /* an entry names it as its source */
};

/* A pool's candidates on one NUMA node, as places in its cand, ascending:
 * a pinned guest's preferred candidate without a scan of the whole pool. */
struct node_walk {
    int node;
    size_t *at;
    size_t n;
    size_t cursor; /* no free candidate of the node before it */
};

/* One pool as the chooser walks it: its candidates (indices into the
 * universe) in the order it offers them, and whether it can be served. */
struct walk {
    const struct zr_pool *pool;
    struct node_walk *nodes;
    size_t n_nodes;
    size_t *cand;
    size_t n_cand;
    size_t *pos;   /* per universe function: its place in cand, NOT_MEMBER if none */
    size_t n_free; /* candidates not taken */
    size_t cursor; /* no free candidate before it */
    bool unusable; /* a selector pool without node devices */
};

#define NOT_MEMBER ((size_t)-1)

struct chooser {
    const struct zr_choose_input *in;
    struct universe u;
    struct walk *walks; /* one per pool of the host */
    struct zr_choice *out;
};

static int addr_cmp(const void *a, const void *b)
{
    return zr_pci_addr_cmp(a, b);
}

/* Index of `a` in the universe, or -1. */
static long universe_find(const struct universe *u, const struct zr_pci_addr *a)
{
    const struct zr_pci_addr *hit = u->n ? bsearch(a, u->addrs, u->n, sizeof(*a), addr_cmp) : NULL;
    return hit ? (long)(hit - u->addrs) : -1;
}

static bool selects(const struct zr_pool *p, const struct zr_choose_function *f)
{
    return (!p->has_vendor || f->vendor == p->vendor) &&
           (!p->has_product || f->product == p->product) &&
           (!p->has_physical_function ||
            (f->is_vf && zr_pci_addr_eq(&f->pf, &p->physical_function))) &&
           (!p->has_numa_node || (f->numa_node >= 0 && (uint32_t)f->numa_node == p->numa_node)) &&
           (!p->driver || zr_streq(f->driver, p->driver));
}

static int function_cmp(const void *a, const void *b)
{
    const struct zr_choose_function *x = *(const struct zr_choose_function *const *)a;
    const struct zr_choose_function *y = *(const struct zr_choose_function *const *)b;
    return zr_pci_addr_cmp(&x->addr, &y->addr);
}

/* The host's functions by address, for selector pools and NUMA nodes. */
static const struct zr_choose_function **sorted_functions(const struct zr_choose_input *in)
{
    const struct zr_choose_function **v =
        zr_new0(const struct zr_choose_function *, in->n_functions);
    for (size_t i = 0; i < in->n_functions; i++)
        v[i] = &in->functions[i];
    if (in->n_functions)
        qsort(v, in->n_functions, sizeof(*v), function_cmp);
    return v;
}

static const struct zr_choose_function *function_at(const struct zr_choose_function *const *v,
                                                    size_t n, const struct zr_pci_addr *a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = zr_pci_addr_cmp(&v[mid]->addr, a);
        if (c == 0)
            return v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Each pool's offer, as addresses, in its order (members as listed,
 * selections by address); `offer[p]` has `n_offer[p]` entries. */
static void collect_offers(struct chooser *c, const struct zr_choose_function *const *fns,
                           struct zr_pci_addr **offer, size_t *n_offer)
{
    const struct zr_choose_input *in = c->in;
    for (size_t p = 0; p < in->host->n_pools; p++) {
        const struct zr_pool *pool = &in->host->pools[p];
        c->walks[p].pool = pool;
        if (pool->has_members) {
            offer[p] = zr_new0(struct zr_pci_addr, pool->n_members);
            memcpy(offer[p], pool->members, pool->n_members * sizeof(*pool->members));
            n_offer[p] = pool->n_members;
        } else if (!in->have_functions) {
            c->walks[p].unusable = true;
        } else {
            offer[p] = zr_new0(struct zr_pci_addr, in->n_functions);
            for (size_t i = 0; i < in->n_functions; i++)
                if (selects(pool, fns[i]))
                    offer[p][n_offer[p]++] = fns[i]->addr;
        }
    }
}

/* Pools list their candidates by NUMA node (few nodes: a linear search). */
static void build_node_walks(const struct universe *u, struct walk *w)
{
    for (size_t i = 0; i < w->n_cand; i++) {
        int node = u->numa[w->cand[i]];
        struct node_walk *nw = NULL;
        for (size_t j = 0; j < w->n_nodes && !nw; j++)
            if (w->nodes[j].node == node)
                nw = &w->nodes[j];
        if (node < 0)
            continue;
        if (!nw) {
            nw = ZR_APPEND(w->nodes, w->n_nodes);
            nw->node = node;
        }
        *ZR_APPEND(nw->at, nw->n) = i;
    }
}

/* The universe of every offer, and each pool's candidates in it. */
static void build_universe(struct chooser *c, const struct zr_choose_function *const *fns,
                           struct zr_pci_addr **offer, const size_t *n_offer)
{
    struct universe *u = &c->u;
    size_t total = 0, n_pools = c->in->host->n_pools;
    for (size_t p = 0; p < n_pools; p++)
        total += n_offer[p];
    u->addrs = zr_new0(struct zr_pci_addr, total);
    for (size_t p = 0; p < n_pools; p++)
        for (size_t i = 0; i < n_offer[p]; i++)
            u->addrs[u->n++] = offer[p][i];
    if (u->n)
        qsort(u->addrs, u->n, sizeof(*u->addrs), addr_cmp);
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++)
        if (k == 0 || !zr_pci_addr_eq(&u->addrs[k - 1], &u->addrs[i]))
            u->addrs[k++] = u->addrs[i];
    u->n = k;
    u->numa = zr_new0(int, u->n);
    u->taken = zr_new0(bool, u->n);
    u->named = zr_new0(bool, u->n);
    for (size_t i = 0; i < u->n; i++) {
        const struct zr_choose_function *f = function_at(fns, c->in->n_functions, &u->addrs[i]);
        u->numa[i] = f ? f->numa_node : -1;
    }
    for (size_t p = 0; p < n_pools; p++) {
        struct walk *w = &c->walks[p];
        w->cand = zr_new0(size_t, n_offer[p]);
        w->pos = zr_new0(size_t, u->n);
        for (size_t i = 0; i < u->n; i++)
            w->pos[i] = NOT_MEMBER;
        for (size_t i = 0; i < n_offer[p]; i++) {
            w->cand[w->n_cand] = (size_t)universe_find(u, &offer[p][i]);
            w->pos[w->cand[w->n_cand]] = w->n_cand;
            w->n_cand++;
        }
        w->n_free = w->n_cand;
        build_node_walks(u, w);
    }
}

static size_t at_lower_bound(const size_t *v, size_t n, size_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Candidate `at` of w, on `node`, is free again: that node's cursor goes
 * back to it. */
static void node_given_back(struct walk *w, int node, size_t at)
{
    for (size_t j = 0; j < w->n_nodes; j++) {
        struct node_walk *nw = &w->nodes[j];
        size_t i = nw->node == node ? at_lower_bound(nw->at, nw->n, at) : nw->cursor;
        if (i < nw->cursor)
            nw->cursor = i;
    }
}

/* Takes universe function k, or gives it back: every pool offering it
 * counts it, and a pool's cursor goes back to a function given back. */
static void set_taken(struct chooser *c, size_t k, bool taken)
{
    if (c->u.taken[k] == taken)
        return;
    c->u.taken[k] = taken;
    for (size_t p = 0; p < c->in->host->n_pools; p++) {
        struct walk *w = &c->walks[p];
        if (w->pos[k] == NOT_MEMBER)
            continue;
        if (taken) {
            w->n_free--;
        } else {
            w->n_free++;
            if (w->pos[k] < w->cursor)
                w->cursor = w->pos[k];
            node_given_back(w, c->u.numa[k], w->pos[k]);
        }
    }
}

static void take(struct chooser *c, const struct zr_pci_addr *a)
{
    long i = universe_find(&c->u, a);
    if (i >= 0)
        set_taken(c, (size_t)i, true);
}

static void take_list(struct chooser *c, const struct zr_device_list *l)
{
    for (size_t d = 0; l && d < l->n; d++)
        take(c, &l->items[d].source);
}

/* Rule 1: not free is what any guest holds, in either definition, and
 * what an entry names. */
static void mark_taken(struct chooser *c)
{
    const struct zr_choose_input *in = c->in;
    for (size_t i = 0; i < in->n_held; i++)
        take(c, &in->held[i]);
    for (size_t g = 0; g < in->host->n_guests; g++) {
        const struct zr_choose_guest *cg = &in->guests[g];
        if (cg->readable) {
            take_list(c, cg->config);
            take_list(c, cg->live);
        }
        const struct zr_device_list *l = &in->host->guests[g].devices;
        for (size_t d = 0; d < l->n; d++) {
            long k = l->items[d].pool ? -1 : universe_find(&c->u, &l->items[d].source);
            if (k >= 0) {
                set_taken(c, (size_t)k, true);
                c->u.named[k] = true;
            }
        }
    }
}

static struct walk *walk_of(struct chooser *c, const char *pool)
{
    for (size_t p = 0; p < c->in->host->n_pools; p++)
        if (strcmp(c->in->host->pools[p].name, pool) == 0)
            return &c->walks[p];
    return NULL;
}

/* ---- one guest ------------------------------------------------------------ */

/* What one guest gets: per entry, the functions (universe indices), kept
 * ones first. */
struct guest_pick {
    size_t **got; /* per device entry */
    size_t *n_got;
    size_t n_entries;
};

static void guest_pick_finish(struct guest_pick *gp)
{
    for (size_t e = 0; e < gp->n_entries; e++)
        free(gp->got[e]);
    free(gp->got);
    free(gp->n_got);
}

static bool picked(const struct guest_pick *gp, size_t k)
{
    for (size_t e = 0; e < gp->n_entries; e++)
        for (size_t i = 0; i < gp->n_got[e]; i++)
            if (gp->got[e][i] == k)
                return true;
    return false;
}

static void consider_held(struct chooser *c, const struct walk *w, zr_kind kind,
                          const struct zr_device_list *l, size_t **v, size_t *n)
{
    for (size_t d = 0; l && d < l->n; d++) {
        if (l->items[d].kind != kind)
            continue;
        long k = universe_find(&c->u, &l->items[d].source);
        if (k >= 0 && w->pos[k] != NOT_MEMBER && !c->u.named[k])
            *ZR_APPEND(*v, *n) = (size_t)k;
    }
}

static int index_cmp(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Rule 2, for entry e of guest g: the pool's functions it holds as that
 * kind, lowest address first, up to the count, none twice; then what it had
 * when last chosen (zr_pool_memory) while that is free. */
static void keep_held(struct chooser *c, size_t g, size_t e, struct guest_pick *gp)
{
    const struct zr_device *entry = &c->in->host->guests[g].devices.items[e];
    const struct zr_choose_guest *cg = &c->in->guests[g];
    const struct walk *w = walk_of(c, entry->pool);
    size_t *held = NULL, n = 0;
    consider_held(c, w, entry->kind, cg->config, &held, &n);
    consider_held(c, w, entry->kind, cg->live, &held, &n);
    if (n) /* universe indices follow addresses */
        qsort(held, n, sizeof(*held), index_cmp);
    gp->got[e] = zr_new0(size_t, entry->count);
    for (size_t i = 0; i < n && gp->n_got[e] < entry->count; i++)
        if ((i == 0 || held[i] != held[i - 1]) && !picked(gp, held[i]))
            gp->got[e][gp->n_got[e]++] = held[i];
    free(held);
    for (size_t i = 0; i < cg->n_had && gp->n_got[e] < entry->count; i++) {
        long k = universe_find(&c->u, &cg->had[i]);
        if (k >= 0 && w->pos[k] != NOT_MEMBER && !c->u.taken[k]) {
            set_taken(c, (size_t)k, true);
            gp->got[e][gp->n_got[e]++] = (size_t)k;
        }
    }
}

static bool prefers(const struct zr_choose_guest *cg, int numa)
{
    return cg->nodeset && numa >= 0 && zr_nodeset_has(cg->nodeset, (unsigned)numa) == 1;
}

/* Rule 3: the pool's lowest free candidate, one on the guest's NUMA nodes
 * first; -1 when none is free.  Candidates before the cursor are taken. */
static long lowest_free(struct chooser *c, struct walk *w, const struct zr_choose_guest *cg)
{
    while (w->cursor < w->n_cand && c->u.taken[w->cand[w->cursor]])
        w->cursor++;
    if (w->cursor == w->n_cand)
        return -1;
    size_t best = w->n_cand;
    for (size_t j = 0; cg->nodeset && j < w->n_nodes; j++) {
        struct node_walk *nw = &w->nodes[j];
        if (!prefers(cg, nw->node))
            continue;
        while (nw->cursor < nw->n && c->u.taken[w->cand[nw->at[nw->cursor]]])
            nw->cursor++;
        if (nw->cursor < nw->n && nw->at[nw->cursor] < best)
            best = nw->at[nw->cursor];
    }
    return (long)w->cand[best < w->n_cand ? best : w->cursor];
}

/* Gives back what guest g took in this pass (kept functions stay). */
static void undo_picks(struct chooser *c, struct guest_pick *gp, const size_t *n_kept)
{
    for (size_t e = 0; e < gp->n_entries; e++) {
        for (size_t i = n_kept[e]; i < gp->n_got[e]; i++)
            set_taken(c, gp->got[e][i], false);
        gp->n_got[e] = n_kept[e];
    }
}

static void refuse_exhausted(struct chooser *c, size_t g, const struct walk *w,
                             const size_t *n_kept)
{
    const struct zr_guest *guest = &c->in->host->guests[g];
    size_t wants = 0;
    for (size_t e = 0; e < guest->devices.n; e++) {
        const struct zr_device *d = &guest->devices.items[e];
        if (d->pool && strcmp(d->pool, w->pool->name) == 0)
            wants += d->count - n_kept[e];
    }
    size_t n_free = w->n_free;
    zr_error_setc(&c->out->errors[g], ZR_ERR_POOL,
                  "pool '%s' has %zu free function%s, guest '%s' wants %zu more; nothing "
                  "changed on this guest",
                  w->pool->name, n_free, n_free == 1 ? "" : "s", guest->name, wants);
}

/* Serves guest g's entries past what they keep; on exhaustion gives the
 * picks back and refuses the guest. */
static void serve_guest(struct chooser *c, size_t g, struct guest_pick *gp, const size_t *n_kept)
{
    const struct zr_guest *guest = &c->in->host->guests[g];
    const struct zr_choose_guest *cg = &c->in->guests[g];
    for (size_t e = 0; e < guest->devices.n; e++) {
        const struct zr_device *d = &guest->devices.items[e];
        struct walk *w = d->pool ? walk_of(c, d->pool) : NULL;
        while (w && gp->n_got[e] < d->count) {
            long k = lowest_free(c, w, cg);
            if (k < 0) {
                undo_picks(c, gp, n_kept);
                refuse_exhausted(c, g, w, n_kept);
                return;
            }
            set_taken(c, (size_t)k, true);
            gp->got[e][gp->n_got[e]++] = (size_t)k;
        }
    }
}

/* A selector pool on a host whose node devices were not read. */
static bool refuse_unusable(struct chooser *c, size_t g)
{
    const struct zr_guest *guest = &c->in->host->guests[g];
    for (size_t e = 0; e < guest->devices.n; e++) {
        const struct zr_device *d = &guest->devices.items[e];
        const struct walk *w = d->pool ? walk_of(c, d->pool) : NULL;
        if (w && w->unusable) {
            zr_error_setc(&c->out->errors[g], ZR_ERR_POOL,
                          "pool '%s' selects functions by the host's node devices, and %s "
                          "(a 'members:' pool needs none); nothing changed on this guest",
                          d->pool, c->in->no_functions ? c->in->no_functions : "none were read");
            return true;
        }
    }
    return false;
}

/* ---- the resolved host ------------------------------------------------------ */

static void resolve_guest(const struct chooser *c, size_t g, const struct guest_pick *gp,
                          struct zr_guest *out)
{
    const struct zr_guest *in = &c->in->host->guests[g];
    out->name = zr_strdup(in->name);
    out->prune = in->prune;
    out->mark = in->mark;
    for (size_t e = 0; e < in->devices.n; e++) {
        const struct zr_device *d = &in->devices.items[e];
        if (!d->pool) {
            zr_device_copy(zr_device_list_append(&out->devices), d);
            continue;
        }
        for (size_t i = 0; i < gp->n_got[e]; i++) {
            struct zr_device *x = zr_device_list_append(&out->devices);
            zr_device_copy(x, d);
            x->source = c->u.addrs[gp->got[e][i]];
            x->count = 1;
            x->has_count = false;
        }
    }
}

static void chooser_finish(struct chooser *c)
{
    for (size_t p = 0; p < c->in->host->n_pools; p++) {
        free(c->walks[p].cand);
        free(c->walks[p].pos);
        for (size_t j = 0; j < c->walks[p].n_nodes; j++)
            free(c->walks[p].nodes[j].at);
        free(c->walks[p].nodes);
    }
    free(c->walks);
    free(c->u.addrs);
    free(c->u.numa);
    free(c->u.taken);
    free(c->u.named);
}

static void chooser_init(struct chooser *c)
{
    size_t n_pools = c->in->host->n_pools;
    _cleanup_free_ const struct zr_choose_function **fns = sorted_functions(c->in);
    _cleanup_free_ struct zr_pci_addr **offer = zr_new0(struct zr_pci_addr *, n_pools);
    _cleanup_free_ size_t *n_offer = zr_new0(size_t, n_pools);
    c->walks = zr_new0(struct walk, n_pools);
    collect_offers(c, fns, offer, n_offer);
    build_universe(c, fns, offer, n_offer);
    for (size_t p = 0; p < n_pools; p++)
        free(offer[p]);
    mark_taken(c);
}

static void choice_host_init(struct zr_host *out, const struct zr_host *in)
{
    out->name = zr_strdup(in->name);
    out->uri = zr_strdup(in->uri);
    out->mark = in->mark;
    out->guests = zr_new0(struct zr_guest, in->n_guests);
    out->n_guests = in->n_guests;
    out->pools = zr_new0(struct zr_pool, in->n_pools);
    for (; out->n_pools < in->n_pools; out->n_pools++)
        zr_pool_copy(&out->pools[out->n_pools], &in->pools[out->n_pools]);
}

void zr_choose(const struct zr_choose_input *in, struct zr_choice *out)
{
    const struct zr_host *h = in->host;
    *out = (struct zr_choice){.errors = zr_new0(struct zr_error, h->n_guests)};
    choice_host_init(&out->host, h);
    struct chooser c = {.in = in, .out = out};
    chooser_init(&c);
    struct guest_pick *picks = zr_new0(struct guest_pick, h->n_guests);
    size_t **kept = zr_new0(size_t *, h->n_guests);
    for (size_t g = 0; g < h->n_guests; g++) { /* rule 2 for every guest first */
        size_t n = h->guests[g].devices.n;
        picks[g] = (struct guest_pick){zr_new0(size_t *, n), zr_new0(size_t, n), n};
        for (size_t e = 0; e < n; e++)
            if (h->guests[g].devices.items[e].pool && in->guests[g].readable) {
                keep_held(&c, g, e, &picks[g]);
                out->n_pool_entries++;
            }
        kept[g] = zr_new0(size_t, n);
        memcpy(kept[g], picks[g].n_got, n * sizeof(size_t));
    }
    for (size_t g = 0; g < h->n_guests; g++) {
        if (in->guests[g].readable && !refuse_unusable(&c, g))
            serve_guest(&c, g, &picks[g], kept[g]);
        resolve_guest(&c, g, &picks[g], &out->host.guests[g]);
        guest_pick_finish(&picks[g]);
        free(kept[g]);
    }
    free(picks);
    free(kept);
    chooser_finish(&c);
}

void zr_choice_finish(struct zr_choice *c)
{
    for (size_t g = 0; g < c->host.n_guests; g++)
        zr_error_finish(&c->errors[g]);
    free(c->errors);
    zr_host_finish(&c->host);
    *c = (struct zr_choice){0};
}

bool zr_choice_refuses(const struct zr_choice *c)
{
    for (size_t g = 0; c->errors && g < c->host.n_guests; g++)
        if (c->errors[g].message)
            return true;
    return false;
}

bool zr_guest_takes_from_pool(const struct zr_guest *g)
{
    for (size_t d = 0; d < g->devices.n; d++)
        if (g->devices.items[d].pool)
            return true;
    return false;
}

bool zr_host_uses_pools(const struct zr_host *host, bool *needs_node_devices)
{
    bool uses = false;
    *needs_node_devices = false;
    for (size_t g = 0; g < host->n_guests; g++)
        for (size_t d = 0; d < host->guests[g].devices.n; d++) {
            const struct zr_pool *p =
                zr_host_find_pool(host, host->guests[g].devices.items[d].pool);
            if (!p)
                continue;
            uses = true;
            *needs_node_devices |= zr_pool_needs_node_devices(p);
        }
    return uses;
}

/* ---- memory between runs ------------------------------------------------------ */

const struct zr_pool_memory_guest *zr_pool_memory_find(const struct zr_pool_memory *m,
                                                       const char *guest)
{
    for (size_t i = 0; m && i < m->n; i++)
        if (strcmp(m->items[i].guest, guest) == 0)
            return &m->items[i];
    return NULL;
}

static void remember(struct zr_pool_memory *m, const struct zr_guest *g)
{
    struct zr_pool_memory_guest *r = (struct zr_pool_memory_guest *)zr_pool_memory_find(m, g->name);
    if (!r) {
        r = ZR_APPEND(m->items, m->n);
        r->guest = zr_strdup(g->name);
    }
    free(r->addrs);
    r->addrs = zr_new0(struct zr_pci_addr, g->devices.n);
    r->n = 0;
    for (size_t d = 0; d < g->devices.n; d++)
        if (g->devices.items[d].pool)
            r->addrs[r->n++] = g->devices.items[d].source;
}

void zr_pool_memory_record(struct zr_pool_memory *m, const struct zr_choice *c)
{
    for (size_t g = 0; g < c->host.n_guests; g++)
        if (!c->errors[g].message && zr_guest_takes_from_pool(&c->host.guests[g]))
            remember(m, &c->host.guests[g]);
}

void zr_pool_memory_finish(struct zr_pool_memory *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i].guest);
        free(m->items[i].addrs);
    }
    free(m->items);
    *m = (struct zr_pool_memory){0};
}
