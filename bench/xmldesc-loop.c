/* The baseline for bench/plan.sh: the least a plan must do, as a bare loop
 * of libvirt calls on one connection (look each guest up, ask whether it
 * runs, fetch its persistent XML, and its live XML when running), timed in
 * the same run as zpci-reconcile.  Not installed. */
#include <libvirt/libvirt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s URI GUEST...\n", argv[0]);
        return 1;
    }
    virConnectPtr c = virConnectOpen(argv[1]);
    if (!c)
        return 1;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t bytes = 0;
    for (int i = 2; i < argc; i++) {
        virDomainPtr d = virDomainLookupByName(c, argv[i]);
        if (!d)
            return 1;
        char *x = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE);
        if (!x)
            return 1;
        bytes += strlen(x);
        free(x);
        if (virDomainIsActive(d) == 1) {
            x = virDomainGetXMLDesc(d, 0);
            if (!x)
                return 1;
            free(x);
        }
        virDomainFree(d);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f\n", (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    fprintf(stderr, "read %zu bytes of XML\n", bytes);
    virConnectClose(c);
    return 0;
}
