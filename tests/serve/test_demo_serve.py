"""`tally demo` without `--no-serve`: each example generated, loaded, then served as `tally serve` serves
it (scheduler on) until SIGTERM; the ledger example's upstream API keeps answering the scheduled polls."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from tally.cli import app
from tests.serve.conftest import ENV, TALLY, free_port, tally

POLLED = re.compile(r"ingest:transactions succeeded rows=(\d+)")


class Demo:
    """A `tally demo` process: its stdout and stderr in files of their own."""

    def __init__(self, folder: Path, example: str, rows: int):
        self.port, self.folder = free_port(), folder / "demo"
        self.out, self.err = folder / "demo.out", folder / "demo.err"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen([*TALLY, "demo", "--example", example, "--rows", str(rows), "--dir",
                                          str(self.folder), "--port", str(self.port)],
                                         stdout=out, stderr=err, env=ENV, stdin=subprocess.DEVNULL, cwd=folder)

    def wait_serving(self, timeout: float = 120) -> dict[str, str]:
        """The URLs it listed, by label, once its port answers."""
        deadline = time.monotonic() + timeout
        while "Prometheus" not in self.out.read_text() or not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tally demo did not serve:\n{self.out.read_text()}\n{self.err.read_text()}")
            time.sleep(0.1)
        listed = self.out.read_text().split("Ctrl-C or SIGTERM stops it):", 1)[1]
        return dict(re.findall(r"^ +(\S.*?) {2,}(http://\S+)$", listed, re.M))

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_demo_serves_the_ledger_example_and_keeps_its_upstream_polled(tmp_path):
    demo = Demo(tmp_path, "ledger", 400)
    try:
        urls = demo.wait_serving()
        base = f"http://127.0.0.1:{demo.port}"
        assert urls["API docs"] == f"{base}/api/docs" and urls["Prometheus"] == f"{base}/metrics"
        assert urls["aggregated_data"] == f"{base}/aggregatedData/{{userId}}"
        assert urls["pending_payouts"] == f"{base}/aggregatedData/payouts"
        with httpx.Client(timeout=30) as client:
            user = client.get(urls["e.g."])
            assert user.status_code == 200 and set(user.json()) == {"balance", "earned", "spent", "payout", "paidOut"}
            entity = urls["e.g."].rsplit("/", 1)[1]
            stored = client.get(f"{base}/api/v1/ledgers/users/{entity}").json()
            assert user.json()["balance"] == stored["balance"] != 0
            assert client.get(urls["pending_payouts"]).json()            # some users wait for a payout
            assert urls["API"] == f"{base}/api/v1" and client.get(urls["query"]).json()["rows"]
            assert "<title>" in client.get(urls["API docs"]).text
            assert "tally_source_rows_loaded" in client.get(urls["Prometheus"]).text
        # the schedule (`every 12s`) keeps polling the upstream, which keeps running and adding rows
        deadline = time.monotonic() + 45
        while len(POLLED.findall(demo.err.read_text())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        polls = [int(rows) for rows in POLLED.findall(demo.err.read_text())]
        assert len(polls) >= 2 and sum(polls) > 0, demo.err.read_text()
        ran = tally(demo.folder, "run", "ingest:transactions")   # handed to the demo's server
        assert ran.returncode == 0 and "succeeded" in ran.stdout, (ran.stdout, ran.stderr)
        assert demo.stop() == 0, demo.err.read_text()
    finally:
        demo.kill()
    assert "coming" not in demo.out.read_text() + demo.err.read_text()
    assert "Traceback" not in demo.err.read_text()
    assert not (demo.folder / ".tally" / "server.json").exists()


@pytest.mark.parametrize("example", ["ecommerce", "retail", "stats"])
def test_demo_serves_every_example(tmp_path, example):
    demo = Demo(tmp_path, example, 300)
    try:
        urls = demo.wait_serving()
        with httpx.Client(timeout=30) as client:
            query = client.get(urls["query"])
            assert query.status_code == 200 and query.json()["rows"], query.text
            assert client.get(urls["API docs"]).status_code == 200
            assert client.get(f"http://127.0.0.1:{demo.port}/readyz").json()["status"] == "ready"
        assert demo.stop() == 0, demo.err.read_text()
    finally:
        demo.kill()


def test_demo_refuses_a_busy_port_and_a_public_host_before_generating(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for args, says in ((["--port", str(port)], f"port {port} on 127.0.0.1 is in use"),
                           (["--host", "0.0.0.0"], "no API key is configured")):
            result = CliRunner().invoke(app, ["demo", "--example", "ledger", "--dir", str(tmp_path / "d"), *args])
            lines = result.stderr.strip().splitlines()
            assert result.exit_code == 2 and len(lines) == 1 and says in lines[0], result.stderr
            assert not (tmp_path / "d").exists()
