"""While `tally serve` owns a DuckDB project, the CLI from another process prints what it prints
without a server (same output, same exit code) and never meets the file lock."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import duckdb

from tests.serve.conftest import ENV, TALLY, days_ago, serving, tally, write_orders

READS = [
    ["query", "revenue", "orders", "--grain", "month", "--by", "country"],
    ["query", "revenue", "aov", "--format", "json", "--meta"],
    ["tables"],
    ["verify"],
    ["query", "no_such_metric"],                # a bad query: one line, exit 2
    ["no-such-command"],                        # a usage error: one line, exit 2
]


def outcome(result: subprocess.CompletedProcess) -> tuple:
    return result.returncode, result.stdout, result.stderr


def masked(text: str) -> str:
    """Without what differs between two loads of the same rows: times taken and moments of loads/builds."""
    text = re.sub(r"\b[0-9a-f]{32}\b", "<id>", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", "<time>", text)
    return re.sub(r"\b\d+\.\d\d\b(?= *[│|,}\n])|\"seconds\": [\d.]+", "<secs>", text)


def assert_clean(result: subprocess.CompletedProcess) -> None:
    both = result.stdout + result.stderr
    assert "lock" not in both.lower() and "Traceback" not in both, both


def test_reads_through_the_server_equal_direct_runs(project):
    direct = [outcome(tally(project, *args)) for args in READS]
    with serving(project) as server:
        handed = [tally(project, *args) for args in READS]
        assert server.handed_off() == len(READS)
    for args, expected, result in zip(READS, direct, handed):
        assert_clean(result)
        assert outcome(result) == expected, args
    codes = [code for code, _, _ in direct]
    assert codes == [0, 0, 0, 0, 2, 2]
    assert all(len(err.strip().splitlines()) == 1 and err.startswith("error: ") for _, _, err in direct[-2:])


def test_writes_through_the_server_equal_direct_runs(project, tmp_path):
    """ingest, rollup build, verify and query on two copies of a project: one by itself, one served."""
    write_orders(project / "data" / "orders2.csv", 10_000, 300, days_ago(5))
    alone = tmp_path / "alone"
    shutil.copytree(project, alone)
    steps = [["ingest"], ["ingest", "--format", "json"], ["rollup", "build"], ["verify"],
             ["query", "revenue", "orders", "--grain", "day", "--last", "7d", "--by", "country"],
             ["ingest", "no_such_source"]]
    expected = [tally(alone, *args) for args in steps]
    with serving(project) as server:
        results = [tally(project, *args) for args in steps]
        assert server.handed_off() == len(steps)
        assert server.stop() == 0
    for args, want, got in zip(steps, expected, results):
        assert_clean(got)
        assert (got.returncode, masked(got.stdout), masked(got.stderr)) == \
               (want.returncode, masked(want.stdout), masked(want.stderr)), args
    assert [r.returncode for r in results] == [0, 0, 0, 0, 0, 2]
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from orders").fetchone()[0] == 700


def test_output_follows_the_calling_terminal(project):
    """Its width shapes the table; FORCE_COLOR and TERM give colours, as they do without a server."""
    args = ["query", "revenue", "orders", "refunds", "aov", "--grain", "month", "--by", "country"]
    colours = {**{k: v for k, v in ENV.items() if k != "NO_COLOR"}, "FORCE_COLOR": "1", "TERM": "xterm-256color"}
    terminals = [{**ENV, "COLUMNS": "50"}, {**ENV, "COLUMNS": "160"}, colours]
    direct = [tally(project, *args, env=env).stdout for env in terminals]
    with serving(project):
        handed = [tally(project, *args, env=env).stdout for env in terminals]
    assert handed == direct
    assert direct[0] != direct[1] and "\x1b[" in direct[2] and "\x1b[" not in direct[0] + direct[1]


def test_a_query_runs_beside_a_handed_off_ingest(project):
    """Two commands at once in the server: each gets its own output, neither waits for the other."""
    write_orders(project / "data" / "orders2.csv", 10_000, 150_000, days_ago(4))
    query = ["query", "revenue", "--grain", "month", "--by", "country"]
    expected = tally(project, *query)
    with serving(project) as server:
        ingest = subprocess.Popen([*TALLY, "-p", str(project), "ingest", "--format", "json"], env=ENV, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.handed_off() == 0 and time.monotonic() < deadline:   # the server has the ingest
            time.sleep(0.05)
        time.sleep(0.2)
        during = tally(project, *query)
        overlapped = ingest.poll() is None
        out, err = ingest.communicate(timeout=180)
    assert overlapped, "the ingest ended before the query: nothing ran side by side"
    assert outcome(during) == outcome(expected)   # the load commits at its end: the query saw the data before it
    assert ingest.returncode == 0, err
    assert json.loads(out)[0]["rows_loaded"] >= 150_000 and err == ""


def test_two_handed_off_ingests_run_one_after_the_other(project):
    """By themselves the second would meet the first's file lock; in the server it waits its turn."""
    write_orders(project / "data" / "orders2.csv", 10_000, 150_000, days_ago(4))
    command = [*TALLY, "-p", str(project), "ingest", "--format", "json"]
    with serving(project) as server:
        first = subprocess.Popen(command, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while server.handed_off() == 0 and time.monotonic() < deadline:   # the server has the first
            time.sleep(0.05)
        time.sleep(0.2)
        second = subprocess.Popen(command, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        outputs = [proc.communicate(timeout=180) for proc in (first, second)]
        runs = [(proc.returncode, out, err) for proc, (out, err) in zip((first, second), outputs)]
    loaded = [json.loads(out)[0]["rows_loaded"] for _, out, _ in runs]
    assert [code for code, _, _ in runs] == [0, 0], runs
    assert loaded[0] >= 150_000 and loaded[1] < 10   # the second found the rows loaded already
    # the note shows when the wait passed 1 s (it may not, on a fast run): the counts prove the order
    assert runs[1][2] in ("", "note: waiting for another write on this project to finish ...\n")
    with duckdb.connect(str(project / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from orders").fetchone()[0] == 150_400
