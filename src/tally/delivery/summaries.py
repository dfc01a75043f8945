"""What `tally ingest`, `rollup build` and `verify` print: a table for people, JSON or CSV for scripts."""

from __future__ import annotations

import json
import sys

# rich is imported inside the functions: the CLI imports this module at start

NUMBERS = frozenset({"read", "loaded", "rejected", "skipped", "periods", "rows", "seconds"})
MISMATCHES_SHOWN = 50   # per rollup in the table; JSON and CSV carry them all


def write_json(value) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def write_csv(records: list[dict], names: list[str] | None = None) -> None:
    from tally.delivery.tabular import records_to_csv

    sys.stdout.write(records_to_csv(records, names))


def new_table(title: str | None, headers: tuple[str, ...], **options):
    from rich.table import Table

    view = Table(title=title, title_justify="left", **options) if title else Table(**options)
    for header in headers:
        view.add_column(header, justify="right" if header in NUMBERS else "left")
    return view


def show_ingest(out, err, results: list, fmt: str, dry_run: bool = False) -> None:
    """One line per source run; in the table format errors, inferred types and warnings on stderr."""
    if fmt == "json":
        return write_json([r.as_dict() for r in results])
    if fmt == "csv":
        return write_csv([r.as_dict() for r in results])
    view = new_table("Dry run: nothing written" if dry_run else "Ingest",
                     ("source", "status", "read", "loaded", "rejected", "skipped", "watermark", "seconds"))
    for r in results:
        view.add_row(r.source, "[green]ok[/]" if r.status == "ok" else "[red]failed[/]", f"{r.rows_read:,}",
                     f"{r.rows_loaded:,}", f"{r.rows_rejected:,}", f"{r.rows_skipped:,}",
                     r.watermark_after or "—", f"{r.seconds:.2f}")
    out.print(view)
    for r in results:
        show_ingest_notes(err, r)


def show_ingest_notes(err, r) -> None:
    """A source run's error, inferred types, undeclared columns and warnings, one line each."""
    from rich.markup import escape

    if r.error:
        err.print(f"[bold red]error:[/] source {r.source}: {escape(r.error)}", highlight=False)
    if r.inferred_types:
        typed = ", ".join(f"{column} {kind}" for column, kind in r.inferred_types.items())
        err.print(f"[yellow]note:[/] source {r.source}: inferred {escape(typed)}", highlight=False)
    if r.new_columns:
        err.print(f"[yellow]note:[/] source {r.source} has undeclared column(s): {', '.join(r.new_columns)}",
                  highlight=False)
    for warning in r.warnings:
        err.print(f"[yellow]warning:[/] source {r.source}: {escape(warning)}", highlight=False)


def show_rollup_build(out, results: list, fmt: str) -> None:
    """One line per rollup built: how (full or delta), periods and rows written, seconds."""
    if fmt == "json":
        return write_json([r.as_dict() for r in results])
    if fmt == "csv":
        return write_csv([r.as_dict() for r in results])
    view = new_table("Rollups", ("rollup", "table", "mode", "periods", "rows", "seconds"))
    for r in results:
        view.add_row(r.rollup, r.table, r.mode, f"{r.periods:,}", f"{r.rows:,}", f"{r.seconds:.2f}")
    out.print(view)


def show_verify(out, report: dict, fmt: str, repaired: bool = False) -> None:
    """Per rollup: ok, or its mismatches (stored against live values)."""
    from rich.markup import escape

    if fmt == "json":
        return write_json({name: [m.as_dict() for m in ms] for name, ms in report.items()})
    if fmt == "csv":   # one line per mismatch: only the header when every rollup matches
        from dataclasses import fields

        from tally.rollups.verify import Mismatch

        return write_csv([m.as_dict() for ms in report.values() for m in ms], [f.name for f in fields(Mismatch)])
    for name, ms in report.items():
        status = "[green]ok[/]" if not ms else f"[red]{len(ms)} mismatch(es)[/]"
        out.print(f"{name}: {status}" + (" (repaired)" if ms and repaired else ""))
        if not ms:
            continue
        view = new_table(None, ("grain", "period", "key", "metric", "stored", "live"), show_header=True)
        for m in ms[:MISMATCHES_SHOWN]:
            view.add_row(m.grain, m.period_start, escape(str(m.key)), m.metric, escape(str(m.stored)),
                         escape(str(m.live)))
        out.print(view)
        if len(ms) > MISMATCHES_SHOWN:
            out.print(f"... and {len(ms) - MISMATCHES_SHOWN} more")
