"""`tally demo`: copy an example project, generate its data, load it, and show what it answers."""

from __future__ import annotations

import importlib.util
import inspect
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterator
from urllib.parse import quote

from tally.errors import ConfigError, TallyError
from tally.project.api_config import PATH_PARAM

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
    """Write example `name` into `target` with generated data; return the loaded Project and what was loaded."""
    with prepared(name, target, rows, seed, warehouse, force) as result:
        return result


@contextmanager
def prepared(name: str, target: Path, rows: int, seed: int = 42, warehouse: str | None = None, force: bool = False,
             live: bool = False) -> Iterator[tuple]:
    """`prepare`, with the example's upstream API (if it has one) kept running while the block runs
    (new rows arriving on their own when `live`), so scheduled polls of it keep working.

    An example's generate.py either returns tables (`generate`, written straight into the
    warehouse) or writes source files (`prepare`, loaded by `tally ingest`, with its upstream API
    `serve_project` or `serve_customers` running meanwhile).
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
        counts = generator.prepare(target, rows, seed=seed)
        with upstream(generator, target, live):
            yield _ingest(target, warehouse, counts)
        return
    tables = generator.generate(rows, seed=seed)
    if hasattr(generator, "write_lookups"):
        generator.write_lookups(target, tables, seed=seed)
    project = Project.load(target, warehouse=warehouse)
    for table_name, table in tables.items():
        project.warehouse.write_table(table_name, table)
    project.load_seeds()
    yield project, {table_name: table.num_rows for table_name, table in tables.items()}


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


@contextmanager
def upstream(generator, target: Path, live: bool = False) -> Iterator[str | None]:
    """The example's upstream API serving `target`'s data while the block runs, its URL in the
    variable its tally.yml reads (restored after); None for an example without one."""
    serve = getattr(generator, "serve_project", None) or getattr(generator, "serve_customers", None)
    if serve is None:
        yield None
        return
    variable = getattr(generator, "API_URL_ENV", "RETAIL_API_URL")
    before = os.environ.get(variable)
    live_ok = live and "live" in inspect.signature(serve).parameters
    with serve(target, live=True) if live_ok else serve(target) as url:
        os.environ[variable] = url
        try:
            yield url
        finally:
            if before is None:
                os.environ.pop(variable, None)
            else:
                os.environ[variable] = before


def _ingest(target: Path, warehouse: str | None, counts: dict):
    """Load the example's sources (the ledgers over its tables refreshed too); the project and what loaded."""
    from tally import Project

    project = Project.load(target, warehouse=warehouse)
    results = project.ingest()
    failed = [r for r in results if r.status != "ok"]
    if failed:
        raise ConfigError("; ".join(f"source {r.source} failed: {r.error}" for r in failed))
    return project, {f"{r.source} (loaded/rejected)": f"{r.rows_loaded:,}/{r.rows_rejected:,}" for r in results} \
        if results else counts


def preflight(name: str, target: Path, host: str | None = None, port: int = 0) -> None:
    """Before generating anything, refuse what would fail at the end: a server already owning the
    folder, and (when it is to serve) what `tally serve` refuses: a host beyond loopback with no API
    key, a port in use."""
    from tally.serve.runner import running_server

    if name not in EXAMPLES:
        raise ConfigError(f"unknown example {name!r} (examples: {', '.join(EXAMPLES)})")
    other = running_server(Path(target).resolve()) if Path(target).is_dir() else None
    if other is not None:
        raise ConfigError(f"tally serve runs on {target} (pid {other.pid}, port {other.port}): stop it before "
                          "the demo replaces that project, or pick another --dir")
    if host is None:
        return
    from tally.api.security import check_bind
    from tally.project.loader import load_config
    from tally.serve.runner import listen

    check_bind(host, load_config(examples_dir() / name).config.api)
    if port:
        listen(host, port).close()


def links(project, name: str, base: str) -> list[tuple[str, str]]:
    """What to open while the demo serves example `name` at `base`: (what, URL) pairs."""
    metrics = ",".join(showcase(name)["metrics"][:2])
    shown = [("API", f"{base}/api/v1"), ("query", f"{base}/api/v1/query?metrics={metrics}&grain=month"),
             ("API docs", f"{base}/api/docs")]
    for route_name, route in project.config.api.routes.items():
        shown.append((route_name, base + route.path))
        sample = _sample_entity(project, route) if route.target == "ledger_entity" else None
        if sample is not None:
            shown.append(("  e.g.", base + PATH_PARAM.sub(lambda _: quote(sample, safe=""), route.path)))
    return [*shown, ("Prometheus", f"{base}/metrics")]


def _sample_entity(project, route) -> str | None:
    """An entity the route's ledger holds (the first by key), to show a working URL."""
    from tally.ledgers import listing

    key = project.config.ledgers[route.ledger].entity
    try:
        rows = listing(project, route.ledger, order=[key], limit=1)
    except TallyError:
        return None
    return str(rows[0][key]) if rows else None


def serve(project, name: str, host: str, port: int, say: Callable[[str], None],
          show: Callable[[str], None]) -> int:
    """Serve the demo's project as `tally serve` does, scheduler on, until Ctrl-C/SIGTERM; listing
    its URLs through `show` once the port is bound. The exit code."""
    from tally.serve.runner import serve as run_server

    def ready(base: str) -> None:
        show(f"\nServing the {name} example (Ctrl-C or SIGTERM stops it):")
        for label, url in links(project, name, base):
            show(f"  {label:<16} {url}")

    return run_server(project, host=host, port=port, scheduler=True, say=say, ready=ready)
