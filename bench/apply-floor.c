/* The floor for bench/apply.sh, as issue 27 defines it: a C loop making
 * the calls apply makes, from as many threads as apply's pool, on one
 * connection.  For each guest PREFIX-NNNN (1..N, split among the threads
 * as they come free): look it up, read its persistent XML, detach the
 * hostdev DDDD:FROM_BUS:00.0 and attach DDDD:TO_BUS:00.0 (DDDD: NNNN in
 * hex, bench/lib.sh's function_domain) with the same zPCI ids (both
 * --config), as bench/apply-loop.py does in python.  Not installed.
 *
 *   apply-floor URI PREFIX N FROM_BUS TO_BUS THREADS
 *
 * Exits 1 on the first failed call (the guests are then left as they
 * are: bench/apply.sh puts them back with an apply). */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    virConnectPtr conn;
    const char *prefix, *from, *to;
    unsigned long n;
    atomic_ulong next;
    atomic_int failed;
};

static int hostdev(char *buf, size_t size, unsigned long dom, const char *bus)
{
    return snprintf(buf, size,
                    "<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
                    "<source><address domain='0x%04lx' bus='0x%s' slot='0x00' "
                    "function='0x0'/></source>"
                    "<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address>"
                    "</hostdev>",
                    dom, bus);
}

static int move_one(struct job *j, unsigned long i)
{
    char name[256], from[512], to[512];
    snprintf(name, sizeof(name), "%s-%04lu", j->prefix, i);
    hostdev(from, sizeof(from), i, j->from);
    hostdev(to, sizeof(to), i, j->to);
    virDomainPtr d = virDomainLookupByName(j->conn, name);
    if (!d) {
        fprintf(stderr, "%s: %s\n", name, virGetLastErrorMessage());
        return -1;
    }
    char *xml = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
    int r = xml && virDomainDetachDeviceFlags(d, from, VIR_DOMAIN_AFFECT_CONFIG) == 0 &&
                    virDomainAttachDeviceFlags(d, to, VIR_DOMAIN_AFFECT_CONFIG) == 0
                ? 0
                : -1;
    if (r < 0) /* before virDomainFree() resets the error */
        fprintf(stderr, "%s: %s\n", name, virGetLastErrorMessage());
    free(xml);
    virDomainFree(d);
    return r;
}

static void *worker(void *arg)
{
    struct job *j = arg;
    for (unsigned long i; !atomic_load(&j->failed) && (i = atomic_fetch_add(&j->next, 1)) <= j->n;)
        if (move_one(j, i) < 0)
            atomic_store(&j->failed, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s URI PREFIX N FROM_BUS TO_BUS THREADS\n", argv[0]);
        return 1;
    }
    unsigned threads = (unsigned)strtoul(argv[6], NULL, 10);
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "%s: THREADS must be 1 to 64\n", argv[0]);
        return 1;
    }
    struct job j = {
        .prefix = argv[2], .from = argv[4], .to = argv[5], .n = strtoul(argv[3], NULL, 10)};
    atomic_init(&j.next, 1);
    atomic_init(&j.failed, 0);
    j.conn = virConnectOpen(argv[1]);
    if (!j.conn)
        return 1;
    pthread_t t[64];
    unsigned started = 0;
    for (; started + 1 < threads; started++)
        if (pthread_create(&t[started], NULL, worker, &j) != 0)
            break;
    worker(&j);
    for (unsigned i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    virConnectClose(j.conn);
    return atomic_load(&j.failed) ? 1 : 0;
}
