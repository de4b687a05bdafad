#!/usr/bin/env python3
"""Markdown tables from a bench/ results file: the median of each row over its rounds.

The results file is tab-separated with a header: `table`, `row`, `round`, then one column
per measured quantity (bench/lib.sh `results` and `record` write it). Tables and rows keep
the order in which they first appear; the first row of each table is the reference
(nginx), and every `--ratio` column gets a ratio of each row's median to the reference's.
The spread of the first measured column (its lowest and highest round) is shown so that a
noisy run is seen as one.

    summarise.py RESULTS [--ratio COLUMN]... [--table NAME]
"""

import argparse
import csv
import math
import statistics
import sys


def number(text):
    try:
        return float(text)
    except ValueError:
        return math.nan


def fmt(value):
    """Thousands as integers with separators, small values with two significant decimals."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def median(values):
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else math.nan


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--ratio", action="append", default=[], help="column to compare")
    parser.add_argument("--table", help="print only this table")
    args = parser.parse_args()

    with open(args.results, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        header = next(reader)
        columns = header[3:]
        for name in args.ratio:
            if name not in columns:
                sys.exit(f"--ratio {name!r}: no such column (columns: {columns})")
        tables = {}  # table -> row -> list of per-round value lists
        for line in reader:
            if not line:
                continue
            table, row = line[0], line[1]
            rounds = tables.setdefault(table, {}).setdefault(row, [])
            rounds.append([number(v) for v in line[3:]])

    for table, rows in tables.items():
        if args.table and table != args.table:
            continue
        medians = {
            row: [median([r[i] for r in rounds]) for i in range(len(columns))]
            for row, rounds in rows.items()
        }
        reference = next(iter(rows))
        counts = sorted({len(r) for r in rows.values()})
        print(f"\n**{table}** (median of {'/'.join(map(str, counts))} rounds)\n")
        head = ["proxy", *columns, f"{columns[0]} range"]
        head += [f"{name} ÷ {reference}" for name in args.ratio]
        print("| " + " | ".join(head) + " |")
        print("| --- |" + " ---: |" * (len(head) - 1))
        for row, values in medians.items():
            firsts = [r[0] for r in rows[row] if not math.isnan(r[0])]
            spread = f"{fmt(min(firsts))}–{fmt(max(firsts))}" if firsts else "n/a"
            cells = [row, *map(fmt, values), spread]
            for name in args.ratio:
                i = columns.index(name)
                base = medians[reference][i]
                known = base and not math.isnan(base) and not math.isnan(values[i])
                cells.append(f"{values[i] / base:.2f}" if known else "n/a")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
