"""The ledger example end to end through real processes: its upstream Transaction API (throttling on), `tally
serve` polling it every second, the seed routes' JSON equal to plain Python over the upstream's rows (before
and after new and corrected rows), and a `kill -9` during a poll: after the restart the same answers, the
poll resumed from the watermark, nothing counted twice."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import httpx

from examples.ledger import reference
from examples.ledger.generate import _since, serve_upstream
from tests.serve.conftest import ENV, TALLY, Server, free_port, tally

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ledger"
UNKNOWN = "999999"


class Gate:
    """Holds the upstream's requests while closed (as a slow upstream would); `held` keeps their parameters."""

    def __init__(self, api):
        self.open, self.entered, self.held = threading.Event(), threading.Event(), []
        self.open.set()
        answer = api.answer

        def gated(path, params):
            if not self.open.is_set():
                self.held.append(params)
                self.entered.set()
                self.open.wait(60)
            return answer(path, params)

        api.answer = gated

    def close(self) -> None:
        self.entered.clear()
        self.open.clear()


def start(root: Path, url: str) -> Server:
    port, log = free_port(), root.parent / "serve.log"
    handle = open(log, "a")
    proc = subprocess.Popen([*TALLY, "-p", str(root), "serve", "--port", str(port)], stdout=handle,
                            stderr=subprocess.STDOUT, env={**ENV, "LEDGER_API_URL": url}, stdin=subprocess.DEVNULL)
    handle.close()
    server = Server(proc, port, root, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, f"tally serve did not start:\n{server.output()}"
        time.sleep(0.1)


def runs(client: httpx.Client) -> list[dict]:
    return client.get("/api/v1/jobs", params={"limit": 200}).json()["runs"]["rows"]


def when(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def wait_for_poll(client: httpx.Client, after: dt.datetime, timeout: float = 40, moment: str = "started_at") -> None:
    """Until a poll that started (or, with `moment="ended_at"`, ended) after `after` succeeded: it read
    everything the upstream held then."""
    deadline = time.monotonic() + timeout
    while not any(r["job"] == "ingest:transactions" and r["status"] == "succeeded" and when(r[moment]) > after
                  for r in runs(client)):
        assert time.monotonic() < deadline, runs(client)[:5]
        time.sleep(0.2)


def decimal_json(response: httpx.Response):
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal, parse_int=Decimal)


def check_answers(client: httpx.Client, rows: list[dict]) -> None:
    """The seed routes equal reference.py over `rows` (a snapshot of the upstream's transactions)."""
    users = reference.per_user(rows)
    edited = sorted({r["userId"] for r in rows if r["updatedAt"] != r["createdAt"]})
    pending = [p["userId"] for p in reference.payouts(rows)]
    chosen = [*sorted(users)[:3], edited[0], pending[0], pending[-1], UNKNOWN]
    assert UNKNOWN not in users and len(pending) > 5
    for user in chosen:
        assert decimal_json(client.get(f"/aggregatedData/{user}")) == reference.aggregated_data(rows, user), user
    assert decimal_json(client.get("/aggregatedData/payouts")) == reference.payouts(rows)


def test_ledger_example_served_polled_killed_and_restarted(tmp_path):
    root = tmp_path / "ledger"
    root.mkdir()
    config = (EXAMPLE / "tally.yml").read_text(encoding="utf-8")
    assert config.count("schedule: every 12s") == 1
    # polled every second; a lease the killed server held lapses after 3 s (60 s by default) so the restart polls soon
    config = config.replace("schedule: every 12s", "schedule: every 1s") + "\njobs: {lease: 3s}\n"
    (root / "tally.yml").write_text(config, encoding="utf-8")
    with serve_upstream(rows=3_000, seed=16, throttle_every=4, retry_after=0.2) as upstream:
        api, gate = upstream.api, Gate(upstream.api)
        server = start(root, upstream.url)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
                wait_for_poll(client, dt.datetime.now(dt.timezone.utc))
                check_answers(client, api.transactions())
                api.advance(300)                                  # new rows, payouts, corrections
                wait_for_poll(client, dt.datetime.now(dt.timezone.utc))
                before_kill = api.transactions()
                check_answers(client, before_kill)
                # a poll starts, the upstream is slow to answer it: kill -9 while it runs
                gate.close()
                api.advance(200)
                assert gate.entered.wait(20)
                running = [r for r in runs(client) if r["status"] == "running"]
                assert [r["job"] for r in running] == ["ingest:transactions"], runs(client)[:3]
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(30)
            gate.entered.clear()
            polls = len(gate.held)
            server = start(root, upstream.url)
            with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30) as client:
                assert gate.entered.wait(20), server.output()[-3000:]   # the restarted server polls (held for now)
                # from the stored watermark: the last row the killed server had loaded, not from the start
                assert _since(gate.held[polls]["updatedSince"]) == before_kill[-1]["updatedAt"]
                check_answers(client, before_kill)                # the same answers as before the kill
                killed = [r for r in runs(client) if r["run_id"] == running[0]["run_id"]]
                assert [r["status"] for r in killed] == ["abandoned"]
                opened = dt.datetime.now(dt.timezone.utc)
                gate.open.set()
                wait_for_poll(client, opened, moment="ended_at")   # the held poll, answered after `opened`
                final = api.transactions()
                check_answers(client, final)
            assert server.stop() == 0, server.output()
        finally:
            gate.open.set()
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait(30)
    assert api.throttled > 0 and "Traceback" not in server.output()
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        ids = [row[0] for row in con.execute("select id from transactions").fetchall()]
        stored = dict(con.execute("select user_id, balance from ledger_users").fetchall())
    assert len(ids) == len(set(ids)) == len(final) and set(ids) == {r["id"] for r in final}   # nothing twice
    assert stored == {user: b["balance"] for user, b in reference.per_user(final).items()}
    verified = tally(root, "verify", "users", env={**ENV, "LEDGER_API_URL": upstream.url})   # the ledger; the rollup has no schedule
    assert verified.returncode == 0 and "ledger:users: ok" in verified.stdout, (verified.stdout, verified.stderr)
