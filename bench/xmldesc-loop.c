/* The baselines for bench/plan.sh: the least a plan must do, as bare loops
 * of libvirt calls, timed in the same run as zpci-reconcile.  Not installed.
 *
 *   xmldesc-loop URI GUEST...     one connection, one guest after the other:
 *                                 look it up, ask whether it runs, fetch its
 *                                 persistent XML (and live XML when running)
 *   xmldesc-loop -t N URI         the floor: one virConnectListAllDomains,
 *                                 then one persistent XMLDesc per listed
 *                                 guest from N threads sharing the
 *                                 connection, no parsing - what a plan of
 *                                 the whole host cannot do with less
 *
 * Prints the seconds from before the connection is opened to the end. */
#include <libvirt/libvirt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int one_by_one(virConnectPtr c, int n, char **names, size_t *bytes)
{
    for (int i = 0; i < n; i++) {
        virDomainPtr d = virDomainLookupByName(c, names[i]);
        if (!d)
            return -1;
        char *x = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
        if (!x)
            return -1;
        *bytes += strlen(x);
        free(x);
        if (virDomainIsActive(d) == 1) {
            x = virDomainGetXMLDesc(d, 0);
            if (!x)
                return -1;
            free(x);
        }
        virDomainFree(d);
    }
    return 0;
}

struct floor {
    virDomainPtr *doms;
    size_t n;
    atomic_size_t next;
    atomic_size_t bytes;
    atomic_int failed;
};

static void *floor_worker(void *arg)
{
    struct floor *f = arg;
    for (size_t i; (i = atomic_fetch_add(&f->next, 1)) < f->n;) {
        char *x = virDomainGetXMLDesc(f->doms[i], VIR_DOMAIN_XML_INACTIVE);
        if (!x) {
            atomic_store(&f->failed, 1);
            continue;
        }
        atomic_fetch_add(&f->bytes, strlen(x));
        free(x);
    }
    return NULL;
}

static int listed_in_threads(virConnectPtr c, unsigned threads, size_t *bytes)
{
    struct floor f = {0};
    int n = virConnectListAllDomains(c, &f.doms, 0);
    if (n < 0)
        return -1;
    f.n = (size_t)n;
    pthread_t t[64];
    unsigned started = 0;
    for (; started + 1 < threads && started < 64; started++)
        if (pthread_create(&t[started], NULL, floor_worker, &f) != 0)
            break;
    floor_worker(&f);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++)
        virDomainFree(f.doms[i]);
    free(f.doms);
    *bytes = atomic_load(&f.bytes);
    return atomic_load(&f.failed) ? -1 : 0;
}

int main(int argc, char **argv)
{
    unsigned threads = 0;
    int a = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        threads = (unsigned)strtoul(argv[2], NULL, 10);
        a = 3;
    }
    if (argc - a < (threads ? 1 : 2) || (argc > 1 && strcmp(argv[1], "-t") == 0 && !threads)) {
        fprintf(stderr, "usage: %s URI GUEST... | %s -t THREADS URI\n", argv[0], argv[0]);
        return 1;
    }
    double t0 = now();
    virConnectPtr c = virConnectOpen(argv[a]);
    if (!c)
        return 1;
    size_t bytes = 0;
    int r = threads ? listed_in_threads(c, threads, &bytes)
                    : one_by_one(c, argc - a - 1, argv + a + 1, &bytes);
    virConnectClose(c);
    if (r < 0)
        return 1;
    printf("%.3f\n", now() - t0);
    fprintf(stderr, "read %zu bytes of XML\n", bytes);
    return 0;
}
