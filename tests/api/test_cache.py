"""The answer cache: in-process LRU, Redis (a real redis-server started by the suite), what is cached."""

from __future__ import annotations

import pytest

from tally.api.cache import MemoryCache, RedisCache, cacheable, data_version
from tests.api.conftest import client, write_rows


def test_memory_cache_is_an_lru():
    cache = MemoryCache(2)
    cache.set("a", b"1")
    cache.set("b", b"2")
    assert cache.get("a") == b"1"   # a is now the newest
    cache.set("c", b"3")
    assert cache.get("b") is None and cache.get("a") == b"1" and cache.get("c") == b"3"


def test_memory_cache_keeps_to_its_byte_budget():
    cache = MemoryCache(100, max_bytes=80)
    for name in "abcd":
        cache.set(name, b"x" * 10)
    cache.set("big", b"y" * 11)    # over an eighth of the budget: not kept
    assert cache.get("big") is None and cache.size == 40
    for name in "efghijkl":
        cache.set(name, b"x" * 10)
    assert cache.size == 80 and cache.get("a") is None and cache.get("l") == b"x" * 10
    cache.set("l", b"z" * 5)
    assert cache.size == 75


def test_unreachable_redis_is_a_miss_not_an_error(caplog):
    cache = RedisCache("redis://:pw-not-logged@127.0.0.1:1/0")
    cache.set("k", b"v")
    assert cache.get("k") is None
    assert "pw-not-logged" not in caplog.text


def test_tables_nothing_stamps_are_never_cached(duck_dir):
    from tally import Project

    project = Project.load(duck_dir)
    assert cacheable(project, ["revenue", "avg_sale"])
    data = project.config.model_dump(by_alias=True)
    data["sources"] = {}   # the same table, written by something other than Tally: no stamp on it
    from dataclasses import replace

    from tally.project.schema import ProjectConfig

    unstamped = Project(replace(project.loaded, config=ProjectConfig.model_validate(data)))
    assert not cacheable(unstamped, ["revenue"])
    unstamped.close()
    project.close()


def test_data_version_moves_with_every_commit(tmp_path):
    from tally import Project
    from tally.rollups import build
    from tally.sources import ingest
    from tests.api.conftest import make_project

    directory = make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", build=False)
    project = Project.load(directory)
    versions = [data_version(project.warehouse)]
    build(project)
    versions.append(data_version(project.warehouse))
    write_rows(directory, "b.csv", [(10, "2026-09-03 10:00:00", "1.00", "a")])
    ingest(project)
    versions.append(data_version(project.warehouse))
    assert data_version(project.warehouse) == versions[-1]   # stable while nothing commits
    assert len(set(versions)) == 3
    project.close()


@pytest.fixture
def redis_project(redis_url, tmp_path):
    from tally import Project
    from tests.api.conftest import make_project

    directory = make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", api=f"api: {{cache: \"{redis_url}\"}}\n",
                             build=False)
    project = Project.load(directory)
    yield directory, project
    project.close()


def test_answers_are_shared_through_redis_and_never_stale(redis_project, redis_url, monkeypatch):
    import redis

    from tally.delivery import answer
    from tally.sources import ingest

    directory, project = redis_project
    computed = []
    original = answer.answer
    monkeypatch.setattr(answer, "answer", lambda *a, **k: computed.append(1) or original(*a, **k))
    params = {"metrics": "revenue", "by": "shop", "from": "2026-09-01", "to": "2026-10-01"}
    first = client(project).get("/api/v1/query", params=params).json()
    assert first["rows"] == [{"shop": "a", "revenue": 15.5}, {"shop": "b", "revenue": 120.26}]
    keys = redis.Redis.from_url(redis_url).keys("tally:answer:*")
    assert len(keys) >= 1
    again = client(project).get("/api/v1/query", params=params).json()   # another app: as a second server
    assert again == first and len(computed) == 1
    write_rows(directory, "b.csv", [(10, "2026-09-03 10:00:00", "0.50", "b")])
    ingest(project)
    after = client(project).get("/api/v1/query", params=params).json()
    assert after["rows"] == [{"shop": "a", "revenue": 15.5}, {"shop": "b", "revenue": 120.76}]
    assert len(computed) == 2


def test_one_version_read_serves_the_requests_queued_behind_it():
    from tally.api.cache import Versions

    class Reader:
        reads = 0

        def has_table(self, name):
            return True

        def run(self, query):
            Reader.reads += 1

            class Rows:
                def to_pylist(self):
                    return [{"key": "table:t", "value": str(Reader.reads), "updated_at": None}]
            return Rows()

    import time

    versions, reader = Versions(), Reader()
    early = time.monotonic_ns()
    first = versions.since(reader, early)
    assert versions.since(reader, early) == first and Reader.reads == 1   # arrived before that read began
    late = time.monotonic_ns()
    assert versions.since(reader, late) != first and Reader.reads == 2    # arrived after: reads again


def test_a_rollup_answer_in_the_routers_freshness_window_is_not_kept(tmp_path):
    """The router trusts a freshness check for FRESHNESS_TTL seconds: an answer it gives from a rollup
    just after a load may predate the load. Served then, it must not be cached under the new version."""
    import time

    from tally import Project
    from tally.rollups.routing import FRESHNESS_TTL
    from tally.sources import ingest
    from tests.api.conftest import make_project

    directory = make_project(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    project = Project.load(directory)
    api = client(project)
    params = {"metrics": "revenue", "from": "2026-09-01", "to": "2026-10-01"}
    first = api.get("/api/v1/query", params=params).json()
    assert first["meta"]["source"] == "rollup" and first["rows"] == [{"revenue": 135.76}]
    write_rows(directory, "b.csv", [(10, "2026-09-03 10:00:00", "1.00", "a")])
    assert all(r.status == "ok" for r in ingest(project))
    api.get("/api/v1/query", params=params)   # within the window: whatever it says, it is not kept
    time.sleep(FRESHNESS_TTL + 0.2)
    later = api.get("/api/v1/query", params=params).json()
    assert later["rows"] == [{"revenue": 136.76}] and later["meta"]["source"] == "live"
    project.close()
