"""The "dashboard" benchmark: the three queries a shop dashboard runs, answered three ways.

For a 30-day range ending at the data's last day (in Europe/Istanbul):

1. ``kpis``   — revenue, orders, units, customers, aov, refunds, net_revenue, cogs, shipping_cost,
   profit, margin, with the previous 30 days for comparison;
2. ``daily``  — revenue, orders, aov per day of the range (every day, zeros where empty);
3. ``top``    — the 20 listings with the most revenue (revenue, orders, units).

Measured, in one run, through (a) Tally (``Project.query``), (b) hand-written DuckDB SQL over the same
warehouse file, (c) pandas over DataFrames already in memory. Each system runs in its own process
(DuckDB lets only one process open a file it may write, and a separate process gives each system its
own peak RSS). First every system computes the answers once and the answers are compared — money to
the cent, counts exactly, ratios to 1e-9 relative, the daily series complete — and the benchmark stops
if they differ. Then each system runs the whole set ``warmup`` times untimed and ``reps`` times timed;
the table shows medians.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from bench.data import DEFAULT_ROWS, SEED, Dataset, ensure

TZ = "Europe/Istanbul"
DAYS = 30
KPIS = ["revenue", "orders", "units", "customers", "aov", "refunds", "net_revenue", "cogs", "shipping_cost",
        "profit", "margin"]
DAILY = ["revenue", "orders", "aov"]
TOP = ["revenue", "orders", "units"]
TOP_N = 20
MONEY = {"revenue", "refunds", "net_revenue", "cogs", "shipping_cost", "profit"}
COUNTS = {"orders", "units", "customers"}
RATIOS = {"aov", "margin"}
QUERIES = ("kpis", "daily", "top")
QUERY_LABELS = {"kpis": "KPIs vs previous", "daily": "daily series", "top": f"top {TOP_N} listings"}
SYSTEMS = ("tally", "sql", "pandas")
SYSTEM_LABELS = {"tally": "Tally", "sql": "hand SQL", "pandas": "pandas"}
TARGET_VS_SQL = 1.5       # Tally's whole set within 1.5x of hand-written SQL
TARGET_VS_PANDAS = 8.0    # at least 8x faster than pandas
TARGET_RSS = 2 * 1024**3  # peak memory under 2 GiB


@dataclass(frozen=True)
class Window:
    """The current range [start, end) and the previous one [prev_start, start), as local dates."""

    prev_start: dt.date
    start: dt.date
    end: dt.date

    @property
    def days(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range((self.end - self.start).days)]


def window_for(ds: Dataset) -> Window:
    """30 days ending with the last local day that has orders, and the 30 days before."""
    import duckdb

    con = duckdb.connect(str(ds.warehouse), read_only=True)
    try:
        con.execute(f"SET TimeZone = '{TZ}'")
        last = con.execute("SELECT CAST(max(ordered_at) AS DATE) FROM orders").fetchone()[0]
    finally:
        con.close()
    end = last + dt.timedelta(days=1)
    start = end - dt.timedelta(days=DAYS)
    return Window(start - dt.timedelta(days=DAYS), start, end)


# -- the three systems ----------------------------------------------------------------------------
# Each runner has `queries()` -> {name: callable returning the raw answer} and `canonical(name, raw)`,
# which turns an answer into plain Python values for comparison (outside any timing).

class TallyRunner:
    def __init__(self, ds: Dataset, w: Window):
        from tally import Project

        self.project = Project.load(ds.dir)
        # the engine's steady state: with the on-disk query cache (tally.engine.replay, measured by
        # `bench cli`) a run after an earlier one would answer every query by replaying its reads
        self.project.query_cache = False
        self.w = w
        self.range = {"start": w.start.isoformat(), "end": w.end.isoformat()}

    def kpis(self):
        return self.project.query(KPIS, compare="previous_period", **self.range)

    def daily(self):
        return self.project.query(DAILY, grain="day", **self.range)

    def top(self):
        return self.project.query(TOP, by=["listing"], order_by=["-revenue"], limit=TOP_N, **self.range)

    def queries(self):
        return {"kpis": self.kpis, "daily": self.daily, "top": self.top}

    def canonical(self, name, table):
        rows = table.to_pylist()
        if name == "kpis":
            (row,) = rows
            return {"current": {m: row[m] for m in KPIS}, "previous": {m: row[f"{m}_previous"] for m in KPIS}}
        if name == "daily":
            return [{"day": r["period"], **{m: r[m] for m in DAILY}} for r in rows]
        return [{"listing": r["listing"], **{m: r[m] for m in TOP}} for r in rows]

    def close(self):
        self.project.close()


class SqlRunner:
    """What an analyst who knows DuckDB would write: one statement per dashboard panel."""

    def __init__(self, ds: Dataset, w: Window):
        import duckdb

        self.con = duckdb.connect(str(ds.warehouse), read_only=True)
        self.con.execute(f"SET TimeZone = '{TZ}'")  # timestamptz literals and ::DATE are Istanbul's
        p, s, e = (f"TIMESTAMPTZ '{d.isoformat()}'" for d in (w.prev_start, w.start, w.end))
        last = (w.end - dt.timedelta(days=1)).isoformat()
        self.sql = {
            "kpis": f"""
                WITH lines AS (
                    SELECT o.ordered_at >= {s} AS is_current,
                           o.order_id, o.customer_id, o.quantity, o.unit_price, o.discount,
                           c.unit_cost, r.cost AS shipping
                    FROM orders o
                    LEFT JOIN product_costs c ON c.sku = o.sku
                    LEFT JOIN product_desi d ON d.sku = o.sku
                    LEFT JOIN shipping_rates r
                           ON d.desi * o.quantity >= r.desi_from AND d.desi * o.quantity < r.desi_to
                    WHERE o.ordered_at >= {p} AND o.ordered_at < {e} AND o.status <> 'cancelled'
                ),
                sales AS (
                    SELECT is_current,
                           SUM(quantity * unit_price) - SUM(discount) AS revenue,
                           COUNT(DISTINCT order_id) AS orders,
                           SUM(quantity) AS units,
                           COUNT(DISTINCT customer_id) AS customers,
                           SUM(quantity * unit_cost) AS cogs,
                           SUM(shipping) AS shipping_cost
                    FROM lines GROUP BY is_current
                ),
                refunded AS (
                    SELECT refunded_at >= {s} AS is_current, SUM(amount) AS refunds
                    FROM order_refunds
                    WHERE refunded_at >= {p} AND refunded_at < {e}
                    GROUP BY is_current
                ),
                kpis AS (
                    SELECT p.is_current,
                           coalesce(s.revenue, 0) AS revenue, coalesce(s.orders, 0) AS orders,
                           coalesce(s.units, 0) AS units, coalesce(s.customers, 0) AS customers,
                           coalesce(f.refunds, 0) AS refunds, coalesce(s.cogs, 0) AS cogs,
                           coalesce(s.shipping_cost, 0) AS shipping_cost
                    FROM (VALUES (true), (false)) p(is_current)
                    LEFT JOIN sales s USING (is_current)
                    LEFT JOIN refunded f USING (is_current)
                )
                SELECT is_current, revenue, orders, units, customers,
                       revenue / nullif(orders, 0) AS aov,
                       refunds, revenue - refunds AS net_revenue, cogs, shipping_cost,
                       revenue - refunds - cogs - shipping_cost AS profit,
                       (revenue - refunds - cogs - shipping_cost) / nullif(revenue, 0) AS margin
                FROM kpis ORDER BY is_current DESC""",
            "daily": f"""
                WITH days AS (
                    SELECT CAST(d AS DATE) AS day
                    FROM generate_series(DATE '{w.start.isoformat()}', DATE '{last}', INTERVAL 1 DAY) t(d)
                ),
                daily AS (
                    SELECT CAST(ordered_at AS DATE) AS day,
                           SUM(quantity * unit_price) - SUM(discount) AS revenue,
                           COUNT(DISTINCT order_id) AS orders
                    FROM orders
                    WHERE ordered_at >= {s} AND ordered_at < {e} AND status <> 'cancelled'
                    GROUP BY 1
                )
                SELECT day, coalesce(revenue, 0) AS revenue, coalesce(orders, 0) AS orders,
                       revenue / nullif(orders, 0) AS aov
                FROM days LEFT JOIN daily USING (day)
                ORDER BY day""",
            "top": f"""
                SELECT listing_id AS listing,
                       SUM(quantity * unit_price) - SUM(discount) AS revenue,
                       COUNT(DISTINCT order_id) AS orders,
                       SUM(quantity) AS units
                FROM orders
                WHERE ordered_at >= {s} AND ordered_at < {e} AND status <> 'cancelled'
                GROUP BY listing_id
                ORDER BY revenue DESC, listing
                LIMIT {TOP_N}""",
        }

    def queries(self):
        return {name: (lambda sql=sql: self.con.execute(sql).to_arrow_table()) for name, sql in self.sql.items()}

    def canonical(self, name, table):
        rows = table.to_pylist()
        if name == "kpis":
            by_flag = {r["is_current"]: r for r in rows}
            return {"current": {m: by_flag[True][m] for m in KPIS}, "previous": {m: by_flag[False][m] for m in KPIS}}
        if name == "daily":
            return [{"day": r["day"], **{m: r[m] for m in DAILY}} for r in rows]
        return [{"listing": r["listing"], **{m: r[m] for m in TOP}} for r in rows]

    def close(self):
        self.con.close()


class PandasRunner:
    """Straightforward pandas: filter, merge the lookups, pd.cut the rate bands, groupby.

    Loading (untimed) reads the parquet export, turns decimals into float64 and timestamps into
    Istanbul time, as a user preparing DataFrames would; the timed part is only the computation."""

    def __init__(self, ds: Dataset, w: Window):
        import numpy as np
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.np, self.pd = np, pd

        def frame(table: str) -> pd.DataFrame:
            t = pq.read_table(ds.parquet(table))
            t = t.cast(pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_decimal(f.type) else f
                                  for f in t.schema]))
            df = t.to_pandas()
            for col in df.columns:
                if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                    df[col] = df[col].dt.tz_convert(TZ)
            return df

        self.orders = frame("orders")
        self.refunds = frame("order_refunds")
        self.costs = frame("product_costs")
        self.desi = frame("product_desi")
        self.rates = frame("shipping_rates").sort_values("desi_from")
        self.edges = self.rates["desi_from"].tolist() + [self.rates["desi_to"].iloc[-1]]
        self.prev_start, self.start, self.end = (pd.Timestamp(d, tz=TZ) for d in (w.prev_start, w.start, w.end))

    def _lines(self, start, end):
        o = self.orders
        window = o[(o["ordered_at"] >= start) & (o["ordered_at"] < end)]
        return window[window["status"] != "cancelled"]

    def kpis(self):
        np, pd = self.np, self.pd
        lines = self._lines(self.prev_start, self.end)
        lines = lines.merge(self.costs, on="sku", how="left").merge(self.desi, on="sku", how="left")
        band = pd.cut(lines["desi"] * lines["quantity"], self.edges, right=False, labels=False)
        lines["shipping"] = self.rates["cost"].to_numpy()[band.to_numpy()]
        lines["gross"] = lines["quantity"] * lines["unit_price"]
        lines["cogs"] = lines["quantity"] * lines["unit_cost"]
        lines["period"] = np.where(lines["ordered_at"] >= self.start, "current", "previous")
        k = lines.groupby("period").agg(
            gross=("gross", "sum"), discounts=("discount", "sum"), orders=("order_id", "nunique"),
            units=("quantity", "sum"), customers=("customer_id", "nunique"), cogs=("cogs", "sum"),
            shipping_cost=("shipping", "sum"),
        ).reindex(["current", "previous"], fill_value=0)
        r = self.refunds
        r = r[(r["refunded_at"] >= self.prev_start) & (r["refunded_at"] < self.end)]
        refunds = r.groupby(np.where(r["refunded_at"] >= self.start, "current", "previous"))["amount"].sum()
        k["refunds"] = refunds.reindex(k.index, fill_value=0.0)
        k["revenue"] = k["gross"] - k["discounts"]
        k["aov"] = k["revenue"] / k["orders"].replace(0, np.nan)
        k["net_revenue"] = k["revenue"] - k["refunds"]
        k["profit"] = k["net_revenue"] - k["cogs"] - k["shipping_cost"]
        k["margin"] = k["profit"] / k["revenue"].replace(0, np.nan)
        return k[KPIS]

    def daily(self):
        np, pd = self.np, self.pd
        lines = self._lines(self.start, self.end)
        lines = lines.assign(day=lines["ordered_at"].dt.normalize(),
                             gross=lines["quantity"] * lines["unit_price"])
        d = lines.groupby("day").agg(gross=("gross", "sum"), discounts=("discount", "sum"),
                                     orders=("order_id", "nunique"))
        d = d.reindex(pd.date_range(self.start, self.end, freq="D", inclusive="left"), fill_value=0)
        d["revenue"] = d["gross"] - d["discounts"]
        d["aov"] = d["revenue"] / d["orders"].replace(0, np.nan)
        return d[DAILY]

    def top(self):
        lines = self._lines(self.start, self.end)
        lines = lines.assign(gross=lines["quantity"] * lines["unit_price"])
        t = lines.groupby("listing_id").agg(gross=("gross", "sum"), discounts=("discount", "sum"),
                                            orders=("order_id", "nunique"), units=("quantity", "sum"))
        t["revenue"] = (t["gross"] - t["discounts"]).round(2)
        t = t.reset_index().sort_values(["revenue", "listing_id"], ascending=[False, True]).head(TOP_N)
        return t.rename(columns={"listing_id": "listing"})[["listing", *TOP]]

    def queries(self):
        return {"kpis": self.kpis, "daily": self.daily, "top": self.top}

    def canonical(self, name, df):
        def plain(v):
            if hasattr(v, "item"):
                v = v.item()
            return None if isinstance(v, float) and math.isnan(v) else v

        if name == "kpis":
            return {period: {m: plain(df.loc[period, m]) for m in KPIS} for period in ("current", "previous")}
        if name == "daily":
            return [{"day": day.date(), **{m: plain(row[m]) for m in DAILY}} for day, row in df.iterrows()]
        return [{"listing": int(r["listing"]), **{m: plain(r[m]) for m in TOP}} for _, r in df.iterrows()]

    def close(self):
        pass


RUNNERS = {"tally": TallyRunner, "sql": SqlRunner, "pandas": PandasRunner}


# -- checking that the three agree ------------------------------------------------------------------

def _same(metric: str, a, b) -> bool:
    if metric in MONEY:
        return a is not None and b is not None and abs(Decimal(str(a)) - Decimal(str(b))) < Decimal("0.005")
    if metric in COUNTS:
        return a is not None and b is not None and int(a) == a and int(b) == b and int(a) == int(b)
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)


def compare(results: dict[str, dict], w: Window, reference: str = "tally") -> list[str]:
    """Every difference between the reference system's answers and the others' (empty: they agree)."""
    problems = []
    for system, answers in results.items():
        days = [r["day"] for r in answers["daily"]]
        if days != w.days:
            problems.append(f"{system}: daily series has {len(days)} days, not the {len(w.days)} days "
                            f"{w.start}..{w.days[-1]} in order")
        if len(answers["top"]) != TOP_N:
            problems.append(f"{system}: top listings has {len(answers['top'])} rows, not {TOP_N}")
    ref = results[reference]
    for system, answers in results.items():
        if system == reference:
            continue
        for period in ("current", "previous"):
            for m in KPIS:
                a, b = ref["kpis"][period][m], answers["kpis"][period][m]
                if not _same(m, a, b):
                    problems.append(f"kpis {period} {m}: {reference}={a!r} {system}={b!r}")
        for query, key, metrics in (("daily", "day", DAILY), ("top", "listing", TOP)):
            for i, (ra, rb) in enumerate(zip(ref[query], answers[query])):
                if ra[key] != rb[key]:
                    problems.append(f"{query} row {i}: {key} {reference}={ra[key]!r} {system}={rb[key]!r}")
                    continue
                for m in metrics:
                    if not _same(m, ra[m], rb[m]):
                        problems.append(f"{query} {key}={ra[key]} {m}: {reference}={ra[m]!r} {system}={rb[m]!r}")
    return problems


# -- worker processes ------------------------------------------------------------------------------

def peak_rss() -> int:
    """Peak resident set size of this process in bytes (Linux reports KiB)."""
    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return usage if sys.platform == "darwin" else usage * 1024


def measure(runner, reps: int, warmup: int) -> dict:
    """Run the set `warmup` times untimed, then `reps` times timed: per-query and whole-set wall ms,
    and the process's CPU ms (all threads) under "cpu:" keys — CPU time is what other load on the
    machine disturbs least."""
    queries = runner.queries()
    for _ in range(warmup):
        for fn in queries.values():
            fn()
    samples = {key: [] for name in (*queries, "set") for key in (name, f"cpu:{name}")}
    for _ in range(reps):
        began, began_cpu = time.perf_counter(), time.process_time()
        for name, fn in queries.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            samples[name].append((time.perf_counter() - t0) * 1000)
            samples[f"cpu:{name}"].append((time.process_time() - c0) * 1000)
        samples["set"].append((time.perf_counter() - began) * 1000)
        samples["cpu:set"].append((time.process_time() - began_cpu) * 1000)
    return samples


def _serve(system: str, ds_dir: str, rows: int, seed: int, w: Window, conn) -> None:
    """Worker process main loop: build the runner, then answer commands from the parent."""
    # DuckDB draws a progress bar on stdout for queries over 2 s (on in both DuckDB systems, as by
    # default); keep it out of the report. Results and failures travel back through the pipe.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        began = time.perf_counter()
        runner = RUNNERS[system](Dataset(Path(ds_dir), rows, seed), w)
        conn.send(("ok", {"setup_ms": (time.perf_counter() - began) * 1000, "rss_after_setup": peak_rss()}))
        while True:
            cmd, *args = conn.recv()
            if cmd == "results":
                first = {}
                answers = {}
                for name, fn in runner.queries().items():
                    t0 = time.perf_counter()
                    raw = fn()
                    first[name] = (time.perf_counter() - t0) * 1000
                    answers[name] = runner.canonical(name, raw)
                conn.send(("ok", {"answers": answers, "first_ms": first}))
            elif cmd == "time":
                conn.send(("ok", measure(runner, *args)))
            elif cmd == "rss":
                conn.send(("ok", peak_rss()))
            elif cmd == "stop":
                runner.close()
                conn.send(("ok", None))
                return
            else:
                raise ValueError(f"unknown command {cmd!r}")
    except BaseException:
        conn.send(("error", traceback.format_exc()))


class Worker:
    """One system in its own process (spawned: a clean interpreter, its own peak RSS)."""

    def __init__(self, system: str, ds: Dataset, w: Window):
        self.system = system
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(system, str(ds.dir), ds.rows, ds.seed, w, child),
                                   name=f"bench-{system}", daemon=True)
        self.process.start()
        child.close()
        self.setup = self._reply()

    def _reply(self):
        status, value = self.conn.recv()
        if status != "ok":
            self.process.join(5)
            raise RuntimeError(f"{SYSTEM_LABELS[self.system]} worker failed:\n{value}")
        return value

    def ask(self, *cmd):
        self.conn.send(cmd)
        return self._reply()

    def stop(self) -> None:
        if self.process.is_alive():
            self.ask("stop")
        self.process.join(30)


# -- the run -----------------------------------------------------------------------------------------

def _split(total: int, parts: int) -> list[int]:
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def run(rows: int = DEFAULT_ROWS, seed: int = SEED, reps: int = 10, warmup: int = 2, rounds: int = 2,
        systems=SYSTEMS, log=print) -> dict:
    ds = ensure(rows, seed, log=log)
    w = window_for(ds)
    log(f"dashboard: {rows:,} order lines; range {w.start}..{w.end - dt.timedelta(days=1)} "
        f"(previous {w.prev_start}..{w.start - dt.timedelta(days=1)}), {TZ}")

    # 1. answers from every system, compared before anything is timed. The DuckDB-based systems are
    #    stopped after answering (only one process may hold the file while Tally has it open to write).
    answers, first_ms, setup, pandas_worker = {}, {}, {}, None
    for system in systems:
        worker = Worker(system, ds, w)
        setup[system] = worker.setup
        reply = worker.ask("results")
        answers[system], first_ms[system] = reply["answers"], reply["first_ms"]
        if system == "pandas":
            pandas_worker = worker  # keep the loaded DataFrames for the timing phase
        else:
            worker.stop()
    problems = compare(answers, w, reference=systems[0])
    if problems:
        if pandas_worker:
            pandas_worker.stop()
        shown = "\n  ".join(problems[:40])
        raise SystemExit(f"dashboard: the systems disagree; the benchmark would be meaningless:\n  {shown}"
                         + (f"\n  ... and {len(problems) - 40} more" if len(problems) > 40 else ""))
    log(f"check: {', '.join(SYSTEM_LABELS[s] for s in systems)} agree on all {len(QUERIES)} queries "
        "(money to the cent, counts exactly, ratios to 1e-9, 30 complete days)")

    # 2. timing, one system at a time so they never compete for the cores, in `rounds` rounds that
    #    rotate the order (a fresh process for the DuckDB systems each round) so slow drifts of the
    #    machine's speed fall on every system alike.
    samples = {s: defaultdict(list) for s in systems}
    rss = {s: 0 for s in systems}
    loads = []
    for r, n in enumerate(_split(reps, rounds)):
        order = systems[r % len(systems):] + systems[:r % len(systems)]
        for system in order:
            worker = pandas_worker if system == "pandas" else Worker(system, ds, w)
            if system != "pandas":
                again = worker.ask("results")["answers"]
                if compare({systems[0]: answers[systems[0]], system: again}, w, reference=systems[0]):
                    raise SystemExit(f"dashboard: {system} answered differently in its timing process")
            loads.append(os.getloadavg()[0])
            log(f"round {r + 1}/{rounds}: timing {SYSTEM_LABELS[system]}: {warmup} warm-up + {n} timed runs "
                f"of the set (load average {loads[-1]:.2f})")
            for q, values in worker.ask("time", n, warmup).items():
                samples[system][q].extend(values)
            rss[system] = max(rss[system], worker.ask("rss"))
            if system != "pandas":
                worker.stop()
    if pandas_worker:
        pandas_worker.stop()

    medians = {s: {q: statistics.median(samples[s][q]) for q in (*QUERIES, "set")} for s in systems}
    cpu_medians = {s: {q: statistics.median(samples[s][f"cpu:{q}"]) for q in (*QUERIES, "set")} for s in systems}
    report = {
        "benchmark": "dashboard", "rows": rows, "seed": seed, "timezone": TZ,
        "range": {"from": w.start.isoformat(), "to": w.end.isoformat(),
                  "previous_from": w.prev_start.isoformat(), "previous_to": w.start.isoformat()},
        "reps": reps, "warmup": warmup, "rounds": rounds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "versions": _versions(),
        "median_ms": medians,
        "median_cpu_ms": cpu_medians,
        "samples_ms": {s: dict(v) for s, v in samples.items()},
        "load_average_before_each_timing": loads,
        "first_call_ms": first_ms,
        "setup_ms": {s: setup[s]["setup_ms"] for s in systems},
        "peak_rss_bytes": rss,
        "data": ds.manifest,
    }
    if {"tally", "sql", "pandas"} <= set(systems):
        t, s, p = (medians[x]["set"] for x in ("tally", "sql", "pandas"))
        report["ratios"] = {q: {"tally/sql": medians["tally"][q] / medians["sql"][q],
                                "pandas/tally": medians["pandas"][q] / medians["tally"][q],
                                "cpu tally/sql": cpu_medians["tally"][q] / cpu_medians["sql"][q],
                                "cpu pandas/tally": cpu_medians["pandas"][q] / cpu_medians["tally"][q]}
                            for q in (*QUERIES, "set")}
        report["targets"] = {
            "within_1.5x_of_sql": {"value": t / s, "target": TARGET_VS_SQL, "met": t / s <= TARGET_VS_SQL},
            "8x_faster_than_pandas": {"value": p / t, "target": TARGET_VS_PANDAS, "met": p / t >= TARGET_VS_PANDAS},
            "peak_rss_under_2GiB": {"value": rss["tally"], "target": TARGET_RSS, "met": rss["tally"] < TARGET_RSS},
        }
    return report


def _versions() -> dict:
    from importlib.metadata import version

    out = {}
    for pkg in ("tally", "duckdb", "ibis-framework", "pandas", "pyarrow", "numpy"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = None
    return out


def show(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    systems = list(report["median_ms"])
    table = Table(title=f"dashboard — {report['rows']:,} order lines, median of {report['reps']} warm runs (ms)",
                  caption=f"range {report['range']['from']} .. {report['range']['to']} (exclusive), {report['timezone']}")
    table.add_column("query")
    for s in systems:
        table.add_column(SYSTEM_LABELS[s], justify="right")
    has_ratios = "ratios" in report
    if has_ratios:
        table.add_column("Tally / SQL", justify="right")
        table.add_column("pandas / Tally", justify="right")
    for q in (*QUERIES, "set"):
        label = "whole set" if q == "set" else QUERY_LABELS[q]
        cells = [f"{report['median_ms'][s][q]:,.1f}" for s in systems]
        if has_ratios:
            r = report["ratios"][q]
            cells += [f"{r['tally/sql']:.2f}x", f"{r['pandas/tally']:.1f}x"]
        table.add_row(label, *cells, end_section=(q == QUERIES[-1]), style="bold" if q == "set" else None)
    console.print(table)
    cpu = report["median_cpu_ms"]
    cpu_table = Table(title="process CPU time, all threads (ms, median)")
    cpu_table.add_column("query")
    for s in systems:
        cpu_table.add_column(SYSTEM_LABELS[s], justify="right")
    if has_ratios:
        cpu_table.add_column("Tally / SQL", justify="right")
        cpu_table.add_column("pandas / Tally", justify="right")
    for q in (*QUERIES, "set"):
        cells = [f"{cpu[s][q]:,.1f}" for s in systems]
        if has_ratios:
            r = report["ratios"][q]
            cells += [f"{r['cpu tally/sql']:.2f}x", f"{r['cpu pandas/tally']:.1f}x"]
        cpu_table.add_row("whole set" if q == "set" else QUERY_LABELS[q], *cells, end_section=(q == QUERIES[-1]),
                          style="bold" if q == "set" else None)
    console.print(cpu_table)
    busiest = max(report["load_average_before_each_timing"], default=0.0)
    if busiest > 0.5:
        console.print(f"[yellow]note: the machine was busy while timing (1-min load average up to {busiest:.1f} "
                      f"on {os.cpu_count()} CPUs); wall times are noisy[/yellow]")
    mem = Table(title="peak RSS per process (each system runs in its own process)")
    mem.add_column("system")
    mem.add_column("peak RSS", justify="right")
    mem.add_column("setup", justify="right")
    for s in systems:
        mem.add_row(SYSTEM_LABELS[s], f"{report['peak_rss_bytes'][s] / 1024**2:,.0f} MiB",
                    f"{report['setup_ms'][s] / 1000:,.1f} s")
    console.print(mem)
    if "targets" in report:
        t = report["targets"]
        ok = lambda met: "[green]met[/green]" if met else "[red]NOT met[/red]"  # noqa: E731
        cpu_ratio = report["ratios"]["set"]
        v = t["within_1.5x_of_sql"]
        console.print(f"target: whole set within {v['target']}x of hand-written SQL: {v['value']:.2f}x — {ok(v['met'])}"
                      f"  (CPU time: {cpu_ratio['cpu tally/sql']:.2f}x)")
        v = t["8x_faster_than_pandas"]
        console.print(f"target: at least {v['target']:.0f}x faster than pandas: {v['value']:.1f}x — {ok(v['met'])}"
                      f"  (CPU time: {cpu_ratio['cpu pandas/tally']:.2f}x; DuckDB uses {os.cpu_count()} threads, pandas 1)")
        v = t["peak_rss_under_2GiB"]
        console.print(f"target: Tally peak memory under 2 GiB: {v['value'] / 1024**2:,.0f} MiB — {ok(v['met'])}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="order lines (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--reps", type=int, default=10, help="timed runs of the set (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs of the set before each round")
    parser.add_argument("--rounds", type=int, default=2,
                        help="split the timed runs into rounds, rotating the systems' order (default 2)")
    parser.add_argument("--json", type=Path, help="also write the numbers to this JSON file")


def main(args: argparse.Namespace) -> dict:
    report = run(args.rows, args.seed, args.reps, args.warmup, args.rounds)
    show(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return report
