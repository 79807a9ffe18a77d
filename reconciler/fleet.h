/* Several hosts at once, one child process each: libvirt lets a process
 * open one qemu:///embed root in its life and no local daemon URI after
 * it, and a hosts: inventory may name several roots and qemu:///system.
 * Each child runs zr_host_run() and sends its report back over a pipe
 * (wire.h).  Must not talk to libvirt in the parent (it forks, so it stays
 * single-threaded), print (a failing ppoll() aside, which aborts), or
 * install signal handlers: the caller's handler sets the interrupt flag in
 * the options. */
#pragma once

#include "host.h"

/* Runs every host of `inv`, at most `jobs` at once, and appends their
 * reports to `report` in inventory order, so output never depends on
 * which host finished first.  A host whose process fails, or that a
 * signal keeps from starting, is a failed host record.  SIGINT and SIGTERM
 * are blocked except while waiting; one that arrives is passed on to the
 * running children. */
void zr_fleet_run(const struct zr_inventory *inv, const struct zr_host_options *o, unsigned jobs,
                  struct zr_plan *report);
