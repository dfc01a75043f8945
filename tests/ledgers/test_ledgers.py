"""Ledgers on every warehouse: stored values equal a plain-Python reading of the CSV, through ingest,
late and edited rows (only the changed users recomputed), as-of answers, verify, and bad config."""

from __future__ import annotations

import csv
import datetime as dt
import random
from decimal import Decimal
from pathlib import Path

import pytest

from tally import Project, ledgers
from tally.errors import ConfigError, ExpressionError, NotFoundError, QueryError
from tally.sources import ingest

KINDS = ["duckdb", pytest.param("postgres", marks=pytest.mark.servers),
         pytest.param("mariadb", marks=pytest.mark.servers)]
TYPES = ("earned", "spent", "payout", "paid_out")
BUCKETS = {"earned": "earned", "spent": "spent", "payout": "payout", "paidOut": "paid_out"}
START = dt.datetime(2024, 1, 1)

CONFIG = """\
name: ledger-test
timezone: UTC
warehouse: {warehouse}
sources:
  transactions:
    kind: csv
    path: data/*.csv
    table: transactions
    primary_key: [id]
    cursor: updated_at
    columns:
      id: int64
      user_id: string
      type: string
      amount: decimal(12,2)
      created_at: timestamp
      updated_at: timestamp
models:
  transactions:
    table: transactions
    time: created_at
    updated: updated_at
    primary_key: [id]
    dimensions: {{type: type}}
    measures:
      amount_total: {{sum: amount}}
ledgers:
  users:
    model: transactions
    entity: user_id
    buckets:
      earned:  {{sum: amount, where: "type = 'earned'"}}
      spent:   {{sum: amount, where: "type = 'spent'"}}
      payout:  {{sum: amount, where: "type = 'payout'"}}
      paidOut: {{sum: amount, where: "type = 'paid_out'"}}
    formulas:
      balance: earned - spent
      pending: payout - paidOut
"""


@pytest.fixture(params=KINDS)
def warehouse_url(request, tmp_path) -> str:
    """A fresh warehouse of each kind (a new database on the test servers)."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path}/warehouse.duckdb"
    return request.getfixturevalue(f"{request.param}_db_url")


def write_project(root: Path, warehouse: str = "duckdb:///warehouse.duckdb", replace: tuple = ("", "")) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    text = CONFIG.format(warehouse=warehouse)
    assert replace[0] in text
    (root / "tally.yml").write_text(text.replace(*replace), encoding="utf-8")


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["id", "user_id", "type", "amount", "created_at", "updated_at"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "amount": str(row["amount"]), "created_at": row["created_at"].isoformat(),
                             "updated_at": row["updated_at"].isoformat()})


def transactions(rng: random.Random, ids: range, users: int) -> list[dict]:
    rows = []
    for i in ids:
        created = START + dt.timedelta(hours=rng.randrange(24 * 60), seconds=rng.randrange(3600))
        rows.append({"id": i, "user_id": f"{rng.randrange(users):06d}", "type": rng.choice(TYPES),
                     "amount": Decimal(rng.randrange(1, 100_000)) / 100, "created_at": created, "updated_at": created})
    return rows


def expected(rows: list[dict], as_of: dt.datetime | None = None) -> dict[str, dict]:
    """Seed 003's rule in plain Python over the current version of each row (latest updated_at per id)."""
    current: dict[int, dict] = {}
    for row in rows:
        if row["id"] not in current or row["updated_at"] > current[row["id"]]["updated_at"]:
            current[row["id"]] = row
    found: dict[str, dict] = {}
    for row in current.values():
        if as_of is not None and row["created_at"] > as_of:
            continue
        user = found.setdefault(row["user_id"], {name: Decimal(0) for name in BUCKETS})
        for bucket, kind in BUCKETS.items():
            if row["type"] == kind:
                user[bucket] += row["amount"]
    for user in found.values():
        user["balance"] = user["earned"] - user["spent"]
        user["pending"] = user["payout"] - user["paidOut"]
    return found


def stored(project) -> dict[str, dict]:
    rows = ledgers.listing(project, "users", limit=10_000)
    return {row.pop("user_id"): row for row in rows}


def test_ledger_follows_ingest_late_and_edited_rows(warehouse_url, tmp_path):
    rng = random.Random(16)
    write_project(tmp_path, warehouse_url)
    first = transactions(rng, range(1, 301), users=40)
    write_csv(tmp_path / "data" / "a.csv", first)
    project = Project.load(tmp_path)
    try:
        project.ingest()   # the hook: the ledger is refreshed after the load commits
        assert stored(project) == expected(first)
        assert ledgers.verify(project) == {"users": []}

        # late rows (old created_at, new updated_at) and rows edited after the fact (same id)
        later = START + dt.timedelta(days=90)
        late = [{**row, "updated_at": later} for row in transactions(rng, range(1001, 1006), users=40)]
        edits = [{**first[i], "amount": first[i]["amount"] + Decimal("0.01"), "type": "spent",
                  "updated_at": later + dt.timedelta(minutes=i)} for i in (3, 50, 77)]
        write_csv(tmp_path / "data" / "b.csv", late + edits)
        assert ingest(project)[0].rows_loaded >= len(late) + len(edits)   # (and the row at the watermark again)
        touched = {row["user_id"] for row in late + edits}
        [result] = ledgers.refresh(project)
        assert (result.mode, result.entities) == ("incremental", len(touched))
        everything = first + late + edits
        assert stored(project) == expected(everything)
        assert ledgers.refresh(project)[0].mode == "unchanged"

        # a row moved to another user: the count check finds the loss and recomputes every user
        moved = [{**first[10], "user_id": "999999", "updated_at": later + dt.timedelta(hours=5)}]
        write_csv(tmp_path / "data" / "c.csv", moved)
        ingest(project)
        assert ledgers.refresh(project)[0].mode == "full"
        everything += moved
        assert stored(project) == expected(everything)

        # as of a past time: live over the rows whose time is at or before it
        as_of = START + dt.timedelta(days=20)
        past = expected(everything, as_of)
        for user in sorted(past)[:5]:
            got = ledgers.entity(project, "users", user, as_of=as_of.isoformat())
            assert got == {"user_id": user, **past[user]}
        assert ledgers.entity(project, "users", "999999") == {"user_id": "999999", **expected(everything)["999999"]}
        assert ledgers.verify(project) == {"users": []}
    finally:
        project.close()


def test_unknown_entity_and_ledger_are_not_found(tmp_path):
    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", transactions(random.Random(1), range(1, 21), users=3))
    project = Project.load(tmp_path)
    try:
        project.ingest()
        with pytest.raises(NotFoundError) as caught:
            ledgers.entity(project, "users", "nobody")
        assert caught.value.http_status == 404 and "nobody" in caught.value.message
        with pytest.raises(NotFoundError):
            ledgers.entity(project, "accounts", "000001")
        with pytest.raises(NotFoundError):   # no rows before the first transaction
            ledgers.entity(project, "users", "000001", as_of="2023-12-31")
    finally:
        project.close()


def test_listing_filters_orders_and_pages(tmp_path):
    rows = transactions(random.Random(5), range(1, 201), users=30)
    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        want = expected(rows)
        pending = sorted((u for u, v in want.items() if v["payout"] > 0), key=lambda u: (-want[u]["payout"], u))
        got = ledgers.listing(project, "users", where="payout > 0", order="-payout", limit=7, offset=3)
        assert [r["user_id"] for r in got] == pending[3:10]
        assert [r["payout"] for r in got] == [want[u]["payout"] for u in pending[3:10]]
        owing = ledgers.listing(project, "users", where="pending > 0", order="user_id", limit=1000)
        assert [(r["user_id"], r["payout"]) for r in owing] == \
            sorted((u, v["payout"]) for u, v in want.items() if v["payout"] > v["paidOut"])
        with pytest.raises(QueryError):
            ledgers.listing(project, "users", where="amount > 0")   # not a ledger column
        with pytest.raises(QueryError):
            ledgers.listing(project, "users", order="-nothing")
        with pytest.raises(QueryError):
            ledgers.listing(project, "users", limit=0)
        # a comparison of mismatched kinds reached Ibis: IbisTypeError, a 500 over HTTP
        with pytest.raises(ExpressionError, match=r"--where: balance > 'x' compares a number \(balance\) with text"):
            ledgers.listing(project, "users", where="balance > 'x'")
        with pytest.raises(ExpressionError, match="compares text"):
            ledgers.listing(project, "users", where="user_id = 1")
        with pytest.raises(ExpressionError, match="not a true/false condition"):
            ledgers.listing(project, "users", where="balance + 1")
        # past BIGINT it reached the warehouse: a WarehouseError (exit 1, HTTP 503) rather than a bad page
        with pytest.raises(QueryError, match="offset must be a whole number from 0 to 1000000000"):
            ledgers.listing(project, "users", offset=10 ** 20)
        assert ledgers.listing(project, "users", offset=10 ** 9) == []
    finally:
        project.close()


def test_verify_finds_a_corrupted_value_and_the_cli_exits_1(tmp_path, monkeypatch):
    from tally.cli import run

    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", transactions(random.Random(9), range(1, 51), users=5))
    monkeypatch.chdir(tmp_path)
    assert run(["ingest"]) == 0   # the CLI's ingest leaves the ledger fresh
    assert run(["verify"]) == 0
    project = Project.load(tmp_path)
    try:
        user = ledgers.listing(project, "users", limit=1)[0]["user_id"]
        with project.warehouse.transaction() as tx:   # plain SQL, independent of the ledger's code
            tx.execute("UPDATE ledger_users SET balance = balance + 1 WHERE user_id = ?", [user])
        report = ledgers.verify(project)
        assert [(m.metric, m.key) for m in report["users"]] == [("balance", {"user_id": user})]
    finally:
        project.close()
    assert run(["verify"]) == 1
    assert run(["ledger", "refresh", "--full"]) == 0
    assert run(["verify"]) == 0


BAD = [
    ("model: transactions\n", "model: nowhere\n", "model: nowhere", "unknown model 'nowhere'"),
    ("entity: user_id\n", "entity: lower(user_id)\n", "entity: lower", "not a dimension"),
    ("      earned:  {sum: amount, where: \"type = 'earned'\"}\n", "      earned:  {measure: nothing}\n",
     "earned:  {measure: nothing}", "unknown measure 'nothing'"),
    ("      spent:   {sum: amount, where: \"type = 'spent'\"}\n", "      spent:   {sum: amount, where: \"type = \"}\n",
     "spent:   {sum: amount, where", "incomplete"),
    ("      spent:   {sum: amount, where: \"type = 'spent'\"}\n", "      spent:   {sum: type}\n",
     "spent:   {sum: type}", "sum takes numbers"),
    ("      balance: earned - spent\n", "      balance: earned - spent - refunds\n",
     "balance: earned", "unknown bucket 'refunds'"),
]


@pytest.mark.parametrize("old,new,marker,message", BAD, ids=[b[3] for b in BAD])
def test_bad_config_is_refused_at_its_line(tmp_path, old, new, marker, message):
    write_project(tmp_path, replace=(old, new))
    text = (tmp_path / "tally.yml").read_text().splitlines()
    line = next(i for i, t in enumerate(text, 1) if marker in t)
    with pytest.raises(ConfigError) as caught:
        Project.load(tmp_path)
    assert message in caught.value.message
    assert caught.value.line == line, caught.value.message


def test_a_changed_definition_rebuilds_in_full(tmp_path):
    rows = transactions(random.Random(3), range(1, 61), users=6)
    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        assert ledgers.refresh(project)[0].mode == "unchanged"
    finally:
        project.close()
    # balance now takes requested payouts off too: a new definition, a new table, every user recomputed
    write_project(tmp_path, replace=("balance: earned - spent\n", "balance: earned - spent - payout\n"))
    project = Project.load(tmp_path)
    try:
        [result] = ledgers.refresh(project)
        assert (result.mode, result.entities) == ("full", len(expected(rows)))
        want = expected(rows)
        assert {u: v["balance"] for u, v in stored(project).items()} == \
            {u: v["balance"] - v["payout"] for u, v in want.items()}
    finally:
        project.close()


def test_a_refresh_killed_midway_leaves_nothing_half_written(tmp_path, monkeypatch):
    from tally.warehouse.txn import Transaction

    rows = transactions(random.Random(4), range(1, 81), users=8)
    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        before = stored(project)
        edit = [{**rows[0], "amount": rows[0]["amount"] + 5, "updated_at": START + dt.timedelta(days=100)}]
        write_csv(tmp_path / "data" / "b.csv", edit)
        ingest(project)

        def die(self, table, data, order_by=None):   # after the DELETE, before the rows are in
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(Transaction, "insert_arrow", die)
            with pytest.raises(KeyboardInterrupt):
                ledgers.refresh(project)
        assert stored(project) == before   # the old rows, whole
        [result] = ledgers.refresh(project)   # the rerun completes the work
        assert (result.mode, result.entities) == ("incremental", 1)
        assert stored(project) == expected(rows + edit)
    finally:
        project.close()


def test_cli_show_and_list(tmp_path, monkeypatch, capsys):
    import json

    from tally.cli import run

    rows = transactions(random.Random(8), range(1, 41), users=4)
    write_project(tmp_path)
    write_csv(tmp_path / "data" / "a.csv", rows)
    monkeypatch.chdir(tmp_path)
    assert run(["ingest", "--format", "json"]) == 0
    want = expected(rows)
    user = sorted(want)[0]
    capsys.readouterr()
    assert run(["ledger", "show", "users", user, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out, parse_float=Decimal)
    assert shown == {"user_id": user, **want[user]}
    assert run(["ledger", "list", "users", "--order", "-balance", "--limit", "2", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out, parse_float=Decimal)
    top = sorted(want, key=lambda u: (-want[u]["balance"], u))[:2]
    assert [r["user_id"] for r in listed] == top
    assert run(["ledger", "show", "users", "nobody"]) == 2
    assert "no user_id 'nobody'" in capsys.readouterr().err
    assert run(["tables", "--format", "json"]) == 0
    tables = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    assert tables["ledger_users"]["used_by"] == "ledger users" and tables["ledger_users"]["rows"] == len(want)


def test_without_a_change_time_a_load_means_a_full_refresh(tmp_path):
    rows = transactions(random.Random(12), range(1, 41), users=5)
    write_project(tmp_path, replace=("    updated: updated_at\n", ""))
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        assert ledgers.refresh(project)[0].mode == "unchanged"
        edit = [{**rows[5], "type": "earned", "amount": Decimal("1.23"), "updated_at": START + dt.timedelta(days=99)}]
        write_csv(tmp_path / "data" / "b.csv", edit)
        ingest(project)
        [result] = ledgers.refresh(project)   # the load stamp moved: any row may have changed
        assert (result.mode, result.entities) == ("full", len(expected(rows)))
        assert stored(project) == expected(rows + edit)
    finally:
        project.close()


def test_entity_as_a_whole_number_dimension(warehouse_url, tmp_path):
    rows = [{**row, "user_id": int(row["user_id"])} for row in transactions(random.Random(2), range(1, 31), users=4)]
    write_project(tmp_path, warehouse_url, replace=("      user_id: string\n", "      user_id: int64\n"))
    text = (tmp_path / "tally.yml").read_text()
    (tmp_path / "tally.yml").write_text(text.replace("{type: type}", "{type: type, user: user_id}")
                                        .replace("entity: user_id", "entity: user"))
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        want = expected(rows)
        user = sorted(want)[0]
        assert ledgers.entity(project, "users", str(user)) == {"user": user, **want[user]}   # "2" reads as 2
        with pytest.raises(NotFoundError):
            ledgers.entity(project, "users", "two")
        assert [r["user"] for r in ledgers.listing(project, "users", where=f"user >= {user}")] == sorted(want)
    finally:
        project.close()


def test_a_bucket_naming_a_measure_adds_its_filter(tmp_path):
    rows = transactions(random.Random(21), range(1, 61), users=5)
    write_project(tmp_path, replace=("      earned:  {sum: amount, where: \"type = 'earned'\"}\n",
                                     "      earned:  {measure: amount_total, where: \"type = 'earned'\"}\n"))
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        assert stored(project) == expected(rows)
    finally:
        project.close()


@pytest.mark.servers
def test_two_refreshes_at_once_on_postgres_store_each_user_once(postgres_db_url, tmp_path, monkeypatch):
    import threading
    import time

    from tally.warehouse.txn import Transaction

    rows = transactions(random.Random(31), range(1, 81), users=6)
    write_project(tmp_path, postgres_db_url)
    write_csv(tmp_path / "data" / "a.csv", rows)
    first, second = Project.load(tmp_path), Project.load(tmp_path)
    try:
        first.ingest()
        edit = [{**rows[0], "amount": rows[0]["amount"] + 1, "updated_at": START + dt.timedelta(days=100)}]
        write_csv(tmp_path / "data" / "b.csv", edit)
        ingest(first)
        original, slow = Transaction.delete_in, threading.Event()

        def delete_slowly(self, *args, **kwargs):   # the first refresh holds its transaction open a while
            original(self, *args, **kwargs)
            if not slow.is_set():
                slow.set()
                time.sleep(1.5)

        monkeypatch.setattr(Transaction, "delete_in", delete_slowly)
        results = {}
        threads = [threading.Thread(target=lambda p=p, i=i: results.__setitem__(i, ledgers.refresh(p)))
                   for i, p in enumerate((first, second))]
        threads[0].start()
        slow.wait(10)
        threads[1].start()
        for thread in threads:
            thread.join(30)
        assert len(results) == 2
        users = [r["user_id"] for r in ledgers.listing(first, "users", limit=10_000)]
        assert sorted(users) == sorted(set(users)) == sorted(expected(rows + edit))
        assert stored(first) == expected(rows + edit)
    finally:
        first.close()
        second.close()


def test_a_sole_writer_looks_entities_up_in_memory_and_sees_every_write(tmp_path):
    """On an embedded file this process writes (tally serve), lookups come from an index of the
    table, read again after any write: no statement per lookup, never a stale value."""
    rng = random.Random(4)
    write_project(tmp_path)
    rows = transactions(rng, range(1, 201), users=30)
    write_csv(tmp_path / "data" / "a.csv", rows)
    project = Project.load(tmp_path)
    try:
        project.ingest()
        warehouse = project.warehouse
        assert warehouse.local_version() is not None
        users = sorted(expected(rows))
        ledgers.entity(project, "users", users[0])   # builds the index
        statements = []
        original = warehouse.run
        warehouse.run = lambda *a, **k: statements.append(a) or original(*a, **k)
        try:
            for user in users:
                assert ledgers.entity(project, "users", user) == {"user_id": user, **expected(rows)[user]}
        finally:
            warehouse.run = original
        assert statements == []
        edit = [{**rows[0], "amount": rows[0]["amount"] + Decimal("5.00"), "updated_at": START + dt.timedelta(days=99)}]
        write_csv(tmp_path / "data" / "b.csv", edit)
        project.ingest()
        user = edit[0]["user_id"]
        assert ledgers.entity(project, "users", user) == {"user_id": user, **expected(rows + edit)[user]}
    finally:
        project.close()
