"""Wall-clock of a whole-workflow build that ran as one or more `snakemake` invocations (e.g. resumed across sessions).

    python benchmarks/workflow_time.py [--root .] [--since 2026-12-02T11:29] [--scale mini] [--targets T ...]

Reads every Snakemake log under <root>/.snakemake/log and, for each invocation that ran jobs, prints its first and
last timestamp, the jobs it finished (by rule) and whether it reached 100 %. The sum of the invocations' spans is the
build's wall-clock; an invocation's span ends at its last log line, so a job cut off by a stopped invocation is
not counted (its rerun is). It also sums the per-job `benchmark:` files under <root>/results/<scale>/benchmarks by
rule, which leave out the rules without a benchmark directive (tables, publishing, claims) and Snakemake's own
scheduling time.

With --targets, each target's cost "from a fresh clone" is attributed from the same logs: `snakemake -n --forceall
TARGET` lists every job the target needs (keyed by its output files), and the seconds between each job's start and
its "Finished" line (the build ran one job at a time, --cores 1) are summed over that list. Jobs shared by several
targets (e.g. Table 1's zoos) count in each. Measures only; it asserts nothing.
"""

from __future__ import annotations

import argparse
import collections
import csv
import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
FINISHED = re.compile(r"^Finished jobid: (\d+) \(Rule: (\w+)\)")
PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+)%\) done")
JOB = re.compile(r"^(?:local)?rule (\w+):$")


def _stamp(m: re.Match) -> dt.datetime:
    return dt.datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")


def _logs(root: Path) -> list[Path]:
    return sorted((root / ".snakemake" / "log").glob("*.snakemake.log"))


def parse_log(path: Path) -> dict | None:
    """One invocation: first/last timestamp, finished jobs per rule, last progress line; None if it ran no job."""
    stamps: list[dt.datetime] = []
    rules: collections.Counter[str] = collections.Counter()
    progress = None
    for line in map(str.strip, path.read_text(errors="replace").splitlines()):
        if m := STAMP.match(line):
            stamps.append(_stamp(m))
        elif m := FINISHED.match(line):
            rules[m.group(2)] += 1
        elif m := PROGRESS.match(line):
            progress = (int(m.group(1)), int(m.group(2)))
    if len(stamps) < 2 or not rules:
        return None
    return {"log": path.name, "start": stamps[0], "end": stamps[-1], "rules": rules, "progress": progress}


def job_seconds(path: Path) -> dict[str, tuple[str, float, dt.datetime]]:
    """output files -> (rule, seconds from the job's start stamp to its "Finished" stamp, finish time), one log.

    A job's block is `[stamp]`, `rule NAME:` (or `localrule`), then indented `output: ...` and `jobid: N`; it ends
    at a later `[stamp]` followed by `Finished jobid: N`. Jobs cut off by a stopped invocation have no "Finished"
    line and are left out (their rerun is counted where it ran).
    """
    out: dict[str, tuple[str, float, dt.datetime]] = {}
    started: dict[str, tuple[str, str, dt.datetime]] = {}  # jobid -> (rule, outputs, start)
    stamp = block = None  # the last timestamp seen; the job whose header is being read: [rule, outputs, start]
    for line in map(str.strip, path.read_text(errors="replace").splitlines()):
        if m := STAMP.match(line):
            stamp = _stamp(m)
        elif (m := JOB.match(line)) and stamp is not None:
            block = [m.group(1), "", stamp]
        elif block is not None and line.startswith("output: "):
            block[1] = line.removeprefix("output: ")
        elif block is not None and line.startswith("jobid: "):
            started[line.removeprefix("jobid: ")] = (block[0], block[1], block[2])
            block = None
        elif (m := FINISHED.match(line)) and stamp is not None and m.group(1) in started:
            rule, outputs, start = started.pop(m.group(1))
            out[outputs] = (rule, (stamp - start).total_seconds(), stamp)
    return out


def target_jobs(root: Path, target: str) -> list[tuple[str, str]]:
    """(rule, output files) of every job `target` needs, from a forced dry run of the workflow in `root`."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--forceall", "--cores", "1", target]
    text = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=True).stdout
    jobs, rule = [], None
    for line in map(str.strip, text.splitlines()):
        if m := JOB.match(line):
            rule = m.group(1)
        elif rule is not None and line.startswith("output: "):
            jobs.append((rule, line.removeprefix("output: ")))
            rule = None
    return jobs


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
    p.add_argument("--targets", nargs="*", default=[], help="attribute job time to these targets (see above)")
    args = p.parse_args()

    since = dt.datetime.fromisoformat(args.since) if args.since else None
    runs = [r for f in _logs(args.root) if (r := parse_log(f))]
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

    if not args.targets:
        return
    jobs: dict[str, tuple[str, float, dt.datetime]] = {}
    for f in _logs(args.root):
        for outputs, rec in job_seconds(f).items():
            if since is not None and rec[2] < since:
                continue
            if outputs not in jobs or rec[2] > jobs[outputs][2]:  # the latest finished run of a job counts
                jobs[outputs] = rec
    print("\n| target | jobs | measured | seconds | minutes | unmeasured jobs |\n|---|---|---|---|---|---|")
    for target in args.targets:
        need = target_jobs(args.root, target)
        hit = [jobs[o][1] for _, o in need if o in jobs]
        miss = sorted({r for r, o in need if o not in jobs and r != "all"})
        sec = sum(hit)
        print(f"| {target} | {len(need)} | {len(hit)} | {sec:.0f} | {sec / 60:.1f} | {', '.join(miss) or '-'} |")


if __name__ == "__main__":
    main()
