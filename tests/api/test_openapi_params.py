"""The OpenAPI document a user reads at /api/docs: every path parameter of a route template is
declared (alias routes included), and every parameter says what it takes."""

from __future__ import annotations

import re

from tests.api.test_ledger_routes import ledger_api  # noqa: F401  (the fixture)


def test_every_parameter_is_declared_and_described(ledger_api):  # noqa: F811
    _, _, http = ledger_api
    document = http.get("/api/openapi.json").json()
    undeclared, silent = [], []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            params = operation.get("parameters", [])
            declared = {p["name"] for p in params if p["in"] == "path"}
            for name in re.findall(r"{(\w+)}", path):
                if name not in declared:   # /aggregatedData/{userId} had none: "Try it out" could not fill it
                    undeclared.append(f"{method.upper()} {path}: {name}")
            silent += [f"{method.upper()} {path}: {p['name']}" for p in params if not p.get("description")]
    assert undeclared == [] and silent == [], (undeclared, silent)


def test_the_alias_path_parameter_is_a_required_string(ledger_api):  # noqa: F811
    _, _, http = ledger_api
    operation = http.get("/api/openapi.json").json()["paths"]["/aggregatedData/{userId}"]["get"]
    (param,) = operation["parameters"]
    assert param["in"] == "path" and param["required"] is True and param["schema"]["type"] == "string"
    assert http.get("/aggregatedData/074092").json()["balance"] == 100
