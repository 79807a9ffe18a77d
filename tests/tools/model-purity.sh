#!/bin/sh
# Usage: model-purity.sh NM LIBZR-MODEL.a
# Fails when an object of the model library references a libvirt (vir*) or
# libxml2 (xml*) symbol: the model (values, devices, inventory rules, the
# plan, errors) must build and run without either (issue 24).
set -eu
nm_tool=$1
lib=$2
"$nm_tool" -A "$lib" >/dev/null || { echo "cannot read $lib" >&2; exit 1; }
objects=$("$nm_tool" -A "$lib" | cut -d: -f2 | sort -u | wc -l)
if [ "$objects" -lt 5 ]; then
    echo "$lib holds $objects objects; expected the model's sources" >&2
    exit 1
fi
bad=$("$nm_tool" -A -u "$lib" | grep -E ' U (vir|xml)' || true)
if [ -n "$bad" ]; then
    echo "the model library references libvirt/libxml2:" >&2
    echo "$bad" >&2
    exit 1
fi
echo "$objects objects in $lib, none references vir* or xml*"
