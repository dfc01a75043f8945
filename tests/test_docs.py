"""The user docs stay true: every config key, connector option, CLI command and option is documented,
every connector kind has its section, and every YAML example in the docs is a valid tally.yml part."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import re
import typing
from pathlib import Path

import pytest
import typer.main
from pydantic import BaseModel

from tally.cli import app
from tally.engine.spec import COMPARISONS
from tally.engine.timegrid import Grain
from tally.project import expr, schedules, schema
from tally.project.yamlfile import read_yaml
from tally.sources.config import Check, SourceConfig
from tally.sources.connectors import REGISTRY, connector
from tally.warehouse.dialects import SCHEMES
from tally.warehouse.internal import SCHEMAS
from tally.warehouse.types import _SIMPLE

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CONFIGURATION, INGESTION, ROLLUPS = DOCS / "configuration.md", DOCS / "ingestion.md", DOCS / "rollups.md"
SCHEDULING = DOCS / "scheduling.md"
PAGES = (CONFIGURATION, INGESTION, ROLLUPS, SCHEDULING)
# values for ${NAME} references in examples, where a placeholder would not pass validation
EXAMPLE_ENV = {"MONGO_URL": "mongodb://localhost:27017"}


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def mentions(text: str, name: str) -> bool:
    """`name` or `name:` in code quotes."""
    return f"`{name}`" in text or f"`{name}:`" in text


def models_of(module) -> list[type[BaseModel]]:
    """The pydantic classes a module defines (not those it imports), with fields."""
    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, BaseModel) and cls.__module__ == module.__name__ and cls.model_fields]


def keys_of(cls: type[BaseModel]) -> list[str]:
    """The keys a user writes: aliases where a field has one (`from`)."""
    return [field.alias or name for name, field in cls.model_fields.items()]


def literal_values(annotation) -> list[str]:
    """The allowed values of a Literal field (also inside Optional / list)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(v) for v in typing.get_args(annotation)]
    return [v for arg in typing.get_args(annotation) for v in literal_values(arg)]


def undocumented(classes, text: str) -> list[str]:
    missing = []
    for cls in classes:
        missing += [f"{cls.__name__}.{key}" for key in keys_of(cls) if not mentions(text, key)]
        for name, field in cls.model_fields.items():
            missing += [f"{cls.__name__}.{name} = {value}" for value in literal_values(field.annotation)
                        if not mentions(text, value)]
    return missing


# -- headings and sections --------------------------------------------------------------------

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def sections(text: str) -> list[tuple[int, str, str]]:
    """(level, heading, body up to the next heading of the same or a higher level)."""
    found = list(HEADING.finditer(_without_code(text)))
    result = []
    for i, match in enumerate(found):
        level = len(match.group(1))
        end = next((m.start() for m in found[i + 1:] if len(m.group(1)) <= level), len(text))
        result.append((level, match.group(2), text[match.end():end]))
    return result


def _without_code(text: str) -> str:
    """The text with fenced blocks blanked (a `# comment` in YAML is not a heading), same offsets."""
    return re.sub(r"```.*?```", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.DOTALL)


def connector_section(kind: str) -> str:
    for _, heading, body in sections(read(INGESTION)):
        if f"`{kind}`" in heading:
            return body
    raise AssertionError(f"docs/ingestion.md has no section headed `{kind}`")


# -- tally.yml keys ---------------------------------------------------------------------------


def test_every_project_key_is_documented():
    assert undocumented(models_of(schema), read(CONFIGURATION)) == []


def test_every_rollup_key_is_documented_with_rollups():
    assert undocumented([schema.Rollup], read(ROLLUPS)) == []


def test_every_schedule_and_jobs_key_is_documented_with_scheduling():
    assert undocumented(models_of(schedules), read(SCHEDULING)) == []


def test_every_source_key_and_check_is_documented():
    assert undocumented([SourceConfig, Check], read(INGESTION)) == []


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_connector_kind_has_a_section(kind):
    assert connector_section(kind).strip()


@pytest.mark.parametrize("kind", sorted(REGISTRY))
def test_every_connector_option_is_documented_in_its_section(kind):
    assert undocumented(models_of(connector(kind)), connector_section(kind)) == []


def test_every_column_type_is_documented():
    text = read(INGESTION)
    assert [name for name in _SIMPLE if not mentions(text, name)] == []
    assert mentions(text, "decimal(p,s)")


def test_every_internal_table_and_column_is_documented():
    text = read(INGESTION)
    missing = [table for table in SCHEMAS if not mentions(text, table)]
    missing += [f"{table}.{column}" for table, schema_ in SCHEMAS.items() for column in schema_.names
                if not mentions(text, column)]
    assert missing == []


def test_expression_functions_are_documented():
    text = read(CONFIGURATION)
    functions = {node.key for node in expr.FUNCTIONS + expr.FORMULA_NODES if issubclass(node, expr.exp.Func)}
    assert sorted(name for name in functions if f"`{name}" not in text) == []


def test_query_grains_comparisons_and_warehouse_schemes_are_documented():
    text = read(CONFIGURATION)
    missing = [g.value for g in Grain if not mentions(text, g.value)]
    missing += [c for c in COMPARISONS if c not in text]
    missing += [f"{scheme}://" for scheme in SCHEMES if f"`{scheme}://" not in text]
    assert missing == []


# -- the command line -------------------------------------------------------------------------


def cli_params():
    """(command path, click parameter) for the global options and every (sub)command's parameters."""
    found = []

    def walk(command, path: tuple[str, ...]) -> None:
        found.extend((path, param) for param in command.params)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, path + (name,))

    walk(typer.main.get_command(app), ())
    return found


def cli_lines() -> list[str]:
    return [line for path in (README, *PAGES) for line in read(path).splitlines()]


def option_in(line: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", line) is not None


def command_paths() -> set[tuple[str, ...]]:
    return {path for path, _ in cli_params()} | {(name,) for name in typer.main.get_command(app).commands}


@pytest.mark.parametrize("path", sorted(command_paths()), ids=" ".join)
def test_every_command_is_documented(path):
    usage = " ".join(("tally", *path))
    assert any(usage in line for line in cli_lines()), f"`{usage}` appears nowhere in README.md or docs/"


@pytest.mark.parametrize("path,param", cli_params(), ids=lambda v: " ".join(v) if isinstance(v, tuple) else v.name)
def test_every_cli_parameter_is_documented_with_its_command(path, param):
    usage = " ".join(("tally", *path))
    lines = [line for line in cli_lines() if usage in line]
    if param.param_type_name == "argument":
        names = {param.name.upper(), param.name.upper().removesuffix("S")}
        assert any(re.search(rf"\b({'|'.join(names)})\b", line) for line in lines), \
            f"argument {param.name} of `{usage}` is not documented beside it"
        return
    for option in [*param.opts, *param.secondary_opts]:
        assert any(option_in(line, option) for line in lines), \
            f"{option} of `{usage}` is not documented on a line naming the command"


# -- examples and links -----------------------------------------------------------------------


def fenced(path: Path, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", read(path), flags=re.DOTALL)


def yaml_examples():
    return [pytest.param(path, block, id=f"{path.name}-{i}")
            for path in PAGES for i, block in enumerate(fenced(path, "yaml"))]


def _expand(text: str) -> str:
    """${NAME:-default} -> default, ${NAME} -> an example value."""
    text = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}", r"\2", text)
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: EXAMPLE_ENV.get(m.group(1), "x"), text)


@pytest.mark.parametrize("path,block", yaml_examples())
def test_yaml_examples_are_valid_config(path, block, tmp_path):
    """Each example is a part of a tally.yml that validates (sources with their connector's options)."""
    file = tmp_path / "tally.yml"
    file.write_text(_expand(block), encoding="utf-8")
    data, _ = read_yaml(file)
    assert isinstance(data, dict) and set(data) <= set(schema.ProjectConfig.model_fields), \
        f"an example in {path.name} is not a part of tally.yml: {sorted(data)}"
    schema.ProjectConfig.model_validate({"name": "docs", **data})
    for source in (data.get("sources") or {}).values():
        config = SourceConfig.model_validate(source)
        connector(config.kind).Options.model_validate(config.options)


def test_links_between_docs_resolve():
    anchors = {path.name: {slug(h) for _, h, _ in sections(read(path))} for path in PAGES}
    broken = []
    for path in (README, *PAGES):
        for target, anchor in re.findall(r"\]\(((?:docs/)?[\w-]*\.md|)(?:#([\w-]+))?\)", read(path)):
            name = Path(target).name if target else path.name
            if target.endswith(".md") and not ((path.parent / target).exists()):
                broken.append(f"{path.name} -> {target}")
            elif anchor and name in anchors and anchor not in anchors[name]:
                broken.append(f"{path.name} -> {name}#{anchor}")
    assert broken == []


def test_lambda_handler_is_documented():
    text = read(ROLLUPS)
    assert "## The AWS Lambda handler" in text
    if importlib.util.find_spec("tally.aws") is None:
        return
    aws = importlib.import_module("tally.aws")
    names = [*aws.ENVIRONMENTS, *aws.STATISTICS_TYPES, *aws.EVENT_KEYS]
    assert [name for name in names if not mentions(text, name)] == []
    assert [f"dateRange.{key}" for key in aws.RANGE_KEYS if f"`dateRange.{key}`" not in text] == []
    assert "tally.aws.lambda_handler" in text
    for block in fenced(ROLLUPS, "json"):
        aws.parse_event(json.loads(block))
