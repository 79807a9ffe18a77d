#!/usr/bin/python3
"""The bare loop a user would write with python-libvirt: for each guest,
look it up, read its persistent XML, detach the hostdev it has and attach
the one it should have (both --config), one call after another on one
connection.  bench/apply.sh times it beside `zpci-reconcile apply`.

Usage: apply-loop.py URI PREFIX N FROM_BUS TO_BUS [THREADS]
Guest PREFIX-NNNN (1..N) holds source DDDD:FROM_BUS:00.0 (DDDD: NNNN in hex,
as bench/apply.sh writes them, bench/lib.sh's function_domain; buses in hex) and gets
NNNN:TO_BUS:00.0 with the same zPCI ids (the detach frees them).
THREADS > 1 splits the guests among that many threads sharing the connection
(libvirt-python lets go of the GIL during a call): what the daemon can do with
that many calls in flight, the floor for a tool that uses as many."""
import sys
import threading

import libvirt

HOSTDEV = ("<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>"
           "<source><address domain='0x{dom:04x}' bus='0x{bus}' slot='0x00' "
           "function='0x0'/></source>"
           "<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address></hostdev>")


def move(conn, prefix, numbers, from_bus, to_bus):
    config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    for i in numbers:
        dom = conn.lookupByName(f"{prefix}-{i:04d}")
        dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        dom.detachDeviceFlags(HOSTDEV.format(dom=i, bus=from_bus), config)
        dom.attachDeviceFlags(HOSTDEV.format(dom=i, bus=to_bus), config)


def main():
    uri, prefix, n, from_bus, to_bus = sys.argv[1:6]
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    conn = libvirt.open(uri)
    numbers = range(1, int(n) + 1)
    if threads == 1:
        move(conn, prefix, numbers, from_bus, to_bus)
    else:
        workers = [threading.Thread(target=move,
                                    args=(conn, prefix, numbers[t::threads], from_bus, to_bus))
                   for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    conn.close()


if __name__ == "__main__":
    main()
