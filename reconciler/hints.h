/* One line of advice for an error or warning a user often meets (no VFIO,
 * no access to the libvirt socket, a guest name that matches nothing).
 * Keyed on the error's code, never on its text, so rewording a message
 * keeps its hint.  No libvirt, no I/O. */
#pragma once

#include "error.h"

/* The hint for an error or warning of `code`, or NULL when there is none.
 * The string is static. */
const char *zr_hint_for(zr_error_code code);
