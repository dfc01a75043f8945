"""An ingest killed with SIGKILL mid-load leaves the warehouse exactly as before; the next run completes it.

A DuckDB project first loads a small file. Then a large file arrives (new orders, and later versions
of some loaded ones), and `ingest` runs in a child process that reports how far it got on stdout.
The child is killed at three moments - while DuckDB checks the rows, while the merge inserts them,
and after everything is written inside the transaction but before COMMIT - and each time the
warehouse must hold exactly what the first load left. A last run then loads everything.
"""

from __future__ import annotations

import datetime as dt
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from tally import Project
from tally.sources import ingest
from tests.sources import dirty

pytestmark = pytest.mark.slow

BIG_ROWS = 400_000
SMALL_ROWS = 2_000
UPDATED = range(1_000, SMALL_ROWS)      # orders of the small file that the big one brings again, later
SOURCE = {**dirty.SOURCE, "checks": [{"not_null": ["order_id", "updated_at"]}, {"min": {"quantity": 1}}]}
WAIT = 60.0                              # seconds a child may take to reach a moment

# The child: ingest with its progress on stdout. It says "checking" once the rows are being checked
# (the raw view exists), "inserting" as the merge inserts into the table, and "written" when the rows,
# rejects, watermark and load record are all written inside the transaction, before COMMIT; it pauses
# there when the second argument names that moment.
CHILD = r"""
import sys, time
from tally import Project
from tally.sources import ingest, merge, validate
from tally.warehouse import txn

def say(word):
    print(word, flush=True)
    if sys.argv[2] == word:
        time.sleep(600)

build = validate.build
def building(*args, **kwargs):
    plan = build(*args, **kwargs)
    say("checking")
    return plan
validate.build = building

execute = txn.Transaction.execute
def traced(self, sql, params=None):
    if sql.startswith('INSERT INTO "orders"'):
        say("inserting")
    return execute(self, sql, params)
txn.Transaction.execute = traced

finish = merge.record_load
def finishing(*args, **kwargs):
    finish(*args, **kwargs)
    say("written")
merge.record_load = finishing

project = Project.load(sys.argv[1])
result = ingest(project, progress=lambda source, fraction, note: say(note))[0]
say(f"done {result.status} {result.rows_loaded} {result.error}")
project.close()
"""


def orders(first: int, count: int, start: str, prefix: str) -> pa.Table:
    """Orders `first`..`first+count-1`, one second apart from `start`; every 997th has quantity 0."""
    ids = np.arange(first, first + count)
    text = lambda values: pc.cast(pa.array(values), pa.string())  # noqa: E731
    stamps = np.datetime64(start) + (ids - first).astype("timedelta64[s]")
    return pa.table({
        "order_id": ids,
        "status": pa.array(np.array(dirty.STATUSES)[ids % 4]),
        "quantity": np.where(ids % 997 == 0, 0, ids % 7 + 1),    # rejected by `min`
        "amount": pc.cast(pa.array((ids % 500_000) / 100), pa.decimal128(12, 2), safe=False),
        "ordered_on": pa.array(np.datetime64("2024-01-01") + (ids % 90).astype("timedelta64[D]")),
        "updated_at": text(np.datetime_as_string(stamps).astype(object)),
        "note": pc.binary_join_element_wise(pa.scalar(prefix), text(ids), "-"),
    })


def write_csv(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))


def contents(root: Path) -> dict:
    """Everything a load writes, read without holding the file open afterwards."""
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables "
                                                  "WHERE table_type = 'BASE TABLE'").fetchall()}
        digest = con.execute("SELECT count(*), sum(order_id), sum(quantity), sum(amount), max(updated_at), "
                             "count(DISTINCT note) FROM orders").fetchone()
        return {"tables": sorted(tables), "orders": digest,
                "updated": con.execute(f"SELECT list_sort(list(note)) FROM orders WHERE order_id BETWEEN "
                                       f"{UPDATED.start} AND {UPDATED.stop - 1}").fetchone(),
                **{name: sorted(con.execute(f'SELECT * FROM "{name}"').fetchall(), key=repr)
                   for name in ("_tally_state", "_tally_loads", "_tally_rejects")}}
    finally:
        con.close()


class Child:
    """`ingest` in a child process, with its stdout lines read as they come."""

    def __init__(self, root: Path, pause: str = "-"):
        self.errors = root / "child.err"
        with open(self.errors, "w", encoding="utf-8") as errors:
            self.process = subprocess.Popen([sys.executable, "-c", CHILD, str(root), pause],
                                            stdout=subprocess.PIPE, stderr=errors, text=True, cwd=root)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def wait_for(self, word: str) -> None:
        deadline = time.monotonic() + WAIT
        while word not in self.seen:
            try:
                self.seen.append(self.lines.get(timeout=max(deadline - time.monotonic(), 0.01)))
            except queue.Empty:
                raise AssertionError(f"the child never said {word!r} (said {self.seen}; "
                                     f"stderr: {self.errors.read_text()[-2000:]})") from None
        assert not any(line.startswith("done") for line in self.seen), self.seen

    def kill(self) -> None:
        assert self.process.poll() is None, f"the child ended by itself: {self.seen}"
        self.process.send_signal(signal.SIGKILL)
        assert self.process.wait(timeout=WAIT) == -signal.SIGKILL
        self.reader.join(timeout=WAIT)
        self.process.stdout.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())


# (what the child says, whether it pauses there, seconds to wait): mid-check, mid-insert, before COMMIT
MOMENTS = [("checking", False, 0.05), ("inserting", False, 0.1), ("written", True, 0.2)]


def test_an_ingest_killed_mid_load_leaves_the_warehouse_as_before_and_a_rerun_completes_it(tmp_path):
    dirty.write_project(tmp_path, {"orders": SOURCE})
    write_csv(orders(0, SMALL_ROWS, "2024-02-01T00:00:00", "a"), tmp_path / "data" / "a.csv")
    project = Project.load(tmp_path)
    try:
        first = ingest(project)[0]
    finally:
        project.close()
    assert (first.status, first.rows_loaded + first.rows_rejected) == ("ok", SMALL_ROWS)
    before = contents(tmp_path)
    assert before["_tally_rejects"] and before["_tally_state"]

    big = orders(UPDATED.start, BIG_ROWS, "2024-03-01T00:00:00", "b")
    write_csv(big, tmp_path / "data" / "b.csv")
    for word, pause, delay in MOMENTS:
        child = Child(tmp_path, word if pause else "-")
        child.wait_for(word)
        time.sleep(delay)
        child.kill()
        later = child.seen[child.seen.index(word) + 1:]
        assert not [line for line in later if line in ("written", "merging") or line.startswith("done")], later
        assert contents(tmp_path) == before, f"killed after {word!r}"

    project = Project.load(tmp_path)
    try:
        done = ingest(project)[0]
    finally:
        project.close()
    assert (done.status, done.error, done.watermark_before) == ("ok", None, first.watermark_after)
    assert done.rows_read == done.rows_loaded + done.rows_rejected
    # the big file whole, plus the row of the small one at its watermark, read again
    assert done.rows_read == BIG_ROWS + 1
    after = contents(tmp_path)
    ids = range(0, UPDATED.start + BIG_ROWS)
    assert after["orders"][0] == len(ids) - len(ids[::997])
    assert after["updated"][0] == sorted(f"b-{i}" for i in UPDATED if i % 997)
    last = max(i for i in range(UPDATED.start, UPDATED.start + BIG_ROWS) if i % 997)
    expected = (dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
                + dt.timedelta(seconds=last - UPDATED.start)).isoformat()
    # (beside the watermark, the load's stamp of its table: rollups see it was loaded)
    assert [row[1] for row in after["_tally_state"] if not row[0].startswith("table:")] == [
        done.watermark_after] == [expected]
    assert [row[10] for row in sorted(after["_tally_loads"], key=lambda row: row[2])] == ["ok", "ok"]


def views(root: Path) -> list[str]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return [name for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()]
    finally:
        con.close()


def test_an_ingest_killed_while_checking_leaves_no_object_behind(tmp_path):
    """Fixed: the raw rows' view was made with DuckDBPyRelation.create_view, which is not temporary,
    so a kill while checking left `__tally_raw_<load>` in the warehouse until the next run."""
    dirty.write_project(tmp_path, {"orders": SOURCE})
    write_csv(orders(0, 100, "2024-02-01T00:00:00", "a"), tmp_path / "data" / "a.csv")
    child = Child(tmp_path, "checking")
    child.wait_for("checking")
    child.kill()
    assert views(tmp_path) == []
