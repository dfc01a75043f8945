"""tally.yml files no editor should produce: each is one ConfigError naming the file and line, never a traceback."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tally.errors import ConfigError
from tally.project.loader import load_config
from tally.project.yamlfile import MAX_EXPANDED_VALUES, read_yaml

GOOD = b"""name: shop
warehouse: duckdb:///warehouse.duckdb
models:
  orders:
    table: orders
    time: ordered_at
    measures:
      orders:
        count: "*"
"""


def write(directory: Path, content: bytes) -> Path:
    path = directory / "tally.yml"
    path.write_bytes(content)
    return path


def refused(path: Path, profile: str | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path.parent, profile)
    assert info.value.message.startswith(f"{path}:")
    assert "\n" not in info.value.message
    return info.value


def test_invalid_utf8_names_its_line(tmp_path):
    error = refused(write(tmp_path, GOOD + b"# caf\xe9\n"))
    assert error.line == GOOD.count(b"\n") + 1
    assert "not valid UTF-8 (byte 0xe9)" in error.message


@pytest.mark.parametrize("byte", [b"\x00", b"\x07", b"\x1b"])
def test_control_characters_are_refused(tmp_path, byte):
    error = refused(write(tmp_path, GOOD.replace(b"name: shop", b"name: sh" + byte + b"op")))
    assert error.line == 1 and "control character" in error.message


def test_complex_key_is_refused(tmp_path):
    error = refused(write(tmp_path, GOOD + b"? [a, b]\n: 1\n"))
    assert error.line == GOOD.count(b"\n") + 1
    assert "a key must be plain text" in error.message


def test_merge_keys_are_supported(tmp_path):
    text = GOOD.replace(b"models:\n", b"""defaults: &counted
  count: "*"
models:
""").replace(b"""      orders:
        count: "*"
""", b"""      orders:
        <<: *counted
        format: number
""")
    text = text.replace(b"defaults: &counted", b"x-defaults: &counted")
    loaded = load_config(write(tmp_path, text).parent)   # x- keys hold anchors and are ignored
    measure = loaded.config.models["orders"].measures["orders"]
    assert measure.count == "*" and measure.format == "number"


def _alias_bomb(levels: int) -> bytes:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 9) + "]")
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("levels", [7, 8, 12])
def test_alias_bomb_is_refused_fast(tmp_path, levels):
    started = time.monotonic()
    error = refused(write(tmp_path, GOOD + _alias_bomb(levels)))
    assert time.monotonic() - started < 2
    assert f"aliases expand to more than {MAX_EXPANDED_VALUES:,} values" in error.message


def test_a_few_aliases_are_fine(tmp_path):
    data, _ = read_yaml(write(tmp_path, GOOD + _alias_bomb(2)))
    assert len(data["a2"]) == 9 and len(data["a2"][0]) == 9


def test_recursive_alias_is_refused(tmp_path):
    error = refused(write(tmp_path, GOOD + b"loop: &loop [1, *loop]\n"))
    assert "refers to the value that contains it" in error.message


def test_profiles_must_be_a_mapping(tmp_path):
    path = write(tmp_path, GOOD + b"profiles: [dev, prod]\n")
    for profile in (None, "dev"):
        error = refused(path, profile)
        assert error.line == GOOD.count(b"\n") + 1
        assert "profiles: must be a mapping" in error.message


def test_a_profile_must_be_a_mapping(tmp_path):
    path = write(tmp_path, GOOD + b"profiles:\n  dev: [1, 2]\n")
    error = refused(path, "dev")
    assert error.line == GOOD.count(b"\n") + 2
    assert "profiles.dev: must be a mapping" in error.message


def test_numeric_profile_name_is_refused(tmp_path):
    error = refused(write(tmp_path, GOOD + b"profiles:\n  2024:\n    timezone: UTC\n"))
    assert error.line == GOOD.count(b"\n") + 2
    assert "the profile name 2024 must be text" in error.message
