/* A plan's actions -> the device XML libvirt gets, built where the calls
 * are made (the host's run), not in the plan: a detach sends the current
 * element, an attach the model's XML, a replacement the current element
 * edited in place (domain.h).  The JSON output carries the same XML.
 * Never talks to libvirt and never prints. */
#pragma once

#include <stddef.h>

#include "plan.h"

/* Fills the xml of plan->actions[first..], which zr_plan_guest() appended
 * and zr_plan_finalize() has not yet ordered.  Where a persistent and a
 * live attach of one device get byte-identical XML, they become one call
 * (VIR_DOMAIN_AFFECT_LIVE|CONFIG).  A guest with a device whose attach XML
 * cannot be built (a profileid libvirt cannot store, a current element
 * that does not parse) gets an error and loses all its actions, as any
 * guest error does in zr_plan_guest(): nothing half-done. */
void zr_render_plan(struct zr_plan *plan, size_t first);
