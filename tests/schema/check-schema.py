#!/usr/bin/env python3
"""Checks schema/inventory.schema.json against the loader's test data.

Every file in examples/ and tests/data/inventory/ok/ must validate, and each
bad file listed in REJECTED must be rejected.  The loader rejects every bad
file already; the list holds those a schema can catch at all (duplicate keys
vanish in any YAML-to-JSON load, and cross-item rules such as the same source
twice on one host are beyond JSON Schema).

Usage: check-schema.py SOURCE_ROOT
"""

import json
import pathlib
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    sys.exit(f"check-schema.py needs python3-jsonschema and python3-yaml: {e}")

# Bad inventories the schema must reject, one per concern it can express.
REJECTED = [
    "pool-and-source",
    "pool-count-zero",
    "pool-count-per-device",
    "pool-empty-selector",
    "pool-members-and-selector",
    "pool-names",
    "boot-order-zero",
    "interface-guest-address-zero-slot",
    "rom-empty",
    "rom-file-list",
    "rom-scalar",
    "rom-unknown-key",
    "fid-too-big",
    "guest-address-malformed",
    "guest-address-zero-slot",
    "guest-name-empty",
    "guests-with-hosts",
    "host-without-uri",
    "mac-malformed",
    "mac-multicast",
    "mac-zero",
    "managed-word",
    "managerid-on-qbh",
    "managerid-too-big",
    "merge-key",
    "missing-source",
    "missing-version",
    "no-guests-no-hosts",
    "not-a-mapping",
    "profileid-not-ascii",
    "profileid-on-qbg",
    "profileid-quote",
    "profileid-too-long",
    "prune-on",
    "qbg-missing-typeid",
    "qbh-without-profileid",
    "source-malformed",
    "source-null",
    "source-out-of-range",
    "type-guest-list",
    "type-guests-list",
    "type-host-scalar",
    "type-hostdev-scalar",
    "type-hostdevs-mapping",
    "type-uri-list",
    "type-virtualport-scalar",
    "type-zpci-list",
    "typeid-too-big",
    "uid-negative",
    "uid-octal",
    "uid-too-big",
    "uid-zero",
    "unknown-key-guest",
    "unknown-key-host",
    "unknown-key-hostdev",
    "unknown-key-interface",
    "unknown-key-top",
    "unknown-key-virtualport",
    "unknown-key-zpci",
    "uri-empty",
    "uri-with-hosts",
    "uuid-malformed",
    "version-2",
    "version-string",
    "virtualport-unknown-type",
    "virtualport-without-type",
    "vlan-too-big",
    "vlan-with-virtualport",
    "zpci-empty",
]


class TextLoader(yaml.SafeLoader):
    """PyYAML follows YAML 1.1: it would read an unquoted 0002:00:00.0 as a
    base-60 number, 0x10 as 16 and yes as True, and apply '<<' merges.  The
    inventory reads scalars by their text, so keep only the null resolver:
    every other plain scalar arrives as the string that was written."""


TextLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:null"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path):
    with open(path, "rb") as f:
        return yaml.load(f, Loader=TextLoader)


def main():
    root = pathlib.Path(sys.argv[1])
    with open(root / "schema" / "inventory.schema.json") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    failures = []

    good = sorted((root / "examples").glob("*.yaml"))
    good += sorted((root / "tests" / "data" / "inventory" / "ok").glob("*.yaml"))
    if len(good) < 10:
        failures.append(f"only {len(good)} valid inventories found under {root}")
    for path in good:
        # best_match looks inside oneOf for the error that explains most.
        e = jsonschema.exceptions.best_match(validator.iter_errors(load(path)))
        if e is not None:
            where = "/".join(str(p) for p in e.absolute_path) or "(top)"
            failures.append(f"{path.relative_to(root)}: {where}: {e.message}")

    if len(REJECTED) < 10:
        failures.append(f"only {len(REJECTED)} bad samples listed")
    bad_dir = root / "tests" / "data" / "inventory" / "bad"
    for name in REJECTED:
        path = bad_dir / f"{name}.yaml"
        if not path.exists():
            failures.append(f"{path.relative_to(root)}: listed but missing")
        elif validator.is_valid(load(path)):
            failures.append(f"{path.relative_to(root)}: the schema accepts it")

    for line in failures:
        print(line, file=sys.stderr)
    print(f"{len(good)} valid inventories, {len(REJECTED)} rejected samples checked")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
