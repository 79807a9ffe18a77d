/* Host preflight, before any change, in two parts.  The conflict check
 * (always): no guest this run leaves alone may keep holding a wanted
 * function.  The host check (--no-host-check skips it): every wanted
 * source is one of the host's PCI functions, and each function an action
 * attaches fits the host's topology (IOMMU group, SR-IOV, driver binding,
 * NUMA, hotplug ports).  zr_preflight_check() decides from what was read
 * (pure, unit-tested); zr_preflight_host() reads it.  Never changes a
 * guest.  A refusing finding is a warning in plan and an error for that
 * guest in apply; the others are warnings in both. */
#pragma once

#include <libvirt/libvirt.h>
#include <stdbool.h>

#include "facts.h"
#include "inventory.h"
#include "plan.h"
#include "state.h"
#include "topology.h"

/* A function's node device as read: parsed, or why not. */
struct zr_function_info {
    struct zr_pci_addr addr;
    bool read; /* fn holds the parsed XML */
    struct zr_pci_function fn;
    char *error; /* !read: why */
};

struct zr_preflight_input {
    const char *host; /* name in warnings */
    const struct zr_host *wanted;
    const struct zr_guest_state *states; /* wanted->n_guests, inventory order */
    bool have_pci;                       /* the host listed its PCI functions */
    const struct zr_pci_addr *pci;       /* sorted */
    size_t n_pci;
    bool have_others;                    /* the host listed its guests */
    const struct zr_other_guest *others; /* guests the inventory does not name */
    size_t n_others;

    /* The topology checks; all absent (NULL) with --no-host-check. */
    const struct zr_plan *planned;            /* what plan will do, guest i = inventory guest i */
    const struct zr_function_info *functions; /* sorted by addr: attached functions, group mates */
    size_t n_functions;
    const struct zr_host_use *uses; /* what the host uses on its functions */
    size_t n_uses;
    bool have_uses;
    const struct zr_guest_topology *guests; /* wanted->n_guests; NULL: not read */

    /* Guests refused before the checks (a pool entry that could not be
     * served): wanted->n_guests errors, message NULL for the others; NULL:
     * none.  They keep what they hold, which the cascade takes into account. */
    const struct zr_error *refused;

    /* Each guest planned before the checks (guest i = inventory guest i):
     * which running guest gives up a function from its running definition
     * (a live detach).  NULL: none does. */
    const struct zr_plan *draft;
};

/* Checks every wanted source of every readable guest:
 * - not a PCI function of the host (when have_pci);
 * - held by a guest that keeps it after this run: one the inventory does
 *   not name, one whose prune: false keeps it, one this run does not
 *   change because it is refused, or a running one whose plan leaves it
 *   in its running definition (--config-only).  libvirt lets two definitions hold one
 *   function, and only one of those guests can then start;
 * - for each function `planned` attaches: its IOMMU group, SR-IOV (for an
 *   interface), driver binding, NUMA node, and the guest's hotplug ports.
 * A source the guest already holds itself is only ever a warning (nothing
 * new is attached).  A refused guest no longer gives up what it holds,
 * which may refuse another guest in turn: plan follows the same cascade
 * as apply and says so in its warnings.  Returns wanted->n_guests errors
 * with a code each (message NULL: go ahead; always so in plan), to free
 * with zr_preflight_errors_free(); warnings go to `plan`, with codes. */
struct zr_error *zr_preflight_check(struct zr_plan *plan, const struct zr_preflight_input *in,
                                    bool applying);

/* What plan will do for the readable guests of `wanted`, into `out` (guest
 * i is inventory guest i): the actions whose attaches the topology checks
 * look at. */
void zr_preflight_plan(struct zr_plan *out, const struct zr_host *wanted,
                       const struct zr_guest_state *states, const struct zr_plan_options *popts);

/* What the host check learned about a function an action attaches, for
 * the plan text: an interface's physical function. */
struct zr_preflight_note {
    size_t guest; /* inventory index */
    zr_kind kind;
    struct zr_pci_addr source;
    char *text;
};

struct zr_preflight_notes {
    struct zr_preflight_note *items;
    size_t n;
};

/* The notes of the functions `in` read (pure). */
void zr_preflight_collect_notes(const struct zr_preflight_input *in,
                                struct zr_preflight_notes *notes);

/* Puts the notes on the matching attach actions of plan->actions[first_action..];
 * inventory guest g of the host is plan guest first_guest + g. */
void zr_preflight_annotate(struct zr_plan *plan, size_t first_action, size_t first_guest,
                           const struct zr_preflight_notes *notes);
void zr_preflight_notes_finish(struct zr_preflight_notes *notes);

/* Reads what the checks need and runs them.  From `facts` (facts.h: read
 * there on first need, unless the chooser of the same run read them
 * already, failures included): one node device listing (unless
 * !host_check), and the definitions of the guests the inventory does not
 * name (zr_state_read_others(), on the host's one domain listing, shared
 * with the guests' read; listed there only if that failed).  Here: node device XML only for the
 * functions an action attaches and the other functions of their IOMMU
 * groups, on up to `jobs` threads; none of it when the host's guests want
 * no device at all.  A host without node devices (qemu:///embed) is only
 * not checked for functions, with a warning.  A listing that fails is a
 * warning in plan and an error for every guest of the host in apply.
 * `draft` is the decision for the host's guests before the checks (guest g
 * = inventory guest g): the checks read it, they never plan a guest again.
 * `refused` (may be NULL): guests refused before the checks (see
 * zr_preflight_input).  `notes` (may be NULL) receives what the plan text
 * says about functions. */
struct zr_error *zr_preflight_host(struct zr_plan *plan, struct zr_host_facts *facts,
                                   const char *uri, const struct zr_host *wanted,
                                   const struct zr_guest_state *states, const struct zr_plan *draft,
                                   bool host_check, unsigned jobs, bool applying,
                                   const struct zr_error *refused,
                                   struct zr_preflight_notes *notes);

void zr_preflight_errors_free(struct zr_error *errors, size_t n);
