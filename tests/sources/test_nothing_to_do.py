"""`tally ingest` without sources and `tally seed` without seeds (or with an unknown seed) are usage errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from tally.cli import app


def _project(root: Path, body: str = "") -> Path:
    (root / "tally.yml").write_text(f"name: empty\nwarehouse: duckdb:///warehouse.duckdb\n{body}", encoding="utf-8")
    return root


def _one_error(result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_ingest_without_sources_says_so(tmp_path):
    root = _project(tmp_path)
    line = _one_error(CliRunner().invoke(app, ["--project", str(root), "ingest"]))
    assert "no sources configured" in line and "tally.yml" in line
    assert not (root / "warehouse.duckdb").exists()


def test_seed_without_seeds_says_so(tmp_path):
    line = _one_error(CliRunner().invoke(app, ["--project", str(_project(tmp_path)), "seed"]))
    assert "no seeds configured" in line


def test_seed_with_an_unknown_name_says_so(tmp_path):
    (tmp_path / "costs.csv").write_text("sku,cost\na,1\n", encoding="utf-8")
    root = _project(tmp_path, "seeds:\n  costs:\n    path: costs.csv\n")
    line = _one_error(CliRunner().invoke(app, ["--project", str(root), "seed", "cost"]))
    assert "unknown seed(s) cost (seeds: costs)" in line
    result = CliRunner().invoke(app, ["--project", str(root), "seed", "costs"])
    assert result.exit_code == 0 and "seed costs: 1 rows loaded" in result.stdout, result.stdout
