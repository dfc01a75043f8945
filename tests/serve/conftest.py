"""A real `tally serve` subprocess on a free port over a temporary DuckDB project, and the CLI run as
another process (as a user runs it from a second terminal)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

TALLY = [sys.executable, "-c", "from tally.cli import main; main()"]
# the same terminal for every run: no colours, a fixed width
ENV = {**{k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")},
       "COLUMNS": "100", "NO_COLOR": "1"}


def tally(root: Path, *args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*TALLY, "-p", str(root), *args], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout, stdin=subprocess.DEVNULL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    root: Path
    log: Path
    host: str = "127.0.0.1"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 120) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text()

    def handed_off(self) -> int:
        """How many CLI commands the server has run."""
        return self.output().count("POST /api/v1/_cli")


@contextmanager
def serving(root: Path, *args: str, handoff: bool = True, scheduler: bool = False):
    """`tally serve` on `root`, ready (its server.json written when `handoff`, its port answering);
    stopped after."""
    port, log = free_port(), root.parent / f"serve-{root.name}.log"
    with open(log, "w") as handle:
        proc = subprocess.Popen([*TALLY, "-p", str(root), "serve", "--port", str(port),
                                 "--scheduler" if scheduler else "--no-scheduler", *args],
                                stdout=handle, stderr=subprocess.STDOUT, env=ENV, stdin=subprocess.DEVNULL)
    server = Server(proc, port, root, log, args[args.index("--host") + 1] if "--host" in args else "127.0.0.1")
    try:
        deadline = time.monotonic() + 60
        while not _ready(server, handoff):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"tally serve did not start:\n{server.output()}")
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)


def _ready(server: Server, handoff: bool) -> bool:
    if handoff and not (server.root / ".tally" / "server.json").exists():
        return False
    try:
        socket.create_connection((server.host, server.port), timeout=1).close()
        return True
    except OSError:
        return False


def write_orders(path: Path, first_id: int, count: int, updated_from: dt.datetime) -> None:
    """`count` paid orders, one a second from `updated_from` (naive UTC, before now: no future cursor)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order_id", "ordered_at", "updated_at", "customer", "country", "status", "amount"])
        for i in range(count):
            moment = (updated_from + dt.timedelta(seconds=i)).isoformat(sep=" ")
            writer.writerow([first_id + i, moment, moment, f"c{i % 50:03d}", ("DE", "TR", "US")[i % 3], "paid",
                             f"{(i % 997) / 10:.2f}"])


def days_ago(days: float) -> dt.datetime:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)).replace(tzinfo=None, microsecond=0)


@pytest.fixture(scope="session")
def loaded_project(tmp_path_factory) -> Path:
    """`tally init`'s project with its orders (read from data/orders*.csv) loaded and its rollup built."""
    from tally.commands.init import init_project

    root = tmp_path_factory.mktemp("serve") / "shop"
    init_project(root, None)
    config = root / "tally.yml"
    config.write_text(config.read_text().replace("path: data/orders.csv ", "path: data/orders*.csv "))
    write_orders(root / "data" / "orders.csv", 1, 400, days_ago(20))
    for args in (["ingest"], ["rollup", "build"]):
        result = tally(root, *args)
        assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def project(loaded_project, tmp_path) -> Path:
    """A fresh copy of the loaded project (no server file, the same warehouse)."""
    root = tmp_path / "shop"
    shutil.copytree(loaded_project, root)
    return root
