"""A JSON record nested too deep is one reject (`too_deep`, with file and line), not a failed source."""

from __future__ import annotations

import json
import uuid

import pytest
import yaml

from tally import Project
from tally.sources import ingest
from tally.sources.connectors.json_files import MAX_DEPTH, deeper_than

DEEP = "[" * 100_000 + "]" * 100_000            # Python's json overflows its stack on this
MEDIUM = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)   # readable, but past the limit


def _load(tmp_path, url: str, kind: str, name: str, text: str, **options):
    """Ingest one JSON source into the warehouse: (result, loaded rows, (rule, row_number) of its rejects)."""
    source = f"s_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).write_text(text, encoding="utf-8")
    config = {"name": "deep", "warehouse": url,
              "sources": {source: {"kind": kind, "path": name, "table": source, **options,
                                   "columns": {"id": "int64", "v": "text"}}}}
    (tmp_path / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    project = Project.load(tmp_path)
    try:
        result = ingest(project)[0]
        rows = sorted(r["id"] for r in project.warehouse.backend.table(source).to_pyarrow().to_pylist())
        rejects = sorted((r["rule"], r["row_number"]) for r in project.warehouse.backend.table("_tally_rejects")
                         .to_pyarrow().to_pylist() if r["source"] == source)
        return result, rows, rejects
    finally:
        project.close()


def test_ndjson_deep_lines_are_rejected_and_the_rest_loads(tmp_path, session_warehouse_url):
    lines = ['{"id": 1, "v": "a"}', '{"id": 2, "v": ' + DEEP + '}', '{"id": 3, "v": "[[[["}',
             DEEP, '{"id": 5, "v": ' + MEDIUM + '}', '{"id": 6, "v": ' + "[" * 5000 + '}']
    result, rows, rejects = _load(tmp_path, session_warehouse_url, "ndjson", "e.ndjson", "\n".join(lines) + "\n")
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 2, 4), result.error
    assert rows == [1, 3]
    rule = f"too_deep: JSON nested deeper than {MAX_DEPTH} levels (e.ndjson:{{}})"
    assert rejects == sorted((rule.format(n), n) for n in (2, 4, 5, 6))


@pytest.mark.parametrize("records", [None, "data.items"])
def test_json_document_deep_records_are_rejected_and_the_rest_loads(tmp_path, session_warehouse_url, records):
    items = ['{"id": 1, "v": "x"}', '{"id": 2, "v": ' + DEEP + '}', '{"id": 3, "v": "]]}"}',
             '{"id": 4, "v": ' + MEDIUM + '}']
    body = "[\n" + ",\n".join(items) + "\n]"
    text = '{"meta": {"n": 4}, "data": {"items": ' + body + "}}" if records else body
    options = {"records": records} if records else {}
    result, rows, rejects = _load(tmp_path, session_warehouse_url, "json", "doc.json", text, **options)
    assert (result.status, result.rows_loaded, result.rows_rejected) == ("ok", 2, 2), result.error
    assert rows == [1, 3]
    rule = f"too_deep: JSON nested deeper than {MAX_DEPTH} levels (doc.json:{{}})"
    assert rejects == [(rule.format(3), 3), (rule.format(5), 5)]


def test_depth_is_measured_outside_strings_only():
    assert not deeper_than(json.dumps({"v": "[" * 500}), MAX_DEPTH)
    assert not deeper_than("[" * MAX_DEPTH + "]" * MAX_DEPTH, MAX_DEPTH)
    assert deeper_than("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), MAX_DEPTH)
    assert deeper_than("[" * 5000, MAX_DEPTH)   # unclosed: the parser would still descend into each
