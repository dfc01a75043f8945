"""Load tally.yml: apply a profile, expand ${ENV}, validate shape and cross-references."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from tally.errors import ConfigError
from tally.project.schema import SCHEMA_CLASSES, ProjectConfig
from tally.project.yamlfile import Lines, expand_env, line_of, read_yaml

CONFIG_FILE = "tally.yml"
KNOWN_KEYS = sorted({f.alias or name for cls in SCHEMA_CLASSES for name, f in cls.model_fields.items()})

# words users bring from other tools, and the key Tally names it with
SYNONYMS = {"dimensions": "by", "group_by": "by", "groupby": "by", "grain": "grains", "metric": "metrics",
            "filter": "where", "tz": "timezone", "type": "kind"}


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config with where it came from, for errors raised later."""

    config: ProjectConfig
    root: Path
    file: str
    profile: str | None
    lines: Lines = field(repr=False)
    # every source's typed SourceConfig, validated once with its connector's options by
    # tally.app.read_project (connectors live above project/, so this layer cannot do it)
    sources: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def error(self, message: str, *path: Any) -> ConfigError:
        """A ConfigError pointing at the line of `path` in tally.yml."""
        return ConfigError(message, file=self.file, line=line_of(self.lines, path))


def find_config(path: Path) -> Path:
    """The tally.yml of a project folder (or the file itself)."""
    path = Path(path)
    candidate = path / CONFIG_FILE if path.is_dir() else path
    if not candidate.exists():
        raise ConfigError(f"no {CONFIG_FILE} here; run `tally init` or pass --project PATH", file=str(candidate))
    return candidate


def _check_profiles(data: dict, file: str, lines: Lines) -> None:
    """`profiles:` maps text names to mappings of top-level keys; refuse anything else at its line."""
    profiles = data.get("profiles")
    if profiles is None:
        return
    if not isinstance(profiles, dict):
        raise ConfigError("profiles: must be a mapping of profile name -> keys to override", file=file,
                          line=line_of(lines, ("profiles",)))
    for name, body in profiles.items():
        if not isinstance(name, str):
            raise ConfigError(f"profiles: the profile name {name!r} must be text (quote it: \"{name}\")",
                              file=file, line=line_of(lines, ("profiles", str(name))))
        if body is not None and not isinstance(body, dict):
            raise ConfigError(f"profiles.{name}: must be a mapping of top-level keys to override, "
                              f"not {type(body).__name__}", file=file, line=line_of(lines, ("profiles", str(name))))


def _apply_profile(data: dict, profile: str | None, file: str, lines: Lines) -> dict:
    _check_profiles(data, file, lines)
    if profile is None:
        return data
    profiles = data.get("profiles") or {}
    if profile not in profiles:
        known = ", ".join(profiles) or "none defined"
        raise ConfigError(f"unknown profile {profile!r} (profiles: {known})", file=file,
                          line=line_of(lines, ("profiles",)))
    return _deep_merge(data, profiles[profile] or {})


def _deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _keys_at(loc: tuple) -> list[str]:
    """The keys allowed where an unknown key was found (every known key when the place is not a model)."""
    current, parts = ProjectConfig, list(loc)
    while parts:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if origin in (dict, list):   # a user's name or a list index: the part names the value's place
            current = typing.get_args(current)[-1] if typing.get_args(current) else Any
            parts.pop(0)
        elif _is_model(current) and str(parts[0]) in current.model_fields:
            current = current.model_fields[str(parts.pop(0))].annotation
        else:
            return KNOWN_KEYS
    current = _unwrap(current)
    return sorted(f.alias or n for n, f in current.model_fields.items()) if _is_model(current) else KNOWN_KEYS


def _unwrap(kind: Any) -> Any:
    """X from Optional[X], Annotated[X, ...] or a union holding one model."""
    while typing.get_origin(kind) in (typing.Union, types.UnionType, typing.Annotated):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if typing.get_origin(kind) is typing.Annotated:
            kind = args[0]
            continue
        models = [a for a in args if _is_model(a)]
        kind = models[0] if len(models) == 1 else args[0]
    return kind


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _validation_error(exc: ValidationError, file: str, lines: Lines) -> ConfigError:
    first = exc.errors(include_url=False)[0]
    loc = tuple(part for part in first["loc"] if not (isinstance(part, str) and "[" in part))
    where = ".".join(str(part) for part in loc)
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        allowed = _keys_at(loc[:-1])
        hint = [SYNONYMS[key]] if SYNONYMS.get(key) in allowed else \
            [h for h in difflib.get_close_matches(key, allowed, n=2) if h != key][:1]
        message = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        where = ".".join(str(part) for part in loc[:-1])
    else:
        message = first["msg"].removeprefix("Value error, ")
    if where:
        message = f"{where}: {message}"
    count = exc.error_count()
    if count > 1:
        message += f" (and {count - 1} more problem{'s' if count > 2 else ''})"
    return ConfigError(message, file=file, line=line_of(lines, loc))


def load_config(path: Path | str = ".", profile: str | None = None) -> LoadedConfig:
    """Read and validate a project's tally.yml; raise ConfigError naming file and line.

    Sources' connector options are validated one layer up (tally.app.read_project)."""
    file_path = find_config(Path(path))
    file = str(file_path)
    data, lines = read_yaml(file_path)
    if not isinstance(data, dict):
        raise ConfigError("tally.yml must be a mapping of keys (name, models, metrics, ...)", file=file, line=1)
    data = {key: value for key, value in data.items() if not (isinstance(key, str) and key.startswith("x-"))}
    data = _apply_profile(data, profile, file, lines)
    if profile is not None:
        # keys a profile sets are reported at the profile's lines
        prefix = ("profiles", profile)
        lines = {**lines, **{path[2:]: line for path, line in lines.items()
                             if path[:2] == prefix and len(path) > 2}}
    # profiles not in use may name variables that are not set here; expand only what is active
    data = {**expand_env({k: v for k, v in data.items() if k != "profiles"}, lines, file),
            "profiles": data.get("profiles") or {}}
    try:
        config = ProjectConfig.model_validate(data)
    except ValidationError as exc:
        raise _validation_error(exc, file, lines) from None
    loaded = LoadedConfig(config=config, root=file_path.parent.resolve(), file=file, profile=profile, lines=lines)
    from tally.project.names import check_names
    from tally.project.references import check_references

    check_references(loaded)
    check_names(loaded)
    from tally.project.exprtypes import check_config

    check_config(loaded)
    from tally.project.ledgers import check_ledgers

    check_ledgers(loaded)
    return loaded
