/* The inventory as the tool reads it: the model's rules (inventory.c)
 * with libvirt's notion of one connection (uri.c).  Lives in the libvirt
 * layer so the model links no URI parser. */
#include "inventory.h"
#include "uri.h"

static const struct zr_inventory_rules libvirt_rules = {
    .uri_normalize = zr_uri_normalize,
};

struct zr_inventory *zr_inventory_parse(const char *file, const char *data, size_t len,
                                        struct zr_errors *errs)
{
    return zr_inventory_parse_with(file, data, len, &libvirt_rules, errs);
}

struct zr_inventory *zr_inventory_load(const char *path, struct zr_errors *errs)
{
    return zr_inventory_load_with(path, &libvirt_rules, errs);
}
