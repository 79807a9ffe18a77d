# Shared by the benchmarks that define guests in a libvirtd (plan.sh, apply.sh).
# Source it; it defines functions only.

# function_domain NAME: the PCI domain (4 hex digits) of the function guest NAME
# holds: its numeric suffix (decimal, zero-padded: zrplan-0010 -> 000a).
function_domain() {
    printf '%04x' "$((10#${1##*-}))"
}

# define_hostdev_guests URI WORK BUS NAME...: one inactive s390x guest per NAME in
# the libvirtd at URI (one virsh process), each holding the zPCI hostdev
# DOMAIN:BUS:00.0 (function_domain; BUS two hex digits) with uid 1, fid 0.
# The domain XML files are written to WORK.
define_hostdev_guests() {
    local uri=$1 work=$2 bus=$3 name
    shift 3
    for name in "$@"; do
        cat >"$work/$name.xml" <<XML
<domain type='qemu'><name>$name</name><memory unit='KiB'>131072</memory><vcpu>1</vcpu>
<os><type arch='s390x' machine='s390-ccw-virtio'>hvm</type></os>
<devices><emulator>/usr/bin/qemu-system-s390x</emulator>
<hostdev mode='subsystem' type='pci' managed='yes'><driver name='vfio'/>
<source><address domain='0x$(function_domain "$name")' bus='0x$bus' slot='0x00' function='0x0'/></source>
<address type='pci'><zpci uid='0x0001' fid='0x00000000'/></address></hostdev>
</devices></domain>
XML
        echo "define $work/$name.xml"
    done | virsh_batch "$uri"
}

# virsh_batch URI: runs the virsh commands on stdin, one a line, on one
# connection.  Not as one command string: an argument is at most 128 KiB
# (MAX_ARG_STRLEN), which a few thousand guests' commands exceed.  Errors go
# to stderr; so does a failed command's output.
virsh_batch() {
    virsh -q -c "$1" >/dev/null
}

# daemon_cpu_ns: the CPU time libvirtd's threads (qemu:///system's daemon,
# /run/libvirtd.pid) have used so far, in nanoseconds from
# /proc/PID/task/*/schedstat; 0 when the pid file or /proc cannot tell.
# Two readings around a run give the daemon's share of it.
daemon_cpu_ns() {
    local pid
    pid=$(cat /run/libvirtd.pid 2>/dev/null) || { echo 0; return; }
    cat /proc/"$pid"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
