/* libvirt URIs as values: one spelling per connection, so two spellings
 * of one host compare equal (the inventory's one-host-one-uri rule, the
 * apply lock's file name).  Parsed with libxml2's URI parser; no I/O, no
 * libvirt. */
#pragma once

#include <stdbool.h>

/* The URI in one spelling per libvirt connection: scheme and host in lower
 * case, "+unix" dropped where there is no host, the path and a root=
 * parameter without repeated, "." or trailing slashes, parameters sorted.
 * "qemu:///system/" and "qemu:///system" give the same; so do
 * "qemu:///embed?root=/x//root" and "...?root=/x/root/".  A string that is
 * not a URI comes back as it is. */
char *zr_uri_normalize(const char *uri);

/* Whether a connection to `uri` may be to an embedded driver, which runs
 * in this process and needs the event loop for its QEMU monitors: libvirt
 * names it by the path /embed; a string that is not a URI may be anything. */
bool zr_uri_may_be_embedded(const char *uri);

/* Whether `uri` names an embedded driver root (qemu:///embed?root=DIR). */
bool zr_uri_is_embedded(const char *uri);

/* Whether a process that has opened the embedded root `root` can no longer
 * open `uri` (NULL: libvirt's default, probed among the local drivers).
 * The QEMU driver then runs in the process and refuses every other local
 * qemu URI ("Missing URI parameter 'root'"), a second root included; the
 * same root and a URI with a host or a transport (the remote driver) still
 * open. */
bool zr_uri_blocked_by_embed(const char *root, const char *uri);

/* The directory libvirt's QEMU driver keeps the persistent definitions of
 * a local `uri` in, one NAME.xml per guest: /etc/libvirt/qemu for
 * qemu:///system, $XDG_CONFIG_HOME (else ~/.config)/libvirt/qemu for
 * qemu:///session, ROOT/etc/qemu for qemu:///embed?root=ROOT; NULL for
 * any other URI.  Where a daemon was built with another prefix the
 * directory differs: a caller checks that it holds the daemon's guests. */
char *zr_uri_config_dir(const char *uri);
