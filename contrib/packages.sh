# Debian packages the project needs, in one place: sourced by contrib/demo.sh,
# tests/run-all.sh, tests/debian/ and tests/live-lab/run.sh (bash).
#
#   zr_packages demo     what contrib/demo.sh needs: build the tool (meson setup with its
#                        defaults, so the test framework too) and run an embedded lab
#   zr_packages test     demo's, plus what the plain build's suites need (tests/run-all.sh)
#   zr_packages full     test's, plus what the other stages of tests/run-all.sh --full need:
#                        valgrind, the fuzz smoke run, the corpus, the live lab, the
#                        Debian package, the Debian roots
#   zr_install SET       apt-get install the packages of SET this machine lacks (as root);
#                        prints what it installs; nothing when all are there
#
# zr_packages prints one name a line. Names differ between releases only where noted;
# supported: Debian 12 (bookworm) and Debian 13 (trixie). Each set is a superset of the
# one before by construction, so a build dependency added for the tests cannot be
# missing from the demo (`libsystemd-dev` once was).

# The build and an embedded lab (qemu:///embed needs the daemon's QEMU driver, not a
# running daemon). meson's default -Dtests=true needs criterion and python3.
_zr_demo_packages=(
  gcc libc6-dev pkg-config meson ninja-build
  libyaml-dev libvirt-dev libxml2-dev libsystemd-dev libcriterion-dev python3
  libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-misc
)

# The plain build's suites (tests/run-all.sh without --full).
_zr_test_packages=(
  # libvirtd on qemu:///system: node devices (nodedev driver), its QEMU driver
  libvirt-daemon-driver-nodedev
  # the suites: schema checks, YAML in Python, xmllint, man pages, ps/pkill
  python3-jsonschema python3-yaml libxml2-utils scdoc procps
  # what users meet: man -l renders the man pages, script gives the colour tests a
  # terminal, bash-completion.pc says where the completion is installed
  groff-base man-db bsdutils util-linux bash-completion
  # export's corpus test defines x86 and ppc64 guests too; promtool lints the
  # metrics file (Debian 13 has it in a package of its own, 12 in prometheus);
  # systemd-analyze verifies the units in contrib/systemd.
  qemu-system-x86 qemu-system-ppc promtool systemd
  # the Ansible collection's tests (ansible-playbook, ansible-doc, ansible-test)
  ansible-core
)

# The other stages of tests/run-all.sh --full.
_zr_full_packages=(
  # valgrind memcheck
  valgrind
  # the Debian package's stage (dpkg-buildpackage with debhelper's dh, then apt-get install)
  debhelper dpkg-dev build-essential
  # the corpus stage unpacks libvirt's source packages (apt-get source; dpkg-dev above)
  xz-utils
  # the live lab's initramfs images (init, insmod, cpio; the host needs no kmod)
  busybox-static
  # the fuzz targets (libFuzzer): clang and the runtime of its version, see below
  clang
  # the stages in cached Debian roots (tests/debian/root.sh)
  debootstrap
  # the benchmarks' python-libvirt loops (bench/python-loop.py, bench/apply-loop.py)
  python3-libvirt
)

# libFuzzer ships with clang's runtime, named for clang's major version: Debian 12 has
# clang 14 (libclang-rt-14-dev), Debian 13 clang 19 (libclang-rt-19-dev). Which one is
# read from the clang package, installed or (after apt-get update) in the archive.
zr_clang_runtime() {
  local v
  v=$(dpkg-query -W -f='${Depends}' clang 2>/dev/null | grep -o 'clang-[0-9]\+' | head -n 1)
  [ -n "$v" ] ||
    v=$(apt-cache depends clang 2>/dev/null | grep -o 'Depends: clang-[0-9]\+' | head -n 1)
  v=${v##*clang-}
  [ -n "$v" ] && echo "libclang-rt-$v-dev"
}

# libvirt 11 (Debian 13) moved drivers out of libvirt-daemon into packages of their own;
# libvirtd itself stays in libvirt-daemon. On Debian 12 the nodedev driver is part of
# libvirt-daemon and has no package: left out there.
_zr_has_package() {
  apt-cache show --no-all-versions "$1" >/dev/null 2>&1 ||
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

_zr_test() {
  local p
  for p in "${_zr_test_packages[@]}"; do
    case $p in
      libvirt-daemon-driver-nodedev)
        # bookworm: inside libvirt-daemon; unknown package lists: ask for it anyway
        if _zr_has_package "$p" || ! _zr_has_package libvirt-daemon; then echo "$p"; fi
        ;;
      promtool)
        if _zr_has_package promtool; then echo promtool; else echo prometheus; fi
        ;;
      *) echo "$p" ;;
    esac
  done
}

zr_packages() {
  case ${1-} in
    demo) printf '%s\n' "${_zr_demo_packages[@]}" ;;
    test)
      printf '%s\n' "${_zr_demo_packages[@]}"
      _zr_test
      ;;
    full)
      printf '%s\n' "${_zr_demo_packages[@]}"
      _zr_test
      printf '%s\n' "${_zr_full_packages[@]}"
      zr_clang_runtime
      ;;
    *)
      echo "zr_packages: demo, test or full, not '${1-}'" >&2
      return 2
      ;;
  esac
}

# zr_missing SET: the packages of SET not installed, without asking the network ("?" when
# a name cannot be known before apt-get update: clang's runtime while clang is missing).
zr_missing() {
  _zr_missing $(zr_packages "$1")
  if [ "$1" = full ] && [ -z "$(zr_clang_runtime)" ]; then echo "?"; fi
}

# Names in the list that dpkg does not have installed.
_zr_missing() {
  local p
  for p in "$@"; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" = "ii " ] || echo "$p"
  done
}

# zr_install SET [--quiet]: installs what is missing (--quiet: apt's output only when it
# fails). The list is made again after apt-get update, since a name that depends on the
# archive (clang's runtime) needs its package lists.
zr_install() {
  local set=$1 quiet=${2-} missing log rc
  mapfile -t missing < <(_zr_missing $(zr_packages "$set"))
  if [ ${#missing[@]} -eq 0 ] && { [ "$set" != full ] || [ -n "$(zr_clang_runtime)" ]; }; then
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    echo "packages missing and not root to install them: ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get update -q </dev/null >/dev/null; then
    echo "apt-get update failed" >&2
    return 1
  fi
  mapfile -t missing < <(_zr_missing $(zr_packages "$set"))
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing: ${missing[*]}"
  if [ "$quiet" != --quiet ]; then
    apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
    return
  fi
  log=$(mktemp "${TMPDIR:-/tmp}/zr-apt.XXXXXX")
  apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null >"$log" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || tail -n 30 "$log" >&2
  rm -f "$log"
  return "$rc"
}
