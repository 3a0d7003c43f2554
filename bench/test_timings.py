"""Summarises the per-test timings `pytest -p tests.timing_plugin` wrote.

    TEST_TIMINGS=var/t.tsv make test PYTEST_ARGS="-n 2 -p tests.timing_plugin"
    .venv/bin/python bench/test_timings.py var/t.tsv [--top 60]

Prints the slowest tests (wall seconds, then this process's CPU seconds: the wall time
includes PostgreSQL, chromium and server subprocesses and, on a shared machine, waiting) and
the totals per file, slowest first.
"""

import argparse
import glob
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("prefix", help="the TEST_TIMINGS path (each worker wrote <prefix>.<id>)")
    parser.add_argument("--top", type=int, default=60)
    args = parser.parse_args()
    rows = []
    for path in sorted(glob.glob(f"{args.prefix}.*")):
        with open(path) as timings:
            for line in timings:
                fields = line.rstrip("\n").split("\t")
                cpu = float(fields[4]) if len(fields) > 4 else float("nan")
                rows.append((fields[0], float(fields[1]), cpu, fields[2]))
    rows.sort(key=lambda row: row[1], reverse=True)
    wall = sum(row[1] for row in rows)
    cpu = sum(row[2] for row in rows)
    print(f"{len(rows)} tests, {wall:.1f} s wall, {cpu:.1f} s CPU summed over workers\n")
    print(f"slowest {args.top}:  wall  cpu  worker  test")
    for nodeid, seconds, cpu_seconds, worker in rows[: args.top]:
        print(f"{seconds:8.2f} {cpu_seconds:7.2f}  {worker}  {nodeid}")
    per_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0])
    for nodeid, seconds, cpu_seconds, _ in rows:
        totals = per_file[nodeid.split("::")[0]]
        totals[0] += seconds
        totals[1] += cpu_seconds
        totals[2] += 1
    print("\nper file:  wall  cpu  tests  file")
    for path, (seconds, cpu_seconds, count) in sorted(
        per_file.items(), key=lambda item: item[1][0], reverse=True
    ):
        print(f"{seconds:8.1f} {cpu_seconds:7.1f} {count:5d}  {path}")


if __name__ == "__main__":
    main()
