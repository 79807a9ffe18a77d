#!/bin/busybox sh
# The live lab's L2 Linux /init: report on the console, whenever it changes, which PCI
# functions the guest sees (address, vendor:device, zPCI uid and fid on s390x),
# so L1 can check what the guest itself sees. It needs no input.

/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

state() {
  for d in /sys/bus/pci/devices/*; do
    [ -e "$d/vendor" ] || continue
    v=$(cat "$d/vendor")
    p=$(cat "$d/device")
    u=
    [ -r "$d/uid" ] && u=" uid=$(cat "$d/uid") fid=$(cat "$d/function_id")"
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
