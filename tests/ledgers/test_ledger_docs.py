"""docs/ledgers.md documents every `ledgers:` key, and its YAML example is a valid tally.yml part."""

from __future__ import annotations

from tally.project import ledgers, schema
from tests.test_docs import DOCS, fenced, read, undocumented

PAGE = DOCS / "ledgers.md"


def test_every_ledger_key_is_documented():
    assert undocumented([ledgers.Ledger, ledgers.Bucket], read(PAGE)) == []


def test_buckets_take_the_aggregations_measures_take():
    assert ledgers.AGGREGATIONS == schema.AGGREGATIONS


def test_the_yaml_example_validates():
    import yaml

    [block] = fenced(PAGE, "yaml")
    data = yaml.safe_load(block)
    config = schema.ProjectConfig.model_validate({"name": "docs", **data})
    assert list(config.ledgers["users"].buckets) == ["earned", "spent", "payout", "paidOut"]
