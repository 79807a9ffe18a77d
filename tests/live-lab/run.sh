#!/bin/bash
# The live lab: zpci-reconcile against running guests that hold real VFIO functions.
#
#   tests/live-lab/run.sh [--quick | --full | --sriov] [--root host|debian13] [SCENARIO...]
#                                                                            (as root)
#
# This machine has no IOMMU, so the lab nests: an L1 x86 q35 guest under TCG with an emulated
# intel-iommu and e1000e functions boots Debian's kernel with the host's root filesystem as
# a read-only 9p share under a tmpfs overlay, so it runs the host's own libvirtd, QEMU and
# the freshly built zpci-reconcile. Inside L1 the functions go to vfio-pci and L2 guests
# (TCG) hold them. See docs/live-lab.md.
#
# --quick runs the scenarios on guests without an OS (a few minutes); --full (the default)
# adds those that boot a Linux L2 and watch what it sees; --sriov runs the sriov_* scenarios
# on the virtual functions of an igb (82576) in L1, with L0 the QEMU 10 of a cached Debian 13
# root (tests/debian/root.sh). --root debian13 runs L1 on that root instead of the host's
# (libvirt 11.3, QEMU 10, zpci-reconcile built inside it). Naming scenarios runs only those.
# The last line is "N passed, N failed"; exit 0 only when nothing failed. A machine that
# cannot run the lab skips it (exit 77) unless CI=true, where that is a failure.
#
# Environment: ZR_LAB_CACHE (downloads, default /var/cache/zpci-live-lab), ZR_LAB_BUILD
# (the meson build dir holding reconciler/zpci-reconcile, default build/ of this tree),
# ZR_LAB_TIMEOUT (seconds the whole L1 run may take, default 2700), ZR_LAB_KEEP=1 keeps
# the exchange directory (console logs, XML, outputs) after a passing run.

set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
cache=${ZR_LAB_CACHE:-/var/cache/zpci-live-lab}
build=${ZR_LAB_BUILD:-$src/build}
total_timeout=${ZR_LAB_TIMEOUT:-2700}
mode=full
scenarios=()
sriov=0

l1_rootname=host
want_root=0
for arg in "$@"; do
  if [ "$want_root" = 1 ]; then
    l1_rootname=$arg
    want_root=0
    continue
  fi
  case $arg in
    --quick) mode=quick ;;
    --full) mode=full ;;
    --sriov) mode=sriov ;;
    --root=*) l1_rootname=${arg#--root=} ;;
    --root) want_root=1 ;;
    -h | --help)
      sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "run.sh: unknown option $arg" >&2
      exit 2
      ;;
    *) scenarios+=("$arg") ;;
  esac
done

case $l1_rootname in
  host | debian13) ;;
  *)
    echo "run.sh: --root takes host or debian13, not '$l1_rootname'" >&2
    exit 2
    ;;
esac

# SR-IOV needs an emulated SR-IOV NIC in L1: igb, which QEMU has since 8.0; the machine's
# QEMU 7.2 has none, so L0 is then the QEMU of a cached Debian 13 root.
[ "$mode" = sriov ] && sriov=1
for s in "${scenarios[@]}"; do
  case $s in sriov_* | sriov-*) sriov=1 ;; esac
done

t_start=$SECONDS
phase_t0=$SECONDS
phase() {
  printf 'live-lab: phase %-12s %4ds\n' "$1" $((SECONDS - phase_t0))
  phase_t0=$SECONDS
}

# Cannot run here: a skip outside CI, a failure in CI.
summary_printed=0
cannot_run() {
  summary_printed=1
  if [ "${CI-}" = true ]; then
    echo "live-lab: FAILED: the lab cannot start: $*"
    echo "0 passed, 1 failed"
    exit 1
  fi
  echo "live-lab: skipped: $* (with CI=true this is a failure)"
  echo "0 passed, 0 failed"
  exit 77
}

# ---- can this machine run the lab? ---------------------------------------------------

[ "$(id -u)" -eq 0 ] || cannot_run "needs root (libvirtd inside L1 runs from this root filesystem)"
for tool in qemu-system-x86_64 qemu-system-s390x apt-get dpkg-deb setpriv timeout; do
  # the packages: contrib/packages.sh's "full" set (tests/run-all.sh --full installs it)
  command -v "$tool" >/dev/null || cannot_run "$tool is not installed (contrib/packages.sh, full)"
done
[ -x /bin/busybox ] && /bin/busybox --list | grep -qx switch_root ||
  cannot_run "busybox-static is not installed (/bin/busybox with switch_root)"
qemu-system-x86_64 -device help 2>/dev/null | grep -q '"virtio-9p-pci"' ||
  cannot_run "qemu-system-x86_64 has no virtio-9p-pci (9p root share)"
avail_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
[ "${avail_kb:-0}" -ge $((7 * 1024 * 1024)) ] ||
  cannot_run "needs 7 GiB of available memory for L1, has $((${avail_kb:-0} / 1024)) MiB"
zr=$build/reconciler/zpci-reconcile
if [ ! -x "$zr" ] && [ -d "$build" ]; then
  meson compile -C "$build" >/dev/null || true
fi
[ -x "$zr" ] || cannot_run "no zpci-reconcile in $build (meson setup build -Dtests=true && meson compile -C build)"

# L0 for SR-IOV: Debian 13's qemu-system-x86_64, chrooted into its root in a private mount
# namespace with the machine's / bound (not recursively) at /zr-host, so every host path
# on its command line carries $hp. Every step execs the next, so the pdeath signal set on
# the first reaches QEMU. Running that QEMU through its own ld.so instead does not work:
# it loads the machine's QEMU 7.2 modules and aborts.
# The Debian 13 root (QEMU 10, libvirt 11.3, the build's packages), made once and cached
# by tests/debian/root.sh (in $ZR_ROOT_CACHE, beside run-all's roots).
deb13=
debian13_root() {
  [ -n "$deb13" ] && return 0
  command -v debootstrap >/dev/null || cannot_run "debootstrap is not installed (the lab's Debian 13 root)"
  mkdir -p "$cache"
  deb13=$("$src/tests/debian/root.sh" with trixie lab --set test ipxe-qemu busybox-static iproute2 \
    2>"$cache/root.log") || cannot_run "cannot make the Debian 13 root (tests/debian/root.sh; $cache/root.log)"
}

l0_root= hp=
l0_cmd=(qemu-system-x86_64)
if [ "$sriov" = 1 ]; then
  debian13_root
  l0_root=$deb13
  hp=/zr-host
  mkdir -p "$l0_root$hp"
  l0_cmd=(unshare --mount --propagation private -- bash -c '
    set -e
    dir=$1
    shift
    mount --bind / "$dir/zr-host"
    mount -t proc proc "$dir/proc"
    mount --rbind /dev "$dir/dev"
    exec chroot "$dir" setpriv --pdeathsig KILL /usr/bin/qemu-system-x86_64 "$@"' bash "$l0_root")
  "$src/tests/debian/root.sh" run "$l0_root" -- qemu-system-x86_64 -device help 2>/dev/null |
    grep -q '"igb"' || cannot_run "the Debian 13 root's QEMU has no igb device"
fi

# L1 on the Debian 13 root (--root debian13): the root is L1's /, the machine's / is at
# /zr-host there, so every host path L1 is told carries $l1p; zpci-reconcile is built
# inside the root against its libvirt 11.3, in $cache/debian13-build (not under /tmp:
# L1 mounts a tmpfs there).
l1p= l1_append=
if [ "$l1_rootname" = debian13 ]; then
  debian13_root
  l1p=/zr-host
  l1_append=" zr_root=$deb13"
  rm -rf "$cache/debian13-src"
  "$src/tests/debian/root.sh" tree "$cache/debian13-src" || cannot_run "cannot copy the checkout"
  mkdir -p "$cache/debian13-build"
  "$src/tests/debian/root.sh" run "$deb13" --bind "$cache/debian13-src:/zr-src" \
    --bind "$cache/debian13-build:/zr-build" -- bash -c '
      set -e
      [ -f /zr-build/build.ninja ] || meson setup /zr-build /zr-src -Dtests=false -Dman=disabled >/dev/null
      meson compile -C /zr-build reconciler/zpci-reconcile >/dev/null' >"$cache/debian13-build.log" 2>&1 ||
    cannot_run "cannot build zpci-reconcile in the Debian 13 root ($cache/debian13-build.log)"
  zr=$cache/debian13-build/reconciler/zpci-reconcile
  phase debian13
fi

# ---- teardown: always ------------------------------------------------------------------

xchg=
qemu_pid=
tail_pid=
stop_l1() {
  if [ -n "$tail_pid" ]; then
    kill "$tail_pid" 2>/dev/null
    wait "$tail_pid" 2>/dev/null
    tail_pid=
  fi
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    echo "live-lab: stopping L1 (pid $qemu_pid)"
    kill "$qemu_pid" 2>/dev/null
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$qemu_pid" 2>/dev/null || break
      sleep 1
    done
    kill -9 "$qemu_pid" 2>/dev/null
  fi
  if [ -n "$qemu_pid" ]; then
    wait "$qemu_pid" 2>/dev/null
  fi
}
cleanup() {
  local rc=$?
  stop_l1
  if [ -n "$xchg" ] && [ -d "$xchg" ]; then
    if [ "$rc" -eq 0 ] && [ "${ZR_LAB_KEEP-}" != 1 ]; then
      rm -rf "$xchg"
    else
      echo "live-lab: logs kept in $xchg"
    fi
  fi
  if [ "$summary_printed" = 0 ]; then
    echo "live-lab: FAILED: stopped before the end (exit $rc)"
    echo "0 passed, 1 failed"
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# ---- fetch and unpack (cached) ------------------------------------------------------------

# A private apt state for s390x: the host's dpkg and apt lists are never touched.
# s390x_apt apt-get|apt-cache ARGS...
s390x_apt() {
  local d=$cache/s390x-apt tool=$1
  shift
  "$tool" -q -o APT::Sandbox::User=root -o Dir::State="$d/state" -o Dir::Cache="$d/cache" \
    -o Dir::State::status="$d/status" -o Dir::Etc::SourceList="$d/sources.list" \
    -o Dir::Etc::SourceParts="$d/sources.list.d" -o APT::Architecture=s390x \
    -o APT::Architectures::=s390x "$@"
}

# unpack ARCH PACKAGE: download the package's .deb once, unpack it into $cache/ARCH/root.
unpack() {
  local arch=$1 pkg=$2 deb
  mkdir -p "$cache/$arch/debs" "$cache/$arch/root"
  deb=$(ls "$cache/$arch/debs/${pkg}"_*.deb 2>/dev/null | head -n 1)
  if [ -z "$deb" ]; then
    # Lists older than the archive name versions it no longer has: update once, retry.
    if [ "$arch" = amd64 ]; then
      (cd "$cache/$arch/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg" </dev/null) ||
        { apt-get -q update </dev/null >/dev/null &&
          (cd "$cache/$arch/debs" && apt-get -q -o APT::Sandbox::User=root download "$pkg" </dev/null); } ||
        return 1
    else
      (cd "$cache/$arch/debs" && s390x_apt apt-get download "$pkg" </dev/null) ||
        { s390x_apt apt-get update </dev/null >/dev/null &&
          (cd "$cache/$arch/debs" && s390x_apt apt-get download "$pkg" </dev/null); } ||
        return 1
    fi
    deb=$(ls "$cache/$arch/debs/${pkg}"_*.deb | head -n 1)
  fi
  [ -e "$cache/$arch/root/.unpacked-$(basename "$deb")" ] && return 0
  dpkg-deb -x "$deb" "$cache/$arch/root" && touch "$cache/$arch/root/.unpacked-$(basename "$deb")"
}

# The kernel package linux-image-ARCHFLAVOUR depends on (the versioned one).
kernel_package() {
  local flavour=$1 dep
  if [ "$flavour" = amd64 ]; then
    dep=$(apt-cache depends "linux-image-$flavour" 2>/dev/null)
  else
    dep=$(s390x_apt apt-cache depends "linux-image-$flavour" 2>/dev/null)
  fi
  sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' <<<"$dep" | head -n 1
}

kver= kver_s390x=
fetch() {
  local pkg
  mkdir -p "$cache"
  # apt's sandbox user cannot write the cache; downloading as root is what we want here.
  pkg=$(kernel_package amd64)
  if [ -z "$pkg" ]; then
    apt-get -q update </dev/null >/dev/null
    pkg=$(kernel_package amd64)
  fi
  [ -n "$pkg" ] || return 1
  unpack amd64 "$pkg" || return 1
  kver=${pkg#linux-image-}

  local d=$cache/s390x-apt
  mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/sources.list.d"
  touch "$d/status"
  if [ ! -s "$d/sources.list" ]; then
    # The host's Debian mirror and suite, in one-line form for the private state.
    local uri suite
    uri=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
      "${uri:-http://deb.debian.org/debian}" "$suite" >"$d/sources.list"
  fi
  if [ -z "$(ls "$d/state/lists/"*_Packages* 2>/dev/null)" ]; then
    s390x_apt apt-get update </dev/null >/dev/null || return 1
  fi
  pkg=$(kernel_package s390x)
  [ -n "$pkg" ] || return 1
  kver_s390x=${pkg#linux-image-}
  unpack s390x "$pkg" && unpack s390x busybox-static
}

# ---- initramfs images ------------------------------------------------------------------

# cpio_dir DIR OUT: a newc archive of DIR, gzip'd.
cpio_dir() {
  (cd "$1" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) | gzip -1 >"$2.tmp" && mv "$2.tmp" "$2"
}

# L1: busybox, the modules that reach the 9p root, and the init script.
build_l1_initrd() {
  local kver=$1 out=$2 dir m
  dir=$(mktemp -d "${TMPDIR:-/tmp}/zr-lab-initrd.XXXXXX")
  mkdir -p "$dir/bin" "$dir/lib/modules/$kver" "$dir/proc" "$dir/sys" "$dir/dev" \
    "$dir/lower" "$dir/rw" "$dir/newroot"
  cp /bin/busybox "$dir/bin/busybox"
  cp "$here/l1-init.sh" "$dir/init"
  chmod 755 "$dir/init"
  local mods=$cache/amd64/root/lib/modules/$kver
  [ -s "$mods/modules.dep" ] || /bin/busybox depmod -b "$cache/amd64/root" "$kver"
  # The wanted modules and everything modules.dep says they need.
  for m in $(awk -F: '$1 ~ /\/(virtio_pci|9pnet_virtio|9p|overlay)\.ko$/ {print $1, $2}' "$mods/modules.dep"); do
    mkdir -p "$dir/lib/modules/$kver/$(dirname "$m")"
    cp "$mods/$m" "$dir/lib/modules/$kver/$m"
  done
  cp "$mods/modules.dep" "$dir/lib/modules/$kver/"
  cpio_dir "$dir" "$out"
  rm -rf "$dir"
}

# L2 Linux: busybox of the guest's architecture and the init that reports what it sees.
build_l2_initrd() {
  local arch=$1 out=$2 dir
  dir=$(mktemp -d "${TMPDIR:-/tmp}/zr-lab-initrd.XXXXXX")
  mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev"
  if [ "$arch" = amd64 ]; then
    cp /bin/busybox "$dir/bin/busybox"
    # igbvf, so the guest has a network device (and its MAC) on an igb VF it is given.
    local mods=$cache/amd64/root/lib/modules/$kver m
    [ -s "$mods/modules.dep" ] || /bin/busybox depmod -b "$cache/amd64/root" "$kver"
    mkdir -p "$dir/lib/modules/$kver"
    for m in $(awk -F: '$1 ~ /\/igbvf\.ko$/ {print $1, $2}' "$mods/modules.dep"); do
      mkdir -p "$dir/lib/modules/$kver/$(dirname "$m")"
      cp "$mods/$m" "$dir/lib/modules/$kver/$m"
    done
    cp "$mods/modules.dep" "$dir/lib/modules/$kver/"
  else
    cp "$cache/$arch/root/bin/busybox" "$dir/bin/busybox"
  fi
  cp "$here/l2-init.sh" "$dir/init"
  chmod 755 "$dir/init"
  cpio_dir "$dir" "$out"
  rm -rf "$dir"
}

# ---- run ----------------------------------------------------------------------------------

echo "live-lab: mode $mode${scenarios[*]:+, scenarios ${scenarios[*]}}; L0 ${l0_root:-host}; L1 root $l1_rootname; cache $cache; binary $zr"
fetch || cannot_run "cannot fetch the kernels from Debian's archive (apt-get download failed)"
[ -f "$cache/amd64/root/boot/vmlinuz-$kver" ] && [ -f "$cache/s390x/root/boot/vmlinuz-$kver_s390x" ] ||
  cannot_run "the unpacked kernels are incomplete in $cache (remove it to start over)"
phase fetch

mkdir -p "$cache/images"
stamp=$(cat "$here/l1-init.sh" "$here/l2-init.sh" "$here/run.sh" | md5sum | cut -c1-12)
l1_initrd=$cache/images/l1-$kver-$stamp.cpio.gz
[ -s "$l1_initrd" ] || build_l1_initrd "$kver" "$l1_initrd"
l2_initrd_amd64=$cache/images/l2-amd64-$stamp.cpio.gz
[ -s "$l2_initrd_amd64" ] || build_l2_initrd amd64 "$l2_initrd_amd64"
l2_initrd_s390x=$cache/images/l2-s390x-$stamp.cpio.gz
[ -s "$l2_initrd_s390x" ] || build_l2_initrd s390x "$l2_initrd_s390x"
# Old images of earlier script versions.
find "$cache/images" -name '*.cpio.gz' ! -name "*$stamp*" -delete
phase initramfs

xchg=$(mktemp -d "${TMPDIR:-/tmp}/zr-live-lab.XXXXXX")
chmod 755 "$xchg"
# Scripts go through the exchange share: the 9p root caches loosely and may be stale.
cp "$here"/l1-main.sh "$here"/scenarios.sh "$xchg/"
{
  printf 'ZR=%q\n' "$l1p$zr"
  printf 'SRC=%q\n' "$l1p$src"
  printf 'MODE=%q\n' "$mode"
  printf 'SRIOV=%q\n' "$sriov"
  printf 'SCENARIOS=%q\n' "${scenarios[*]-}"
  printf 'KVER=%q\n' "$kver"
  printf 'KMODS=%q\n' "$l1p$cache/amd64/root/lib/modules/$kver"
  printf 'L2_KERNEL_AMD64=%q\n' "$l1p$cache/amd64/root/boot/vmlinuz-$kver"
  printf 'L2_INITRD_AMD64=%q\n' "$l1p$l2_initrd_amd64"
  printf 'L2_KERNEL_S390X=%q\n' "$l1p$cache/s390x/root/boot/vmlinuz-$kver_s390x"
  printf 'L2_INITRD_S390X=%q\n' "$l1p$l2_initrd_s390x"
} >"$xchg/env"

# Three e1000e functions on the root bus, each in its own IOMMU group: 00:04.0-00:06.0.
# Two conventional e1000 behind a PCIe-to-PCI bridge (00:07.0, secondary bus 01) share the
# bridge's IOMMU group (the IOMMU sees the bridge's requester id for both): 01:01.0, 01:02.0.
# L1 must not outlive this script even when it is killed with SIGKILL (no trap runs then):
# the kernel sends SIGKILL to timeout when this shell dies, and to QEMU when timeout dies;
# timeout itself ends L1 after the overall limit.
# With SR-IOV, an igb (82576, up to 7 VFs) behind a root port of its own (00:08.0, bus 02).
sriov_dev=()
[ "$sriov" = 1 ] && sriov_dev=(-device pcie-root-port,id=rp8,chassis=8,addr=08.0 -device igb,bus=rp8,romfile=)
setpriv --pdeathsig KILL timeout -k 10 $((total_timeout + 30)) \
  setpriv --pdeathsig KILL "${l0_cmd[@]}" -accel tcg,thread=multi -M q35 -cpu max -smp 2 -m 6144 \
  -device intel-iommu,intremap=on \
  -kernel "$hp$cache/amd64/root/boot/vmlinuz-$kver" -initrd "$hp$l1_initrd" \
  -append "console=ttyS0 intel_iommu=on iommu=pt quiet loglevel=3 panic=-1$l1_append" \
  -virtfs local,path=$hp/,mount_tag=root,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$hp$xchg,mount_tag=xchg,security_model=none" \
  -nic none -device e1000e,addr=04.0 -device e1000e,addr=05.0 -device e1000e,addr=06.0 \
  -device pcie-pci-bridge,id=br7,addr=07.0 \
  -device e1000,bus=br7,addr=01.0 -device e1000,bus=br7,addr=02.0 \
  "${sriov_dev[@]}" \
  -display none -monitor none -serial "file:$hp$xchg/l1-console.log" \
  -no-reboot -pidfile "$hp$xchg/l1.pid" </dev/null &
qemu_pid=$!
sleep 1
tail -n +1 -F --pid=$$ "$xchg/l1-console.log" 2>/dev/null &
tail_pid=$!

# L1 powers itself off when done; everything it does has its own timeouts, this is the
# last line of defence.
deadline=$((SECONDS + total_timeout))
while kill -0 "$qemu_pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 2
done
timed_out=0
if kill -0 "$qemu_pid" 2>/dev/null; then
  timed_out=1
  echo "live-lab: L1 did not finish within ${total_timeout}s"
fi
sleep 1
stop_l1
qemu_pid=
# L1's phases, as it measured them.
[ -f "$xchg/phases" ] && cat "$xchg/phases"
phase l1

passed=0 failed=0
if [ -f "$xchg/results" ]; then
  echo "live-lab: results"
  while read -r verdict name secs rest; do
    printf '  %-4s %-28s %4ss %s\n' "$verdict" "$name" "$secs" "$rest"
    case $verdict in
      PASS) passed=$((passed + 1)) ;;
      *) failed=$((failed + 1)) ;;
    esac
  done <"$xchg/results"
fi
if [ ! -f "$xchg/done" ]; then
  echo "live-lab: FAILED: L1 did not finish its run$([ "$timed_out" = 1 ] && echo " (timeout)")"
  failed=$((failed + 1))
fi
if [ "$passed" -eq 0 ] && [ "$failed" -eq 0 ]; then
  echo "live-lab: FAILED: no scenario ran"
  failed=1
fi
# No VM may outlive the lab.
stop_l1
qemu_pid=
leftover=$(pgrep -f "$xchg")
if [ -n "$leftover" ]; then
  echo "live-lab: FAILED: processes of the lab still running:"
  ps -o pid,args -p "$(tr '\n' ',' <<<"$leftover" | sed 's/,$//')"
  for p in $leftover; do kill -9 "$p" 2>/dev/null; done
  failed=$((failed + 1))
fi
trap - EXIT
if [ "$failed" -eq 0 ] && [ "${ZR_LAB_KEEP-}" != 1 ]; then
  rm -rf "$xchg"
else
  echo "live-lab: logs kept in $xchg"
fi
echo "live-lab: total $((SECONDS - t_start))s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
