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
