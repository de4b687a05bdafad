#!/usr/bin/env python3
"""Pages of protected customer records of given sizes, for bench/body-curve.sh.

Onboards distinct customers (c-1000, c-1001, ...) through a gateway running the demo's
configuration, as the demo's teller (client-b), so that the upstream stores each with its
PII protected under that gateway's keyring; reads each stored record back from the
upstream directly; writes one page per size, `{"customers": [...], "total": N}`, with the
number of records whose size comes closest to the size asked (at least one).

    body_pages.py --gateway https://localhost:18445 --certs demo/certs \
        --upstream http://127.0.0.1:19080 --out pages/after 1k 16k 256k

Prints one line per page: name, records, bytes.
"""

import argparse
import http.client
import json
import ssl
import sys
import urllib.parse


def size_bytes(text):
    units = {"k": 1024, "m": 1024 * 1024}
    text = text.lower()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def customer(i):
    return {
        "id": f"c-{1000 + i}",
        "name": f"Jane Example {i}",
        "email": f"jane.{i}@example.com",
        "phone": "+44 20 7946 0000",
        "national_id": "900-12-3456",
        "date_of_birth": "1987-06-05",
        "address": {"street": f"{1 + i % 200} High Street", "city": "Leeds", "postcode": "LS1 1AA", "country": "GB"},
        "iban": "GB82WEST12345698765432",
        "card_number": "4000001234567899",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--certs", required=True, help="the demo's certificate directory")
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("sizes", nargs="+", help="e.g. 1k 16k 256k")
    args = parser.parse_args()

    context = ssl.create_default_context(cafile=f"{args.certs}/ca.pem")
    context.load_cert_chain(f"{args.certs}/client-b.pem", f"{args.certs}/client-b.key.pem")
    gateway = urllib.parse.urlsplit(args.gateway)
    upstream = urllib.parse.urlsplit(args.upstream)
    onboarding = http.client.HTTPSConnection(gateway.hostname, gateway.port, context=context, timeout=30)
    reading = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)

    largest = max(size_bytes(s) for s in args.sizes)
    records, total = [], 0
    while total < largest + 1024:
        record = customer(len(records))
        onboarding.request("POST", "/customers", body=json.dumps(record), headers={"content-type": "application/json"})
        answer = onboarding.getresponse()
        answer.read()
        if answer.status not in (200, 201):
            sys.exit(f"onboarding {record['id']}: {answer.status}")
        reading.request("GET", f"/customers/{record['id']}")
        stored = reading.getresponse().read()
        if b"pgv1." not in stored:
            sys.exit(f"{record['id']} is not stored protected: {stored[:200]!r}")
        records.append(stored)
        total += len(stored) + 1

    for name in args.sizes:
        target = size_bytes(name)
        best = None
        for n in range(1, len(records) + 1):
            page = b'{"customers":[' + b",".join(records[:n]) + b'],"total":%d}' % n
            if best is None or abs(len(page) - target) < abs(len(best[1]) - target):
                best = (n, page)
            if len(page) > target:
                break
        with open(f"{args.out}/{name}.json", "wb") as f:
            f.write(best[1])
        print(name, best[0], len(best[1]))


if __name__ == "__main__":
    main()
