"""The ledger example's pieces: the plain-Python reference answers, the upstream Transaction API, and the demo."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from examples.ledger import reference
from examples.ledger.generate import END, TYPES, TransactionApi, history, millis, serve_upstream, stamp
from tests.cli_helpers import invoke

D = Decimal
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ledger"


def txn(ident, user, kind, amount, updated="2025-03-16T12:33:11.000Z"):
    return {"id": ident, "userId": user, "type": kind, "amount": amount, "createdAt": "2025-03-01T00:00:00.000Z",
            "updatedAt": updated}


SEED_USER = [txn("a", "074092", "earned", 100), txn("b", "074092", "earned", 50), txn("c", "074092", "spent", 50),
             txn("d", "074092", "payout", 30), txn("e", "074092", "paid_out", 20)]


def test_reference_the_seed_example_user():
    # the seed's documented answer, to the unit: earned 150, spent 50 -> balance 100
    assert reference.aggregated_data(SEED_USER, "074092") == {
        "balance": D("100"), "earned": D("150"), "spent": D("50"), "payout": D("30"), "paidOut": D("20")}
    assert reference.payouts(SEED_USER) == [{"userId": "074092", "totalPayout": D("30")}]


def test_reference_edits_count_once_and_settled_users_are_not_pending():
    rows = [*SEED_USER,
            txn("b", "074092", "spent", 12.5, updated="2025-04-01T00:00:00.000Z"),   # b corrected: now spent
            txn("f", "074093", "earned", 40.1), txn("g", "074093", "payout", 40), txn("h", "074093", "paid_out", 40),
            txn("i", "000007", "earned", 0.1), txn("j", "000007", "earned", 0.2), txn("k", "000007", "payout", 0.25)]
    by_user = reference.per_user(rows)
    assert by_user["074092"] == {"balance": D("37.5"), "earned": D("100"), "spent": D("62.5"), "payout": D("30"),
                                 "paidOut": D("20")}
    assert by_user["074093"]["balance"] == D("40.1") and by_user["000007"]["balance"] == D("0.3")   # exact
    assert reference.payouts(rows) == [{"userId": "000007", "totalPayout": D("0.25")},
                                       {"userId": "074092", "totalPayout": D("30")}]
    assert reference.aggregated_data(rows, "999999") == dict.fromkeys(
        ["balance", "earned", "spent", "payout", "paidOut"], D(0))
    # the order rows come in does not matter: the latest updatedAt wins
    assert reference.per_user(list(reversed(rows))) == by_user


def test_history_is_seeded_and_realistic():
    first, wallets, _ = history(3000, seed=5)
    again, _, _ = history(3000, seed=5)
    assert first == again and first != history(3000, seed=6)[0]
    assert len(first) == 3000 and len({t.id for t in first}) == 3000
    assert set(Counter(t.type for t in first)) == set(TYPES)
    assert all(t.created_at <= t.updated_at < stamp(millis(END)) for t in first)
    edited = [t for t in first if t.updated_at != t.created_at]
    assert 0.01 < len(edited) / len(first) < 0.05
    assert all(len(t.user_id) == 6 and t.user_id.isdigit() for t in first) and any(t.user_id[0] == "0" for t in first)
    # every paid_out settles an earlier request of its user: nobody is paid out more than requested
    by_user = reference.per_user([t.as_json() for t in first])
    assert all(b["paidOut"] <= b["payout"] for b in by_user.values())
    pending = {user for user, b in by_user.items() if b["payout"] > b["paidOut"]}
    assert len(pending) > 10 and pending == {user for user, queue in wallets.pending.items() if queue}


def test_cursor_pages_cover_every_row_once_in_order():
    api = TransactionApi(250, seed=3)
    seen, cursor = [], None
    while True:
        body = api.page(None, cursor, 40)
        seen += body["items"]
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            break
    assert seen == api.transactions() and len(seen) == 250
    keys = [(row["updatedAt"], row["id"]) for row in seen]
    assert keys == sorted(keys) and len(set(keys)) == 250


def test_updated_since_is_inclusive_in_any_offset():
    api = TransactionApi(100, seed=3)
    rows = api.transactions()
    pivot = rows[60]["updatedAt"]   # e.g. 2025-08-01T10:00:00.123Z
    expected = [row for row in rows if row["updatedAt"] >= pivot]
    for since in (pivot, pivot.replace("Z", "+00:00"), pivot.replace("T", " ").replace("Z", "000+00:00"),
                  pivot.replace("Z", "")):
        status, body, _ = api.answer("/transactions", {"updatedSince": since, "limit": "5000"})
        assert (status, body["items"]) == (200, expected), since


def test_new_and_corrected_rows_come_after_everything_held():
    api = TransactionApi(300, seed=4)
    before = {row["id"]: row for row in api.transactions()}
    mark = api.transactions()[-1]["updatedAt"]
    api.advance(60)
    after = api.transactions()
    changed = [row for row in after if before.get(row["id"]) != row]
    assert len(after) > len(before) and changed
    assert all(row["updatedAt"] > mark for row in changed)
    assert [row["updatedAt"] for row in after] == sorted(row["updatedAt"] for row in after)
    corrected = [row for row in changed if row["id"] in before]
    assert all(row["createdAt"] == before[row["id"]]["createdAt"] for row in corrected)
    # asked from the old watermark: what changed, and the row still at the watermark (the filter is inclusive)
    status, body, _ = api.answer("/transactions", {"updatedSince": mark, "limit": "5000"})
    at_mark = {row["id"] for row in after if row["updatedAt"] == mark}
    assert {row["id"] for row in body["items"]} == {row["id"] for row in changed} | at_mark


def test_http_throttles_every_nth_request_and_rejects_bad_input():
    with serve_upstream(rows=50, seed=1, throttle_every=3, retry_after=2) as upstream:
        with httpx.Client(base_url=upstream.url) as client:
            answers = [client.get("/transactions", params={"limit": 10}) for _ in range(6)]
            assert [r.status_code for r in answers] == [200, 200, 429, 200, 200, 429]
            assert answers[2].headers["Retry-After"] == "2"
            assert answers[0].json()["meta"] == {"itemCount": 10, "itemsPerPage": 10,
                                                 "nextCursor": answers[0].json()["meta"]["nextCursor"]}
            upstream.api.throttle_every = 0
            for params in ({"limit": 0}, {"limit": "x"}, {"updatedSince": "yesterday"}, {"cursor": "%%%"}):
                response = client.get("/transactions", params=params)
                assert response.status_code == 400 and response.json()["error"], params
            assert client.get("/nothing").status_code == 404
            body = json.loads(client.get("/transactions", params={"limit": 5000}).text, parse_float=Decimal)
            assert len(body["items"]) == 50 and body["meta"]["nextCursor"] is None


def test_demo_ledger_generates_and_ingests(tmp_path):
    result = invoke("demo", "--example", "ledger", "--dir", tmp_path, "--rows", "400", "--no-serve")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "transactions (loaded/rejected)" in result.stdout and " 400/0" in result.stdout
    assert json.loads((tmp_path / "data" / "upstream.json").read_text())["rows"] == 400


def test_example_project_polls_builds_and_verifies_after_corrections(tmp_path, monkeypatch):
    """The example's own tally.yml: two polls with corrections of old rows between them; the incrementally
    refreshed rollup equals live answers, and the totals equal plain Python over the upstream's rows."""
    import shutil

    import tally
    import tally.rollups
    from tally.sources import ingest

    shutil.copy(EXAMPLE / "tally.yml", tmp_path / "tally.yml")
    with serve_upstream(rows=3_000, seed=12) as upstream:
        monkeypatch.setenv("LEDGER_API_URL", upstream.url)
        for step in range(2):
            if step:
                upstream.api.advance(400)
            project = tally.Project.load(tmp_path)
            try:
                assert [r.status for r in ingest(project)] == ["ok"]
                assert [r.mode for r in tally.rollups.build(project)] == ["incremental" if step else "full"]
                assert tally.rollups.verify(project) == {"daily_activity": []}
                totals = project.query_result(["earned", "spent", "payout", "paid_out", "balance_change"]).table
            finally:
                project.close()
            users = reference.per_user(upstream.api.transactions()).values()
            expected = {key: sum((b[key] for b in users), D(0)) for key in ("earned", "spent", "payout", "paidOut",
                                                                               "balance")}
            got = totals.to_pylist()[0]
            assert (got["earned"], got["spent"], got["payout"], got["paid_out"], got["balance_change"]) == (
                expected["earned"], expected["spent"], expected["payout"], expected["paidOut"], expected["balance"])
