/* How does the host check grow with the functions of a host?  Builds a
 * host of N guests x F interfaces (each an SR-IOV virtual function whose
 * IOMMU group holds one more function, bound to vfio-pci and wanted by
 * nobody), as the host check reads it from node devices, and times the
 * check itself: zr_preflight_check (conflicts, topology, the IOMMU group
 * check asking who else wants each group mate), the plan notes and their
 * annotation on the attaches.  Pure: no libvirt, so it measures the
 * algorithm, not the daemon (qemu:///embed has no node devices, and a
 * real host has not 40,000 functions).  Prints "SECONDS ACTIONS" on stdout.
 * Usage: preflight-scale N [F]   (F: 20).  Built against an older
 * reconciler/ too, by bench/scale.py --baseline. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "preflight.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int function_cmp(const void *a, const void *b)
{
    return zr_pci_addr_cmp(&((const struct zr_function_info *)a)->addr,
                           &((const struct zr_function_info *)b)->addr);
}

/* Function d of guest g, and its group mate (function 1 of the slot). */
static struct zr_pci_addr fn_addr(size_t g, size_t d, unsigned f)
{
    return (struct zr_pci_addr){(uint32_t)(g + 1), (uint8_t)(d / 32), (uint8_t)(d % 32),
                                (uint8_t)f};
}

static void add_function(struct zr_function_info *fi, struct zr_pci_addr a, struct zr_pci_addr mate,
                         bool endpoint, unsigned group)
{
    fi->addr = a;
    fi->read = true;
    fi->fn = (struct zr_pci_function){.addr = a,
                                      .numa_node = -1,
                                      .has_iommu_group = true,
                                      .iommu_group = group,
                                      .is_vf = endpoint};
    fi->fn.driver = strdup("vfio-pci");
    fi->fn.pf = (struct zr_pci_addr){0, 0x80, 0, 0};
    fi->fn.group = calloc(2, sizeof(*fi->fn.group));
    fi->fn.group[0] = endpoint ? a : mate;
    fi->fn.group[1] = endpoint ? mate : a;
    fi->fn.n_group = 2;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    size_t per = argc > 2 ? strtoul(argv[2], NULL, 10) : 20;
    struct zr_host host = {
        .name = "default", .guests = calloc(n, sizeof(struct zr_guest)), .n_guests = n};
    struct zr_guest_state *states = calloc(n, sizeof(*states));
    struct zr_pci_addr *pci = calloc(2 * n * per, sizeof(*pci));
    struct zr_function_info *fns = calloc(2 * n * per, sizeof(*fns));
    size_t k = 0;
    for (size_t g = 0; g < n; g++) {
        host.guests[g].name = zr_asprintf("g%05zu", g);
        host.guests[g].prune = true;
        states[g].wanted = &host.guests[g];
        for (size_t d = 0; d < per; d++, k += 2) {
            struct zr_device *dev = zr_device_list_append(&host.guests[g].devices);
            dev->kind = ZR_KIND_INTERFACE;
            dev->source = fn_addr(g, d, 0);
            dev->managed = true;
            dev->has_mac = true;
            dev->mac = (struct zr_mac){{0x02, 0, (uint8_t)(g >> 8), (uint8_t)g, 0, (uint8_t)d}};
            add_function(&fns[k], fn_addr(g, d, 0), fn_addr(g, d, 1), true, (unsigned)(k / 2));
            add_function(&fns[k + 1], fn_addr(g, d, 1), fn_addr(g, d, 0), false, (unsigned)(k / 2));
            pci[k] = fns[k].addr;
            pci[k + 1] = fns[k + 1].addr;
        }
    }
    qsort(fns, k, sizeof(*fns), function_cmp);
    for (size_t i = 0; i < k; i++)
        pci[i] = fns[i].addr;

    double t0 = now();
    struct zr_plan planned = {0}, plan = {0};
    zr_preflight_plan(&planned, &host, states, NULL);
    struct zr_preflight_input in = {.host = "default",
                                    .wanted = &host,
                                    .states = states,
                                    .have_pci = true,
                                    .pci = pci,
                                    .n_pci = k,
                                    .have_others = true,
                                    .planned = &planned,
                                    .functions = fns,
                                    .n_functions = k,
                                    .have_uses = true,
                                    .guests = calloc(n, sizeof(struct zr_guest_topology))};
    double tp = now();
    struct zr_error *errors = zr_preflight_check(&plan, &in, true);
    double tc = now();
    struct zr_preflight_notes notes = {0};
    zr_preflight_collect_notes(&in, &notes);
    zr_preflight_annotate(&planned, 0, 0, &notes);
    double t1 = now();

    size_t refused = 0, noted = 0;
    for (size_t g = 0; g < n; g++)
        refused += errors[g].message != NULL;
    for (size_t i = 0; i < planned.n_actions; i++)
        noted += planned.actions[i].note != NULL;
    printf("%.3f %zu\n", t1 - t0, planned.n_actions);
    fprintf(stderr,
            "%zu guests x %zu functions: %zu actions, %zu noted, %zu refused; plan %.3f s, "
            "check %.3f s, notes %.3f s\n",
            n, per, planned.n_actions, noted, refused, tp - t0, tc - tp, t1 - tc);
    /* The check must have run for real: every attach noted, none refused. */
    return refused == 0 && noted == planned.n_actions && planned.n_actions == n * per ? 0 : 1;
}
