#!/bin/bash
# Make this machine able to run QEMU guests through libvirt, and start libvirtd on
# qemu:///system. Idempotent: a second run finds everything in place and a running
# daemon left alone. Used by tests/run-all.sh and by tests/lab.py (SystemDaemon).
#
#   tests/start-libvirtd.sh                 prepare the host, start virtlogd + libvirtd
#   tests/start-libvirtd.sh --prepare-only  accounts, directories and qemu.conf only
#
# The machines this runs on have no systemd and no libvirt-daemon-system package, so
# what that package would set up is done here by hand:
#   - the libvirt-qemu account: running as root, libvirt (the daemon and the embedded
#     qemu:///embed driver alike) refuses to initialise without it;
#   - /etc/libvirt/qemu.conf running guests as root without relabelling (no VFIO, no
#     SELinux/AppArmor here; tests only need guests that boot and crash);
#   - the runtime and log directories.
#
# Prints one line per daemon on stdout, "NAME PID started|running", so a caller can stop
# only what it started. Exit status: 0 ready, 77 not root (meson's "skipped"), 1 failure.

set -euo pipefail

prepare_only=0
case "${1-}" in
  --prepare-only) prepare_only=1 ;;
  '') ;;
  *) echo "usage: $0 [--prepare-only]" >&2; exit 1 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "start-libvirtd: not root, cannot prepare qemu:///system" >&2
  exit 77
fi

# First start probes every installed qemu-system-* binary (~30 s here); later starts reuse
# the capability cache.
ready_timeout=${ZR_LIBVIRTD_TIMEOUT:-300}
conf=/etc/libvirt/qemu.conf

log() { echo "start-libvirtd: $*" >&2; }

for cmd in libvirtd virtlogd virsh; do
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
    log "$cmd not found (install libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients;" \
      "contrib/packages.sh has the list for each Debian release)"
    exit 1
  fi
done
export PATH="$PATH:/usr/sbin:/sbin"

getent group kvm >/dev/null || groupadd --system kvm
getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
if ! getent passwd libvirt-qemu >/dev/null; then
  useradd --system --no-create-home --home-dir /var/lib/libvirt \
    --shell /usr/sbin/nologin --gid libvirt-qemu --groups kvm libvirt-qemu
fi

mkdir -p /var/log/libvirt/qemu /var/run/libvirt /var/lib/libvirt /etc/libvirt

# Keep whatever else qemu.conf says; only our three keys are forced. The file is rewritten
# only when it would change, so a running daemon is not told about a change it never got.
want_conf() {
  if [ -f "$conf" ]; then
    grep -Ev '^[[:space:]]*(user|group|dynamic_ownership)[[:space:]]*=' "$conf" \
      | grep -v '^# zpci-reconcile tests:' || true
  fi
  echo '# zpci-reconcile tests: guests run as root, no relabelling (tests/start-libvirtd.sh)'
  echo 'user = "root"'
  echo 'group = "root"'
  echo 'dynamic_ownership = 0'
}
new_conf=$(want_conf)
if [ ! -f "$conf" ] || [ "$new_conf" != "$(cat "$conf")" ]; then
  printf '%s\n' "$new_conf" >"$conf.zr-tmp"
  mv "$conf.zr-tmp" "$conf"
  conf_changed=1
  log "wrote $conf"
else
  conf_changed=0
fi

[ "$prepare_only" -eq 1 ] && exit 0

# pidfile and process name must agree: a stale pidfile whose number was reused by some
# other process must not count as a running daemon.
running_pid() {
  local name=$1 pid
  pid=$(cat "/run/$name.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  echo "$pid"
}

start_daemon() {
  local name=$1 pid
  if pid=$(running_pid "$name"); then
    echo "$name $pid running"
    if [ "$conf_changed" -eq 1 ] && [ "$name" = libvirtd ]; then
      log "libvirtd $pid was started before $conf changed; restart it to apply"
    fi
    return 0
  fi
  # -d daemonises; it must not keep our stdout/stderr (a pipe when called from a test),
  # or the caller would wait for EOF forever.
  "$name" -d </dev/null >>"/var/log/libvirt/$name.out" 2>&1
  for _ in $(seq 50); do
    if pid=$(running_pid "$name"); then
      echo "$name $pid started"
      return 0
    fi
    sleep 0.1
  done
  log "$name did not start; see /var/log/libvirt/$name.out"
  exit 1
}

start_daemon virtlogd
start_daemon libvirtd

# The socket exists before the QEMU driver has probed its binaries; a connection made in
# that window blocks until probing ends, so one long attempt is as good as many short ones.
deadline=$((SECONDS + ready_timeout))
until err=$(timeout "$ready_timeout" virsh -c qemu:///system version 2>&1 >/dev/null); do
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "qemu:///system not ready after ${ready_timeout}s: $err"
    exit 1
  fi
  sleep 0.5
done
