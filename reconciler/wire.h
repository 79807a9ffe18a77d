/* A host's plan and results, passed from the child process that ran the
 * host back to the parent that merges every host's output (see "Several
 * hosts" in docs/design.md).  A private binary format between a process and
 * its own fork, so both sides are the same build: never stored on disk,
 * never read by anything else.  No I/O here. */
#pragma once

#include <stddef.h>

#include "run.h"

/* Encodes everything `report` holds: the plan, then the run.  Returns a
 * newly allocated buffer and its length in *len. */
char *zr_wire_encode(const struct zr_report *report, size_t *len);

/* Decodes what zr_wire_encode() wrote into `out`, which must be empty.
 * Returns 0, or -EBADMSG for input that is cut short or inconsistent (an
 * index out of range, an unknown enum value); `out` is then left empty. */
int zr_wire_decode(const char *data, size_t len, struct zr_report *out);
