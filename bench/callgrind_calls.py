#!/usr/bin/env python3
"""Calls to the named functions in a callgrind profile, summed over every caller.

    bench/callgrind_calls.py PROFILE NAME...
    bench/callgrind_calls.py --by-caller [--per N] [--top K] PROFILE NAME...
    bench/callgrind_calls.py --by-line [--per N] [--top K] PROFILE NAME...

Used by bench/route-instructions.sh to count heap allocations: the gateway's allocator is
mimalloc, so every `alloc`, `alloc_zeroed` and `realloc` of Rust code is a call to
`mi_malloc_aligned`, `mi_zalloc_aligned` or `mi_realloc_aligned`. Callgrind names a
function in full once (`cfn=(12) name`) and by its number after that (`cfn=(12)`); a
`calls=N` line follows the `cfn=` of the function called.

`--by-caller` prints where the calls come from instead: the calls made by each calling
function (its own calls, not its callees'), divided by N (the requests a profile holds, so
the figures read per request), the K largest first. `--by-line` prints the source line of
each call instead (file:line of the call site, inlined code included, for a build with line
tables): the way to see which line of an async function, inlined into a future's `poll`,
allocates.
"""
import argparse
import re
import sys
from collections import Counter


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--by-caller", action="store_true")
    parser.add_argument("--by-line", action="store_true")
    parser.add_argument("--per", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("profile")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    wanted = set(args.names)
    names: dict[str, str] = {}
    caller = None
    callee = None
    by_caller: Counter[str] = Counter()
    files: dict[str, str] = {}
    file = "?"
    line_no = 0
    # A call's count waits for the next cost line, whose first field is the call's line.
    pending = 0
    with open(args.profile, errors="replace") as f:
        for line in f:
            if line[:1].isdigit() or line[:1] in "+-*":
                # A cost line; with compressed positions, its line is relative to the last.
                position = line.split(maxsplit=1)[0]
                if position[0] in "+-":
                    line_no += int(position)
                elif position != "*":
                    line_no = int(position)
                if pending:
                    if args.by_line:
                        by_caller[f"{file}:{line_no}"] += pending
                    pending = 0
                continue
            if line[:3] in ("fl=", "fi=", "fe="):
                m = re.match(r"f[lie]=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        files[m.group(1)] = m.group(2)
                    file = files.get(m.group(1), "?")
                else:
                    file = line[3:].strip()
                continue
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
                m = re.match(r"fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
                if m:
                    if m.group(2):
                        names[m.group(1)] = m.group(2)
                    caller = names.get(m.group(1))
                else:
                    caller = line[3:].strip()
            elif line.startswith("calls=") and callee in wanted:
                calls = int(line[6:].split()[0])
                if args.by_line:
                    pending = calls
                else:
                    by_caller[caller or "?"] += calls
    if not (args.by_caller or args.by_line):
        print(sum(by_caller.values()))
        return
    for name, calls in by_caller.most_common(args.top):
        print(f"{calls / args.per:8.1f}  {name[:160]}")
    print(f"{sum(by_caller.values()) / args.per:8.1f}  in all", file=sys.stderr)


if __name__ == "__main__":
    main()
