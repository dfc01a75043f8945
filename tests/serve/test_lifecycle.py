"""`tally serve` starts, stops and fails cleanly: SIGTERM mid-load, kill -9, a port in use, a second
server, and the `_cli` route refusing strangers."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import stat
import subprocess
import time

import duckdb
import httpx
import pytest

from tally.serve import serverfile
from tally.serve.handoff import Handoff, is_write
from tests.serve.conftest import ENV, TALLY, days_ago, free_port, serving, tally, write_orders


def orders(root) -> int:
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        return con.execute("select count(*) from orders").fetchone()[0]


def test_sigterm_during_a_handed_off_ingest_keeps_all_or_none(project):
    write_orders(project / "data" / "orders2.csv", 10_000, 200_000, days_ago(4))
    before = orders(project)
    with serving(project) as server:
        ingest = subprocess.Popen([*TALLY, "-p", str(project), "ingest", "--format", "json"], env=ENV, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.handed_off() == 0 and time.monotonic() < deadline:   # the server has the command
            time.sleep(0.05)
        time.sleep(0.3)
        assert ingest.poll() is None, "the ingest ended before the signal"
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        # the server stops accepting but still owns the file: a new command waits, then runs by itself
        tables = tally(project, "tables")
        assert server.stop() == 0, server.output()
        out, err = ingest.communicate(timeout=60)
    assert not (project / ".tally" / "server.json").exists()
    assert "Traceback" not in server.output() + err
    assert tables.returncode == 0 and "lock" not in (tables.stdout + tables.stderr).lower(), tables.stderr
    assert server.handed_off() == 1 and "│ orders " in tables.stdout
    after = orders(project)
    assert after - before in (0, 200_000)
    if ingest.returncode == 0:   # it finished in the server before it stopped: every row is there
        assert after - before == 200_000 and json.loads(out)[0]["status"] == "ok"
    assert f"│ {after:,} │" in tables.stdout   # `tables` ran once the server had finished and gone


def test_a_second_ctrl_c_stops_at_once_and_rolls_the_load_back(project):
    write_orders(project / "data" / "orders2.csv", 10_000, 200_000, days_ago(4))
    before = orders(project)
    with serving(project) as server:
        ingest = subprocess.Popen([*TALLY, "-p", str(project), "ingest"], env=ENV, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.handed_off() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGINT)
        time.sleep(0.3)
        assert ingest.poll() is None, "the ingest ended before the second signal"
        assert server.stop(signal.SIGINT) == 1, server.output()
        out, err = ingest.communicate(timeout=60)
    assert not (project / ".tally" / "server.json").exists()
    assert ingest.returncode == 1 and err == f"error: tally serve (pid {server.proc.pid}) stopped before the " \
                                             "command finished; run it again\n"
    assert orders(project) == before   # the cut load's transaction was never committed
    assert tally(project, "tables").returncode == 0


def test_kill_9_leaves_a_file_the_next_command_ignores(project):
    expected = tally(project, "tables")
    with serving(project) as server:
        server.stop(signal.SIGKILL)
        assert (project / ".tally" / "server.json").exists()
        result = tally(project, "tables")
    assert (result.returncode, result.stdout, result.stderr) == \
           (expected.returncode, expected.stdout, expected.stderr)
    assert not (project / ".tally" / "server.json").exists()


def test_a_port_in_use_is_one_line_and_exit_2(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = tally(project, "serve", "--port", str(port), "--no-scheduler")
    assert result.returncode == 2
    assert result.stderr.startswith("error: port ") and "in use" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""
    assert not (project / ".tally" / "server.json").exists()


def test_one_server_owns_a_project(project):
    with serving(project) as server:
        second = tally(project, "serve", "--port", str(free_port()), "--no-scheduler")
        info = json.loads((project / ".tally" / "server.json").read_text())
        mode = stat.S_IMODE((project / ".tally" / "server.json").stat().st_mode)
        assert server.stop() == 0
    assert second.returncode == 2 and "already runs" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    assert mode == 0o600
    assert info["pid"] == server.proc.pid and info["port"] == server.port and len(info["token"]) >= 32


def test_the_cli_route_wants_loopback_and_the_token(tmp_path):
    from fastapi import FastAPI

    handoff = Handoff(tmp_path, "s3cret-token")
    app = FastAPI()
    app.include_router(handoff.router())

    async def post(client_host: str, token: str | None, body=None):
        transport = httpx.ASGITransport(app=app, client=(client_host, 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://tally") as client:
            headers = {serverfile.TOKEN_HEADER: token} if token is not None else {}
            return await client.post(serverfile.ROUTE, json=body or {"args": ["--version"]}, headers=headers)

    for host, token, status in [("10.1.2.3", "s3cret-token", 403), ("192.168.0.7", None, 403),
                                ("127.0.0.1", "wrong", 401), ("127.0.0.1", None, 401), ("::1", "", 401)]:
        response = asyncio.run(post(host, token))
        assert response.status_code == status, (host, token)
        assert set(response.json()["error"]) == {"code", "message"}
    assert asyncio.run(post("127.0.0.1", "s3cret-token")).status_code == 200
    assert asyncio.run(post("127.0.0.1", "s3cret-token", {"args": "tables"})).status_code == 400
    assert asyncio.run(post("127.0.0.1", "s3cret-token", {"args": ["serve"]})).status_code == 409


def test_a_stale_file_of_a_reused_pid_is_ignored(tmp_path):
    import os

    info = serverfile.ServerInfo(os.getpid(), "127.0.0.1", free_port(), "t", started="1")   # alive, other start
    serverfile.write(tmp_path, info)
    assert serverfile.read(tmp_path) == info and not info.alive()
    assert serverfile.ServerInfo(os.getpid(), "127.0.0.1", 1, "t",
                                 started=serverfile.process_start(os.getpid())).alive()


@pytest.mark.parametrize("args, writes", [
    (["query", "revenue"], False), (["--profile", "x", "tables"], False), (["verify"], False),
    (["verify", "--repair"], True), (["ingest"], True), (["rollup", "build"], True), (["seed"], True),
    (["some-new-command"], True),
])
def test_writes_are_told_from_reads(args, writes):
    assert is_write(args) is writes


def this_machines_address() -> str | None:
    """An address of this machine that is not loopback (None when it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))   # no packet is sent: this picks the outgoing interface
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_a_server_on_another_interface_takes_cli_commands_on_loopback_only(project):
    address = this_machines_address()
    if address is None:
        pytest.skip("this machine has no address besides loopback")
    with open(project / "tally.yml", "a") as config:   # the API serves other machines only with a key
        config.write(f'\napi:\n  keys:\n    ops: {{hash: "sha256:{"0" * 64}", scopes: [read]}}\n')
    expected = tally(project, "tables")
    with serving(project, "--host", address) as server:
        info = serverfile.read(project)
        handed = tally(project, "tables")
        refused = httpx.post(f"http://{address}:{server.port}{serverfile.ROUTE}", json={"args": ["tables"]},
                             headers={serverfile.TOKEN_HEADER: info.token})
        assert server.stop() == 0
    assert info.host == "127.0.0.1" and info.port != server.port   # a loopback port of its own for the CLI
    assert (handed.returncode, handed.stdout) == (expected.returncode, expected.stdout)
    assert refused.status_code == 403 and '_cli HTTP/1.1" 403' in server.output() and server.handed_off() == 2


def test_scheduled_loads_and_handed_off_commands_share_the_server(project):
    """A source polled every 2 s by the server's scheduler while the CLI hands it a load and a query:
    every run succeeds (one writer at a time), SIGTERM lets them finish, the rows are all there once."""
    config = project / "tally.yml"
    config.write_text(config.read_text().replace("    table: orders                    #",
                                                 "    schedule: every 2s\n    table: orders                    #", 1))
    with serving(project, scheduler=True) as server:
        write_orders(project / "data" / "orders2.csv", 10_000, 20_000, days_ago(4))
        deadline = time.monotonic() + 60
        while "ingest:orders succeeded" not in server.output() and time.monotonic() < deadline:
            time.sleep(0.2)
        write_orders(project / "data" / "orders3.csv", 50_000, 30_000, days_ago(3))
        handed = tally(project, "ingest", "--format", "json")
        runs = tally(project, "jobs", "--format", "json")
        assert server.stop() == 0, server.output()
    assert "ingest:orders succeeded" in server.output() and "failed" not in server.output()
    assert handed.returncode == 0 and runs.returncode == 0, handed.stderr + runs.stderr
    assert {run["status"] for run in json.loads(runs.stdout)} <= {"succeeded", "skipped", "running"}
    assert orders(project) == 400 + 20_000 + 30_000
    assert not (project / ".tally" / "server.json").exists()


def test_beyond_loopback_without_an_api_key_is_refused(project):
    result = tally(project, "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert result.returncode == 2 and result.stderr.startswith("error: --host 0.0.0.0: no API key")
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (project / ".tally" / "server.json").exists()
