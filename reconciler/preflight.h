/* Host preflight, before any change: every wanted source must be one of the
 * host's PCI functions, and no guest this run leaves alone may keep holding
 * it.  zr_preflight_check() decides from what was read (pure, unit-tested);
 * zr_preflight_host() reads it.  Never changes a guest.  A finding is a
 * warning in plan and an error for that guest in apply. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "inventory.h"
#include "plan.h"
#include "state.h"

struct zr_preflight_input {
    const char *host; /* name in warnings */
    const struct zr_host *wanted;
    const struct zr_guest_state *states; /* wanted->n_guests, inventory order */
    bool have_pci;                       /* the host listed its PCI functions */
    const struct zr_pci_addr *pci;
    size_t n_pci;
    bool have_others;                    /* the host listed its guests */
    const struct zr_other_guest *others; /* guests the inventory does not name */
    size_t n_others;
};

/* Checks every wanted source of every readable guest:
 * - not a PCI function of the host (when have_pci);
 * - held by a guest that keeps it after this run: one the inventory does
 *   not name, one whose prune: false keeps it, or one this run does not
 *   change because it has an error.  libvirt lets two definitions hold one
 *   function, and only one of those guests can then start.
 * A source the guest already holds itself is only ever a warning (nothing
 * new is attached).  In apply, a guest refused here no longer gives up
 * what it holds, which may refuse another guest in turn.  Returns
 * wanted->n_guests error messages (NULL: go ahead), each newly allocated;
 * warnings go to `plan`. */
char **zr_preflight_check(struct zr_plan *plan, const struct zr_preflight_input *in, bool applying);

/* Reads what the check needs and runs it: one node device listing, one
 * domain listing and one persistent XMLDesc per guest the inventory does
 * not name (on up to `jobs` threads); none of it when the host's guests
 * want no device at all.  A host without node devices
 * (qemu:///embed) is only not checked for functions, with a warning.  A
 * listing that fails is a warning in plan and an error for every guest of
 * the host in apply. */
char **zr_preflight_host(struct zr_plan *plan, virConnectPtr conn, const char *uri,
                         const struct zr_host *wanted, const struct zr_guest_state *states,
                         unsigned jobs, bool applying);

void zr_preflight_errors_free(char **errors, size_t n);
