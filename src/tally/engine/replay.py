"""Repeated query shapes without Ibis: an answer is kept on disk with every read that made it,
and given again only when each read, run again on the plain driver, still gives the same rows.

The engine's answer is a function of the config, the query, Tally's code, the stored tables'
schemas and the rows its reads returned: the key covers the first three, the reads (the schema
read first, then every query the engine ran, rollup routing's freshness checks included) are
re-run and compared by a digest of their rows. A new load, a rollup build, a changed table or config makes a
read differ or the key change, and the engine answers (and records) afresh."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from tally.engine.result import Result

FORMAT = 1
CACHE_DIR = Path(".tally") / "cache" / "queries"
MAX_BYTES = 8 << 20     # a bigger answer is computed each time rather than written out
MAX_FILES = 512         # the least recently written go past this


class Uncacheable(Exception):
    """A query or answer that can't be keyed or stored faithfully: computed each time."""


def answer(project, metrics, kwargs: dict, compute: Callable[[], Result]) -> Result:
    """`compute()`'s answer, or the stored one when every read behind it still reads the same."""
    try:
        key = cache_key(project, metrics, kwargs)
    except Uncacheable:
        return compute()
    path = project.root / CACHE_DIR / f"{key}.bin"
    found = replay(project, path)
    return found if found is not None else record(project, path, compute)


def cache_key(project, metrics, kwargs: dict) -> str:
    from tally import __version__

    try:
        config = project.config.model_dump_json()
    except Exception as exc:   # a value pydantic can't write out: no key, no cache
        raise Uncacheable(str(exc)) from None
    query = repr((metrics, sorted(kwargs.items())))
    if " at 0x" in query:      # an object without a stable text form
        raise Uncacheable(query)
    # today's date: a model without rows answers for today
    parts = [str(FORMAT), __version__, code_stamp(), config, str(project.root), project.warehouse_url,
             str(project.use_rollups), query, dt.datetime.now(dt.timezone.utc).date().isoformat()]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:40]


_CODE_STAMP: list[str] = []


def code_stamp() -> str:
    """Tally's source files (names, sizes, change times): an edited checkout keys answers anew."""
    if not _CODE_STAMP:
        root = Path(__file__).resolve().parent.parent
        digest = hashlib.sha256()
        for folder, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                if name.endswith(".py"):
                    info = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}:{info.st_size}:{info.st_mtime_ns}\0".encode())
        _CODE_STAMP.append(digest.hexdigest())
    return _CODE_STAMP[0]


# -- replay ------------------------------------------------------------------

def replay(project, path: Path) -> Result | None:
    """The stored answer if its file is whole and every read gives the same rows; else None."""
    try:
        header, body = read_entry(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    from tally.warehouse.rawsql import RawConnection

    try:
        con = RawConnection(project.warehouse_url, project.root)
    except Exception:   # the engine's own connection says what is wrong, if anything is
        return None
    try:
        for read in header["reads"]:
            if read[0] == "run":
                if con.digest(read[1], decode(read[2])) != read[3]:
                    return None
            elif read[0] != "has" or con.has_table(read[1]) != read[2]:
                return None
        import pyarrow as pa

        return Result(pa.ipc.open_stream(body).read_all(), header["meta"])
    except Exception:
        return None
    finally:
        con.close()


def read_entry(path: Path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    digest, size = data[:32], int.from_bytes(data[32:40], "big")
    if hashlib.sha256(data[32:]).digest() != digest:
        raise ValueError("damaged cache file")
    header = json.loads(data[40:40 + size])
    if header.get("format") != FORMAT:
        raise ValueError("cache file of another format")
    return header, data[40 + size:]


# -- record ------------------------------------------------------------------

class Recorder:
    """Every read the engine makes while answering, with a digest of its rows."""

    def __init__(self):
        self.reads: list = []
        self.faithful = True

    def ran(self, sql: str, values: dict, digest: str | None) -> None:
        if digest is None:   # a read too big to digest: the answer is not stored
            self.faithful = False
        if not self.faithful:
            return
        try:
            self.reads.append(["run", sql, encode(values), digest])
        except Exception:   # never fail the query over its cache entry
            self.faithful = False

    def saw_table(self, name: str, found: bool) -> None:
        self.reads.append(["has", name, found])


def record(project, path: Path, compute: Callable[[], Result]) -> Result:
    """Answer with `compute()` while recording its reads, then store the answer with them."""
    from tally.warehouse.rawsql import schema_sql

    warehouse = project.warehouse
    recorder = Recorder()
    sql = schema_sql(warehouse.dialect.name)
    try:
        recorder.ran(sql, {}, warehouse.raw_digest(sql))
    except Exception:
        return compute()   # no schema to check against: answered, not stored
    warehouse.recorders.append(recorder)
    try:
        result = compute()
    finally:
        warehouse.recorders.remove(recorder)
    if recorder.faithful:
        try:
            store(path, recorder.reads, result)
        except (OSError, Uncacheable, TypeError, ValueError):
            pass   # an answer not stored is computed again next time
    return result


def store(path: Path, reads: list, result: Result) -> None:
    import pyarrow as pa

    meta = result.meta
    if json.loads(json.dumps(meta)) != meta:
        raise Uncacheable("meta that JSON does not keep as it is")
    header = json.dumps({"format": FORMAT, "reads": reads, "meta": meta}).encode()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, result.table.schema) as writer:
        writer.write_table(result.table)
    payload = len(header).to_bytes(8, "big") + header + sink.getvalue().to_pybytes()
    if len(payload) > MAX_BYTES:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "wb") as file:
        file.write(hashlib.sha256(payload).digest() + payload)
    os.replace(temp, path)   # a reader sees the old file or the new one, never half of one
    prune(path.parent)


def prune(folder: Path) -> None:
    entries = sorted(folder.glob("*.bin"), key=lambda p: p.stat().st_mtime)
    for old in entries[:max(0, len(entries) - MAX_FILES)]:
        old.unlink(missing_ok=True)


# -- parameter values as JSON ------------------------------------------------

def encode(values: dict[str, Any]) -> dict[str, list]:
    out = {}
    for name, value in (values or {}).items():
        if value is None or isinstance(value, (bool, int, float, str)):
            out[name] = ["v", value]
        elif isinstance(value, dt.datetime):
            out[name] = ["datetime", value.isoformat()]
        elif isinstance(value, dt.date):
            out[name] = ["date", value.isoformat()]
        elif isinstance(value, decimal.Decimal):
            out[name] = ["decimal", str(value)]
        else:
            raise Uncacheable(f"parameter {name} of type {type(value).__name__}")
    return out


def decode(values: dict[str, list]) -> dict[str, Any]:
    kinds = {"v": lambda v: v, "datetime": dt.datetime.fromisoformat, "date": dt.date.fromisoformat,
             "decimal": decimal.Decimal}
    return {name: kinds[kind](value) for name, (kind, value) in values.items()}
