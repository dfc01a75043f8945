"""Rollups: metrics stored per period and level, refreshed incrementally, proven equal to live answers."""

from tally.rollups.build import build
from tally.rollups.verify import verify

__all__ = ["build", "verify"]
