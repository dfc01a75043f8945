"""docs/api.md stays true: every `api:` key and allowed value is documented, its YAML examples
validate, and every route the app serves is in its table (and nothing else is)."""

from __future__ import annotations

import re

import yaml

from tally.project import api_config
from tally.project.schema import ProjectConfig
from tests.test_docs import DOCS, fenced, models_of, read, undocumented

API = DOCS / "api.md"
HASH = "sha256:" + "0" * 64


def test_every_api_key_is_documented():
    assert undocumented(models_of(api_config), read(API)) == []


def test_yaml_examples_validate():
    blocks = fenced(API, "yaml")
    assert blocks
    for block in blocks:
        data = yaml.safe_load(re.sub(r"\$\{[A-Z_]+\}", HASH, block))
        ProjectConfig.model_validate({"name": "docs", **data})


def test_every_route_is_in_the_table(duck):
    document = duck.get("/api/openapi.json").json()
    served = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    served |= {"GET /api/openapi.json", "GET /api/docs"}
    text = read(API)
    listed = {f"{method} {path}" for method, path in re.findall(r"`(GET|POST) (/[^`\s]*)`", text)
              if not path.startswith("/aggregatedData")}
    assert served == listed
