/* One line of advice for an error or warning message a user often meets
 * (no VFIO, no access to the libvirt socket, a guest name that matches
 * nothing).  Looks only at the message text: no libvirt, no I/O. */
#pragma once

/* The hint for `message`, or NULL when there is none.  The string is
 * static. */
const char *zr_hint_for(const char *message);
