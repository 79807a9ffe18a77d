#!/bin/bash
# The live lab inside L1 (after l1-init.sh's switch_root): hide the host's libvirt state,
# start virtlogd and libvirtd, give the functions to vfio-pci, run the scenarios, power off.
# Everything it learns goes to /xchg: phases, results, done, logs/.

set -uo pipefail
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
. /xchg/env
X=/xchg
mkdir -p "$X/logs"

phase_t0=$SECONDS
phase() {
  printf 'live-lab: L1 phase %-12s %4ds\n' "$1" $((SECONDS - phase_t0)) | tee -a "$X/phases"
  phase_t0=$SECONDS
}

finish() {
  # Guests first, so their QEMUs end before L1 does.
  for d in $(virsh -c qemu:///system list --all --name 2>/dev/null); do
    timeout 20 virsh -c qemu:///system destroy "$d" >/dev/null 2>&1
  done
  cp /var/log/libvirt/libvirtd.log "$X/logs/" 2>/dev/null
  touch "$X/done"
  sync
  busybox poweroff -f
}
trap finish EXIT

# Fail the whole run: one FAIL line for the step that broke.
abort() {
  echo "FAIL setup $((SECONDS - phase_t0)) $*" >>"$X/results"
  echo "live-lab: L1: $*"
  exit 1
}

# ---- the filesystem -------------------------------------------------------------------------

mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/lock /run/libvirt /dev/pts /dev/shm /dev/mqueue
ln -sf /proc/self/fd /dev/fd
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup || abort "cannot mount cgroup2"
ip link set lo up 2>/dev/null
hostname zr-live-lab-l1
mkdir -p "/lib/modules/$KVER"
mount --bind "$KMODS" "/lib/modules/$KVER" || abort "cannot bind the kernel modules"

# The host's libvirt state must not leak in (guests, networks, caches, logs).
for d in /etc/libvirt/qemu /var/lib/libvirt /var/cache/libvirt /var/log/libvirt; do
  mkdir -p "$d"
  mount -t tmpfs -o mode=755 tmpfs "$d"
done
mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu /etc/libvirt/qemu/networks
# namespaces: libvirt 11.3 (Debian 13) gives QEMU a private /dev in which it then cannot
# open /dev/vfio/N here; the machine's libvirt 9.0 does not mind either way.
cat >/etc/libvirt/qemu.conf <<'EOF'
user = "root"
group = "root"
security_driver = "none"
namespaces = [ ]
EOF
cat >/etc/libvirt/libvirtd.conf <<'EOF'
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
EOF
# libvirtd probes every QEMU binary it finds; only two are needed. Symlinks are left alone:
# a bind mount follows them, and Debian 13's qemu-system-amd64 points at qemu-system-x86_64.
for q in /usr/bin/qemu-system-*; do
  [ -L "$q" ] && continue
  case $q in
    */qemu-system-x86_64 | */qemu-system-s390x) ;;
    *) mount --bind /dev/null "$q" ;;
  esac
done
phase mounts

# ---- VFIO -----------------------------------------------------------------------------------

busybox modprobe vfio-pci || abort "modprobe vfio-pci failed"
busybox modprobe vfio_iommu_type1 || abort "modprobe vfio_iommu_type1 failed"
[ -d /sys/kernel/iommu_groups/0 ] || abort "no IOMMU groups (intel_iommu did not come up)"
# Which function is in which group: for the logs, and for the iommu_group scenario.
for g in /sys/kernel/iommu_groups/*; do
  echo "${g##*/}: $(ls "$g/devices" | tr '\n' ' ')"
done >"$X/logs/iommu-groups.txt"
FUNCS=
# 01:01.0 and 01:02.0 share one IOMMU group (behind the PCIe-to-PCI bridge 00:07.0).
for f in 0000:00:04.0 0000:00:05.0 0000:00:06.0 0000:01:01.0 0000:01:02.0; do
  [ -e "/sys/bus/pci/devices/$f" ] || abort "function $f is missing"
  if [ -e "/sys/bus/pci/devices/$f/driver" ]; then
    echo "$f" >"/sys/bus/pci/devices/$f/driver/unbind"
  fi
  echo vfio-pci >"/sys/bus/pci/devices/$f/driver_override"
  echo "$f" >/sys/bus/pci/drivers/vfio-pci/bind || abort "cannot bind $f to vfio-pci"
  FUNCS="$FUNCS $f"
done
ls -l /dev/vfio >"$X/logs/dev-vfio.txt"
phase vfio

# ---- SR-IOV (run.sh --sriov: an igb PF, 8086:10c9, behind the root port 00:08.0) ------------

if [ "${SRIOV-0}" = 1 ]; then
  busybox modprobe igb || abort "modprobe igb failed"
  SRIOV_PF=
  for d in /sys/bus/pci/devices/*; do
    [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = 0x10c9 ] && SRIOV_PF=${d##*/}
  done
  [ -n "$SRIOV_PF" ] || abort "no igb physical function (8086:10c9) in L1"
  pf=/sys/bus/pci/devices/$SRIOV_PF
  SRIOV_PFDEV=
  for _ in $(seq 1 40); do
    SRIOV_PFDEV=$(ls "$pf/net" 2>/dev/null | head -n 1)
    [ -n "$SRIOV_PFDEV" ] && break
    sleep 0.25
  done
  [ -n "$SRIOV_PFDEV" ] || abort "igb made no network device for $SRIOV_PF"
  # libvirt sets a VF's MAC and VLAN through the PF: it refuses while the PF is down.
  ip link set "$SRIOV_PFDEV" up || abort "cannot bring $SRIOV_PFDEV up"
  # No VF driver (igbvf) in L1: the VFs stay unbound until libvirt or a scenario binds them.
  echo 3 >"$pf/sriov_numvfs" || abort "cannot make 3 VFs on $SRIOV_PF"
  SRIOV_VFS=
  for i in 0 1 2; do
    [ -e "$pf/virtfn$i" ] || abort "$SRIOV_PF has no virtfn$i"
    SRIOV_VFS="$SRIOV_VFS $(basename "$(readlink "$pf/virtfn$i")")"
  done
  SRIOV_VFS=${SRIOV_VFS# }
  ip link show "$SRIOV_PFDEV" >"$X/logs/pf-before.txt"
  echo "live-lab: L1: PF $SRIOV_PF ($SRIOV_PFDEV), VFs $SRIOV_VFS"
  export SRIOV_PF SRIOV_PFDEV SRIOV_VFS
  phase sriov
fi

# ---- libvirt --------------------------------------------------------------------------------

virtlogd -d || abort "virtlogd did not start"
libvirtd -d || abort "libvirtd did not start"
ready=0
deadline=$((SECONDS + 300))
while [ "$SECONDS" -lt "$deadline" ]; do
  if timeout 10 virsh -c qemu:///system version >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 1
done
if [ "$ready" != 1 ]; then
  { ps -eo pid,etime,args; ls -l /run/libvirt; timeout 10 virsh -c qemu:///system version; } \
    >"$X/logs/libvirtd-not-ready.txt" 2>&1
  abort "libvirtd not ready after 300 s (logs/libvirtd-not-ready.txt, logs/libvirtd.log)"
fi
virsh -c qemu:///system version
phase libvirtd

# ---- scenarios ------------------------------------------------------------------------------

export FUNCS
bash "$X/scenarios.sh" all
phase scenarios
