#!/usr/bin/env python3
"""Calls to the named functions in a callgrind profile, summed over every caller.

    bench/callgrind_calls.py PROFILE NAME...

Used by bench/route-instructions.sh to count heap allocations: the gateway's allocator is
mimalloc, so every `alloc`, `alloc_zeroed` and `realloc` of Rust code is a call to
`mi_malloc_aligned`, `mi_zalloc_aligned` or `mi_realloc_aligned`. Callgrind names a
function in full once (`cfn=(12) name`) and by its number after that (`cfn=(12)`); a
`calls=N` line follows the `cfn=` of the function called.
"""
import re
import sys


def main() -> None:
    profile, wanted = sys.argv[1], set(sys.argv[2:])
    names: dict[str, str] = {}
    callee = None
    total = 0
    with open(profile, errors="replace") as f:
        for line in f:
            if line.startswith("cfn="):
                m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    callee = names.get(m.group(1))
                else:
                    callee = line[4:].strip()
            elif line.startswith("fn="):
                # A function's first mention may come as `fn=(id) name`.
                m = re.match(r"fn=\((\d+)\) (.*)", line.rstrip("\n"))
                if m:
                    names[m.group(1)] = m.group(2)
            elif line.startswith("calls=") and callee in wanted:
                total += int(line[6:].split()[0])
    print(total)


if __name__ == "__main__":
    main()
