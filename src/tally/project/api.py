"""`tally.Project`: the Python entry point over a project folder."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import pyarrow as pa

from tally.project.loader import LoadedConfig, load_config


class Project:
    """A loaded, validated project and lazy access to its warehouse and engine."""

    def __init__(self, loaded: LoadedConfig, warehouse_url: str | None = None, use_rollups: bool = True):
        self.use_rollups = use_rollups  # answer from fresh rollups when they hold the exact numbers
        self.loaded = loaded
        self.config = loaded.config
        self.root = loaded.root
        self._warehouse_url = warehouse_url

    @classmethod
    def load(cls, path: Path | str = ".", profile: str | None = None, warehouse: str | None = None) -> Project:
        """Read `tally.yml` in `path`; `profile` swaps keys, `warehouse` overrides the URL."""
        return cls(load_config(path, profile), warehouse)

    @property
    def warehouse_url(self) -> str:
        return self._warehouse_url or self.config.warehouse

    @cached_property
    def warehouse(self):
        from tally.warehouse import Warehouse

        return Warehouse(self.warehouse_url, self.root)

    @cached_property
    def engine(self):
        from tally.engine.engine import Engine

        engine = Engine(self.config, self.warehouse)
        engine.locate = self.loaded.error
        if self.config.rollups and self.use_rollups:
            from tally.rollups.routing import Router

            engine.router = Router(self)
        return engine

    def query(self, metrics, **kwargs) -> pa.Table:
        """Answer a query as an Arrow table (see `tally query --help` for the arguments)."""
        return self.engine.query(metrics, **kwargs).table

    def query_result(self, metrics, **kwargs):
        """Answer a query with its meta (timezone, range, source)."""
        return self.engine.query(metrics, **kwargs)

    def load_seeds(self, names=None) -> dict[str, int]:
        from tally.sources.seeds import load_seeds

        return load_seeds(self.root, self.config.seeds, self.warehouse, names)

    def close(self) -> None:
        if "warehouse" in self.__dict__:
            self.warehouse.close()
