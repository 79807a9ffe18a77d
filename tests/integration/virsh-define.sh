#!/bin/sh
# Defines an s390x guest holding every device XML the builder writes into a
# throwaway qemu:///embed root, then checks libvirt's own XML for it with
# the domain reader.  Exit 77 (skipped) where libvirt or QEMU is missing.
set -eu

gen=$1
if ! command -v virsh >/dev/null 2>&1; then
    echo "virsh not installed: skipped"
    exit 77
fi
if [ ! -x /usr/bin/qemu-system-s390x ]; then
    echo "qemu-system-s390x not installed: skipped"
    exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/zr-virsh.XXXXXX")
trap 'rm -rf "$dir"' EXIT INT TERM
uri="qemu:///embed?root=$dir/root"

"$gen" domain >"$dir/in.xml"
virsh -q -c "$uri" define "$dir/in.xml"
virsh -q -c "$uri" dumpxml --inactive zr-test >"$dir/out.xml"
if ! "$gen" check "$dir/out.xml"; then
    cat "$dir/out.xml"
    exit 1
fi
