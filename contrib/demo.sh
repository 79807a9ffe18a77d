#!/bin/bash
# The README's first command: from a fresh Debian 12 or 13 (as root) to a
# converged embedded libvirt lab.  Installs what is missing, builds, defines
# s390x guests in a qemu:///embed root under ./demo (no daemon needed), then
# runs plan, apply and plan again on examples/demo.yaml.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# The package list is shared with tests/run-all.sh (contrib/packages.sh), so a build
# dependency cannot be missing here while the tests have it.
. "$top/contrib/packages.sh"
zr_install demo --quiet || { echo "demo.sh: installing packages failed" >&2; exit 1; }

echo "== building"
# The same build directory as tests/run-all.sh, with the same options.
[ -d build/meson-private ] || meson setup build >/dev/null
# Only the tool: the tests' binaries are for tests/run-all.sh (and would double
# the wait on a fresh machine).
ninja -C build reconciler/zpci-reconcile >/dev/null
zr="$top/build/reconciler/zpci-reconcile"

# As root, libvirt's QEMU driver (embedded too) needs the libvirt-qemu account.
bash "$top/tests/start-libvirtd.sh" --prepare-only

# A fresh lab each time, so the demo always shows the same story.
demo="$top/demo"
rm -rf "$demo"
mkdir -p "$demo/xml"
uri="qemu:///embed?root=$demo/root"

guest() { # name, device XML
    cat > "$demo/xml/$1.xml" <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='KiB'>262144</memory>
  <vcpu>1</vcpu>
  <os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
  <on_crash>preserve</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-s390x</emulator>
$2
  </devices>
</domain>
XML
    virsh -q -c "$uri" define "$demo/xml/$1.xml" >/dev/null
}

hostdev() { # source domain, uid, fid, managed
    cat <<XML
    <hostdev mode='subsystem' type='pci' managed='${4:-yes}'>
      <driver name='vfio'/>
      <source><address domain='$1' bus='0x00' slot='0x00' function='0x0'/></source>
      <address type='pci'><zpci uid='$2' fid='$3'/></address>
    </hostdev>
XML
}

echo "== defining s390x guests in $demo/root"
guest linux1 "$(hostdev 0x0001 0x0001 0x00000000; hostdev 0x0004 0x0003 0x00000003)"
guest linux2 ""
guest linux3 "$(hostdev 0x0005 0x0001 0x00000000 no)"
guest db1 "$(hostdev 0x0006 0x0001 0x00000000)"

run() {
    # the URI quoted as it has to be typed: '?' is a glob character
    local shown=" $* "
    shown=${shown// $uri / \'$uri\' }
    echo
    echo "\$ zpci-reconcile${shown% }"
    set +e
    "$zr" "$@"
    rc=$?
    set -e
    echo "(exit status $rc)"
}

# An embedded root has no host PCI devices to look the sources up in;
# --no-host-check skips that lookup (on a real host, leave it on).
run plan --no-host-check -c "$uri" examples/demo.yaml
run apply --no-host-check -c "$uri" examples/demo.yaml
run plan --no-host-check -c "$uri" examples/demo.yaml

cat <<EOT

The lab stays in $demo. Look around:
  virsh -c '$uri' list --all
  virsh -c '$uri' dumpxml linux2
  $zr plan --no-host-check -c '$uri' -o json examples/demo.yaml
Reset it by running contrib/demo.sh again.
EOT
