"""Issue 14: `tally --version` and shell completion (commands, options, metric names)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import tally
from tests.cli_helpers import tally_process

ROOT = Path(__file__).resolve().parents[2]


def test_version():
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for args in (["--version"], ["-p", "nowhere", "--version"]):
        done = tally_process(*args)
        assert (done.returncode, done.stdout, done.stderr) == (0, f"tally {version}\n", "")
    assert tally.__version__ == version


def test_show_completion_prints_a_script():
    done = tally_process("--show-completion", "bash")
    assert done.returncode == 0 and "_TALLY_COMPLETE" in done.stdout and "complete " in done.stdout


def complete(words: str, cwd=None) -> list[str]:
    done = tally_process(env={"_TALLY_COMPLETE": "complete_bash", "COMP_WORDS": words,
                    "COMP_CWORD": str(len(words.split()) - 1)}, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_completion_of_commands_options_and_metrics(tmp_path):
    assert complete("tally que") == ["query"]
    assert "build" in complete("tally rollup b")
    (tmp_path / "tally.yml").write_text("name: x\nmodels:\n  m:\n    table: t\n    measures:\n"
                                        "      revenue: {sum: amount}\n      refunds: {sum: back}\n"
                                        "      orders: {count: '*'}\n", encoding="utf-8")
    assert complete("tally query re", cwd=tmp_path) == ["revenue", "refunds"]
    assert complete(f"tally -p {tmp_path} query o") == ["orders"]
    assert complete("tally query o", cwd=ROOT) == []   # no tally.yml here: nothing, and no error
