#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "domain.h"
#include "fuzz.h"
#include "util.h"

void zr_fuzz_sink_open(struct zr_fuzz_sink *s)
{
    *s = (struct zr_fuzz_sink){0};
    s->f = open_memstream(&s->buf, &s->len);
    if (!s->f)
        abort();
}

const char *zr_fuzz_sink_close(struct zr_fuzz_sink *s)
{
    if (s->f && fclose(s->f) != 0)
        abort();
    s->f = NULL;
    return s->buf;
}

void zr_fuzz_sink_free(struct zr_fuzz_sink *s)
{
    zr_fuzz_sink_close(s);
    free(s->buf);
    *s = (struct zr_fuzz_sink){0};
}

static bool vport_eq(const struct zr_virtualport *a, const struct zr_virtualport *b)
{
    if (a->type != b->type || !zr_streq(a->profileid, b->profileid))
        return false;
    if (a->has_managerid != b->has_managerid || (a->has_managerid && a->managerid != b->managerid))
        return false;
    if (a->has_typeid != b->has_typeid || (a->has_typeid && a->typeid != b->typeid))
        return false;
    if (a->has_typeidversion != b->has_typeidversion ||
        (a->has_typeidversion && a->typeidversion != b->typeidversion))
        return false;
    if (a->has_instanceid != b->has_instanceid ||
        (a->has_instanceid && !zr_uuid_eq(&a->instanceid, &b->instanceid)))
        return false;
    return true;
}

const char *zr_fuzz_device_diff(const struct zr_device *a, const struct zr_device *b,
                                bool with_xml_only)
{
    if (a->kind != b->kind)
        return "kind";
    if (!zr_pci_addr_eq(&a->source, &b->source))
        return "source";
    if (a->managed != b->managed)
        return "managed";
    if (a->has_zpci_uid != b->has_zpci_uid || (a->has_zpci_uid && a->zpci_uid != b->zpci_uid))
        return "zpci.uid";
    if (a->has_zpci_fid != b->has_zpci_fid || (a->has_zpci_fid && a->zpci_fid != b->zpci_fid))
        return "zpci.fid";
    if (a->has_guest_address != b->has_guest_address ||
        (a->has_guest_address && !zr_pci_addr_eq(&a->guest_address, &b->guest_address)))
        return "guest_address";
    if (a->has_mac != b->has_mac || (a->has_mac && !zr_mac_eq(&a->mac, &b->mac)))
        return "mac";
    if (!vport_eq(&a->vport, &b->vport))
        return "virtualport";
    if (a->has_vlan != b->has_vlan || (a->has_vlan && a->vlan != b->vlan))
        return "vlan";
    if (with_xml_only) {
        if (a->vlan_unrepresentable != b->vlan_unrepresentable)
            return "vlan (unrepresentable)";
        if (a->vport_unrepresentable != b->vport_unrepresentable)
            return "virtualport (unrepresentable)";
        if (!zr_streq(a->driver, b->driver))
            return "driver";
        if (!zr_streq(a->alias, b->alias))
            return "alias";
    }
    return NULL;
}

void zr_fuzz_read_device(const char *xml, const char *what, struct zr_device *out)
{
    struct zr_error err = {0};
    int r = zr_domain_parse_device(xml, strlen(xml), out, &err);
    zr_fuzz_assert(r == 0, "%s does not read back (%d: %s):\n%s", what, r,
                   err.message ? err.message : "", xml);
    zr_error_finish(&err);
}
