/* A host run's facts, each read once: see facts.h. */
#include "facts.h"

void zr_host_facts_init(struct zr_host_facts *f, virConnectPtr conn, const struct zr_host *host,
                        struct zr_domain_listing *listing, unsigned jobs)
{
    *f = (struct zr_host_facts){.conn = conn, .host = host, .listing = listing, .jobs = jobs};
}

void zr_host_facts_finish(struct zr_host_facts *f)
{
    zr_other_guests_free(f->others, f->n_others);
    zr_error_finish(&f->others_err);
    for (size_t i = 0; f->nodedev_done && i < f->pci.n; i++) {
        free(f->nodedev_xml[i]);
        free(f->nodedev_err[i]);
    }
    free(f->nodedev_done);
    free(f->nodedev_xml);
    free(f->nodedev_err);
    zr_host_pci_finish(&f->pci);
    zr_error_finish(&f->pci_err);
    *f = (struct zr_host_facts){0};
}

int zr_host_facts_others(struct zr_host_facts *f, const struct zr_other_guest **others, size_t *n,
                         const struct zr_error **err)
{
    if (!f->others_read) {
        f->others_r = zr_state_read_others(f->conn, f->host, f->listing, f->jobs, &f->others,
                                           &f->n_others, &f->others_err);
        f->others_read = true;
    }
    *others = f->others;
    *n = f->n_others;
    *err = &f->others_err;
    return f->others_r;
}

int zr_host_facts_pci(struct zr_host_facts *f, const struct zr_host_pci **pci,
                      const struct zr_error **err)
{
    if (!f->pci_read) {
        f->pci_r = zr_state_host_pci(f->conn, &f->pci, &f->pci_err);
        f->pci_read = true;
    }
    *pci = &f->pci;
    *err = &f->pci_err;
    return f->pci_r;
}

void zr_host_facts_nodedev_xml(struct zr_host_facts *f, const size_t *idx, size_t n,
                               const char **xml, const char **errors)
{
    if (!f->nodedev_done) {
        f->nodedev_done = zr_new0(bool, f->pci.n);
        f->nodedev_xml = zr_new0(char *, f->pci.n);
        f->nodedev_err = zr_new0(char *, f->pci.n);
    }
    _cleanup_free_ size_t *todo = zr_new0(size_t, n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!f->nodedev_done[idx[i]]) {
            f->nodedev_done[idx[i]] = true; /* idx may name one twice */
            todo[k++] = idx[i];
        }
    if (k) {
        _cleanup_free_ char **x = zr_new0(char *, k);
        _cleanup_free_ char **e = zr_new0(char *, k);
        zr_state_read_node_devices(&f->pci, todo, k, f->jobs, x, e);
        for (size_t i = 0; i < k; i++) {
            f->nodedev_xml[todo[i]] = x[i];
            f->nodedev_err[todo[i]] = e[i];
        }
    }
    for (size_t i = 0; i < n; i++) {
        xml[i] = f->nodedev_xml[idx[i]];
        if (errors)
            errors[i] = f->nodedev_err[idx[i]];
    }
}
