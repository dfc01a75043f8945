"""Read YAML keeping each key's line number, and expand ${ENV} references."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from tally.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Lines = dict[tuple, int]

# Aliases let a few lines stand for an exponential tree (the "billion laughs"); a config never needs this many.
MAX_EXPANDED_VALUES = 100_000


class _LineLoader(yaml.SafeLoader):
    """A SafeLoader that records the line of every mapping key and sequence item."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)   # YAML merge keys (`<<: *base`) become ordinary keys
    mapping = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            raise ConfigError("a key must be plain text, not a list or mapping", line=key_node.start_mark.line + 1)
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise ConfigError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        mapping[key] = loader.construct_object(value_node, deep=deep)
        loader.key_lines[id(value_node)] = key_node.start_mark.line + 1
    return mapping


# YAML 1.1 reads `on`, `yes`, `off` as booleans; in tally.yml `on:` is a join key. Keep true/false only.
_LineLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_LineLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _FastLineLoader(getattr(yaml, "CSafeLoader", _LineLoader)):
    """The same loader on libyaml's parser (a 13 KB tally.yml: ~5 ms instead of ~25 ms); a file it
    refuses is read again by `_LineLoader`, whose messages are the ones users see."""


_FastLineLoader.yaml_implicit_resolvers = _LineLoader.yaml_implicit_resolvers
_FastLineLoader.yaml_constructors = _LineLoader.yaml_constructors


def _collect_lines(node: yaml.Node, loader: _LineLoader, path: tuple, lines: Lines) -> None:
    """Map each path (tuple of keys / indexes) to the line it starts on."""
    lines[path] = loader.key_lines.get(id(node), node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            _collect_lines(value_node, loader, path + (key_node.value,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_lines(item, loader, path + (index,), lines)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values the node stands for once every alias is expanded (shared nodes counted each time)."""
    known = sizes.get(id(node))
    if known == 0:
        raise ConfigError("an alias refers to the value that contains it", line=node.start_mark.line + 1)
    if known is not None:
        return known
    sizes[id(node)] = 0   # in progress: meeting it again below means a recursive alias
    children = node.value if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) else ()
    total = 1
    for child in children:
        for part in (child if isinstance(child, tuple) else (child,)):
            total += _expanded_size(part, sizes)
            if total > MAX_EXPANDED_VALUES:
                break
    sizes[id(node)] = total
    return total


def _decode(raw: bytes, path: Path) -> str:
    """The file's text; invalid UTF-8 or a NUL byte is a config error at its line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8",
                          file=str(path), line=raw.count(b"\n", 0, exc.start) + 1) from None
    bad = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]", text)
    if bad:
        raise ConfigError(f"control character {bad.group()!r} in the file; remove it",
                          file=str(path), line=text.count("\n", 0, bad.start()) + 1)
    return text


def read_yaml(path: Path) -> tuple[Any, Lines]:
    """Parse a YAML file; return the data and a path -> line map for error messages."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    text = _decode(raw, path)
    try:   # the C parser accepts some characters the YAML spec (and the Python reader) refuse
        loader = _FastLineLoader(text) if not yaml.reader.Reader.NON_PRINTABLE.search(text) else None
        node = loader.get_single_node() if loader else None
    except yaml.YAMLError:
        loader = None
    if loader is None:
        loader = _LineLoader(text)
    loader.key_lines = {}
    try:
        node = node if isinstance(loader, _FastLineLoader) else loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_EXPANDED_VALUES:
            raise ConfigError(f"aliases expand to more than {MAX_EXPANDED_VALUES:,} values; "
                              "write the repeated parts out or use fewer nested aliases", line=1)
        data = loader.construct_document(node) if node is not None else {}
    except ConfigError as exc:
        raise ConfigError(exc.reason, file=str(path), line=exc.line) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        opened = getattr(exc, "context_mark", None)
        if opened is not None and mark is not None and opened.line != mark.line:
            reason += f" ({exc.context} opened on line {opened.line + 1})"
            if "flow" in (exc.context or ""):
                mark = opened  # an unclosed { or [: the line that opened it is the one to fix
        raise ConfigError(f"invalid YAML: {reason}", file=str(path),
                          line=mark.line + 1 if mark else None) from None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is not None:
        _collect_lines(node, loader, (), lines)
    return data, lines


def line_of(lines: Lines, path: tuple) -> int | None:
    """The line of the deepest known prefix of path."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def expand_env(value: Any, lines: Lines, file: str, path: tuple = ()) -> Any:
    """Replace ${NAME} (or ${NAME:-default}) in every string with the environment's value."""
    if isinstance(value, dict):
        return {k: expand_env(v, lines, file, path + (k,)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, lines, file, path + (i,)) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise ConfigError(f"environment variable {name} is not set (used at {'.'.join(map(str, path))})",
                          file=file, line=line_of(lines, path))

    return _ENV_REF.sub(substitute, value)
