"""Ingestion: sources loaded validated, incrementally and exactly once."""

from __future__ import annotations

from tally.errors import ConfigError, api_boundary


@api_boundary
def ingest(project, names=None, *, full_refresh: bool = False, dry_run: bool = False, progress=None) -> list:
    """Run the named sources (all by default); each commits whole or not at all. Returns LoadResults."""
    from tally.sources.run import run_source

    configs = project.sources
    if names is not None and not isinstance(names, (str, list, tuple)):
        raise ConfigError(f"source names must be a name or a list of names, not {names!r}")
    names = [names] if isinstance(names, str) else list(names or configs)
    unknown = [n for n in names if n not in configs]
    if unknown:
        raise ConfigError(f"unknown source(s) {', '.join(unknown)} (sources: {', '.join(configs) or 'none'})")
    return [run_source(project, name, configs[name], full_refresh=full_refresh, dry_run=dry_run,
                       progress=progress) for name in names]
