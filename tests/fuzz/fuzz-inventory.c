/* bytes -> zr_inventory_parse(), the errors printed as main.c prints them.
 *
 * Invariants: the loader returns an inventory exactly when it reports no
 * error; every error has a message; and every device of a valid inventory
 * builds device XML that reads back as the same device key (a valid
 * inventory must never hold a device the builder refuses: that would only
 * fail at plan time, after `validate` said yes). */
#include <string.h>

#include "domain.h"
#include "fuzz.h"
#include "inventory.h"

static void check_device(const struct zr_device *d)
{
    _cleanup_free_ char *xml = zr_domain_device_xml(d);
    _cleanup_free_ char *what = zr_device_describe(d);
    zr_fuzz_assert(xml, "valid inventory device the builder refuses: %s", what);

    struct zr_device back = {0};
    zr_fuzz_read_device(xml, "built XML", &back);
    zr_fuzz_assert(zr_device_same_key(&back, d), "built XML reads back as another device: %s",
                   xml);
    zr_device_finish(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > ZR_FUZZ_MAX_INPUT)
        return 0;

    struct zr_errors errs = {0};
    struct zr_inventory *inv = zr_inventory_parse("fuzz.yaml", (const char *)data, size, &errs);

    struct zr_fuzz_sink sink;
    zr_fuzz_sink_open(&sink);
    zr_errors_print(&errs, sink.f);
    const char *text = zr_fuzz_sink_close(&sink);

    if (inv) {
        zr_fuzz_assert(errs.n == 0 && !errs.truncated, "an inventory and %zu errors: %s",
                       errs.n, text);
        /* Only a hosts: section may list none (docs/inventory.md). */
        zr_fuzz_assert(inv->n_hosts > 0 || inv->has_hosts, "a valid inventory without a host");
        for (size_t h = 0; h < inv->n_hosts; h++)
            for (size_t g = 0; g < inv->hosts[h].n_guests; g++) {
                const struct zr_guest *guest = &inv->hosts[h].guests[g];
                zr_fuzz_assert(guest->name && *guest->name, "a guest without a name");
                for (size_t i = 0; i < guest->devices.n; i++)
                    check_device(&guest->devices.items[i]);
            }
        (void)zr_inventory_count_guests(inv);
        (void)zr_inventory_count_devices(inv);
    } else {
        zr_fuzz_assert(errs.n > 0, "no inventory and no error");
        for (size_t i = 0; i < errs.n; i++)
            zr_fuzz_assert(errs.items[i].message && *errs.items[i].message,
                           "an error without a message");
        zr_fuzz_assert(strstr(text, "error: "), "errors print nothing: %s", text);
    }

    zr_fuzz_sink_free(&sink);
    zr_inventory_free(inv);
    zr_errors_finish(&errs);
    return 0;
}
