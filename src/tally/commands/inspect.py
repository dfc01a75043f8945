"""Looking at data without opening the database: tables, describe, rejects, preview (read-only)."""

from __future__ import annotations

import difflib
import json

from tally.errors import ConfigError, NotFoundError, SourceError

INTERNAL = "_tally_"


def unknown(kind: str, name: str, choices, listing: str, not_found: bool = False) -> ConfigError | NotFoundError:
    """'unknown table 'x' (did you mean 'y'?); `tally tables` lists them' as a ConfigError (exit 2;
    `not_found`: a NotFoundError, 404 over HTTP)."""
    hint = difflib.get_close_matches(name, list(choices), n=1)
    suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
    return (NotFoundError if not_found else ConfigError)(f"unknown {kind} {name!r}{suggestion}; {listing}")


def no_warehouse_yet(project) -> bool:
    """An embedded DuckDB file that does not exist yet: opening it would create it, so it is not opened."""
    from pathlib import Path

    from tally.warehouse.connect import dialect_of, duckdb_path

    url = project.warehouse_url
    if "warehouse" in project.__dict__ or dialect_of(url).name != "duckdb":
        return False
    path = duckdb_path(url, project.root)
    return path != ":memory:" and not Path(path).exists()


def _list_tables(warehouse) -> list[str]:
    names = warehouse.list_tables()
    return sorted(n for n in names if not n.startswith("__tally_") and not n.startswith("tally_stage_"))


def _count(warehouse, name: str) -> int:
    table = warehouse.table(name)
    return int(warehouse.run(warehouse.compile(table.count().name("rows").as_table())).column(0)[0].as_py())


def roles(config, sources: dict) -> dict[str, list[str]]:
    """Table -> what the project uses it for: 'source orders', 'model orders', 'rollup daily', 'seed costs'."""
    found: dict[str, list[str]] = {}
    for name, source in sources.items():
        found.setdefault(source.table, []).append(f"source {name}")
    for name, seed in config.seeds.items():
        found.setdefault(seed.table or name, []).append(f"seed {name}")
    for name, model in config.models.items():
        found.setdefault(model.table, []).append(f"model {name}")
    for name, rollup in config.rollups.items():
        found.setdefault(rollup.table or name, []).append(f"rollup {name}")
    for name, ledger in config.ledgers.items():
        found.setdefault(ledger.table_name(name), []).append(f"ledger {name}")
    return found


def tables(project, sources: dict) -> list[dict]:
    """Every table in the warehouse with its row count and role; tables the config names but lacks too."""
    used = roles(project.config, sources)
    warehouse = None if no_warehouse_yet(project) else project.warehouse
    present = _list_tables(warehouse) if warehouse else []
    rows = []
    for name in present:
        kind = "internal" if name.startswith(INTERNAL) else ", ".join(used.get(name, [])) or "other"
        if name.startswith("_tally_keys_"):
            kind = "internal (rollup keys)"
        rows.append({"table": name, "rows": _count(warehouse, name), "used_by": kind})
    for name, uses in used.items():
        if name not in present:
            rows.append({"table": name, "rows": None, "used_by": ", ".join(uses) + " (not in the warehouse yet)"})
    return rows


def column_types(warehouse, name: str) -> list[dict]:
    """Columns of a stored table with their types as tally.yml writes them."""
    from tally.sources.infer import stored_kind, type_name

    warehouse.forget(name)
    schema = warehouse.table(name).schema()
    columns = []
    for column, dtype in schema.items():
        kind = stored_kind(dtype)
        columns.append({"column": column, "type": type_name(kind) if kind else str(dtype),
                        "nullable": bool(dtype.nullable)})
    return columns


def describe(project, name: str, sources: dict) -> dict:
    """A model (its table, time column, measures, dimensions, joins, formulas using it) or a table."""
    config = project.config
    if name in config.models:
        return _describe_model(project, name, sources)
    warehouse = None if no_warehouse_yet(project) else project.warehouse
    present = _list_tables(warehouse) if warehouse else []
    if name not in present:
        raise unknown("table or model", name, [*config.models, *present],
                      "`tally tables` lists the tables, `tally metrics` the models' metrics")
    used = roles(config, sources).get(name, [])
    return {"table": name, "rows": _count(warehouse, name),
            "used_by": ", ".join(used) or ("internal" if name.startswith(INTERNAL) else "other"),
            "columns": column_types(warehouse, name)}


def _describe_model(project, name: str, sources: dict) -> dict:
    config = project.config
    model = config.models[name]
    catalog = project.catalog
    measures = [{"measure": m, "kind": measure.aggregation, "expression": measure.value, "where": measure.where,
                 "format": measure.format} for m, measure in model.measures.items()]
    dimensions = [{"dimension": d, "expression": dim.expr} for d, dim in model.dimensions.items()]
    joins = []
    for j, join in model.joins.items():
        how = (", ".join(f"{a} = {j}.{b}" for a, b in join.keys.items()) if join.on is not None
               else f"{join.range} in [{j}.{join.from_}, {j}.{join.to})")
        joins.append({"join": j, "model": join.model, "on": how})
    formulas = [{"metric": metric, "formula": catalog.derived[metric].formula}
                for metric in catalog.derived if any(ref.model == name for ref in catalog.base_measures([metric]))]
    warehouse = None if no_warehouse_yet(project) else project.warehouse
    stored = warehouse is not None and warehouse.has_table(model.table)
    return {"model": name, "table": model.table, "time": model.time, "updated": model.updated,
            "primary_key": list(model.primary_key), "measures": measures, "dimensions": dimensions,
            "joins": joins, "formulas": formulas,
            "rows": _count(warehouse, model.table) if stored else None,
            "columns": column_types(warehouse, model.table) if stored else []}


def rejects(project, source: str | None, limit: int, sources: dict, offset: int = 0) -> list[dict]:
    """Rejected rows, newest load first (within a load, in file order): raw row, rule, file, line;
    `offset` rows skipped (a page of them)."""
    import ibis

    if limit < 1 or offset < 0:
        raise ConfigError(f"--limit must be positive, not {limit}" if limit < 1 else f"offset must not be negative, not {offset}")
    if source is not None and source not in sources:
        raise unknown("source", source, sources, f"sources: {', '.join(sources) or 'none'}", not_found=True)
    if no_warehouse_yet(project) or not project.warehouse.has_table("_tally_rejects"):
        return []
    warehouse = project.warehouse
    table = warehouse.table("_tally_rejects")
    if source is not None:
        table = table.filter(table.source == source)
    # a load's rejects share its latest time: newest load first, each load's rows in line order
    loaded = table.mutate(load_time=table.rejected_at.max().over(ibis.window(group_by=table.load_id)))
    expr = loaded.order_by([ibis.desc("load_time"), "load_id", "source", "row_number"]).limit(limit, offset=offset)
    expr = expr.drop("load_time")
    rows = warehouse.run(warehouse.compile(expr)).to_pylist()
    return [{"source": r["source"], "file": r.get("file") or _file_of(sources.get(r["source"])),
             "line": r["row_number"],
             "rule": r["rule"], "raw": r["raw"], "rejected_at": _utc(r["rejected_at"]), "load_id": r["load_id"]}
            for r in rows]


def source_status(project, sources: dict) -> list[dict]:
    """Per source: kind, table, stored rows, its last load (status, times, rows read/loaded/rejected,
    watermark, error) and its rejects kept."""
    import ibis

    from tally.redaction import redact_text

    warehouse = None if no_warehouse_yet(project) else project.warehouse
    present = set(_list_tables(warehouse)) if warehouse else set()
    rejected: dict = {}
    if "_tally_rejects" in present:
        table = warehouse.table("_tally_rejects")
        counted = table.group_by("source").aggregate(n=table.count())
        rejected = {r["source"]: int(r["n"]) for r in warehouse.run(warehouse.compile(counted)).to_pylist()}
    found = []
    for name, config in sources.items():
        last = None
        if "_tally_loads" in present:
            loads = warehouse.table("_tally_loads")
            newest = loads.filter(loads.source == name).order_by(ibis.desc("started_at")).limit(1)
            rows = warehouse.run(warehouse.compile(newest)).to_pylist()
            if rows:
                r = rows[0]
                last = {"status": r["status"], "started_at": _utc(r["started_at"]), "ended_at": _utc(r["ended_at"]),
                        "rows_read": r["rows_read"], "rows_loaded": r["rows_loaded"],
                        "rows_rejected": r["rows_rejected"], "watermark": r["watermark_after"],
                        "error": redact_text(r["error"]) if r["error"] else None}
        found.append({"source": name, "kind": config.kind, "table": config.table,
                      "rows": _count(warehouse, config.table) if config.table in present else None,
                      "last_load": last, "rejects": rejected.get(name, 0)})
    return found


def _utc(stamp):
    """An ISO UTC timestamp (MySQL returns its naive UTC DATETIME without a zone)."""
    import datetime as dt

    if not isinstance(stamp, dt.datetime):
        return stamp
    stamp = stamp.replace(tzinfo=dt.timezone.utc) if stamp.tzinfo is None else stamp.astimezone(dt.timezone.utc)
    return stamp.isoformat(timespec="seconds")


def _file_of(config) -> str | None:
    """The source's `path`: for rejects stored before Tally recorded each reject's own file."""
    if config is None:
        return None
    return config.options.get("path") or config.options.get("url")


def preview(project, name: str, limit: int, sources: dict, full_refresh: bool = False) -> dict:
    """Read a source as `tally ingest` would, write nothing: types, sample rows, what would be rejected."""
    from tally.sources.rejects import source_files
    from tally.sources.run import run_source

    if limit < 1:
        raise ConfigError(f"--rows must be positive, not {limit}")
    if name not in sources:
        raise unknown("source", name, sources, f"sources: {', '.join(sources) or 'none'}")
    config = sources[name]
    seen: dict = {}

    def peek(con, checked, plan, malformed) -> None:
        from tally.warehouse.sqltext import quote_ident

        cols = ", ".join(quote_ident(c) for c in plan.columns)
        seen["types"] = {c: kind for c, kind in plan.kinds}
        seen["rows"] = con.execute(f"SELECT {cols} FROM {quote_ident(checked)} "
                                   f"WHERE _tally_rule IS NULL AND NOT _tally_skip "
                                   f"ORDER BY _tally_file NULLS FIRST, rowid LIMIT {int(limit)}").to_arrow_table()
        bad = con.execute(f"SELECT _tally_file, COALESCE(_tally_row, rowid + 1), _tally_rule, _tally_raw "
                          f"FROM {quote_ident(checked)} WHERE _tally_rule IS NOT NULL AND NOT _tally_skip "
                          f"ORDER BY 1 NULLS FIRST, 2 LIMIT {int(limit)}").fetchall()
        files = source_files(project.root, config)
        found = [{"file": _pick(files, f), "line": line, "rule": rule, "raw": raw} for f, line, rule, raw in bad]
        only = files[0] if len(files) == 1 else None   # a malformed line's file is known when there is one
        found += [{"file": only, "line": m["row_number"], "rule": m["rule"], "raw": m["raw"]} for m in malformed]
        seen["rejects"] = sorted(found, key=lambda r: (r["file"] or "", r["line"] or 0))[:limit]

    if no_warehouse_yet(project):   # nothing stored to compare with: read beside an in-memory DuckDB
        from tally.app import Project

        scratch = Project(project.loaded, "duckdb://")
        try:
            result = run_source(scratch, name, config, dry_run=True, peek=peek, full_refresh=full_refresh)
        finally:
            scratch.close()
    else:
        result = run_source(project, name, config, dry_run=True, peek=peek, full_refresh=full_refresh)
    if result.status != "ok":
        raise SourceError(f"source {name}: {(result.error or 'failed').strip().splitlines()[0]}")
    from tally.sources.infer import type_name

    return {"source": name, "kind": config.kind, "table": config.table,
            "types_from": "declared" if config.columns else "inferred",
            "types": {c: type_name(k) for c, k in seen.get("types", {}).items()},
            "read": result.rows_read, "would_load": result.rows_loaded, "rejected": result.rows_rejected,
            "skipped": result.rows_skipped, "rows": seen["rows"].to_pylist() if "rows" in seen else [],
            "rejects": seen.get("rejects", []), "warnings": result.warnings}


def _pick(files: list[str], index) -> str | None:
    return files[index] if index is not None and 0 <= index < len(files) else None


def as_json(value) -> str:
    return json.dumps(value, indent=2, default=str)
