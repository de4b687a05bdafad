#!/usr/bin/env bash
# TLS configuration scan: testssl.sh (Debian package `testssl.sh`) against privgate's public
# listener on loopback, with the dev certificates (`privgate certs dev`), the shipped TLS
# settings and optional client certificates. Prints every finding above INFO and a verdict;
# fails (exit 1) on any finding a production certificate would not fix.
#
#   bench/tls-scan.sh                    # BIN=target/debug/privgate to skip the release build
#
# Findings that only the dev certificate causes (its private CA is not in testssl's trust
# stores, no OCSP, CRL or CT, a short-lived leaf) are listed apart as "certificate" and do not
# fail the run: a production certificate from a public CA fixes them.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

SCAN_PORT=${SCAN_PORT:-$(port 18743)}
SCAN_ADMIN_PORT=${SCAN_ADMIN_PORT:-$(port 19390)}
ports_free "$SCAN_PORT" "$SCAN_ADMIN_PORT"

need testssl testssl.sh
privgate_binary
out_dir tls-scan
dev_certs

# No request reaches an upstream; the address only has to parse. Client certificates are
# optional, as on a listener that serves both partners (mTLS) and bearer-token callers; HSTS
# on, as a listener that serves browsers sets it (SECURITY.md, "HSTS").
stream_config "$OUT/privgate.toml" "$SCAN_PORT" "$SCAN_ADMIN_PORT" http://127.0.0.1:9 \
  "client_ca = \"certs/ca.pem\"
client_auth = \"optional\"
hsts = { max_age = \"365d\", include_subdomains = true }"
privgate_serve privgate "$BIN" "$OUT/privgate.toml"
wait_port "$SCAN_PORT"

# --add-ca: the dev CA is trusted for the chain checks, so the rest of the certificate
# section is judged as for a real one. No --fast: every check runs.
testssl --quiet --color 0 --warnings off --add-ca "$CA" \
  --jsonfile "$OUT/testssl.json" --logfile "$OUT/testssl.log" \
  "127.0.0.1:$SCAN_PORT" >/dev/null || true

python3 - "$OUT/testssl.json" <<'PY'
import json, sys

findings = json.load(open(sys.argv[1]))
# ids whose finding the dev certificate causes and a production certificate fixes
CERTIFICATE = ("cert_", "chain_of_trust", "OCSP", "ocsp", "DNS_CAArecord", "cert",
               "intermediate_cert", "crl", "CRL", "certificate_transparency")
# ids of the HTTP header checks (testssl reads the answer to `GET /`): not TLS settings
HEADERS = ("HSTS", "HPKP", "banner_", "cookie_", "security_headers")
ORDER = ["CRITICAL", "HIGH", "MEDIUM", "LOW", "WARN"]
config, certificate, headers = [], [], []
for f in findings:
    if f.get("severity") not in ORDER:
        continue
    line = f"{f['severity']:8} {f['id']}: {f['finding']}"
    if f["id"].startswith(CERTIFICATE):
        certificate.append(line)
    elif f["id"].startswith(HEADERS):
        headers.append(line)
    else:
        config.append(line)
print("== testssl.sh findings above INFO")
print("-- TLS configuration (privgate's own settings; any finding fails the run):")
print("\n".join(config) or "none")
print("-- certificate (the dev certificate; a production certificate fixes these):")
print("\n".join(certificate) or "none")
print("-- HTTP headers (testssl reads them from the answer to GET /):")
print("\n".join(headers) or "none")
ok = [f for f in findings if f.get("severity") == "OK"]
print(f"== {len(ok)} checks OK; {len(config)} TLS configuration, {len(certificate)} certificate, {len(headers)} header findings")
sys.exit(1 if config else 0)
PY
