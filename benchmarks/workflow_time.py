"""Wall-clock of a whole-workflow build that ran as one or more `snakemake` invocations (e.g. resumed across sessions).

    python benchmarks/workflow_time.py [--root .] [--since 2026-12-02T11:29] [--scale mini]

Reads every Snakemake log under <root>/.snakemake/log and, for each invocation that ran jobs, prints its first and
last timestamp, the jobs it finished (by rule) and whether it reached 100 %. The sum of the invocations' spans is the
build's wall-clock; a job cut off by a stopped invocation is counted where it ran, so a resumed build slightly
over-counts. It also sums the per-job `benchmark:` files under <root>/results/<scale>/benchmarks by rule, which
leave out the rules without a benchmark directive (tables, publishing, claims) and Snakemake's own scheduling time.
Measures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import re
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
FINISHED = re.compile(r"^Finished jobid: \d+ \(Rule: (\w+)\)")
PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")


def parse_log(path: Path) -> dict | None:
    """One invocation: first/last timestamp, finished jobs per rule, last progress line; None if it ran no job."""
    stamps: list[dt.datetime] = []
    rules: collections.Counter[str] = collections.Counter()
    progress = None
    for line in map(str.strip, path.read_text(errors="replace").splitlines()):
        if m := STAMP.match(line):
            stamps.append(dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y"))
        elif m := FINISHED.match(line):
            rules[m.group(1)] += 1
        elif m := PROGRESS.match(line):
            progress = (int(m.group(1)), int(m.group(2)))
    if len(stamps) < 2 or not rules:
        return None
    return {"log": path.name, "start": stamps[0], "end": stamps[-1], "rules": rules, "progress": progress}


def benchmark_seconds(root: Path, scale: str) -> dict[str, tuple[int, float, float]]:
    """rule -> (jobs, summed seconds, largest max_rss in MB) over results/<scale>/benchmarks/**.tsv."""
    out: dict[str, list[float]] = {}
    base = root / "results" / scale / "benchmarks"
    for tsv in sorted(base.rglob("*.tsv")):
        rule = tsv.parent.name if tsv.parent != base else tsv.stem
        with tsv.open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if not rows:
            continue
        row = rows[-1]
        agg = out.setdefault(rule, [0, 0.0, 0.0])
        agg[0] += 1
        agg[1] += float(row["s"])
        rss = row.get("max_rss", "-")
        agg[2] = max(agg[2], float(rss) if rss not in ("-", "", "NA") else 0.0)
    return {k: (int(v[0]), v[1], v[2]) for k, v in out.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("."), help="the checkout the workflow ran in")
    p.add_argument("--since", default=None, help="ignore invocations that started before this ISO time")
    p.add_argument("--scale", default="mini")
    args = p.parse_args()

    since = dt.datetime.fromisoformat(args.since) if args.since else None
    runs = [r for f in sorted((args.root / ".snakemake" / "log").glob("*.snakemake.log")) if (r := parse_log(f))]
    runs = [r for r in runs if since is None or r["start"] >= since]
    total = 0.0
    print("| invocation | start | end | seconds | jobs finished | progress |\n|---|---|---|---|---|---|")
    for r in runs:
        span = (r["end"] - r["start"]).total_seconds()
        total += span
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(r["rules"].items()))
        done = f"{r['progress'][0]}/{r['progress'][1]}" if r["progress"] else "-"
        when = f"{r['start']:%m-%d %H:%M:%S} | {r['end']:%m-%d %H:%M:%S}"
        print(f"| {r['log']} | {when} | {span:.0f} | {jobs} | {done} |")
    print(f"\nInvocations: {len(runs)}; summed wall-clock {total:.0f} s = {total / 3600:.2f} h\n")

    bench = benchmark_seconds(args.root, args.scale)
    print("| rule (benchmark files) | jobs | seconds | largest max_rss MB |\n|---|---|---|---|")
    for rule, (n, s, rss) in sorted(bench.items(), key=lambda kv: -kv[1][1]):
        print(f"| {rule} | {n} | {s:.0f} | {rss:.0f} |")
    s_all = sum(v[1] for v in bench.values())
    print(f"\nBenchmarked jobs: {sum(v[0] for v in bench.values())}; {s_all:.0f} s = {s_all / 3600:.2f} h")


if __name__ == "__main__":
    main()
