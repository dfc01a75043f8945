"""The "cli" benchmark: how long `tally` takes as a whole process, start-up included.

On the retail demo project (`tally demo --example retail`, generated once per (rows, seed) into
`bench/data/cli-retail-{rows}-{seed}/`), each command runs `--runs` times as a fresh process and the
median wall time is reported: `tally --help`, `tally --version` (when the CLI has it), `tally
metrics`, and `tally query revenue --grain month` cold (the query cache `.tally/cache/queries`
emptied before each run: Ibis compiles the SQL) and warm (the answer's reads replayed on the plain
driver, without Ibis).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
QUERY = ["query", "revenue", "--grain", "month"]
TARGETS = {"help": 0.3, "query warm": 0.8, "query cold": None, "version": None, "metrics": None}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=200_000, help="retail demo size (default 200,000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=9, help="runs per command; the median is reported")
    parser.add_argument("--json", type=Path, help="write the numbers (every sample) to this JSON file")


def tally_command() -> list[str]:
    """The installed `tally` script beside this Python, else `python -m tally.cli`."""
    script = Path(sys.executable).with_name("tally")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tally.cli"]


def demo_project(rows: int, seed: int) -> Path:
    """The retail demo for (rows, seed), generated once (`done` marks a finished one)."""
    target = DATA / f"cli-retail-{rows}-{seed}"
    if not (target / "done").exists():
        shutil.rmtree(target, ignore_errors=True)
        print(f"building the retail demo: {rows:,} rows, seed {seed} -> {target} (once; cached)", file=sys.stderr)
        subprocess.run([*tally_command(), "demo", "--example", "retail", "--dir", str(target), "--rows", str(rows),
                        "--seed", str(seed), "--no-serve"], check=True, stdout=subprocess.DEVNULL)
        (target / "done").write_text("")
    return target


def timed(argv: list[str], before=None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process running `argv` (its output discarded);
    `before()` runs untimed. CPU time says more than wall time on a busy machine."""
    if before:
        before()
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
    return seconds, (after.ru_utime - used.ru_utime) + (after.ru_stime - used.ru_stime)


def has_version(tally: list[str]) -> bool:
    return subprocess.run([*tally, "--version"], capture_output=True).returncode == 0


def main(args: argparse.Namespace) -> dict:
    tally = tally_command()
    project = demo_project(args.rows, args.seed)
    cache = project / ".tally" / "cache" / "queries"

    def forget() -> None:
        shutil.rmtree(cache, ignore_errors=True)

    cases = {"help": ([*tally, "--help"], None)}
    if has_version(tally):
        cases["version"] = ([*tally, "--version"], None)
    cases["metrics"] = ([*tally, "-p", str(project), "metrics"], None)
    cases["query cold"] = ([*tally, "-p", str(project), *QUERY], forget)
    cases["query warm"] = ([*tally, "-p", str(project), *QUERY], None)
    samples, cpu = {}, {}
    for name, (argv, before) in cases.items():
        timed(argv, before)   # untimed: the OS file cache warm, and the query cache filled for "warm"
        samples[name], cpu[name] = map(list, zip(*(timed(argv, before) for _ in range(args.runs))))
    report = {"rows": args.rows, "seed": args.seed, "runs": args.runs, "cpus": os.cpu_count(),
              "load_average": os.getloadavg()[0], "samples": samples, "cpu_samples": cpu,
              "median": {name: statistics.median(values) for name, values in samples.items()},
              "cpu_median": {name: statistics.median(values) for name, values in cpu.items()}}
    print(f"tally CLI start-up, retail demo ({args.rows:,} rows), median of {args.runs} runs "
          f"(load average {report['load_average']:.1f} on {report['cpus']} CPUs)")
    print(f"{'command':<12} {'median s':>9} {'min s':>7} {'max s':>7} {'CPU s':>7}  target (median)")
    for name, values in samples.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target:.1f} s " + ("ok" if report["median"][name] < target else "MISSED")
        print(f"{name:<12} {report['median'][name]:>9.3f} {min(values):>7.3f} {max(values):>7.3f} "
              f"{report['cpu_median'][name]:>7.3f}  {verdict}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report
