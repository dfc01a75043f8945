"""tally.yml loading: bad files are refused with a ConfigError naming the file, the line and the reason."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tally import Project
from tally.errors import ConfigError
from tally.commands.init import write_starter
from tally.project.loader import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

VALID = """\
name: shop
timezone: Europe/Istanbul
week_start: monday
warehouse: duckdb:///warehouse.duckdb
models:
  orders:
    table: orders
    time: ordered_at
    primary_key: [order_id]
    joins:
      buyer:
        model: customers
        on: customer_id
    dimensions:
      status: status
      country: buyer.country
    measures:
      revenue:
        sum: quantity * unit_price
        where: "status <> 'cancelled'"
        format: money
      orders:
        count_distinct: order_id
  customers:
    table: customers
    primary_key: [customer_id]
metrics:
  aov: revenue / orders
  revenue_per_order: aov
"""


def write(directory: Path, text: str) -> Path:
    path = directory / "tally.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def line_with(path: Path, needle: str, occurrence: int = 1) -> int:
    """The 1-based line of the `occurrence`-th line containing `needle`."""
    found = [i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    return found[occurrence - 1]


def refused(path: Path, profile: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path.parent, profile)
    error = info.value
    assert error.file == str(path)
    assert str(path) in error.message
    if error.line is not None:
        assert error.message.startswith(f"{path}:{error.line}: ")
    return error


def replace(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# -- the happy paths ---------------------------------------------------------

def test_valid_config_loads(tmp_path):
    loaded = load_config(write(tmp_path, VALID).parent)
    config = loaded.config
    assert config.timezone == "Europe/Istanbul"
    assert config.models["orders"].joins["buyer"].keys == {"customer_id": "customer_id"}
    assert config.models["orders"].measures["revenue"].aggregation == "sum"
    assert config.metrics["aov"].formula == "revenue / orders"
    assert loaded.file == str(tmp_path / "tally.yml")


def test_ecommerce_example_loads():
    project = Project.load(EXAMPLES / "ecommerce")
    config = project.config
    assert config.name == "ecommerce"
    assert config.timezone == "Europe/Istanbul"
    assert set(config.models) >= {"orders", "refunds", "offerings"}
    assert config.models["refunds"].joins["line"].keys == {"order_id": "order_id", "line_no": "line_no"}
    assert config.models["orders"].joins["rate"].range == "size.desi * quantity"
    assert set(config.metrics) == {"revenue", "aov", "net_revenue", "profit", "margin"}
    assert "warehouse" not in project.__dict__  # loading a project does not connect to anything


def test_init_output_loads(tmp_path, monkeypatch):
    # the starter's production profile names ${PGUSER}: unused, it must not be needed
    monkeypatch.delenv("PGUSER", raising=False)
    path = write_starter(tmp_path / "my shop")
    loaded = load_config(path.parent)
    assert loaded.config.name == "my-shop"
    assert set(loaded.config.metrics) == {"aov", "net_revenue"}
    assert "production" in loaded.config.profiles


def test_init_refuses_to_overwrite(tmp_path):
    path = write(tmp_path, VALID)
    with pytest.raises(ConfigError, match="already exists"):
        write_starter(tmp_path)
    assert path.read_text() == VALID


def test_on_is_a_key_not_a_boolean(tmp_path):
    # YAML 1.1 reads a bare `on` as True; in tally.yml it is the join key
    loaded = load_config(write(tmp_path, replace(VALID, "on: customer_id", "on: {customer_id: customer_id}")).parent)
    join = loaded.config.models["orders"].joins["buyer"]
    assert join.on == {"customer_id": "customer_id"}


def test_yes_and_off_stay_strings(tmp_path):
    text = replace(VALID, "      status: status\n", "      status: status\n      flag: off\n")
    loaded = load_config(write(tmp_path, text).parent)
    assert loaded.config.models["orders"].dimensions["flag"].expr == "off"


# -- unknown keys, wrong shapes ------------------------------------------------

def test_unknown_top_level_key_suggests(tmp_path):
    path = write(tmp_path, VALID + "metircs:\n  x: aov\n")
    error = refused(path)
    assert error.line == line_with(path, "metircs:")
    assert "unknown key 'metircs'" in error.message
    assert "did you mean 'metrics'?" in error.message


def test_unknown_key_inside_a_measure(tmp_path):
    path = write(tmp_path, replace(VALID, "        format: money", "        fromat: money"))
    error = refused(path)
    assert error.line == line_with(path, "fromat:")
    assert "models.orders.measures.revenue" in error.message
    assert "unknown key 'fromat'" in error.message and "did you mean 'format'?" in error.message


def test_measure_with_two_aggregations(tmp_path):
    path = write(tmp_path, replace(VALID, "        count_distinct: order_id",
                                   "        count_distinct: order_id\n        sum: quantity"))
    error = refused(path)
    assert error.line == line_with(path, "      orders:")
    assert "models.orders.measures.orders" in error.message
    assert "exactly one of sum, count, count_distinct" in error.message
    assert "'sum', 'count_distinct'" in error.message


def test_measure_with_no_aggregation(tmp_path):
    path = write(tmp_path, replace(VALID, "        count_distinct: order_id", "        format: integer"))
    error = refused(path)
    assert error.line == line_with(path, "      orders:")
    assert "got none" in error.message


def test_bad_timezone(tmp_path):
    path = write(tmp_path, replace(VALID, "timezone: Europe/Istanbul", "timezone: Europe/Istanbull"))
    error = refused(path)
    assert error.line == line_with(path, "timezone:")
    assert "unknown timezone 'Europe/Istanbull'" in error.message
    assert "IANA" in error.message


def test_bad_week_start(tmp_path):
    path = write(tmp_path, replace(VALID, "week_start: monday", "week_start: mondey"))
    error = refused(path)
    assert error.line == line_with(path, "week_start:")
    assert error.message.endswith(
        "week_start: Input should be 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday' or 'sunday'")


def test_missing_name(tmp_path):
    path = write(tmp_path, replace(VALID, "name: shop\n", ""))
    error = refused(path)
    assert error.reason == "name: Field required"


def test_top_level_must_be_a_mapping(tmp_path):
    error = refused(write(tmp_path, "- name\n- shop\n"))
    assert error.line == 1
    assert "must be a mapping" in error.message


def test_no_tally_yml(tmp_path):
    with pytest.raises(ConfigError, match="no tally.yml here; run `tally init`"):
        load_config(tmp_path)


# -- references between names -----------------------------------------------

def test_unknown_metric_in_formula_suggests(tmp_path):
    path = write(tmp_path, replace(VALID, "aov: revenue / orders", "aov: revenu / orders"))
    error = refused(path)
    assert error.line == line_with(path, "aov: revenu")
    assert "metric 'aov' uses unknown metric 'revenu' (did you mean 'revenue'?)" in error.message


def test_cycle_between_metrics(tmp_path):
    path = write(tmp_path, replace(VALID, "aov: revenue / orders", "aov: revenue / revenue_per_order"))
    error = refused(path)
    assert "metrics form a cycle: aov -> revenue_per_order -> aov" in error.message
    assert error.line == line_with(path, "aov: revenue")


def test_metric_referring_to_itself(tmp_path):
    path = write(tmp_path, replace(VALID, "revenue_per_order: aov", "revenue_per_order: revenue_per_order + 1"))
    error = refused(path)
    assert "metrics form a cycle: revenue_per_order -> revenue_per_order" in error.message
    assert error.line == line_with(path, "revenue_per_order:")


def test_metric_named_like_a_measure(tmp_path):
    path = write(tmp_path, replace(VALID, "revenue_per_order: aov", "revenue: aov"))
    error = refused(path)
    assert "metric 'revenue' has the same name as a measure of model 'orders'" in error.message
    assert error.line == line_with(path, "  revenue: aov")


def test_join_to_missing_model(tmp_path):
    path = write(tmp_path, replace(VALID, "model: customers", "model: customer"))
    error = refused(path)
    assert error.line == line_with(path, "model: customer")
    assert "join 'buyer' of model 'orders' points at unknown model 'customer'" in error.message
    assert "did you mean 'customers'?" in error.message


def test_equality_join_needs_target_primary_key(tmp_path):
    # customers keyed by id: joining on customer_id could match many rows and multiply revenue
    path = write(tmp_path, replace(VALID, "primary_key: [customer_id]", "primary_key: [id]"))
    error = refused(path)
    assert error.line == line_with(path, "on: customer_id")
    assert "is not many-to-one" in error.message
    assert "model 'customers' must declare primary_key: ['customer_id']" in error.message


def test_equality_join_to_model_without_primary_key(tmp_path):
    path = write(tmp_path, replace(VALID, "    primary_key: [customer_id]\n", ""))
    error = refused(path)
    assert error.line == line_with(path, "on: customer_id")
    assert "is not many-to-one" in error.message


def test_join_with_both_on_and_range(tmp_path):
    path = write(tmp_path, replace(VALID, "        on: customer_id", "        on: customer_id\n        range: amount"))
    error = refused(path)
    assert error.line == line_with(path, "      buyer:")
    assert "a join needs exactly one of `on` (equal keys) or `range`" in error.message


# -- YAML itself ---------------------------------------------------------------

def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, replace(VALID, "    time: ordered_at", "    time: ordered_at\n   stray: 1"))
    error = refused(path)
    assert error.line == line_with(path, "stray:")
    assert "invalid YAML" in error.message


def test_tab_indentation_names_the_line(tmp_path):
    path = write(tmp_path, replace(VALID, "    time: ordered_at", "\ttime: ordered_at"))
    error = refused(path)
    assert error.line == line_with(path, "\ttime:")
    assert "invalid YAML" in error.message and "'\\t'" in error.message


def test_unclosed_flow_mapping_names_where_it_opened(tmp_path):
    path = write(tmp_path, replace(VALID, "  revenue_per_order: aov", "  revenue_per_order: {formula: aov\n"
                                                                       "  other: orders"))
    error = refused(path)
    opened = line_with(path, "revenue_per_order: {")
    assert error.line == opened or f"line {opened}" in error.message


def test_duplicate_key(tmp_path):
    path = write(tmp_path, replace(VALID, "    time: ordered_at", "    time: ordered_at\n    time: created_at"))
    error = refused(path)
    assert error.line == line_with(path, "time: created_at")
    assert "duplicate key 'time'" in error.message


def test_duplicate_top_level_key(tmp_path):
    path = write(tmp_path, VALID + "models: {}\n")
    error = refused(path)
    assert error.line == line_with(path, "models:", occurrence=2)
    assert "duplicate key 'models'" in error.message


# -- expressions go through an allowlist ------------------------------------

@pytest.mark.parametrize("value, reason", [
    ('"(select 1)"', "a subquery"),
    ("\"read_csv('x')\"", "function read_csv() is not allowed"),
    ('"quantity * (select max(price) from prices)"', "is not allowed"),
    ("\"quantity; drop table orders\"", "is not allowed"),
    ('"*"', "only counts rows"),
])
def test_disallowed_measure_expression(tmp_path, value, reason):
    path = write(tmp_path, replace(VALID, "sum: quantity * unit_price", f"sum: {value}"))
    error = refused(path)
    assert error.line == line_with(path, "      revenue:")
    assert "models.orders.measures.revenue" in error.message
    assert reason in error.message


def test_disallowed_function_in_dimension(tmp_path):
    path = write(tmp_path, replace(VALID, "status: status", "status: \"read_csv('x')\""))
    error = refused(path)
    assert error.line == line_with(path, "read_csv")
    assert "function read_csv() is not allowed" in error.message


def test_disallowed_function_in_formula(tmp_path):
    path = write(tmp_path, replace(VALID, "aov: revenue / orders", "aov: \"read_csv('x')\""))
    error = refused(path)
    assert error.line == line_with(path, "aov:")
    assert "metrics.aov.formula" in error.message
    assert "function read_csv() is not allowed" in error.message


def test_unparsable_measure_filter(tmp_path):
    path = write(tmp_path, replace(VALID, "where: \"status <> 'cancelled'\"", "where: \"status <> \""))
    error = refused(path)
    assert error.line == line_with(path, "      revenue:")
    assert "cannot parse" in error.message


# -- ${ENV} and profiles -----------------------------------------------------

PROFILES = replace(VALID, "warehouse: duckdb:///warehouse.duckdb\n", """\
warehouse: duckdb:///warehouse.duckdb
profiles:
  production:
    warehouse: "postgresql://${TALLY_TEST_USER}@${TALLY_TEST_HOST:-localhost}/shop"
  berlin:
    timezone: Europe/Berlin
  typo:
    warehuose: mysql://x@y/z
""")


def test_env_variable_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLY_TEST_URL", "duckdb:///from-env.duckdb")
    path = write(tmp_path, replace(VALID, "warehouse: duckdb:///warehouse.duckdb", 'warehouse: "${TALLY_TEST_URL}"'))
    assert load_config(path.parent).config.warehouse == "duckdb:///from-env.duckdb"


def test_env_default_applies_only_when_unset(tmp_path, monkeypatch):
    monkeypatch.delenv("TALLY_TEST_DB", raising=False)
    path = write(tmp_path, replace(VALID, "warehouse: duckdb:///warehouse.duckdb",
                                   'warehouse: "duckdb:///${TALLY_TEST_DB:-fallback}.duckdb"'))
    assert load_config(path.parent).config.warehouse == "duckdb:///fallback.duckdb"
    monkeypatch.setenv("TALLY_TEST_DB", "chosen")
    assert load_config(path.parent).config.warehouse == "duckdb:///chosen.duckdb"


def test_text_without_a_reference_is_untouched(tmp_path, monkeypatch):
    monkeypatch.setenv("word", "nope")
    path = write(tmp_path, replace(VALID, "warehouse: duckdb:///warehouse.duckdb",
                                   'warehouse: "postgresql://u:pa$$word$word@h/db"'))
    assert load_config(path.parent).config.warehouse == "postgresql://u:pa$$word$word@h/db"


def test_unset_env_variable_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("TALLY_TEST_URL", raising=False)
    path = write(tmp_path, replace(VALID, "warehouse: duckdb:///warehouse.duckdb", 'warehouse: "${TALLY_TEST_URL}"'))
    error = refused(path)
    assert error.line == line_with(path, "warehouse:")
    assert "environment variable TALLY_TEST_URL is not set (used at warehouse)" in error.message


def test_unset_variable_in_unused_profile_is_fine(tmp_path, monkeypatch):
    monkeypatch.delenv("TALLY_TEST_USER", raising=False)
    config = load_config(write(tmp_path, PROFILES).parent).config
    assert config.warehouse == "duckdb:///warehouse.duckdb"


def test_profile_swaps_the_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("TALLY_TEST_USER", "analyst")
    monkeypatch.delenv("TALLY_TEST_HOST", raising=False)
    path = write(tmp_path, PROFILES)
    loaded = load_config(path.parent, "production")
    assert loaded.profile == "production"
    assert loaded.config.warehouse == "postgresql://analyst@localhost/shop"
    assert loaded.config.timezone == "Europe/Istanbul"  # keys the profile does not name stay
    monkeypatch.setenv("TALLY_TEST_HOST", "db.internal")
    assert load_config(path.parent, "production").config.warehouse == "postgresql://analyst@db.internal/shop"
    assert Project.load(path.parent, profile="production").warehouse_url == "postgresql://analyst@db.internal/shop"


def test_profile_swaps_other_keys(tmp_path):
    config = load_config(write(tmp_path, PROFILES).parent, "berlin").config
    assert config.timezone == "Europe/Berlin"
    assert config.warehouse == "duckdb:///warehouse.duckdb"


def test_unknown_profile(tmp_path):
    path = write(tmp_path, PROFILES)
    error = refused(path, "staging")
    assert error.line == line_with(path, "profiles:")
    assert "unknown profile 'staging' (profiles: production, berlin, typo)" in error.message


def test_unknown_profile_when_none_defined(tmp_path):
    error = refused(write(tmp_path, VALID), "production")
    assert "unknown profile 'production' (profiles: none defined)" in error.message


def test_unset_variable_in_active_profile_names_the_profile_line(tmp_path, monkeypatch):
    monkeypatch.delenv("TALLY_TEST_USER", raising=False)
    path = write(tmp_path, PROFILES)
    error = refused(path, "production")
    assert "environment variable TALLY_TEST_USER is not set" in error.message
    assert error.line == line_with(path, "${TALLY_TEST_USER}")


def test_unknown_key_in_active_profile_names_the_profile_line(tmp_path):
    path = write(tmp_path, PROFILES)
    error = refused(path, "typo")
    assert "unknown key 'warehuose' (did you mean 'warehouse'?)" in error.message
    assert error.line == line_with(path, "warehuose:")


def test_an_unknown_key_is_matched_against_the_keys_of_its_own_place(tmp_path):
    # the rollup key is `by`: 'dimensions' is a key of models, which once made the hint name itself
    rollup = "rollups:\n  daily:\n    metrics: [revenue]\n    dimensions: [country]\n"
    error = refused(write(tmp_path, VALID + rollup))
    assert "rollups.daily: unknown key 'dimensions' (did you mean 'by'?)" in error.message
    error = refused(write(tmp_path, replace(VALID, "        format: money", "        grian: money")))
    assert "unknown key 'grian'" in error.message and "did you mean" not in error.message
