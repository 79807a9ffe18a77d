/* libvirt URIs as values: one spelling per connection, so two spellings
 * of one host compare equal (the inventory's one-host-one-uri rule, the
 * apply lock's file name).  Parsed with libxml2's URI parser; no I/O, no
 * libvirt. */
#pragma once

/* The URI in one spelling per libvirt connection: scheme and host in lower
 * case, "+unix" dropped where there is no host, the path and a root=
 * parameter without repeated, "." or trailing slashes, parameters sorted.
 * "qemu:///system/" and "qemu:///system" give the same; so do
 * "qemu:///embed?root=/x//root" and "...?root=/x/root/".  A string that is
 * not a URI comes back as it is. */
char *zr_uri_normalize(const char *uri);
