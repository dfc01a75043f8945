"""Tally: define sources and metrics once; get the same numbers everywhere."""

__all__ = ["Project"]
__version__ = "0.1.0"


def __getattr__(name: str):
    """`tally.Project` loads the config layer (pydantic, sqlglot): only when it is asked for."""
    if name == "Project":
        from tally.app import Project

        return Project
    raise AttributeError(f"module 'tally' has no attribute {name!r}")
