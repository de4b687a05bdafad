#!/usr/bin/env bash
# Builds the Debian package (target/debian/privgate_*.deb) with cargo-deb from a privgate
# binary already built in the named Cargo profile, plus the man page and shell completions
# that binary generates from its own command-line definition.
#
#   packaging/build-deb.sh release   # releases: after `cargo build --release --locked`
#   packaging/build-deb.sh dev       # CI: the binary `cargo test --locked` already built
#
# The package's contents are [package.metadata.deb] in Cargo.toml. cargo-deb reads the
# binary from target/release/ or, with `--profile dev`, target/debug/.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${1:-release}
case "$profile" in
release) bin=target/release/privgate; revision=1 ;;
# A debug-profile package is for tests only; its revision says so.
dev) bin=target/debug/privgate; revision=0dev ;;
*) echo "usage: $0 release|dev" >&2; exit 2 ;;
esac
[ -x "$bin" ] || { echo "$bin: not built (see the usage above)" >&2; exit 1; }

generated=target/packaging
rm -rf "$generated"
mkdir -p "$generated/man"
"$bin" man --out "$generated/man"
gzip -9n "$generated"/man/*.1
"$bin" completions bash >"$generated/privgate.bash"
"$bin" completions zsh >"$generated/_privgate"
"$bin" completions fish >"$generated/privgate.fish"

cargo deb --no-build --locked --profile "$profile" --deb-revision "$revision" --strip --fast \
    --output target/debian/
