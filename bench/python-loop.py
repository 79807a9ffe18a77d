#!/usr/bin/python3
"""The loop a user writes in ten minutes, the yardstick of issue 17: one connection,
for each guest lookupByName and its persistent XMLDesc, one after the other.
Usage: bench/python-loop.py URI GUEST...   (needs python3-libvirt: Debian's package
installs it for /usr/bin/python3).  Prints nothing but errors."""
import sys

import libvirt


def main():
    conn = libvirt.open(sys.argv[1])
    total = 0
    for name in sys.argv[2:]:
        total += len(conn.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    conn.close()
    print('read %d bytes of XML' % total, file=sys.stderr)


if __name__ == '__main__':
    main()
