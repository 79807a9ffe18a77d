#!/bin/bash
# Cached minimal Debian roots for the stages that need a release other than the machine's,
# or a machine that has nothing installed (tests/run-all.sh --full; the live lab).
#
#   tests/debian/root.sh base RELEASE              the minbase root (debootstrap), made once
#   tests/debian/root.sh with RELEASE NAME [--set demo|test] [PKG...]
#                                                  a named root: a copy of base with PKGs and the
#                                                  set's packages (contrib/packages.sh) installed;
#                                                  later calls add what is missing
#   tests/debian/root.sh copy RELEASE DEST         a fresh copy of the base root in DEST
#   tests/debian/root.sh run DIR [--bind SRC:DST]... -- CMD [ARG...]
#                                                  CMD as root inside DIR, in a private mount
#                                                  namespace (nothing mounted leaks out)
#   tests/debian/root.sh tree DEST                 the checkout's tracked files into DEST, as
#                                                  a clean clone has them (no build output)
#   tests/debian/root.sh mirror                    the Debian mirror the machine uses
#
# base and with print the root's path on stdout (everything else goes to stderr).
#
# Where: $ZR_ROOT_CACHE (default /var/cache/zpci-reconcile/roots), one directory per release:
#   RELEASE/base   debootstrap --variant=minbase RELEASE base MIRROR, nothing added
#   RELEASE/NAME   named roots (tests/run-all.sh uses "ci"; the live lab its own name)
#   archives/RELEASE  the .deb files apt downloaded, bind-mounted on every root's
#                  /var/cache/apt/archives by `run`, so a fresh root downloads nothing twice
# MIRROR is the first `deb` source of the machine's own release in /etc/apt (sources.list,
# sources.list.d/*.list or *.sources), or $ZR_DEBIAN_MIRROR.
#
# Safe to run twice at once: a lock per release serialises building, and a root is built in
# DIR.tmp and renamed when complete (a named root that was being changed when its run died
# has no stamp and is made again), so a partial root is never taken for a finished one.
# `run` gives the root its own /run (tmpfs: its own daemons' sockets and pid files), the
# machine's /proc, /sys (without the cgroup hierarchies below it: a daemon in the root
# must not share the machine's cgroups) and /dev (with /dev/pts), a copy of
# /etc/resolv.conf, and a policy-rc.d that keeps packages from starting daemons at install.
# Whatever CMD leaves running in the root (a daemon it started) is ended when CMD returns;
# so runs in one root take turns (a lock file in it).

set -euo pipefail

cache=${ZR_ROOT_CACHE:-/var/cache/zpci-reconcile/roots}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$(cd "$here/../.." && pwd)
self="$here/root.sh"

log() { echo "root.sh: $*" >&2; }
die() {
  log "$*"
  exit 1
}

usage() {
  sed -n "5,16p" "$self" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# First deb source serving the machine's own release: its URI.
mirror() {
  local codename f uri
  [ -n "${ZR_DEBIAN_MIRROR-}" ] && { echo "$ZR_DEBIAN_MIRROR"; return; }
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME-}")
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    # deb [options] URI SUITE COMPONENT...
    uri=$(sed -E 's/\[[^]]*\]//' "$f" |
      awk -v s="$codename" '$1 == "deb" && $3 == s { print $2; exit }')
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: Types, URIs, Suites (and Enabled: no)
    uri=$(awk -v s="$codename" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " s " ") && enabled != "no")
          { print uris; found = 1; exit }
        types = uris = suites = enabled = ""
      }
      /^[[:space:]]*$/ { flush(); next }
      /^Types:/   { sub(/^Types:[[:space:]]*/, ""); types = $0 }
      /^URIs:/    { sub(/^URIs:[[:space:]]*/, ""); split($0, u, " "); uris = u[1] }
      /^Suites:/  { sub(/^Suites:[[:space:]]*/, ""); suites = $0 }
      /^Enabled:/ { sub(/^Enabled:[[:space:]]*/, ""); enabled = tolower($0) }
      END { if (!found) flush() }' "$f")
    [ -n "$uri" ] && { echo "${uri%/}"; return; }
  done
  die "no deb source for $codename in /etc/apt; set ZR_DEBIAN_MIRROR"
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mount)"
}

check_release() {
  [[ "$1" =~ ^[a-z]+$ ]] || die "not a release codename: '$1'"
}

# with_lock RELEASE CMD...: CMD holding the release's lock (waits for another run's build).
with_lock() {
  local release=$1
  shift
  mkdir -p "$cache/$release" "$cache/archives/$release/partial"
  (
    flock 9
    "$@"
  ) 9>"$cache/$release/.lock"
}

make_base() {
  local release=$1 dir="$cache/$1/base" m
  if [ -f "$dir/etc/os-release" ]; then
    rm -rf "$dir.tmp"    # left by a run that died before its rename: base is complete
    return 0
  fi
  command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
  m=$(mirror)
  rm -rf "$dir.tmp"
  log "debootstrap --variant=minbase $release $dir $m"
  local t0=$SECONDS
  # Its packages land in the shared archive too, for the named roots' later installs.
  mkdir -p "$dir.tmp/var/cache/apt/archives"
  cp -a "$cache/archives/$release/." "$dir.tmp/var/cache/apt/archives/" 2>/dev/null || true
  if ! debootstrap --variant=minbase "$release" "$dir.tmp" "$m" >"$cache/$release/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/$release/debootstrap.log" >&2
    die "debootstrap $release failed (log: $cache/$release/debootstrap.log)"
  fi
  cp -an "$dir.tmp/var/cache/apt/archives/"*.deb "$cache/archives/$release/" 2>/dev/null || true
  # A fresh root, as a user's fresh machine has it: no downloaded packages left over.
  rm -f "$dir.tmp/var/cache/apt/archives/"*.deb
  mv "$dir.tmp" "$dir"
  log "base $release ready in $((SECONDS - t0))s"
}

# What the root lacks of SET and PKG...: SET's names are worked out inside the root
# (contrib/packages.sh, by the root's own package lists).
missing_in() {
  local dir=$1 set=$2 p
  shift 2
  for p in "$@"; do
    [ "$(chroot "$dir" dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || echo "$p"
  done
  [ -z "$set" ] || "$self" run "$dir" --bind "$src/contrib:/run/zr-contrib" -- \
    bash -c '. /run/zr-contrib/packages.sh && zr_missing "$1"' bash "$set"
}

make_named() {
  local release=$1 name=$2 dir="$cache/$1/$2" set='' missing
  shift 2
  if [ "${1-}" = --set ]; then
    set=$2
    shift 2
  fi
  make_base "$release"
  if [ ! -f "$dir/.zr-complete" ]; then
    # never made, or a run died while changing it: start again from base
    rm -rf "$dir" "$dir.tmp"
    log "copying base to $dir"
    cp -a --reflink=auto "$cache/$release/base" "$dir.tmp"
    mv "$dir.tmp" "$dir"
    : >"$dir/.zr-complete"
  fi
  missing=$(missing_in "$dir" "$set" "$@" | tr '\n' ' ')
  [ -z "${missing// /}" ] && return 0
  log "$release/$name: installing ${missing% }"
  rm -f "$dir/.zr-complete"
  "$self" run "$dir" --bind "$src/contrib:/run/zr-contrib" -- bash -c '
    set -e
    . /run/zr-contrib/packages.sh
    set=$1
    shift
    export DEBIAN_FRONTEND=noninteractive
    if [ $# -gt 0 ]; then
      apt-get update -q </dev/null >/dev/null
      apt-get install -y -q --no-install-recommends "$@" </dev/null
    fi
    [ -z "$set" ] || zr_install "$set"' bash "$set" "$@" >&2 ||
    die "$release/$name: installing packages failed"
  printf '%s\n' "${set:+--set $set}" "$@" >"$dir/.zr-complete"
}

copy_base() {
  local release=$1 dest=$2
  with_lock "$release" make_base "$release"
  [ ! -e "$dest" ] || [ -z "$(ls -A "$dest")" ] || die "$dest exists and is not empty"
  mkdir -p "$dest"
  cp -a --reflink=auto "$cache/$release/base/." "$dest/"
}

# run DIR [--bind SRC:DST]... -- CMD...: in a new mount namespace whose mounts are private,
# so they go away with its last process and the machine never sees them.
run_in() {
  local dir binds=() release
  dir=$(cd "$1" && pwd) || die "no root at $1"
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --bind) binds+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) usage ;;
    esac
  done
  [ $# -gt 0 ] || usage
  [ -x "$dir/bin/sh" ] || die "$dir is not a root filesystem"
  # One run at a time in a root: the end of a run ends every process left in the root,
  # a second run's included.
  exec 8>"$dir/.zr-run-lock"
  if ! flock -n 8; then
    log "waiting for another run in $dir"
    flock 8
  fi
  release=$(. "$dir/etc/os-release" && echo "${VERSION_CODENAME-}")
  mkdir -p "$cache/archives/$release/partial"
  binds=("$cache/archives/$release:/var/cache/apt/archives" "${binds[@]}")
  # the root's apt and the mirror: name resolution as the machine has it
  cp -L /etc/resolv.conf "$dir/etc/resolv.conf" 2>/dev/null || true
  # exit 101: "action forbidden", daemons are started by the tests that want them
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  unshare --mount --propagation private -- bash -c '
    set -e
    dir=$1
    shift
    # the root a mount point of its own: libvirt makes "/" a slave mount in the namespace
    # it gives each guest (qemu.conf namespaces), which fails (EINVAL) on a plain chroot
    mount --bind "$dir" "$dir"
    mount -t proc proc "$dir/proc"
    mount --bind /sys "$dir/sys"
    mount --rbind /dev "$dir/dev"
    mount -t tmpfs -o mode=755 tmpfs "$dir/run"
    mkdir -p "$dir/run/lock"
    while [ "$1" != -- ]; do
      src=${1%%:*} dst=$dir/${1#*:}
      mkdir -p "$dst"
      mount --bind "$src" "$dst"
      shift
    done
    shift
    set +e
    chroot "$dir" /usr/bin/env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8 \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin ${CI:+CI=$CI} "$@"
    rc=$?
    # What CMD left running in the root (daemons, guests) ends with it: TERM, then KILL.
    inside() {
      for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$dir" ] && echo "${p#/proc/}"
      done
    }
    left=$(inside)
    if [ -n "$left" ]; then
      kill $left 2>/dev/null
      for _ in $(seq 100); do
        left=$(inside)
        [ -z "$left" ] && break
        sleep 0.1
      done
      [ -z "$left" ] || kill -KILL $left 2>/dev/null
    fi
    exit "$rc"
  ' bash "$dir" "${binds[@]}" -- "$@"
}

# The files a clean clone has: git's tracked files as the work tree has them (edits not
# yet committed included, untracked and ignored files not); a tree without git: all but
# build output.
tree() {
  local dest=$1
  mkdir -p "$dest"
  if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$src" && git ls-files -z |
      xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
      tar --null -T - -cf -) | tar -C "$dest" -xf -
  else
    tar -C "$src" --exclude='./build*' --exclude='./obj-*' --exclude=./demo -cf - . |
      tar -C "$dest" -xf -
  fi
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case $cmd in
  mirror) mirror ;;
  tree)
    [ $# -eq 1 ] || usage
    tree "$1"
    ;;
  base)
    [ $# -eq 1 ] || usage
    need_root
    check_release "$1"
    with_lock "$1" make_base "$1"
    echo "$cache/$1/base"
    ;;
  with)
    [ $# -ge 2 ] || usage
    need_root
    check_release "$1"
    [[ "$2" =~ ^[a-z0-9][a-z0-9-]*$ ]] && [ "$2" != base ] || die "not a root name: '$2'"
    with_lock "$1" make_named "$@"
    echo "$cache/$1/$2"
    ;;
  copy)
    [ $# -eq 2 ] || usage
    need_root
    check_release "$1"
    copy_base "$1" "$2"
    ;;
  run)
    [ $# -ge 3 ] || usage
    need_root
    run_in "$@"
    ;;
  -h | --help) usage ;;
  *) usage ;;
esac
