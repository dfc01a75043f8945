"""The ledger routes and route aliases over the real ledgers: the JSON equals a plain-Python
computation over the loaded transactions, before and after more rows load."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

import pytest

from tests.api.conftest import cli, client

CONFIG = """
name: h5ledger
timezone: UTC
warehouse: duckdb:///{dir}/w.duckdb
sources:
  h5_tx:
    kind: csv
    path: data/*.csv
    table: h5_tx
    primary_key: [id]
    columns: {{id: string, user_id: string, type: string, amount: "decimal(12,2)", created_at: timestamp}}
models:
  tx:
    table: h5_tx
    time: created_at
    primary_key: [id]
    dimensions: {{user_id: user_id, type: type}}
    measures:
      amount: {{sum: amount}}
ledgers:
  users:
    model: tx
    entity: user_id
    buckets:
      earned: {{sum: amount, where: "type = 'earned'"}}
      spent: {{sum: amount, where: "type = 'spent'"}}
      payout: {{sum: amount, where: "type = 'payout'"}}
      paidOut: {{sum: amount, where: "type = 'paid_out'"}}
    formulas:
      balance: earned - spent
      pending: payout - paidOut
api:
  routes:
    user_balance:
      path: /aggregatedData/{{userId}}
      target: ledger_entity
      ledger: users
      fields: {{balance: balance, earned: earned, spent: spent, payout: payout, paidOut: paidOut}}
    payouts:
      path: /aggregatedData/payouts
      target: ledger_list
      ledger: users
      fields: {{userId: user_id, totalPayout: pending}}
      where: "pending > 0"
      order: [user_id]
    zeros:
      path: /zeros/{{userId}}
      target: ledger_entity
      ledger: users
      missing: zeros
      fields: {{userId: user_id, balance: balance, paidOut: paidOut}}
"""

ROWS = [("t1", "074092", "earned", "150.00"), ("t2", "074092", "spent", "50.00"), ("t3", "074092", "payout", "30.00"),
        ("t4", "074092", "paid_out", "20.00"), ("t5", "u2", "earned", "10.25"), ("t6", "u2", "payout", "5.00"),
        ("t7", "u3", "earned", "1.00")]
MORE = [("t8", "u2", "paid_out", "5.00"), ("t9", "u3", "spent", "0.50")]


def write(directory, name, rows):
    lines = ["id,user_id,type,amount,created_at"] + [f"{i},{u},{t},{a},2026-09-01 10:00:00" for i, u, t, a in rows]
    (directory / "data").mkdir(exist_ok=True)
    (directory / "data" / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def expected(rows) -> dict:
    """Each user's buckets and formulas, in plain Python."""
    sums: dict = defaultdict(lambda: defaultdict(Decimal))
    for _, user, kind, amount in rows:
        sums[user][kind] += Decimal(amount)
    return {user: {"balance": s["earned"] - s["spent"], "earned": s["earned"], "spent": s["spent"],
                   "payout": s["payout"], "paidOut": s["paid_out"], "pending": s["payout"] - s["paid_out"]}
            for user, s in sums.items()}


@pytest.fixture
def ledger_api(tmp_path):
    from tally import Project

    (tmp_path / "tally.yml").write_text(CONFIG.format(dir=tmp_path), encoding="utf-8")
    write(tmp_path, "a.csv", ROWS)
    cli("-p", tmp_path, "ingest")
    project = Project.load(tmp_path)
    yield tmp_path, project, client(project)
    project.close()


def numbers(row: dict) -> dict:
    return {k: Decimal(str(v)) for k, v in row.items() if k != "user_id"}


def test_ledger_routes_and_aliases_equal_plain_python(ledger_api):
    directory, project, api = ledger_api
    for rows in (ROWS, ROWS + MORE):
        want = expected(rows)
        assert numbers(api.get("/aggregatedData/074092").json()) == {
            k: v for k, v in want["074092"].items() if k != "pending"}
        assert api.get("/aggregatedData/074092").json()["balance"] == 100   # seed 003's documented answer
        payouts = api.get("/aggregatedData/payouts").json()
        assert payouts == [{"userId": u, "totalPayout": float(w["pending"])} for u, w in sorted(want.items())
                           if w["pending"] > 0]
        one = api.get("/api/v1/ledgers/users/u2").json()
        assert one["user_id"] == "u2" and numbers(one)["balance"] == want["u2"]["balance"]
        listed = api.get("/api/v1/ledgers/users", params={"order": "-balance", "limit": 2}).json()
        assert [r["user_id"] for r in listed["rows"]] == sorted(want, key=lambda u: -want[u]["balance"])[:2]
        assert listed["next"] is not None
        if rows is ROWS:
            write(directory, "b.csv", MORE)
            assert all(r.status == "ok" for r in project.ingest())   # loads, then refreshes the ledger
    assert api.get("/aggregatedData/nobody").status_code == 404
    assert api.get("/zeros/nobody").json() == {"userId": "nobody", "balance": 0, "paidOut": 0}
    assert api.get("/zeros/u2").json()["paidOut"] == 5
    exact = api.get("/aggregatedData/074092").text   # decimals written in full, as stored
    assert '"earned": 150.00' in exact and '"balance": 100.00' in exact
    assert api.get("/api/v1/ledgers/nope/u1").status_code == 404
    bad = api.get("/api/v1/ledgers/users", params={"where": "balance >"})
    assert 400 <= bad.status_code < 500 and set(bad.json()) == {"error"}


def test_the_ledger_example_serves_seed_003_routes():
    """examples/ledger/tally.yml maps the seed's two routes onto its users ledger (the answers end to
    end are the example's own test)."""
    from pathlib import Path

    from tally import Project

    project = Project.load(Path(__file__).resolve().parents[2] / "examples" / "ledger")
    routes = project.config.api.routes
    assert routes["aggregated_data"].path == "/aggregatedData/{userId}"
    assert list(routes["aggregated_data"].fields) == ["balance", "earned", "spent", "payout", "paidOut"]
    assert routes["pending_payouts"].path == "/aggregatedData/payouts"
    assert list(routes["pending_payouts"].fields) == ["userId", "totalPayout"]
    paths = client(project).get("/api/openapi.json").json()["paths"]
    assert {"/aggregatedData/{userId}", "/aggregatedData/payouts"} <= set(paths)
    project.close()


def test_the_seed_routes_equal_the_reference_over_the_upstream(tmp_path, monkeypatch):
    """The ledger example end to end through the API: two polls of its upstream (corrections between
    them); /aggregatedData/{userId} and /aggregatedData/payouts equal examples/ledger/reference.py."""
    import json
    import shutil
    from pathlib import Path

    from examples.ledger import reference
    from examples.ledger.generate import serve_upstream
    from tally import Project

    example = Path(__file__).resolve().parents[2] / "examples" / "ledger"
    shutil.copy(example / "tally.yml", tmp_path / "tally.yml")
    exact = {"parse_float": Decimal, "parse_int": Decimal}
    with serve_upstream(rows=2_000, seed=21) as upstream:
        monkeypatch.setenv("LEDGER_API_URL", upstream.url)
        project = Project.load(tmp_path)
        api = client(project)
        for step in range(2):
            if step:
                upstream.api.advance(300)
            assert [r.status for r in project.ingest()] == ["ok"]
            rows = upstream.api.transactions()
            users = sorted(reference.per_user(rows))
            for user in (users[0], users[len(users) // 2], users[-1], "999999"):
                body = json.loads(api.get(f"/aggregatedData/{user}").text, **exact)
                assert body == reference.aggregated_data(rows, user), user
            assert json.loads(api.get("/aggregatedData/payouts").text, **exact) == reference.payouts(rows)
        project.close()
