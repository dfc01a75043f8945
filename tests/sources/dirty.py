"""Dirty CSV order data for the ingestion property tests, and a plain-Python reference of the rules.

A batch is a list of CSV records (the text of one row, which may span lines inside quotes), each
made of values drawn from the kinds of mess real exports have: money strings ("1,250.00",
"₦45,750.00"), bad numbers, bad or empty dates, timestamps with and without offsets, negative
quantities, unknown statuses, empty ids, repeated keys with other cursors, extra or missing
columns, an unterminated quote, blank values and unicode. `reference` applies the source's rules
to the same records without DuckDB: which rows load (with their typed values) and why the
others are rejected.

The helpers at the end write a project around such files and read back what a load left behind.

Every record carries a unique tag in `note`, so no two records are the same raw row; the cursor
of each record is a distinct instant, so "the later row" of a repeated key is always defined.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
import unicodedata
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import yaml
from hypothesis import strategies as st

UTC = dt.timezone.utc
HEADER = ["order_id", "status", "quantity", "amount", "ordered_on", "updated_at", "note"]
STATUSES = ["paid", "shipped", "refunded", "cancelled"]
SOURCE = {
    "kind": "csv", "path": "data/*.csv", "table": "orders", "primary_key": ["order_id"], "cursor": "updated_at",
    "columns": {"order_id": "int64", "status": "text", "quantity": "int32", "amount": "decimal(12,2)",
                "ordered_on": "date", "updated_at": "timestamp", "note": "text"},
    "checks": [{"not_null": ["order_id", "updated_at"]}, {"min": {"quantity": 1}},
               {"accepted_values": {"status": STATUSES}}],
}
KINDS = {"order_id": "bigint", "quantity": "integer", "amount": "decimal(12,2)", "ordered_on": "date",
         "updated_at": "timestamptz"}
RANGES = {"order_id": (-2**63, 2**63 - 1), "quantity": (-2**31, 2**31 - 1)}
RULE_NOT_NULL = "not_null: {}"
RULE_MIN = "min: quantity >= 1.0"
RULE_STATUS = f"accepted_values: status in {STATUSES!r}"
RULE_DUPLICATE = "duplicate_key (a later row was kept)"
RULE_MALFORMED = "malformed CSV line"
EPOCH = dt.datetime(2024, 3, 1, tzinfo=UTC)

UNICODE = ["ünïcødé", "注文 #7", "طلب", "🚀 rocket", "e\u0301clair", "Ørsted, A/S", 'say "hi"', "naïve\u00a0space"]
BAD_NUMBERS = ["abc", "12x", "--3", "1.2.3", "N/A", "#5", "٣", "１２", "$", "-"]
BAD_DATES = ["2024-13-05", "2024-02-30", "05/01/2024", "yesterday", "2024-00-10"]
BAD_STAMPS = ["2024-01-05 25:00:00", "not a time", "2024-13-01 10:00:00", "2024-02-30T08:00:00Z"]
# numbers that load as other numbers (a bug): kept out of the batches, used by the test that shows it
MISREAD_NUMBERS = {"quantity": ["1.5", "2.5", "0x10"]}
# commas that are not thousands separators: not a number (once read as 15.00 and 1234.00)
COMMA_NUMBERS = {"amount": ["1,5", "12,34", "1.250,50"], "quantity": ["1,0", "12,3456"]}


@dataclass
class Batch:
    """CSV records (header excluded) in file order; `instants[i]` is record i's cursor, if it has one."""

    records: list[str] = field(default_factory=list)
    instants: list[dt.datetime | None] = field(default_factory=list)

    def text(self, records: list[str] | None = None) -> str:
        lines = [",".join(HEADER)] + (self.records if records is None else records)
        return "\n".join(lines) + "\n"

    def write(self, path: Path, records: list[str] | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(records), encoding="utf-8")
        return path

    def halves(self) -> tuple[list[str], list[str]]:
        """The records split by cursor: every instant of the second half is later than the first's."""
        order = sorted(range(len(self.records)), key=lambda i: (self.instants[i] is None, self.instants[i] or EPOCH))
        middle = len(order) // 2
        cut = sorted(order[:middle]), sorted(order[middle:])
        return [self.records[i] for i in cut[0]], [self.records[i] for i in cut[1]]


def _quantity(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.75:
        return str(rng.randint(1, 40))
    return rng.choice([" 4 ", "1,000", "+3", "0", "-2", "", "   ", "99999999999", *BAD_NUMBERS,
                       *COMMA_NUMBERS["quantity"]])


def _amount(rng: random.Random) -> str:
    cents = rng.randint(-50_000, 5_000_000)
    whole, frac = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    roll = rng.random()
    if roll < 0.45:
        return f"{sign}{whole}.{frac:02d}"
    if roll < 0.75:
        symbol = rng.choice(["", "₦", "$", "€", "£ "])
        return f"{sign}{symbol}{whole:,}.{frac:02d}"
    if roll < 0.9:
        return rng.choice([str(whole), f"{whole}.{frac % 10}", f" {whole} ", ".5", ""])
    return rng.choice(["12345678901", *BAD_NUMBERS, *COMMA_NUMBERS["amount"]])


def _date(rng: random.Random) -> str:
    if rng.random() < 0.85:
        return (dt.date(2023, 12, 1) + dt.timedelta(days=rng.randint(0, 120))).isoformat()
    return rng.choice(["", "  ", "2024-02-29", *BAD_DATES])


def _stamp(rng: random.Random, instant: dt.datetime) -> str:
    """One instant written the ways exports write it (naive text is UTC, the source's data timezone)."""
    hours = rng.choice([3, -5, 1, 5.5])
    local = instant.astimezone(dt.timezone(dt.timedelta(hours=hours)))
    naive = instant.strftime("%Y-%m-%d %H:%M:%S")
    forms = [naive, f" {naive} ", instant.strftime("%Y-%m-%dT%H:%M:%SZ"), local.isoformat()]
    if hours == int(hours):
        forms.append(local.strftime("%Y-%m-%d %H:%M:%S") + f"{int(hours):+03d}")   # "+03" / "-05"
    return rng.choice(forms)


def _status(rng: random.Random) -> str:
    if rng.random() < 0.9:
        return rng.choice(STATUSES + [" paid "])
    return rng.choice(["", "PAID", "pàid", "lost", "注文", "paid!"])


def _note(rng: random.Random, tag: str) -> str:
    roll = rng.random()
    if roll < 0.5:
        return tag
    if roll < 0.9:
        return f"{rng.choice(UNICODE)} {tag}"
    return f"line one\nline two {tag}"


def generate(rng: random.Random, size: int, *, malformed: bool = True) -> Batch:
    """`size` records of mostly valid orders with every kind of mess, in a shuffled cursor order."""
    batch = Batch()
    keys: list[int] = []
    slots = rng.sample(range(size * 50 + 1), size)     # distinct minutes: no two cursors are equal
    for index in range(size):
        instant = EPOCH + dt.timedelta(minutes=slots[index])
        if keys and rng.random() < 0.2:
            key = str(rng.choice(keys))                # the same order again, at another instant
        elif rng.random() < 0.95:
            keys.append(rng.randint(1, 10**6))
            key = str(keys[-1])
        else:
            key = rng.choice(["", "  ", "x12", "٣", "9223372036854775808", f" {rng.randint(1, 99)} "])
        stamp = _stamp(rng, instant) if rng.random() < 0.9 else rng.choice(["", *BAD_STAMPS])
        fields = [key, _status(rng), _quantity(rng), _amount(rng), _date(rng), stamp, _note(rng, f"r{index}")]
        roll = rng.random() if malformed else 1.0
        if roll < 0.03:
            record = _csv(fields) + ",extra"
        elif roll < 0.06:
            record = _csv(fields[:4] + fields[5:])     # a column short (the tag stays)
        elif malformed and index == size - 1 and roll < 0.2:
            # an opening quote that never closes swallows the rest of its file: only ever the last record,
            # and with no cursor, so it stays last in the later half too
            record, stamp = _csv(fields[:-1]) + f',"unterminated r{index}', ""
        else:
            record = _csv(fields)
        batch.records.append(record)
        batch.instants.append(instant if _parse_stamp(stamp) is not None else None)
    return batch


def _csv(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)   # quotes a value holding a line break
    return buffer.getvalue()[:-1]


@st.composite
def batches(draw, max_size: int = 40, malformed: bool = True) -> Batch:
    """Hypothesis strategy: a batch drawn through a shrinkable random source."""
    rng = draw(st.randoms(use_true_random=False))
    return generate(rng, draw(st.integers(0, max_size)), malformed=malformed)


# -- the reference: the source's rules in plain Python ----------------------------------------------

@dataclass
class Outcome:
    rows: dict[int, dict]             # order_id -> the loaded row
    rejects: list[tuple[str, int]]    # (rule, record tag) per rejected record, sorted
    read: int
    skipped: int


def tag(raw: str) -> int:
    """The record tag (`rN` in the note) found in a reject's raw text or JSON."""
    return int(re.findall(r"\br([0-9]+)\b", raw)[-1])


def reference(records: list[str], watermark: dt.datetime | None = None) -> Outcome:
    """What loading these records must do: typed rows kept per key, and the first rule each other breaks.

    With a watermark, rows whose cursor is before it are skipped (not read), whatever else is wrong.
    """
    live, rejects, read, skipped = [], [], 0, 0
    for text in records:
        fields = _fields(text)
        if fields is None:
            rejects.append((RULE_MALFORMED, tag(text)))
            read += 1
            continue
        row, rule = _typed_row(dict(zip(HEADER, fields)))
        if watermark is not None and row["updated_at"] is not None and row["updated_at"] < watermark:
            skipped += 1
            continue
        read += 1
        if rule:
            rejects.append((rule, tag(text)))
        else:
            live.append(row)
    kept: dict[int, dict] = {}
    for row in live:
        best = kept.get(row["order_id"])
        if best is None or row["updated_at"] > best["updated_at"]:
            kept[row["order_id"]] = row
            best, row = row, best
        if row is not None:
            rejects.append((RULE_DUPLICATE, tag(row["note"])))
    return Outcome(rows=kept, rejects=sorted(rejects), read=read, skipped=skipped)


def _fields(text: str) -> list[str] | None:
    try:
        rows = list(csv.reader(io.StringIO(text), strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 and len(rows[0]) == len(HEADER) else None


def _typed_row(raw: dict[str, str]) -> tuple[dict, str | None]:
    clean = {name: (value.strip(" ") or None) for name, value in raw.items()}
    row = {"status": clean["status"], "note": clean["note"],
           "order_id": _int(clean["order_id"], "order_id"), "quantity": _int(clean["quantity"], "quantity"),
           "amount": _decimal(clean["amount"]), "ordered_on": _date_value(clean["ordered_on"]),
           "updated_at": _parse_stamp(clean["updated_at"])}
    for name in HEADER:        # the first column, in declared order, that does not type
        if name in KINDS and clean[name] is not None and row[name] is None:
            return row, f"type: {name} is not a valid {KINDS[name]}"
    if row["order_id"] is None:
        return row, RULE_NOT_NULL.format("order_id")
    if row["updated_at"] is None:
        return row, RULE_NOT_NULL.format("updated_at")
    if row["quantity"] is not None and row["quantity"] < 1:
        return row, RULE_MIN
    if row["status"] is not None and row["status"] not in STATUSES:
        return row, RULE_STATUS
    return row, None


def _denoise(text: str | None) -> str | None:
    """Spaces and currency symbols are noise in a number, and so are commas between groups of thousands."""
    if text is None:
        return None
    bare = "".join(ch for ch in text if not (ch in " \t" or unicodedata.category(ch) == "Sc"))
    if re.fullmatch(r"[+-]?[0-9]{1,3}(,[0-9]{3})+(\.[0-9]+)?", bare):
        return bare.replace(",", "")
    return bare


def _int(text: str | None, name: str) -> int | None:
    digits = _denoise(text)
    if digits is None or not re.fullmatch(r"[+-]?[0-9]+", digits):
        return None
    value = int(digits)
    low, high = RANGES[name]
    return value if low <= value <= high else None


def _decimal(text: str | None) -> Decimal | None:
    digits = _denoise(text)
    match = digits is not None and re.fullmatch(r"[+-]?([0-9]*)(\.([0-9]{0,2}))?", digits)
    if not match or not (match.group(1) or match.group(3)) or len(match.group(1).lstrip("0")) > 10:
        return None
    return Decimal(digits).quantize(Decimal("0.01"))


def _date_value(text: str | None) -> dt.date | None:
    if text is None or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _parse_stamp(text: str | None) -> dt.datetime | None:
    text = text.strip(" ") if text else None
    if not text or not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9:]{8}(Z|[+-][0-9]{2}(:[0-9]{2})?)?", text):
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# -- projects and what a load left behind -------------------------------------------------------------

# columns that differ between runs by nature (ids, clocks), per table; the rest must be identical
VOLATILE = {"_tally_rejects": {"load_id", "rejected_at"}, "_tally_state": {"updated_at"},
            "_tally_loads": {"load_id", "started_at", "ended_at"}}


def write_project(root: Path, sources: dict, warehouse: str = "duckdb:///warehouse.duckdb") -> Path:
    """A tally.yml with these sources (keys kept in order: the order of `columns` is the check order)."""
    root.mkdir(parents=True, exist_ok=True)
    config = {"name": "dirty", "warehouse": warehouse, "sources": sources}
    (root / "tally.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return root


def table_rows(project, name: str) -> list[dict]:
    """Every row of a warehouse table ([] when it does not exist), volatile columns left out."""
    if not project.warehouse.has_table(name):
        return []
    skip = VOLATILE.get(name, set())
    rows = project.warehouse.backend.table(name).to_pyarrow().to_pylist()
    return [{k: v for k, v in row.items() if k not in skip} for row in rows]


def sorted_rows(rows: list[dict]) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in rows)


def snapshot(project, *tables: str) -> dict[str, list[str]]:
    """The content of tables, comparable between two moments (row order and volatile columns ignored)."""
    return {name: sorted_rows(table_rows(project, name)) for name in tables}


def utc(value):
    """Warehouse values made comparable: MariaDB keeps timestamps as naive UTC."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def loaded_orders(project, table: str = "orders") -> dict[int, dict]:
    return {row["order_id"]: {k: utc(v) for k, v in row.items()} for row in table_rows(project, table)}


def stored_rejects(project, source: str = "orders", load_id: str | None = None) -> list[tuple[str, int]]:
    """(rule, record tag) of the rejects stored for a source; malformed lines by their rule's prefix."""
    found = []
    for row in project.warehouse.backend.table("_tally_rejects").to_pyarrow().to_pylist():
        if row["source"] == source and load_id in (None, row["load_id"]):
            rule = RULE_MALFORMED if row["rule"].startswith(RULE_MALFORMED) else row["rule"]
            found.append((rule, tag(row["raw"])))
    return sorted(found)
