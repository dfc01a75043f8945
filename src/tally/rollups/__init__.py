"""Rollups: metrics stored per period and level, refreshed incrementally, proven equal to live answers."""

from tally.errors import api_boundary
from tally.rollups.build import build
from tally.rollups.verify import verify

build, verify = api_boundary(build), api_boundary(verify)   # the public API raises only TallyError

__all__ = ["build", "verify"]
