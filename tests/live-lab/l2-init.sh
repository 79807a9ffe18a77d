#!/bin/busybox sh
# The live lab's L2 Linux /init: report on the console, whenever it changes, which PCI
# functions the guest sees (address, vendor:device, zPCI uid and fid on s390x, the MAC
# of a network device on it), so L1 can check what the guest itself sees. It needs no
# input. The x86 image carries igbvf, so an igb VF given to the guest gets a netdev.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# Bound to every VF hot-plugged later; absent (and not needed) on s390x.
modprobe igbvf 2>/dev/null

state() {
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    v=$(cat "$d/vendor")
    p=$(cat "$d/device")
    u=
    [ -r "$d/uid" ] && u=" uid=$(cat "$d/uid") fid=$(cat "$d/function_id")"
    for n in "$d"/net/*/address; do
      [ -r "$n" ] && u="$u mac=$(cat "$n")"
    done
    echo -n "[${d##*/} ${v#0x}:${p#0x}$u] "
  done
}

echo "ZR-L2 ready"
last="(boot)"
while :; do
  now=$(state)
  if [ "$now" != "$last" ]; then
    echo "ZR-L2 STATE $(cut -d' ' -f1 /proc/uptime) $now"
    last=$now
  fi
  sleep 0.5
done
