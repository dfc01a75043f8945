"""The "api" benchmark: `tally serve` under load, against a bare FastAPI floor in the same run.

A project of `--transactions` transactions over `--users` users (seeded; a CSV source, a `users`
ledger, a daily rollup) is generated once into `bench/data/api-{transactions}-{users}-{seed}/` and
ingested. Then, each measured by `wrk` (Debian's; installed with apt when missing) in its own
process for `--duration` seconds with `--connections` connections:

- `ledger`: `GET /api/v1/ledgers/users/{user}` over random users, through `tally serve`;
- `query cached`: `GET /api/v1/query?metrics=...` for one dashboard query (answered from the
  answer cache after its first request);
- `floor ledger`: the same lookup by a bare FastAPI app with one hand-written DuckDB statement
  (bench/api_floor.py) under the same uvicorn: what this stack can do at best;
- `floor static`: the bare app returning a fixed body (the cost of HTTP + FastAPI alone).
And `query uncached`: the dashboard's queries, each with a different filter so no answer cache
can serve them, one at a time from a Python client: p50 / p99.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
TARGET_RPS, TARGET_P99_MS = 2000, 50.0
DASHBOARD = [  # (metrics, extra query parameters): what a dashboard page asks
    (["earned", "spent"], {"grain": "month"}),
    (["balance_change"], {"grain": "day", "last": "30d"}),
    (["transactions", "users"], {"grain": "week"}),
    (["payout", "paid_out"], {"by": "type"}),
]

TALLY_YML = """\
name: api-bench
timezone: UTC
warehouse: duckdb:///warehouse.duckdb
sources:
  transactions:
    kind: csv
    path: data/transactions.csv
    table: transactions
    primary_key: [id]
    cursor: updated_at
    columns: {id: int64, user_id: string, type: string, amount: "decimal(12,2)",
              created_at: timestamp, updated_at: timestamp}
models:
  transactions:
    table: transactions
    time: created_at
    updated: updated_at
    primary_key: [id]
    dimensions: {user_id: user_id, type: type}
    measures:
      earned: {sum: amount, where: "type = 'earned'"}
      spent: {sum: amount, where: "type = 'spent'"}
      payout: {sum: amount, where: "type = 'payout'"}
      paid_out: {sum: amount, where: "type = 'paid_out'"}
      transactions: {count: "*"}
      users: {count_distinct: user_id}
metrics:
  balance_change: earned - spent
ledgers:
  users:
    model: transactions
    entity: user_id
    buckets: {earned: {measure: earned}, spent: {measure: spent}, payout: {measure: payout},
              paidOut: {measure: paid_out}}
    formulas: {balance: earned - spent, pending: payout - paidOut}
rollups:
  daily: {metrics: [earned, spent, payout, paid_out, transactions], grains: [day, week, month]}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--uncached", type=int, default=200, help="uncached dashboard requests (default 200)")
    parser.add_argument("--json", type=Path, help="write the numbers to this JSON file")


def tally_command() -> list[str]:
    script = Path(sys.executable).with_name("tally")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tally.cli"]


def user_name(index: int) -> str:
    return f"u{index:06d}"


def build_project(transactions: int, users: int, seed: int) -> Path:
    """The bench project, generated and ingested once (`done` marks a finished one)."""
    target = DATA / f"api-{transactions}-{users}-{seed}"
    if (target / "done").exists():
        return target
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    shutil.rmtree(target, ignore_errors=True)
    (target / "data").mkdir(parents=True)
    (target / "tally.yml").write_text(TALLY_YML)
    print(f"generating {transactions:,} transactions over {users:,} users -> {target} (once; cached)",
          file=sys.stderr)
    rng = np.random.default_rng(seed)
    created = np.datetime64("2026-01-01T00:00:00") + rng.integers(0, 330 * 86400, transactions).astype("timedelta64[s]")
    kinds = np.array(["earned", "spent", "payout", "paid_out"])[rng.choice(4, transactions, p=[0.5, 0.3, 0.12, 0.08])]
    table = pa.table({
        "id": np.arange(1, transactions + 1),
        "user_id": [user_name(i) for i in rng.integers(0, users, transactions)],
        "type": kinds,
        "amount": (rng.integers(1, 50_000, transactions) / 100).round(2),
        "created_at": pa.array(created.astype("datetime64[us]")),
        "updated_at": pa.array(created.astype("datetime64[us]")),
    })
    pacsv.write_csv(table, target / "data" / "transactions.csv")
    started = time.perf_counter()
    subprocess.run([*tally_command(), "ingest"], cwd=target, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*tally_command(), "rollup", "build"], cwd=target, check=True, stdout=subprocess.DEVNULL)
    print(f"ingested (ledger refreshed) and rollup built in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    (target / "done").write_text("")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url} in {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def peak_rss_mib(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) / 1024 if found else None


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or "wrk"


def random_lookups(prefix: str, users: int, seed: int) -> str:
    """A wrk script asking for `prefix` + a random user's name (u000000 .. u{users-1}) each request."""
    return (f"math.randomseed({seed})\n"
            "request = function()\n"
            f'  return wrk.format("GET", string.format("{prefix}%06d", math.random(0, {users - 1})))\n'
            "end\n")


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> dict:
    """Requests per second and latency percentiles (ms) of one wrk run; non-2xx answers counted."""
    argv = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script or "")
    if script:
        argv[1:1] = ["-s", handle.name]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    os.unlink(handle.name)
    text = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    latency = {f"p{p}": _ms(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M).group(1)) for p in (50, 75, 90, 99)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"rps": rps, **latency, "non_2xx": int(errors.group(1)) if errors else 0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def uncached(base: str, requests: int, seed: int) -> dict:
    """The dashboard's queries one at a time, each with a filter no earlier request had."""
    from urllib.parse import urlencode

    rng = random.Random(seed)
    times = []
    for index in range(requests):
        metrics, extra = DASHBOARD[index % len(DASHBOARD)]
        user = user_name(rng.randrange(0, 10**6))
        params = [("metrics", m) for m in metrics] + list(extra.items()) + [("where", f"user_id <> '{user}'")]
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/api/v1/query?{urlencode(params)}", timeout=60) as answer:
            answer.read()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"requests": requests, "p50": statistics.median(times), "p99": times[int(len(times) * 0.99) - 1],
            "max": times[-1]}


def serve_tally(project: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([*tally_command(), "serve", "--no-scheduler", "--port", str(port)], cwd=project,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/healthz", process)
    return process, base


def serve_floor(project: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.api_floor", str(project / "warehouse.duckdb"), str(port)],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_ready(f"{base}/static", process)
    return process, base


def main(args: argparse.Namespace) -> dict:
    project = build_project(args.transactions, args.users, args.seed)
    query = "/api/v1/query?metrics=earned&metrics=spent&grain=month"
    results: dict = {"transactions": args.transactions, "users": args.users, "duration_s": args.duration,
                     "connections": args.connections, "load_average": os.getloadavg()[0]}

    process, base = serve_tally(project)
    try:
        urllib.request.urlopen(base + query, timeout=60).read()   # the first answer fills the cache
        urllib.request.urlopen(base + "/api/v1/ledgers/users/u000000", timeout=60).read()   # warm: the index
        results["ledger"] = wrk(base, args.duration, args.connections,
                                random_lookups("/api/v1/ledgers/users/u", args.users, args.seed))
        results["query cached"] = wrk(base + query, args.duration, args.connections)
        results["query uncached"] = uncached(base, args.uncached, args.seed)
        results["tally_peak_rss_mib"] = peak_rss_mib(process.pid)
    finally:
        stop(process)

    process, base = serve_floor(project)
    try:
        results["floor ledger"] = wrk(base, args.duration, args.connections, random_lookups("/users/u", args.users, args.seed))
        results["floor static"] = wrk(base + "/static", args.duration, args.connections)
        results["floor_peak_rss_mib"] = peak_rss_mib(process.pid)
    finally:
        stop(process)

    report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return results


def report(results: dict) -> None:
    print(f"\n{results['transactions']:,} transactions, {results['users']:,} users; wrk -c{results['connections']} "
          f"for {results['duration_s']} s each; load average {results['load_average']:.1f}\n")
    print(f"{'run':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}   target")
    for name in ("ledger", "query cached", "floor ledger", "floor static"):
        row = results[name]
        target = ""
        if not name.startswith("floor"):
            # non-2xx are 404s: a random user may have no transaction (5 of the 100,000 at seed 42)
            met = row["rps"] >= TARGET_RPS and row["p99"] < TARGET_P99_MS
            target = f">= {TARGET_RPS} req/s, p99 < {TARGET_P99_MS:.0f} ms: {'met' if met else 'NOT met'}"
        print(f"{name:<16}{row['rps']:>10,.0f}{row['p50']:>9.2f}{row['p99']:>9.2f}{row['non_2xx']:>9}   {target}")
    print(f"\nledger vs floor: {results['ledger']['rps'] / results['floor ledger']['rps']:.2f}x the floor's req/s")
    unc = results["query uncached"]
    print(f"uncached dashboard queries ({unc['requests']} one at a time): p50 {unc['p50']:.1f} ms, "
          f"p99 {unc['p99']:.1f} ms, max {unc['max']:.1f} ms")
    print(f"peak RSS: tally serve {results['tally_peak_rss_mib'] or 0:.0f} MiB, "
          f"floor {results['floor_peak_rss_mib'] or 0:.0f} MiB")
