"""`tally init`: write a commented starter project."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from tally.errors import ConfigError
from tally.project.loader import CONFIG_FILE


def write_starter(directory: Path) -> Path:
    """Create `directory`/tally.yml from the template; refuse to overwrite an existing one."""
    directory = Path(directory)
    target = directory / CONFIG_FILE
    if target.exists():
        raise ConfigError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    template = resources.files("tally.project").joinpath("templates/tally.yml").read_text(encoding="utf-8")
    name = directory.resolve().name.replace(" ", "-") or "my-project"
    target.write_text(template.format(name=name), encoding="utf-8")
    return target
