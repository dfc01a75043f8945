"""`tally query`: resolve the range, answer (live or from a rollup), print rows with where they came from."""

from __future__ import annotations

import json
import sys

from tally.errors import QueryError


def run_query(console, project, metrics, *, fmt: str, with_meta: bool = False, live: bool = False,
              last: str | None = None, period: str | None = None, start=None, end=None,
              timezone: str | None = None, **query) -> None:
    """Answer a query and print it as a table (with a footer), JSON (with `--meta`: rows and meta) or CSV."""
    if with_meta and fmt != "json":
        raise QueryError("--meta adds the answer's meta to JSON: use it with --format json")
    result = answer(project, metrics, live=live, last=last, period=period, start=start, end=end,
                    timezone=timezone, **query)
    if fmt == "json" and not with_meta:
        from tally.delivery import tabular

        sys.stdout.write(tabular.to_json(result.table) + "\n")
        return
    if fmt == "csv":
        from tally.delivery import tabular

        sys.stdout.write(tabular.to_csv(result.table))
        return
    from tally.delivery import provenance

    meta = provenance.describe(project, metrics_of(metrics), result, live=live)
    if fmt == "json":
        from tally.delivery import tabular

        sys.stdout.write('{"rows": ' + tabular.to_json(result.table) + ',\n"meta": '
                         + json.dumps(meta, indent=2, default=str) + "}\n")
        return
    from tally.delivery import terminal

    partial = {p["period"] for p in meta["partial"]}
    terminal.print_rows(console, result.table, project, title=terminal.title_text(result.meta),
                        notes=provenance.footer(meta), partial=partial)


def answer(project, metrics, *, live: bool = False, last: str | None = None, period: str | None = None,
           start=None, end=None, timezone: str | None = None, **query):
    """The Result of `tally query` (and of the HTTP API's /query): `--last`/`--period` resolved to a
    range, then answered live or from a fresh rollup."""
    from tally.engine.ranges import resolve

    start, end = resolve(last, period, start, end, timezone or project.config.timezone,
                         project.config.week_start_index)
    if live and "engine" in project.__dict__:   # a shared project (the API): its router serves other answers
        engine = project.engine
        return engine.run(engine.spec(metrics, start=start, end=end, timezone=timezone, **query), live=True)
    if live:
        project.use_rollups = False   # before the engine is made: no router, no rollup state read
    return project.query_result(metrics, start=start, end=end, timezone=timezone, **query)


def meta_of(project, metrics, result, live: bool = False) -> dict:
    """What `--format json --meta` prints beside the rows (see `tally.delivery.provenance`)."""
    from tally.delivery import provenance

    return provenance.describe(project, metrics_of(metrics), result, live=live)


def metrics_of(metrics) -> list[str]:
    """`revenue,orders` and repeated arguments as one list of names."""
    return [part.strip() for value in ([metrics] if isinstance(metrics, str) else metrics)
            for part in str(value).split(",") if part.strip()]
