"""Where Tally's time goes on the dashboard set: DuckDB vs Python, per query, per function, per operator.

`python -m bench profile --rows N` loads the same cached data and range as `python -m bench dashboard`,
warms Tally up, then (all in this one process, nothing under src/ is changed):

1. times each dashboard query with the engine's functions wrapped in timers: how much of a query's
   time is inside `Warehouse.run` (DuckDB executing Tally's SQL and handing back Arrow), how much in
   planning-cache lookup, spec parsing, period labels, row assembly, derived metrics, comparison;
2. runs the same queries under cProfile and prints the functions with the most own time;
3. runs each SQL statement Tally compiled with DuckDB's profiler and prints its costliest operators,
   and writes the statements to `--sql-out` for reading.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.dashboard import QUERIES, QUERY_LABELS, TallyRunner, peak_rss, window_for
from bench.data import DEFAULT_ROWS, SEED, ensure

# (owner, attribute, label): the engine steps timed inclusively. Functions that engine.py imported by
# name are patched where engine.py looks them up.
STEPS = [
    ("tally.engine.engine:Engine", "spec", "QuerySpec.build (parse arguments)"),
    ("tally.engine.engine:Engine", "_plan", "Engine._plan (offset segments + plan-cache lookup)"),
    ("tally.engine.engine", "offset_segments", "  offset_segments"),
    ("tally.warehouse.base:Warehouse", "run", "Warehouse.run (DuckDB executes, returns Arrow)"),
    ("tally.engine.rows", "conform", "rows.conform (rename/cast)"),
    ("tally.engine.engine", "period_labels", "period_labels"),
    ("tally.engine.rows", "assemble", "rows.assemble (zero-fill, snapshot join)"),
    ("tally.engine.rows", "add_derived", "rows.add_derived (formulas in Arrow)"),
    ("tally.engine.rows", "order_and_limit", "rows.order_and_limit"),
    ("tally.engine.rows", "attach_comparison", "rows.attach_comparison"),
]


class Timers:
    def __init__(self):
        self.current: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.statements: list[tuple[str, float]] = []

    def reset(self):
        self.current.clear()
        self.calls.clear()
        self.statements.clear()


def _resolve(owner: str):
    import importlib

    module, _, cls = owner.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, cls) if cls else obj


def instrument(timers: Timers) -> None:
    """Wrap each step in a timer (this process only)."""
    for owner, attr, label in STEPS:
        target = _resolve(owner)
        original = getattr(target, attr)

        def make(original=original, label=label, is_run=(attr == "run")):
            @functools.wraps(original)
            def wrapper(*args, **kwargs):
                t0 = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    spent = time.perf_counter() - t0
                    timers.current[label] += spent
                    timers.calls[label] += 1
                    if is_run:
                        timers.statements.append((args[1].sql, spent))
            return wrapper

        setattr(target, attr, make())


def step_breakdown(runner: TallyRunner, reps: int) -> dict:
    timers = Timers()
    instrument(timers)
    queries = runner.queries()
    for fn in queries.values():  # warm after wrapping
        fn()
    out = {}
    for name, fn in queries.items():
        totals, steps, stmts = [], defaultdict(list), defaultdict(list)
        for _ in range(reps):
            timers.reset()
            t0 = time.perf_counter()
            fn()
            totals.append((time.perf_counter() - t0) * 1000)
            for label, spent in timers.current.items():
                steps[label].append(spent * 1000)
            for i, (_, spent) in enumerate(timers.statements):
                stmts[i].append(spent * 1000)
        med = {label: statistics.median(v) for label, v in steps.items()}
        run_ms = med.get("Warehouse.run (DuckDB executes, returns Arrow)", 0.0)
        out[name] = {"total_ms": statistics.median(totals), "steps_ms": med,
                     "calls": dict(timers.calls),
                     "statements_ms": [statistics.median(v) for _, v in sorted(stmts.items())],
                     "outside_duckdb_ms": statistics.median(totals) - run_ms}
    return out


def cprofile(runner: TallyRunner, reps: int, top: int) -> str:
    queries = runner.queries()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(reps):
        for fn in queries.values():
            fn()
    profiler.disable()
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    buf.write(f"cProfile over {reps} runs of the set (times are totals over all runs, seconds)\n")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return buf.getvalue()


def operator_profile(runner: TallyRunner, sql_out: Path | None, top: int) -> list[dict]:
    """Run every compiled statement once with DuckDB's profiler; the costliest operators of each."""
    project = runner.project
    engine = project.engine
    w = runner.w
    import datetime as dt
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(project.config.timezone)
    start = dt.datetime.combine(w.start, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(w.end, dt.time(), tzinfo=tz).astimezone(dt.timezone.utc)
    cursor = project.warehouse.backend.con.cursor()
    cursor.execute("SET TimeZone = 'UTC'")
    cursor.execute("SET enable_progress_bar = false")
    results, texts = [], []
    for shape, plan in engine._plans.items():  # noqa: SLF001 - read-only look at the plan cache
        for part_name in ("timed", "timeless"):
            part = getattr(plan, part_name)
            if part is None:
                continue
            values = {k: v for k, v in {"start": start, "end": end}.items() if k in part.query.params}
            with tempfile.NamedTemporaryFile(suffix=".json") as f:
                cursor.execute("PRAGMA enable_profiling = 'json'")
                cursor.execute(f"PRAGMA profiling_output = '{f.name}'")
                t0 = time.perf_counter()
                cursor.execute(part.query.sql, values).fetchall()
                wall = (time.perf_counter() - t0) * 1000
                cursor.execute("PRAGMA disable_profiling")
                tree = json.loads(Path(f.name).read_text())
            ops = []

            def walk(node, depth=0):
                name = node.get("operator_name") or node.get("operator_type") or node.get("name")
                if name:
                    ops.append({"operator": name.strip(), "seconds": node.get("operator_timing", 0.0),
                                "rows": node.get("operator_cardinality"), "depth": depth})
                for child in node.get("children", []):
                    walk(child, depth + 1)

            walk(tree)
            label = f"metrics={','.join(shape.metrics)} by={','.join(shape.by) or '-'} grain={shape.grain.value if shape.grain else '-'}"
            results.append({"shape": label, "part": part_name, "wall_ms": wall,
                            "top_operators": sorted(ops, key=lambda o: -o["seconds"])[:top]})
            texts.append(f"-- {label} ({part_name})\n{part.query.sql};\n")
    cursor.close()
    if sql_out:
        sql_out.write_text("\n".join(texts))
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--top", type=int, default=25, help="functions / operators to list")
    parser.add_argument("--sql-out", type=Path, help="write Tally's compiled SQL here")
    parser.add_argument("--json", type=Path, help="write the breakdown here")


def main(args: argparse.Namespace) -> dict:
    ds = ensure(args.rows, args.seed)
    w = window_for(ds)
    runner = TallyRunner(ds, w)
    for _ in range(2):
        for fn in runner.queries().values():
            fn()
    print(f"profile: Tally on {args.rows:,} order lines, range {w.start}..{w.end} (exclusive), {args.reps} runs")
    print(cprofile(runner, max(1, args.reps // 2), args.top))
    breakdown = step_breakdown(runner, args.reps)
    for name in QUERIES:
        b = breakdown[name]
        print(f"\n{QUERY_LABELS[name]}: {b['total_ms']:.1f} ms median; outside DuckDB {b['outside_duckdb_ms']:.1f} ms; "
              f"statements {', '.join(f'{s:.1f}' for s in b['statements_ms'])} ms")
        for label, ms in sorted(b["steps_ms"].items(), key=lambda kv: -kv[1]):
            print(f"  {ms:9.2f} ms  {label}  (x{b['calls'].get(label, 0)})")
    ops = operator_profile(runner, args.sql_out, 8)
    for entry in ops:
        print(f"\nDuckDB profile: {entry['shape']} [{entry['part']}] wall {entry['wall_ms']:.1f} ms")
        for op in entry["top_operators"]:
            print(f"  {op['seconds'] * 1000:9.1f} ms  {op['operator']:<22} rows={op['rows']}")
    report = {"rows": args.rows, "steps": breakdown, "operators": ops, "peak_rss_bytes": peak_rss()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    runner.close()
    return report
