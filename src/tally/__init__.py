"""Tally: define sources and metrics once; get the same numbers everywhere."""

from tally.project.api import Project

__all__ = ["Project"]
__version__ = "0.1.0"
