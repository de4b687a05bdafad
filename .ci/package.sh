#!/usr/bin/env bash
# The Debian package, built and installed as an operator would (README, "Operations"):
# packaging/build-deb.sh packages the binary `cargo test --locked` already built (debug
# profile, same features), so CI pays no second build of the dependencies; releases run it
# with `release` after `cargo build --release --locked`. Then: dpkg -i, `privgate check` on
# the installed example config, the unit through `systemd-analyze verify`, and the man pages
# and completions where man and the shells look for them. Needs root (dpkg) and the binary.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== Debian package: build (cargo-deb, pinned), install, check the installed example"
deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $deb_version"; then
  cargo install --locked --quiet cargo-deb --version "$deb_version"
fi
if ! command -v systemd-analyze >/dev/null 2>&1 || ! command -v man >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd man-db >/dev/null
fi
packaging/build-deb.sh dev
deb=$(ls target/debian/privgate_*-0dev_*.deb)
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null

# The example names secrets under $CREDENTIALS_DIRECTORY; the unit loads them from here.
CREDENTIALS_DIRECTORY=/etc/privgate/credentials privgate check --config /etc/privgate/privgate.toml
systemd-analyze verify /usr/lib/systemd/system/privgate.service
getent passwd privgate >/dev/null
man -l /usr/share/man/man1/privgate.1.gz | grep -q "privgate-serve(1)"
man -l /usr/share/man/man1/privgate-serve.1.gz | grep -q -- "--config"
for f in /usr/share/bash-completion/completions/privgate /usr/share/zsh/vendor-completions/_privgate \
  /usr/share/fish/vendor_completions.d/privgate.fish; do
  grep -q "serve" "$f" || { echo "$f: no completions for serve" >&2; exit 1; }
done
bash -c 'source /usr/share/bash-completion/completions/privgate && complete -p privgate' >/dev/null
# Upgrade in place: the operator's (here: first install's) certificate and keys are kept.
before=$(cat /etc/privgate/credentials/* /etc/privgate/tls/* | sha256sum)
DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" >/dev/null
[ "$before" = "$(cat /etc/privgate/credentials/* /etc/privgate/tls/* | sha256sum)" ]
echo "package $(basename "$deb"): installed, example config valid, unit verified"
