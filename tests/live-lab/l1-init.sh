#!/bin/busybox sh
# The live lab's L1 initramfs /init: mount the host's root (9p, read-only) under a tmpfs
# overlay, mount the exchange share, and hand over to l1-main.sh from that share.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "l1-init: $*"
  echo o >/proc/sysrq-trigger
  sleep 60
}

kver=$(uname -r)
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe "$m" || fail "modprobe $m failed"
done

# virtio devices may show up a moment after their driver loads.
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 root /lower; do
  i=$((i + 1))
  [ $i -lt 20 ] || fail "cannot mount the host root over 9p"
  sleep 0.5
done
mount -t tmpfs -o size=3g,mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
# run.sh --root: L1 runs another root filesystem, a directory of the host's (zr_root=DIR);
# the host's own root is then at /zr-host (the lab's cache, the kernels, the build).
zr_root=$(sed -n 's/.*zr_root=\([^ ]*\).*/\1/p' /proc/cmdline)
mount -t overlay overlay -o "lowerdir=/lower$zr_root,upperdir=/rw/upper,workdir=/rw/work" /newroot ||
  fail "cannot mount the overlay"
if [ -n "$zr_root" ]; then
  mkdir -p /newroot/zr-host
  mount --bind /lower /newroot/zr-host || fail "cannot bind the host root at /zr-host"
fi
mkdir -p /newroot/xchg
mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=512000 xchg /newroot/xchg ||
  fail "cannot mount the exchange share"
for d in proc sys dev; do
  mount --move /$d /newroot/$d
done
exec switch_root /newroot /bin/bash /xchg/l1-main.sh
