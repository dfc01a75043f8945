"""The layers run one way (docs/architecture.md): a module imports only its own layer or lower
ones, and never reaches another module's `_private` name. Walks every module's syntax tree."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tally"

# lowest first; a module may import its own layer and the layers before it
LAYERS = [
    {"errors", "redaction", "lazy"},
    {"project"},
    {"warehouse"},
    {"engine"},
    {"sources"},
    {"rollups"},
    {"ledgers"},
    {"jobs"},
    {"delivery"},
    {"app"},
    {"api", "web", "commands", "cli", "aws", "demo", "__init__", "__main__"},
]
RANK = {part: rank for rank, layer in enumerate(LAYERS) for part in layer}

# private names of the standard library's own objects that are public API in all but name
STDLIB_PRIVATE = {"_asdict", "_replace", "_fields", "_make", "_field_defaults", "_getframe", "_exit",
                  "_current_frames", "_name_", "_value_", "_missing_", "_generate_next_value_"}


def part_of(module: str) -> str:
    """`tally.engine.plan` -> `engine`; `tally.cli` -> `cli`; `tally` -> `__init__`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(relative.parts)
        found.append((name.removesuffix(".__init__"), path))
    return found


def imported(tree: ast.Module, module: str) -> list[tuple[int, str, list[str]]]:
    """(line, module imported, names taken from it) for every `tally` import, lazy ones included."""
    out = []
    package = module if module.count(".") == 0 else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names if alias.name.split(".")[0] == "tally"]
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:   # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, target] if target else base)
            if target.split(".")[0] == "tally":
                out.append((node.lineno, target, [alias.name for alias in node.names]))
    return out


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name not in STDLIB_PRIVATE


def defined_private(tree: ast.Module) -> set[str]:
    """The `_names` a module defines itself (functions, classes, attributes it assigns)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {name for name in names if is_private(name)}


def problems() -> list[str]:
    found = []
    for module, path in modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = part_of(module)
        assert own in RANK, f"{module}: its package {own!r} is in no layer of tests/test_layers.py"
        for line, target, names in imported(tree, module):
            other = part_of(target)
            if target == "tally" and names == ["__version__"]:
                continue   # the package's version, readable from anywhere
            if RANK.get(other, -1) > RANK[own]:
                found.append(f"{path.relative_to(SRC.parent)}:{line}: {own} imports {target} (a higher layer)")
            if target != module:
                found += [f"{path.relative_to(SRC.parent)}:{line}: imports the private {name} of {target}"
                          for name in names if is_private(name)]
        mine = defined_private(tree)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in mine
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno}: reaches the private "
                             f"{ast.unparse(node)} of another module")
    return found


def test_every_package_has_a_layer():
    assert {part_of(module) for module, _ in modules()} <= set(RANK)


def test_layers_run_one_way_and_private_names_stay_home():
    assert problems() == []


@pytest.mark.parametrize("source, expected", [
    ("from tally.cli import main\n", "engine imports tally.cli (a higher layer)"),
    ("from tally.engine.plan import _bucket\n", "imports the private _bucket"),
    ("def f(w):\n    return w._cursor()\n", "reaches the private w._cursor"),
])
def test_the_walk_finds_what_it_should(tmp_path, monkeypatch, source, expected):
    """The check itself can fail: a planted violation in a copy of the tree is reported."""
    import shutil

    copy = tmp_path / "tally"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "engine" / "planted.py").write_text(source, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "SRC", copy)
    assert any(expected in problem and "planted.py" in problem for problem in problems())


MODULE_LINES = 450     # "about 400": a module past this is doing two jobs
FUNCTION_LINES = 60    # past this, the function says why in its docstring or first comment ("Long: ...")


def sizes() -> list[str]:
    found = []
    for _, path in modules():
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(SRC.parent)
        if text.count("\n") > MODULE_LINES:
            found.append(f"{where}: {text.count(chr(10))} lines")
        lines = text.splitlines()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                head = "\n".join(lines[node.lineno - 1: node.lineno + 14]).lower()
                if length > FUNCTION_LINES and "long:" not in head:
                    found.append(f"{where}:{node.lineno}: {node.name} is {length} lines with no reason given")
    return found


def test_modules_and_functions_stay_small():
    assert sizes() == []
