"""`tally ledger show | list | refresh`, and the ledgers' part of `tally verify`, registered on the CLI app."""


import sys
import textwrap
from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the `ledger` command group to `app` (called by cli.py once its helpers exist)."""
    ledger_app = typer.Typer(help="Per-entity ledgers (balance, earned, spent): look up, list, refresh.",
                             no_args_is_help=True)
    app.add_typer(ledger_app, name="ledger")
    _reading(ledger_app)
    _refreshing(ledger_app)


def _reading(ledger_app: typer.Typer) -> None:
    """`tally ledger show` and `tally ledger list`."""
    from tally.cli import Format, reports_errors

    @ledger_app.command("show")
    @reports_errors
    def show(
        ledger: str = typer.Argument(..., help="The ledger (a name under `ledgers:` in tally.yml)."),
        entity: str = typer.Argument(..., help="The entity's key (a user id)."),
        as_of: Optional[str] = typer.Option(None, "--as-of", help="As it was at this time (rows up to it, live)."),
        fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    ) -> None:
        """One entity's buckets and formulas (stored; with --as-of, computed live for a past time)."""
        from tally import cli
        from tally.ledgers import entity as lookup

        project = cli.load_project(read_only=True)
        row = lookup(project, ledger, entity, as_of=as_of)
        if fmt is Format.json:
            sys.stdout.write(_object_json(row) + "\n")
        else:
            _print([row], fmt, title=f"ledger {ledger}: {entity}" + (f" as of {as_of}" if as_of else ""))

    @ledger_app.command("list")
    @reports_errors
    def listing(
        ledger: str = typer.Argument(..., help="The ledger."),
        where: Optional[str] = typer.Option(None, "--where", help="Filter over entity, bucket and formula names."),
        order: Optional[str] = typer.Option(None, "--order", help="Sort: -balance, or balance desc."),
        limit: int = typer.Option(100, "--limit", "-n", help="At most N entities."),
        offset: int = typer.Option(0, "--offset", help="Skip the first N (paging)."),
        fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Stored entities, filtered, ordered and paged."""
        from tally import cli
        from tally.ledgers import listing as run_listing

        project = cli.load_project(read_only=True)
        rows = run_listing(project, ledger, where=where, order=order, limit=limit, offset=offset)
        _print(rows, fmt, title=f"ledger {ledger}")


def _refreshing(ledger_app: typer.Typer) -> None:
    """`tally ledger refresh`."""
    from tally.cli import SummaryFormat, reports_errors

    @ledger_app.command("refresh")
    @reports_errors
    def refresh(
        names: List[str] = typer.Argument(None, help="Ledgers to refresh (default: all)."),
        full: bool = typer.Option(False, "--full", help="Recompute every entity, not only the changed ones."),
        fmt: SummaryFormat = typer.Option(SummaryFormat.table, "--format", "-f", help="Summary format."),
    ) -> None:
        """Recompute the entities whose rows changed since the last refresh (or all, with --full)."""
        import json

        from tally import cli
        from tally.ledgers import refresh as run_refresh

        project = cli.load_project()
        results = [r.as_dict() for r in run_refresh(project, names or None, full=full)]
        if fmt is SummaryFormat.json:
            sys.stdout.write(json.dumps(results, indent=2) + "\n")
        elif fmt is SummaryFormat.csv:
            cli.print_records(results)
        else:
            from tally.commands.inspect_cli import show as show_rows

            show_rows(results, ["ledger", "table", "mode", "entities", "rows", "seconds"], title="Ledgers",
                      numbers=frozenset({"entities", "rows"}))


def with_ledgers(project, names, category, verify_rollups, repair: bool = False) -> dict:
    """`tally verify`: the rollups' report (from `verify_rollups(rollup names or None)`) and each
    ledger's under `ledger:NAME`. Names may mix rollups and ledgers; a category selects rollups only."""
    from tally.ledgers import refresh, verify

    ledgers = project.config.ledgers
    chosen = [n for n in names or () if n in ledgers]
    rollups = [n for n in names or () if n not in ledgers]
    report = {}
    if not names or rollups:
        report.update(verify_rollups(rollups or None))
    if ledgers and not category and (not names or chosen):
        found = verify(project, chosen or None)
        if repair:
            refresh(project, [n for n, ms in found.items() if ms], full=True)
        report.update({f"ledger:{n}": ms for n, ms in found.items()})
    return report


def _print(rows: list[dict], fmt, title: str) -> None:
    import pyarrow as pa

    from tally import cli
    from tally.delivery import tabular

    table = pa.Table.from_pylist(rows)
    if fmt.value == "json":
        sys.stdout.write(tabular.to_json(table) + "\n")
    elif fmt.value == "csv":
        sys.stdout.write(tabular.to_csv(table))
    elif rows:
        from tally.commands.inspect_cli import show as show_rows

        show_rows(rows, list(rows[0]), title=title)
    else:
        cli.out.print("no entities", highlight=False, markup=False)


def _object_json(row: dict) -> str:
    """One row as a JSON object, decimals with every digit (as `--format json` writes rows)."""
    import pyarrow as pa

    from tally.delivery import tabular

    text = tabular.to_json(pa.Table.from_pylist([row])).strip()
    return textwrap.dedent(text[1:-1].strip("\n"))
