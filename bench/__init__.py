"""Tally's benchmarks: `python -m bench [dashboard|data|profile] [--rows N] [--json PATH]` (see bench/README.md)."""
