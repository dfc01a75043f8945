"""`tally init`: write a commented starter project with sample data that answers at once."""

from __future__ import annotations

import csv
import datetime as dt
import random
from decimal import Decimal
from importlib import resources
from pathlib import Path

from tally.errors import ConfigError
from tally.project.loader import CONFIG_FILE

SAMPLE = Path("data") / "orders.csv"
SAMPLE_ROWS = 400
SAMPLE_HEADER = ["order_id", "ordered_at", "updated_at", "customer", "country", "status", "amount"]
COUNTRIES = ["US", "GB", "DE", "FR", "TR", "JP"]
STATUSES = ["paid"] * 6 + ["shipped"] * 3 + ["refunded", "cancelled"]


def target_dir(directory: Path) -> Path:
    """The project folder, refused when it already holds a tally.yml."""
    directory = Path(directory)
    if (directory / CONFIG_FILE).exists():
        raise ConfigError(f"{directory / CONFIG_FILE} already exists; not overwriting it")
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} is a file, not a folder")
    return directory


def project_name(directory: Path) -> str:
    return directory.resolve().name.replace(" ", "-") or "my-project"


def init_project(directory: Path, from_csv: Path | None = None) -> str:
    """Write the starter project (or a draft from `from_csv`); the message telling what to run next."""
    if from_csv is not None:
        from tally.commands.draft import write_draft

        return write_draft(Path(directory), Path(from_csv))
    path = write_starter(directory)
    folder = str(directory)
    return (f"Created {path} and {Path(folder) / SAMPLE} ({SAMPLE_ROWS} sample orders). Next:\n"
            f"  tally -p {folder} ingest\n  tally -p {folder} query revenue orders aov --grain month")


def write_starter(directory: Path, today: dt.date | None = None) -> Path:
    """Create `directory`/tally.yml and a sample CSV of orders; refuse to overwrite an existing project."""
    directory = target_dir(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_sample(directory / SAMPLE, today or dt.date.today())
    template = resources.files("tally.commands").joinpath("templates/tally.yml").read_text(encoding="utf-8")
    target = directory / CONFIG_FILE
    target.write_text(template.format(name=project_name(directory)), encoding="utf-8")
    return target


def write_sample(path: Path, today: dt.date, rows: int = SAMPLE_ROWS, seed: int = 14) -> None:
    """Seeded orders over the twelve whole months before `today`'s month (the same rows for a given month)."""
    rng = random.Random(seed)
    end = dt.datetime(today.year, today.month, 1)
    start = dt.datetime(end.year - 1, end.month, 1)
    span = int((end - start).total_seconds())
    stamps = sorted(start + dt.timedelta(seconds=rng.randrange(span)) for _ in range(rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(SAMPLE_HEADER)
        for number, ordered in enumerate(stamps, 1):
            # an order changes (ships, is refunded) a little after it is placed, never after `end`
            updated = min(ordered + dt.timedelta(minutes=rng.randrange(0, 4 * 24 * 60)), end - dt.timedelta(seconds=1))
            amount = Decimal(rng.randrange(500, 25_000)) / 100
            writer.writerow([1000 + number, ordered.isoformat(sep=" "), updated.isoformat(sep=" "),
                             f"c{rng.randrange(1, 120):03d}", rng.choice(COUNTRIES), rng.choice(STATUSES),
                             f"{amount:.2f}"])
