"""Modules imported on first use, so the CLI starts without loading what a command never touches."""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """Stands for a module until an attribute is read, then imports it (`httpx = LazyModule("httpx")`)."""

    def __getattr__(self, attr: str):
        return getattr(importlib.import_module(self.__name__), attr)
