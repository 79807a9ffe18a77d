/* Test-only helper, never installed: lets tests/integration/virsh-define.sh
 * hand the XML builder's output to real libvirt and read libvirt's answer
 * back with the domain reader.
 *
 *   zr-domain-gen domain       an s390x guest holding every test case
 *   zr-domain-gen check FILE   FILE (virsh dumpxml) holds every case
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "domain-cases.h"
#include "domain.h"
#include "util.h"

static int print_domain(void)
{
    char *devices = zr_strdup("");
    for (size_t i = 0; i < zr_test_n_cases; i++) {
        _cleanup_free_ char *xml = zr_domain_device_xml(&zr_test_cases[i].device);
        if (!xml) {
            fprintf(stderr, "%s: no XML built\n", zr_test_cases[i].name);
            free(devices);
            return 1;
        }
        char *more = zr_asprintf("%s%s\n", devices, xml);
        free(devices);
        devices = more;
    }
    _cleanup_free_ char *doc = zr_test_wrap_domain(devices);
    free(devices);
    fputs(doc, stdout);
    return 0;
}

static int check(const char *path)
{
    size_t len;
    _cleanup_free_ char *xml = zr_test_read_file(path, &len);
    if (!xml) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return 1;
    }
    struct zr_device_list got = {0};
    struct zr_error err = {0};
    if (zr_domain_parse_devices(xml, len, path, &got, &err) < 0) {
        zr_error_print(&err, stderr);
        zr_error_finish(&err);
        return 1;
    }

    unsigned passed = 0, failed = 0;
    for (size_t i = 0; i < zr_test_n_cases; i++) {
        const struct zr_device *want = &zr_test_cases[i].device;
        const struct zr_device *found = NULL;
        for (size_t j = 0; j < got.n; j++)
            if (zr_device_same_key(want, &got.items[j]))
                found = &got.items[j];
        _cleanup_free_ char *diff =
            found ? zr_test_device_diff(want, found, false) : zr_strdup("not in libvirt's XML");
        if (diff) {
            printf("FAIL %s: %s\n", zr_test_cases[i].name, diff);
            failed++;
        } else {
            printf("ok %s\n", zr_test_cases[i].name);
            passed++;
        }
    }
    if (got.n != zr_test_n_cases) {
        printf("FAIL libvirt's XML has %zu in-scope devices, expected %zu\n", got.n,
               zr_test_n_cases);
        failed++;
    }
    zr_device_list_finish(&got);
    printf("%u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "domain") == 0)
        return print_domain();
    if (argc == 3 && strcmp(argv[1], "check") == 0)
        return check(argv[2]);
    fprintf(stderr, "usage: %s domain | check FILE\n", argv[0]);
    return 2;
}
