/* How does planning with pools grow with the guests of a host?  An in-memory
 * host (no libvirt, as bench/preflight-scale.c) of 8 physical functions x 64
 * virtual functions, one physical_function: pool per PF, and N guests each
 * wanting one interface from pool (g mod 8), nothing attached yet.  Timed:
 * the choice (zr_choose) and the plan of every chosen guest (zr_plan_guest),
 * against a baseline in the same run: the same guests naming sources, planned
 * without a choice.  A third series pins every guest's memory to NUMA node 1
 * (the odd PFs), so each choice also looks for a preferred VF.  Past 512
 * guests the pools run out and the later guests are refused (the exhaustion
 * path).  N doubles from N0 (125) up to 1000 x 4; each figure is the best of
 * 3 runs.  Usage: pool-scale [N0] [DOUBLINGS]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "choose.h"
#include "plan.h"

#define PFS 8
#define VFS 64 /* the host */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static struct zr_pci_addr pf_addr(unsigned p)
{
    return (struct zr_pci_addr){p + 1, 0xff, 0, 0};
}

static struct zr_pci_addr vf_addr(unsigned p, unsigned v)
{
    return (struct zr_pci_addr){p + 1, (uint8_t)(v / 256), (uint8_t)(v % 256 / 8),
                                (uint8_t)(v % 8)};
}

/* The host's functions: each PF and its `vfs` VFs, PF p on NUMA node p % 2. */
static struct zr_choose_function *host_functions(unsigned vfs, size_t *n)
{
    struct zr_choose_function *f = calloc(PFS * (vfs + 1), sizeof(*f));
    *n = 0;
    for (unsigned p = 0; p < PFS; p++) {
        f[(*n)++] = (struct zr_choose_function){.addr = pf_addr(p),
                                                .vendor = 0x8086,
                                                .product = 0x10c9,
                                                .numa_node = (int)(p % 2),
                                                .driver = "igb"};
        for (unsigned v = 0; v < vfs; v++)
            f[(*n)++] = (struct zr_choose_function){.addr = vf_addr(p, v),
                                                    .vendor = 0x8086,
                                                    .product = 0x10ca,
                                                    .is_vf = true,
                                                    .pf = pf_addr(p),
                                                    .numa_node = (int)(p % 2)};
    }
    return f;
}

/* N guests, each with one interface: from pool g % 8, or naming a source. */
static void host_build(struct zr_host *h, size_t n, bool pooled)
{
    *h = (struct zr_host){.name = zr_strdup("default"),
                          .guests = calloc(n, sizeof(struct zr_guest)),
                          .n_guests = n,
                          .pools = calloc(PFS, sizeof(struct zr_pool)),
                          .n_pools = PFS};
    for (unsigned p = 0; p < PFS; p++)
        h->pools[p] = (struct zr_pool){.name = zr_asprintf("pf%u", p),
                                       .has_physical_function = true,
                                       .physical_function = pf_addr(p)};
    for (size_t g = 0; g < n; g++) {
        h->guests[g].name = zr_asprintf("g%05zu", g);
        h->guests[g].prune = true;
        struct zr_device *d = zr_device_list_append(&h->guests[g].devices);
        d->kind = ZR_KIND_INTERFACE;
        d->managed = true;
        d->count = 1;
        if (pooled)
            d->pool = zr_asprintf("pf%zu", g % PFS);
        else
            d->source = (struct zr_pci_addr){(uint32_t)(1 + g / 256), 0, (uint8_t)(g % 32),
                                             (uint8_t)(g / 32 % 8)};
    }
}

struct figures {
    double choose, plan;
    size_t actions, refused;
};

static void plan_host(const struct zr_host *h, const struct zr_device_list *empty,
                      struct figures *f)
{
    struct zr_plan plan = {0};
    double t0 = now();
    for (size_t g = 0; g < h->n_guests; g++)
        zr_plan_guest(&plan, h->name, NULL, &h->guests[g], empty, NULL, NULL);
    f->plan = now() - t0;
    f->actions = plan.n_actions;
    zr_plan_finish(&plan);
}

static void run_pooled(size_t n, const char *nodeset, const struct zr_choose_function *fns,
                       size_t n_fns, struct figures *f)
{
    struct zr_host h;
    host_build(&h, n, true);
    struct zr_device_list empty = {0};
    struct zr_choose_guest *guests = calloc(n, sizeof(*guests));
    for (size_t g = 0; g < n; g++)
        guests[g] =
            (struct zr_choose_guest){.readable = true, .config = &empty, .nodeset = nodeset};
    struct zr_choose_input in = {.host = &h,
                                 .guests = guests,
                                 .have_functions = true,
                                 .functions = fns,
                                 .n_functions = n_fns};
    struct zr_choice choice;
    double t0 = now();
    zr_choose(&in, &choice);
    f->choose = now() - t0;
    f->refused = 0;
    for (size_t g = 0; g < n; g++)
        f->refused += choice.errors[g].message != NULL;
    plan_host(&choice.host, &empty, f);
    zr_choice_finish(&choice);
    zr_host_finish(&h);
    free(guests);
}

static void run_named(size_t n, struct figures *f)
{
    struct zr_host h;
    host_build(&h, n, false);
    struct zr_device_list empty = {0};
    f->choose = 0;
    f->refused = 0;
    plan_host(&h, &empty, f);
    zr_host_finish(&h);
}

/* The best of 5 of each series at n guests: named, 8x64, 8xN/8, pinned. */
static void measure(size_t n, struct figures out[4])
{
    size_t n64, nall;
    struct zr_choose_function *f64 = host_functions(VFS, &n64);
    struct zr_choose_function *fall = host_functions((unsigned)((n + PFS - 1) / PFS), &nall);
    for (int r = 0; r < 5; r++) {
        struct figures f[4];
        run_named(n, &f[0]);
        run_pooled(n, NULL, f64, n64, &f[1]);
        run_pooled(n, NULL, fall, nall, &f[2]);
        run_pooled(n, "1", fall, nall, &f[3]);
        for (int s = 0; s < 4; s++)
            if (r == 0 || f[s].choose + f[s].plan < out[s].choose + out[s].plan)
                out[s] = f[s];
    }
    free(f64);
    free(fall);
}

int main(int argc, char **argv)
{
    size_t n0 = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned doublings = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 6;
    printf("%d PFs, one physical_function pool each; ms (best of 5), us per guest, refused\n", PFS);
    printf("%6s | %-14s | %-27s | %-27s | %-27s\n", "", "named (base)", "pools 8x64", "pools 8xN/8",
           "pools 8xN/8, pinned");
    printf("%6s |", "guests");
    printf(" %6s %7s |", "plan", "us/g");
    for (int s = 1; s < 4; s++)
        printf(" %6s %6s %5s %6s |", "choose", "plan", "us/g", "refs");
    printf("\n");
    for (unsigned i = 0; i < doublings; i++) {
        size_t n = n0 << i;
        struct figures f[4];
        measure(n, f);
        printf("%6zu | %6.2f %7.3f |", n, f[0].plan * 1e3, f[0].plan * 1e6 / (double)n);
        for (int s = 1; s < 4; s++)
            printf(" %6.2f %6.2f %5.2f %6zu |", f[s].choose * 1e3, f[s].plan * 1e3,
                   (f[s].choose + f[s].plan) * 1e6 / (double)n, f[s].refused);
        printf("\n");
    }
    return 0;
}
