#!/bin/sh
# Fetches Debian's libvirt source packages (9.0 from bookworm, 11.3 from
# trixie when the mirror has it) with `apt-get source`, through a private
# apt configuration: its own sources list, state and cache under DIR, so the
# machine's apt (lists, cache, lock) is never touched.  The mirror is the
# one the machine already uses (from /etc/apt/sources.list*).
#
#   fetch.sh DIR      -> DIR/src/libvirt-<version>/ for each release it got
#
# Exits 0 when at least one release was fetched (prints which), 77 when none
# could be (no network, no deb-src on the mirror): the caller skips then.
set -u

dir=${1:?usage: fetch.sh DIR}
mkdir -p "$dir/src" "$dir/apt/lists/partial" "$dir/apt/cache/archives/partial" "$dir/apt/etc"

# The mirror the machine uses for Debian (deb.debian.org when none found).
mirror=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
            /etc/apt/sources.list.d/*.list 2>/dev/null |
         grep -oE 'https?://[^ ]*/debian/?' | grep -v security | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

got=0
for suite in bookworm trixie; do
    if ls -d "$dir/src/$suite"/libvirt-*/tests >/dev/null 2>&1; then
        echo "fetch: $suite: already in $dir/src/$suite"
        got=$((got + 1))
        continue
    fi
    cat >"$dir/apt/etc/sources.list" <<EOF
deb-src [signed-by=$keyring] $mirror $suite main
EOF
    : >"$dir/apt/etc/preferences"
    set -- -o Dir::Etc::SourceList="$dir/apt/etc/sources.list" \
        -o Dir::Etc::SourceParts=/nonexistent \
        -o Dir::Etc::Preferences="$dir/apt/etc/preferences" \
        -o Dir::Etc::PreferencesParts=/nonexistent \
        -o Dir::State="$dir/apt" -o Dir::State::Lists="$dir/apt/lists" \
        -o Dir::State::status=/var/lib/dpkg/status \
        -o Dir::Cache="$dir/apt/cache" -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root -o Acquire::Retries=2
    if ! apt-get "$@" -q update >"$dir/apt/update-$suite.log" 2>&1; then
        echo "fetch: $suite: apt-get update failed (see $dir/apt/update-$suite.log)"
        continue
    fi
    mkdir -p "$dir/src/$suite"
    if ! (cd "$dir/src/$suite" && apt-get "$@" -q source "libvirt/$suite") \
            >"$dir/apt/source-$suite.log" 2>&1; then
        echo "fetch: $suite: apt-get source failed (see $dir/apt/source-$suite.log)"
        continue
    fi
    echo "fetch: $suite: $(ls -d "$dir/src/$suite"/libvirt-*/ | head -n1)"
    got=$((got + 1))
done
[ "$got" -gt 0 ] || exit 77
exit 0
