"""`tally.Project`: the facade that wires the layers (config, warehouse, engine, rollups, sources)
over one project folder. Everything user-facing (CLI, Lambda, later the HTTP API) starts here."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from tally.errors import ConfigError, QueryError, api_boundary
from tally.project.loader import LoadedConfig, load_config

if TYPE_CHECKING:
    import pyarrow as pa

def read_project(path: Path | str = ".", profile: str | None = None) -> LoadedConfig:
    """tally.yml read and validated whole: shape, references, expression types, and each source
    with its connector's options (a bad source is refused at load, not when it first runs)."""
    loaded = load_config(path, profile)
    if not loaded.config.sources:
        return loaded
    from dataclasses import replace

    from tally.sources.config import source_configs

    return replace(loaded, sources=source_configs(loaded))


QUERY_ARGUMENTS = ("by", "grain", "start", "end", "where", "compare", "order_by", "limit", "timezone", "fill")


class Project:
    """A loaded, validated project and lazy access to its warehouse and engine."""

    query_cache = True   # answer a repeated query shape from its stored SQL reads (tally.engine.replay)

    def __init__(self, loaded: LoadedConfig, warehouse_url: str | None = None, use_rollups: bool = True):
        self.use_rollups = use_rollups  # answer from fresh rollups when they hold the exact numbers
        self.read_only = False   # set before the first query: open an embedded DuckDB read-only
        self.loaded = loaded
        self.config = loaded.config
        self.root = loaded.root
        self._warehouse_url = warehouse_url
        self._reader = None
        self._replayed = False   # the query cache answers a project's first query only

    @classmethod
    @api_boundary
    def load(cls, path: Path | str = ".", profile: str | None = None, warehouse: str | None = None) -> Project:
        """Read `tally.yml` in `path`; `profile` swaps keys, `warehouse` overrides the URL."""
        for name, value in (("path", path), ("profile", profile), ("warehouse", warehouse)):
            if value is not None and not isinstance(value, (str, Path) if name == "path" else str):
                raise ConfigError(f"Project.load: {name} must be text, not {type(value).__name__} {value!r}")
        if path is None:
            raise ConfigError("Project.load: path must be a project folder or its tally.yml, not None")
        return cls(read_project(path, profile), warehouse)

    @property
    def sources(self):
        """Each source's validated SourceConfig, by name (validated once, at load)."""
        return self.loaded.sources

    @cached_property
    def catalog(self):
        """The metrics, measures and dimensions of the config, resolved once."""
        from tally.engine.catalog import Catalog

        return Catalog(self.config)

    @property
    def warehouse_url(self) -> str:
        return self._warehouse_url or self.config.warehouse

    @cached_property
    def warehouse(self):
        from tally.warehouse import Warehouse

        self._close_reader()   # one configuration per DuckDB file in a process: the warehouse's
        return Warehouse(self.warehouse_url, self.root, read_only=self.read_only)

    @property
    def reader(self):
        """For plain SQL reads of Tally's own tables (`has_table`, `run`, `dialect`): the warehouse
        when it is open, else the database driver alone (no Ibis), read-only."""
        if "warehouse" in self.__dict__:
            return self.warehouse
        if self._reader is None:
            from tally.warehouse.rawsql import RawConnection

            try:
                self._reader = RawConnection(self.warehouse_url, self.root)
            except Exception:   # the warehouse says what is wrong, if anything is
                return self.warehouse
        return self._reader

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    @cached_property
    def engine(self):
        from tally.engine.engine import Engine

        engine = Engine(self.config, self.warehouse, catalog=self.catalog)
        engine.locate = self.loaded.error
        if self.config.rollups and self.use_rollups:
            from tally.rollups.routing import Router

            engine.router = Router(self)
        return engine

    @api_boundary
    def query(self, metrics, **kwargs) -> pa.Table:
        """Answer a query as an Arrow table (see `tally query --help` for the arguments)."""
        return self.query_result(metrics, **kwargs).table

    @api_boundary
    def query_result(self, metrics, **kwargs):
        """Answer a query with its meta (timezone, range, source).

        A project's first query may be answered from `.tally/cache/queries` without loading Ibis
        (see `tally.engine.replay`: what makes a one-query CLI process fast); every later one is
        answered by the engine, with its own caches (a replay opens a fresh driver connection and
        re-reads every recorded read: a long-lived process, such as `tally serve`, must not pay that
        on each request)."""
        unknown = [name for name in kwargs if name not in QUERY_ARGUMENTS]
        if unknown:
            raise QueryError(f"unknown query argument(s) {', '.join(unknown)} (arguments: {', '.join(QUERY_ARGUMENTS)})")

        if self.query_cache and "engine" not in self.__dict__ and not self._replayed:
            from tally.engine import replay

            self._replayed = True

            return replay.answer(self, metrics, kwargs, lambda: self.engine.query(metrics, **kwargs))
        return self.engine.query(metrics, **kwargs)

    @api_boundary
    def ingest(self, names=None, **options) -> list:
        """Load sources (see `tally ingest`), then refresh the ledgers over the tables they loaded
        (each ingest commits first: a failed ledger refresh leaves it loaded and is raised after)."""
        from tally.ledgers import after_ingest
        from tally.sources import ingest

        results = ingest(self, names, **options)
        after_ingest(self, results)
        return results

    @api_boundary
    def load_seeds(self, names=None) -> dict[str, int]:
        """Load the named seeds (all by default); returns rows loaded per seed."""
        from tally.sources.seeds import load_seeds

        if isinstance(names, str):
            names = [names]
        if names is not None and (not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names)):
            raise ConfigError(f"seed names must be a name or a list of names, not {names!r}")
        unknown = [name for name in names or () if name not in self.config.seeds]
        if unknown:
            raise ConfigError(f"unknown seed(s) {', '.join(unknown)} (seeds: {', '.join(self.config.seeds) or 'none'})")
        return load_seeds(self.root, self.config.seeds, self.warehouse, names)

    def close(self) -> None:
        self._close_reader()
        if "warehouse" in self.__dict__:
            self.warehouse.close()
