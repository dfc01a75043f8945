"""`tally demo --dir D` keeps its hands off a project it did not write, and still re-runs in its own folder."""

from __future__ import annotations


from tally.demo import MARKER
from tests.cli_helpers import invoke


def demo(directory, *extra):
    return invoke("demo", "--dir", directory, "--rows", "300", "--no-serve", *extra)


def test_demo_refuses_a_foreign_project(tmp_path):
    (tmp_path / "tally.yml").write_text("name: mine\n", encoding="utf-8")
    (tmp_path / "warehouse.duckdb").write_bytes(b"not touched")
    result = demo(tmp_path)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--force" in lines[0], result.stderr
    assert "did not create" in lines[0]
    assert (tmp_path / "tally.yml").read_text(encoding="utf-8") == "name: mine\n"
    assert (tmp_path / "warehouse.duckdb").read_bytes() == b"not touched"
    assert not (tmp_path / MARKER).exists()


def test_demo_reruns_in_its_own_folder(tmp_path):
    first = demo(tmp_path)
    assert first.exit_code == 0, (first.stdout, first.stderr)
    assert (tmp_path / MARKER).exists()
    again = demo(tmp_path)
    assert again.exit_code == 0, (again.stdout, again.stderr)


def test_demo_force_replaces_a_foreign_project(tmp_path):
    (tmp_path / "tally.yml").write_text("name: mine\n", encoding="utf-8")
    result = demo(tmp_path, "--force")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert "name: ecommerce" in (tmp_path / "tally.yml").read_text(encoding="utf-8")
