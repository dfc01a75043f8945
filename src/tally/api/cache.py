"""Answers cached by (query, data version): in this process (LRU) or in Redis, shared by servers.

The data version is a digest of `_tally_state`. Every commit that changes what a query reads
writes a row there in the same transaction: an ingest that loads rows stamps `table:<name>` with a
new chained digest, a seed stamps its table, a rollup build rewrites `rollup:<name>` with its build
time. A new version makes every older key unreachable, so a cached answer is never stale. Tables
that nothing of Tally's writes carry no stamp: answers reading them are never cached."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from time import monotonic_ns as time_ns

log = logging.getLogger("tally.api")
MEMORY_BYTES = 256 * 2**20   # the in-process cache's budget
REDIS_TTL = 24 * 3600   # seconds an answer stays in Redis (old versions just age out)


class Versions:
    """The data version for requests, read at most once per request and shared by those waiting:
    a request may take a version whose read *began after it arrived* (that read saw every commit
    made before), so under load one read answers every request queued behind it. The caller holds
    the project lock (reads are serialized)."""

    def __init__(self, local: bool = True):
        self.use_local = local   # take the sole writer's own count where there is one (see `local`)
        self.read_at, self.version, self.table_seen = -1, "", False
        self.changed_at = 0   # monotonic ns when this process first saw the current version

    def since(self, reader, arrived: int) -> str:
        """The version for a request that arrived at `arrived` (time.monotonic_ns())."""
        import time

        local = self.local(reader) if self.use_local else None
        if local is not None:
            return local
        if self.read_at > arrived:
            return self.version
        self.read_at = time.monotonic_ns()
        if not self.table_seen:   # the table never goes away once made: its check (~5 ms) once
            self.table_seen = reader.has_table("_tally_state")
        version = data_version(reader, known=True) if self.table_seen else ""
        if version != self.version:
            self.version, self.changed_at = version, self.read_at
        return self.version

    def local(self, reader) -> str | None:
        """Where this process is the warehouse's only writer (an embedded file `tally serve` owns),
        the version it counts itself: no query per request (Warehouse.local_version)."""
        version = getattr(reader, "local_version", None)
        version = version() if version is not None else None
        if version is not None and version != self.version:
            self.version, self.changed_at = version, time_ns()
        return version

    def settled(self, seconds: float) -> bool:
        """The current version was first seen at least `seconds` ago."""
        import time

        return time.monotonic_ns() - self.changed_at >= seconds * 1e9


def data_version(reader, known: bool = False) -> str:
    """A digest of every `_tally_state` row; "" before anything was loaded (`known`: the table exists)."""
    if not known and not reader.has_table("_tally_state"):
        return ""
    from tally.warehouse.internal import read_all_state

    text = json.dumps(sorted((key, value, str(stamp)) for key, (value, stamp) in read_all_state(reader).items()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def answer_key(project_digest: str, version: str, request: dict) -> str:
    text = json.dumps([project_digest, version, request], sort_keys=True, default=str)
    return "tally:answer:" + hashlib.sha256(text.encode()).hexdigest()


def cacheable(project, metrics: list[str]) -> bool:
    """Every table the metrics read (their models and the models these join to) is stamped by Tally."""
    from tally.project.references import loaded_tables

    catalog, stamped = project.catalog, loaded_tables(project.config)
    models = {ref.model for ref in catalog.base_measures(metrics)}
    seen: set[str] = set()
    while models:
        model = models.pop()
        seen.add(model)
        models |= {join.model for join in catalog.model(model).joins.values()} - seen
    return all(project.config.models[m].table in stamped for m in seen)


class MemoryCache:
    """A thread-safe LRU of answer bodies: at most `entries` of them and `max_bytes` in all."""

    def __init__(self, entries: int, max_bytes: int = MEMORY_BYTES):
        self.entries, self.max_bytes, self.size = entries, max_bytes, 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def set(self, key: str, value: bytes) -> None:
        if len(value) > self.max_bytes // 8:   # one huge answer would push out hundreds of small ones
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.size += len(value) - (len(old) if old is not None else 0)
            self._items[key] = value
            while len(self._items) > self.entries or self.size > self.max_bytes:
                self.size -= len(self._items.popitem(last=False)[1])


class RedisCache:
    """Answer bodies in Redis (redis-py); an unreachable Redis is a miss, logged, never an error."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._warned = False

    def get(self, key: str) -> bytes | None:
        try:
            return self.client.get(key)
        except Exception as exc:   # redis.RedisError and socket errors: answer without the cache
            self._warn(exc)
            return None

    def set(self, key: str, value: bytes) -> None:
        try:
            self.client.set(key, value, ex=REDIS_TTL)
        except Exception as exc:
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:   # the URL may hold a password: only the error's type
            log.warning("answer cache: Redis unavailable (%s); answering without it", type(exc).__name__)
            self._warned = True


class NoCache:
    def get(self, key: str) -> None:
        return None

    def set(self, key: str, value: bytes) -> None:
        return None


def make_cache(settings):
    """The cache `api.cache` names: memory (default), none, or a redis:// URL."""
    if settings.cache == "none":
        return NoCache()
    if settings.cache == "memory":
        return MemoryCache(settings.cache_entries)
    return RedisCache(settings.cache)
