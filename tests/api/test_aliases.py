"""Route aliases (`api: routes:`): the schema, and the mapping onto the JSON shape, tested with a
tiny fake of `tally.ledgers` (the real ledgers are tested end to end with the ledger example)."""

from __future__ import annotations

import types

import pytest
from pydantic import ValidationError

from tally.api import aliases
from tally.errors import ConfigError, NotFoundError
from tally.project.api_config import ApiConfig, RouteAlias

ROUTES = {
    "balance": {"path": "/aggregatedData/{userId}", "target": "ledger_entity", "ledger": "users",
                "fields": {"balance": "balance", "earned": "earned", "spent": "spent", "payout": "payout",
                           "paidOut": "paid_out"}},
    "payouts": {"path": "/aggregatedData/payouts", "target": "ledger_list", "ledger": "users",
                "fields": {"userId": "user_id", "totalPayout": "payout"}, "where": "payout > 0",
                "order": ["-payout"], "limit": 500},
}
USERS = {"u1": {"user_id": "u1", "balance": 70, "earned": 100, "spent": 30, "payout": 0, "paid_out": 0},
         "u2": {"user_id": "u2", "balance": 5, "earned": 50, "spent": 0, "payout": 45, "paid_out": 0}}


class FakeLedgers(types.SimpleNamespace):
    """entity() and listing() with the signatures of tally.ledgers, recording their calls."""

    def __init__(self):
        super().__init__(calls=[])

    def entity(self, project, ledger, entity, as_of=None):
        self.calls.append(("entity", ledger, entity))
        return USERS.get(entity)

    def listing(self, project, ledger, where=None, order=None, limit=1000, offset=0):
        self.calls.append(("listing", ledger, where, order, limit, offset))
        return [row for row in USERS.values() if row["payout"] > 0]


def test_entity_route_maps_fields_onto_the_json_shape():
    fake = FakeLedgers()
    alias = RouteAlias.model_validate(ROUTES["balance"])
    assert aliases.run(alias, "balance", None, {"userId": "u1"}, fake) == {
        "balance": 70, "earned": 100, "spent": 30, "payout": 0, "paidOut": 0}
    assert fake.calls == [("entity", "users", "u1")]
    with pytest.raises(NotFoundError):
        aliases.run(alias, "balance", None, {"userId": "nobody"}, fake)


def test_list_route_passes_its_filter_and_order():
    fake = FakeLedgers()
    alias = RouteAlias.model_validate(ROUTES["payouts"])
    assert aliases.run(alias, "payouts", None, {}, fake) == [{"userId": "u2", "totalPayout": 45}]
    assert fake.calls == [("listing", "users", "payout > 0", ["-payout"], 500, 0)]


def test_an_unknown_field_is_a_config_error_naming_the_route():
    alias = RouteAlias.model_validate(dict(ROUTES["balance"], fields={"x": "no_such_field"}))
    with pytest.raises(ConfigError, match="api.routes.balance.*no_such_field"):
        aliases.run(alias, "balance", None, {"userId": "u1"}, FakeLedgers())


def test_no_fields_keeps_every_field():
    alias = RouteAlias.model_validate(dict(ROUTES["balance"], fields={}))
    assert aliases.run(alias, "balance", None, {"userId": "u2"}, FakeLedgers()) == USERS["u2"]


@pytest.mark.parametrize("route,message", [
    ({"path": "/users", "target": "ledger_entity", "ledger": "users"}, "one {param}"),
    ({"path": "/users/{a}/{b}", "target": "ledger_entity", "ledger": "users"}, "one {param}"),
    ({"path": "/users/{id}", "target": "ledger_list", "ledger": "users"}, "takes no"),
    ({"path": "users", "target": "ledger_list", "ledger": "users"}, "must start with /"),
    ({"path": "/api/v1/x", "target": "ledger_list", "ledger": "users"}, "Tally's own"),
    ({"path": "/x", "target": "sql", "ledger": "users"}, "ledger_entity"),
    ({"path": "/x", "target": "ledger_list", "ledger": "users", "method": "DELETE"}, "GET"),
])
def test_bad_routes_are_refused(route, message):
    with pytest.raises(ValidationError, match=message):
        ApiConfig.model_validate({"routes": {"r": route}})


def test_an_unknown_entity_can_answer_zeros_as_the_seed_service_did():
    alias = RouteAlias.model_validate(dict(ROUTES["balance"], missing="zeros",
                                           fields={"userId": "user_id", "balance": "balance"}))
    project = types.SimpleNamespace(config=types.SimpleNamespace(ledgers={"users": types.SimpleNamespace(
        entity="user_id")}))

    class Raising(FakeLedgers):
        def entity(self, project, ledger, entity, as_of=None):
            raise NotFoundError(f"ledger {ledger!r}: no user_id {entity!r}")

    assert aliases.run(alias, "balance", project, {"userId": "nobody"}, Raising()) == {"userId": "nobody", "balance": 0}
    with pytest.raises(NotFoundError):
        aliases.run(RouteAlias.model_validate(ROUTES["balance"]), "balance", project, {"userId": "x"}, Raising())


def test_an_alias_over_an_unknown_ledger_is_refused_at_start(duck_dir):
    from tally import Project
    from tests.api.conftest import client

    project = Project.load(duck_dir)
    with pytest.raises(ConfigError, match="unknown ledger"):
        client(project, settings={"routes": ROUTES})
    project.close()


def test_ledger_routes_call_the_ledger_functions(duck_dir, monkeypatch):
    import sys

    from tally import Project
    from tests.api.conftest import client

    fake = FakeLedgers()
    monkeypatch.setitem(sys.modules, "tally.ledgers", fake)
    project = Project.load(duck_dir)
    api = client(project)
    assert api.get("/api/v1/ledgers/users/u1", params={"as_of": "2026-01-01"}).json()["balance"] == 70
    assert api.get("/api/v1/ledgers/users/nobody").status_code == 404
    listed = api.get("/api/v1/ledgers/users", params={"where": "payout > 0", "order": "-payout", "limit": 5}).json()
    assert listed["rows"] == [USERS["u2"]] and listed["next"] is None
    assert fake.calls[-1] == ("listing", "users", "payout > 0", ["-payout"], 6, 0)   # one more: is there a next page?
    assert api.get("/api/v1/ledgers/users", params={"limit": 0}).status_code == 400
    project.close()


def test_ledger_routes_without_ledgers_are_4xx(duck, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tally.ledgers", None)   # import fails
    response = duck.get("/api/v1/ledgers/users/u1")
    assert response.status_code == 422 and "no ledgers" in response.json()["error"]["message"]
