"""The `mongodb` connector end to end through mongomock (no MongoDB server can run here), `tally.sources.ingest`."""

from __future__ import annotations

import functools
import logging
import socket
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import mongomock
import pymongo
import pytest
import yaml
from bson import Decimal128, ObjectId
from mongomock.store import ServerStore

import tally
from tally.errors import ConfigError
from tally.sources import ingest
from tally.sources.connectors import mongodb
from tally.warehouse.internal import read_state

UTC = timezone.utc
START = datetime(2024, 3, 1, tzinfo=UTC)
URL = "mongodb://reporter:Mongo-Secret-9@mongo.internal:27017/?authSource=admin"
COLUMNS = {"id": "text", "amount": "decimal(14,2)", "status": "text", "utility": "text",
           "created_at": "timestamp", "updated_at": "timestamp"}


@pytest.fixture
def items(monkeypatch):
    """The `power.power_transaction_items` collection every client the connector opens will see."""
    store = ServerStore()
    monkeypatch.setattr(mongodb, "CLIENT_FACTORY", functools.partial(mongomock.MongoClient, _store=store))
    return mongomock.MongoClient(_store=store)["power"]["power_transaction_items"]


def at(minutes: int) -> datetime:
    return START + timedelta(minutes=minutes)


def item(n: int, amount, status: str = "fulfilled", utility: str | None = "IKEDC", minutes: int | None = None) -> dict:
    doc = {"_id": ObjectId(f"{n:024x}"), "amount": amount, "status": status, "reference": f"ref-{n}",
           "created_at": at(n), "updated_at": at(minutes if minutes is not None else n)}
    if utility:
        doc["meta"] = {"utility": utility, "channel": "ussd"}
    return doc


def source(**options) -> dict:
    return {"kind": "mongodb", "url": "${MONGO_URL}", "database": "power", "collection": "power_transaction_items",
            "table": "transactions", "primary_key": ["id"], "cursor": "updated_at", "rename": {"_id": "id"},
            "columns": COLUMNS, "fields": {"utility": "meta.utility"}, "filter": {"status": "fulfilled"},
            **options}


def run(root: Path, config: dict, progress=None):
    """Write tally.yml with this one source, ingest it; (LoadResult, loaded rows, stored watermark)."""
    (root / "tally.yml").write_text(yaml.safe_dump({
        "name": "mongo-test", "warehouse": f"duckdb:///{root / 'warehouse.duckdb'}",
        "sources": {"transactions": config}}))
    project = tally.Project.load(root)
    try:
        result = ingest(project, progress=progress)[0]
        wh = project.warehouse
        rows = wh.run(wh.compile(wh.table("transactions"))).to_pylist() if wh.has_table("transactions") else []
        return result, sorted(rows, key=lambda r: str(r.get("id", r.get("_id")))), read_state(
            wh, "source:transactions")
    finally:
        project.close()


@pytest.fixture(autouse=True)
def mongo_url(monkeypatch):
    monkeypatch.setenv("MONGO_URL", URL)


def test_amounts_as_numbers_or_text_nested_utility_and_status_filter(items, tmp_path):
    items.insert_many([item(1, 45750), item(2, "1,250.00", utility="EKEDC"), item(3, 99.5, utility=None),
                       item(4, Decimal128("10.25")), item(5, 500, status="failed"), item(6, "n/a")])
    result, rows, watermark = run(tmp_path, source(projection=["amount", "status", "created_at", "meta.utility"]))
    assert result.status == "ok", result.error
    assert (result.rows_read, result.rows_loaded, result.rows_rejected) == (5, 4, 1)   # `failed` is never read
    assert rows == [
        {"id": f"{1:024x}", "amount": Decimal("45750.00"), "status": "fulfilled", "utility": "IKEDC",
         "created_at": at(1), "updated_at": at(1)},
        {"id": f"{2:024x}", "amount": Decimal("1250.00"), "status": "fulfilled", "utility": "EKEDC",
         "created_at": at(2), "updated_at": at(2)},
        {"id": f"{3:024x}", "amount": Decimal("99.50"), "status": "fulfilled", "utility": None,
         "created_at": at(3), "updated_at": at(3)},
        {"id": f"{4:024x}", "amount": Decimal("10.25"), "status": "fulfilled", "utility": "IKEDC",
         "created_at": at(4), "updated_at": at(4)},
    ]
    assert watermark == at(4).isoformat()           # the rejected row (6) does not move the watermark

    items.insert_one(item(7, "2,000.50", utility="AEDC"))
    items.update_one({"_id": ObjectId(f"{1:024x}")}, {"$set": {"amount": 45000, "updated_at": at(8)}})
    result, rows, watermark = run(tmp_path, source(projection=["amount", "status", "created_at", "meta.utility"]))
    assert result.status == "ok", result.error
    # new and updated documents, plus the one still rejected (its cursor is past the watermark)
    assert (result.rows_read, result.rows_loaded, result.rows_skipped) == (3, 2, 0)
    assert [(r["id"][-1], r["amount"]) for r in rows] == [("1", Decimal("45000.00")), ("2", Decimal("1250.00")),
                                                          ("3", Decimal("99.50")), ("4", Decimal("10.25")),
                                                          ("7", Decimal("2000.50"))]
    assert watermark == at(8).isoformat()


def test_undeclared_columns_keep_their_mongo_types(items, tmp_path):
    items.insert_many([item(1, 100), item(2, 250), item(3, "1,250.00"), item(4, 7, utility=None),
                       {"_id": ObjectId(f"{5:024x}"), "amount": 1, "status": "fulfilled", "updated_at": at(5),
                        "tags": ["a", "b"], "ok": True}])
    config = source(batch_size=2)
    del config["columns"]
    result, rows, watermark = run(tmp_path, config)
    assert result.status == "ok", result.error
    assert result.rows_loaded == 5
    first, fifth = rows[0], rows[4]
    assert first["id"] == f"{1:024x}" and first["utility"] == "IKEDC"
    assert first["created_at"] == at(1) and first["reference"] == "ref-1"
    assert first["meta"] == '{"utility":"IKEDC","channel":"ussd"}'            # nested documents as JSON text
    assert [r["amount"] for r in rows] == ["100", "250", "1,250.00", "7", "1"]  # a number here, text there
    assert (fifth["tags"], fifth["ok"], fifth["utility"], fifth["created_at"]) == ('["a","b"]', True, None, None)
    assert watermark == at(5).isoformat()


def test_documents_are_read_in_batches(items, tmp_path):
    items.insert_many([item(n, n * 10) for n in range(1, 26)])
    reads = []

    def progress(source_name, fraction, message):
        if message.startswith("read "):
            reads.append(int(message.split()[1]))

    result, rows, _ = run(tmp_path, source(batch_size=10), progress=progress)
    assert (result.status, result.rows_loaded, len(rows)) == ("ok", 25, 25)
    assert reads == [10, 20, 25]
    assert sum(r["amount"] for r in rows) == sum(Decimal(n * 10) for n in range(1, 26))


def test_object_id_as_the_cursor(items, tmp_path):
    items.insert_many([item(n, n) for n in range(1, 4)])
    config = source(cursor="id")
    result, rows, watermark = run(tmp_path, config)
    assert (result.status, result.rows_loaded, watermark) == ("ok", 3, f"{3:024x}")
    items.insert_many([item(n, n) for n in range(4, 6)])
    result, rows, watermark = run(tmp_path, config)
    assert (result.rows_read, result.rows_skipped, len(rows), watermark) == (2, 0, 5, f"{5:024x}")


def test_a_filter_in_extended_json_and_an_empty_collection(items, tmp_path):
    config = source(filter={"status": "fulfilled", "created_at": {"$gte": {"$date": "2024-03-01T00:03:00Z"}}})
    result, rows, watermark = run(tmp_path, config)
    assert (result.status, result.rows_read, rows, watermark) == ("ok", 0, [], None)
    items.insert_many([item(n, n) for n in range(1, 6)])
    result, rows, _ = run(tmp_path, config)
    assert [r["id"][-1] for r in rows] == ["3", "4", "5"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_fails_the_run_without_showing_the_password(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(mongodb, "CLIENT_FACTORY", None)           # the real pymongo client
    monkeypatch.setenv("MONGO_URL", f"mongodb://reporter:Mongo-Secret-9@127.0.0.1:{closed_port()}/"
                                    "?directConnection=true")
    caplog.set_level(logging.DEBUG)
    result, rows, watermark = run(tmp_path, source(timeout=0.3))
    assert (result.status, rows, watermark) == ("failed", [], None)
    assert result.error.startswith("MongoDB power.power_transaction_items at mongodb://reporter:***@127.0.0.1:")
    assert "ServerSelectionTimeoutError" in result.error and "nothing was loaded" in result.error
    assert "Mongo-Secret-9" not in result.error and "Mongo-Secret-9" not in caplog.text


@pytest.mark.parametrize(("options", "message"), [
    ({"url": "postgresql://u:Mongo-Secret-9@h/db"}, "url must start with mongodb://"),
    ({"collection": None}, "collection"),
    ({"projection": "amount"}, "projection"),
    ({"batch_size": -1}, "greater than 0"),
])
def test_options_are_checked_when_the_project_loads(tmp_path, options, message):
    config = {k: v for k, v in {**source(), **options}.items() if v is not None}
    (tmp_path / "tally.yml").write_text(yaml.safe_dump({"name": "t", "sources": {"transactions": config}}))
    with pytest.raises(ConfigError, match=message) as error:
        ingest(tally.Project.load(tmp_path))
    assert "Mongo-Secret-9" not in str(error.value)


def test_the_watermark_filter_lets_other_types_through():
    moment = datetime(2024, 3, 1, 0, 4, tzinfo=UTC)
    assert mongodb.past_watermark("updated_at", moment.isoformat(), "timestamp") == {"$or": [
        {"updated_at": {"$gt": moment}}, {"$nor": [{"updated_at": {"$type": "date"}}]}]}
    assert mongodb.past_watermark("n", "12.5", "decimal(12,2)")["$or"][0]["n"]["$gt"] < 12.5
    assert mongodb.past_watermark("n", "12", None)["$or"][0] == {"n": {"$gt": 12}}
    assert mongodb.past_watermark("flag", "true", "bool") is None
    assert mongodb.past_watermark("when", "2024-03-01", "date")["$or"][0] == {"when": {"$gt": START}}


def test_projection_keeps_the_paths_the_source_needs():
    assert mongodb._projection(["amount", "meta"], ["updated_at", "meta.utility"]) == {
        "amount": 1, "meta": 1, "updated_at": 1}
    assert mongodb._projection({"raw": 0}, ["updated_at"]) == {"raw": 0}
    assert mongodb._projection(None, ["updated_at"]) is None


def test_the_real_client_is_pymongo():
    assert mongodb.CLIENT_FACTORY is None and pymongo.version
