#!/usr/bin/env python3
"""Checks that Cargo.toml's `rust-version` is at least every locked dependency's own.

No second toolchain can be installed where CI runs, so the minimum Rust version cannot be
tested by building with it; instead it is read from the dependencies: each registry package
in Cargo.lock declares its own `rust-version` in the Cargo.toml cargo downloaded. Packages
cargo never downloaded (other platforms' crates) are skipped: they are not built here.

Prints the highest dependency minimum and the packages that set it; exits 1 if
Cargo.toml's `rust-version` is lower. Run after a build, so the sources are downloaded.
"""

import glob
import os
import sys
import tomllib


def version(text):
    return tuple(int(part) for part in text.split("."))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        ours = tomllib.load(f)["package"]["rust-version"]
    with open(os.path.join(root, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    sources = glob.glob(os.path.join(cargo_home, "registry", "src", "*"))

    minimums = {}
    for package in lock["package"]:
        if not package.get("source", "").startswith("registry+"):
            continue
        name = f"{package['name']}-{package['version']}"
        for src in sources:
            manifest = os.path.join(src, name, "Cargo.toml")
            if os.path.exists(manifest):
                with open(manifest, "rb") as f:
                    declared = tomllib.load(f).get("package", {}).get("rust-version")
                # `rust-version.workspace = true` is resolved when a crate is packaged,
                # so a published manifest holds a string; anything else says nothing.
                if isinstance(declared, str):
                    minimums[name] = declared
                break

    if not minimums:
        print("dependency-msrv: no downloaded registry sources found; build first")
        return 1
    highest = max(minimums.values(), key=version)
    setters = sorted(n for n, v in minimums.items() if version(v) == version(highest))
    print(f"rust-version: ours {ours}; dependencies' highest {highest} ({', '.join(setters)})")
    if version(ours) < version(highest):
        print(f"Cargo.toml's rust-version {ours} is below {highest}: raise it (and README's)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
