"""`tally demo`: copy an example project, generate its data, load it, and show what it answers."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from types import ModuleType

from tally.errors import ConfigError

EXAMPLES = ("ecommerce", "retail", "stats", "ledger")
MARKER = ".tally-demo"   # in a folder `tally demo` wrote: running it there again may replace the project


def examples_dir() -> Path:
    """The examples folder: $TALLY_EXAMPLES, else the one beside the source tree."""
    return Path(os.environ.get("TALLY_EXAMPLES") or Path(__file__).resolve().parents[2] / "examples")


def _generator(name: str) -> ModuleType:
    path = examples_dir() / name / "generate.py"
    spec = importlib.util.spec_from_file_location(f"tally_example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepare(name: str, target: Path, rows: int, seed: int = 42, warehouse: str | None = None, force: bool = False):
    """Write example `name` into `target` with generated data; return the loaded Project.

    An example's generate.py either returns tables (`generate`, written straight into the
    warehouse) or writes source files (`prepare`, loaded by `tally ingest`, with an optional
    `serve_customers` upstream API running meanwhile).
    """
    from tally import Project

    if name not in EXAMPLES:
        raise ConfigError(f"unknown example {name!r} (examples: {', '.join(EXAMPLES)})")
    if rows < 1:
        raise ConfigError(f"--rows must be positive, not {rows}")
    source = examples_dir() / name
    target = Path(target)
    refuse_foreign(target, force)
    target.mkdir(parents=True, exist_ok=True)
    (target / MARKER).write_text(f"written by `tally demo --example {name}`; "
                                 "delete this file to keep `tally demo` from replacing the project\n",
                                 encoding="utf-8")
    shutil.copy(source / "tally.yml", target / "tally.yml")
    generator = _generator(name)
    if hasattr(generator, "prepare"):
        return _prepare_from_sources(generator, target, rows, seed, warehouse)
    tables = generator.generate(rows, seed=seed)
    if hasattr(generator, "write_lookups"):
        generator.write_lookups(target, tables, seed=seed)
    project = Project.load(target, warehouse=warehouse)
    for table_name, table in tables.items():
        project.warehouse.write_table(table_name, table)
    project.load_seeds()
    return project, {table_name: table.num_rows for table_name, table in tables.items()}


def showcase(name: str) -> dict:
    """What the demo shows of example `name` (its demo.yml): `metrics` to query, a command to `try` next."""
    import yaml

    return yaml.safe_load((examples_dir() / name / "demo.yml").read_text(encoding="utf-8"))


def last_30_days(project, metric: str) -> dict:
    """The 30 whole days before the data's last day (of `metric`), in the project timezone."""
    import datetime as dt

    bounds = project.query_result([metric], grain="day", fill=False, order_by=["-period"], limit=1)
    last = bounds.table["period"][0].as_py() if bounds.table.num_rows else dt.date.today()
    return {"start": (last - dt.timedelta(days=29)).isoformat(), "end": (last + dt.timedelta(days=1)).isoformat()}


def refuse_foreign(target: Path, force: bool) -> None:
    """A folder holding a project the demo did not write is someone's work: not replaced without --force."""
    if not force and (target / "tally.yml").exists() and not (target / MARKER).exists():
        raise ConfigError(f"{target} holds a project `tally demo` did not create; the demo would replace its "
                          "tally.yml and tables: pick another --dir, or pass --force")


def _prepare_from_sources(generator, target: Path, rows: int, seed: int, warehouse: str | None):
    """Write the example's source files, then ingest them (with its upstream API up, if it has one)."""
    from contextlib import nullcontext

    from tally import Project
    from tally.sources import ingest

    counts = generator.prepare(target, rows, seed=seed)
    serve = getattr(generator, "serve_project", None) or getattr(generator, "serve_customers", None)
    upstream = serve(target) if serve else nullcontext()
    with upstream as url:
        if url:
            os.environ[getattr(generator, "API_URL_ENV", "RETAIL_API_URL")] = url
        project = Project.load(target, warehouse=warehouse)
        results = ingest(project)
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise ConfigError("; ".join(f"source {r.source} failed: {r.error}" for r in failed))
    return project, {f"{r.source} (loaded/rejected)": f"{r.rows_loaded:,}/{r.rows_rejected:,}" for r in results} \
        if results else counts
