"""The throwaway PostgreSQL and MariaDB servers from tests/servers.py work."""

from urllib.parse import urlsplit

import MySQLdb
import psycopg

from tests.servers import mariadb_database, mysql_connect_kwargs, postgres_database


def test_postgres_server_answers(postgres_url):
    assert urlsplit(postgres_url).scheme == "postgresql"
    with psycopg.connect(postgres_url) as con:
        version, database, tz = con.execute(
            "SELECT current_setting('server_version_num')::int, current_database(), current_setting('TimeZone')"
        ).fetchone()
    assert version // 10000 == 15
    assert database == "tally"
    assert tz == "UTC"


def test_mariadb_server_answers(mariadb_url):
    assert urlsplit(mariadb_url).scheme == "mysql"
    con = MySQLdb.connect(**mysql_connect_kwargs(mariadb_url))
    try:
        cur = con.cursor()
        cur.execute("SELECT VERSION(), DATABASE(), @@character_set_server")
        version, database, charset = cur.fetchone()
    finally:
        con.close()
    assert "MariaDB" in version
    assert database == "tally"
    assert charset == "utf8mb4"


def test_mariadb_has_named_time_zones(mariadb_url):
    con = MySQLdb.connect(**mysql_connect_kwargs(mariadb_url))
    try:
        cur = con.cursor()
        cur.execute("SELECT CONVERT_TZ(NOW(), 'UTC', 'Europe/Istanbul')")
        (converted,) = cur.fetchone()
        cur.execute("SELECT CONVERT_TZ('2024-07-01 12:00:00', 'UTC', 'Europe/Istanbul')")
        (summer,) = cur.fetchone()
    finally:
        con.close()
    assert converted is not None
    assert str(summer) == "2024-07-01 15:00:00"


def test_postgres_db_url_is_a_fresh_database(postgres_db_url):
    name = urlsplit(postgres_db_url).path.lstrip("/")
    assert name != "tally"
    with psycopg.connect(postgres_db_url) as con:
        assert con.execute("SELECT current_database()").fetchone() == (name,)
        assert con.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
        con.execute("CREATE TABLE t (x int)")


def test_postgres_database_is_dropped_even_with_open_connections(postgres_url):
    with postgres_database(postgres_url) as url:
        leftover = psycopg.connect(url)
        leftover.execute("SELECT 1")  # still open, mid-transaction, when the database is dropped
    try:
        assert _postgres_databases(postgres_url) == {"postgres", "template0", "template1", "tally"}
    finally:
        leftover.close()


def test_mariadb_db_url_is_a_fresh_database(mariadb_db_url):
    kwargs = mysql_connect_kwargs(mariadb_db_url)
    assert kwargs["database"] != "tally"
    con = MySQLdb.connect(**kwargs)
    try:
        cur = con.cursor()
        cur.execute("SELECT DATABASE(), (SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE())")
        assert cur.fetchone() == (kwargs["database"], 0)
        cur.execute("CREATE TABLE t (x int)")
    finally:
        con.close()


def test_mariadb_database_is_dropped_even_with_open_connections(mariadb_url):
    with mariadb_database(mariadb_url) as url:
        name = url.rsplit("/", 1)[1]
        leftover = MySQLdb.connect(**mysql_connect_kwargs(url))
        cur = leftover.cursor()
        cur.execute("CREATE TABLE t (x int) ENGINE=InnoDB")
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM t FOR UPDATE")  # holds a metadata lock that would block DROP DATABASE
    try:
        assert name not in _mariadb_databases(mariadb_url)  # other tests' session databases may exist
    finally:
        leftover.close()


def _postgres_databases(url):
    with psycopg.connect(url) as con:
        return {name for (name,) in con.execute("SELECT datname FROM pg_database")}


def _mariadb_databases(url):
    con = MySQLdb.connect(**mysql_connect_kwargs(url))
    try:
        cur = con.cursor()
        cur.execute("SHOW DATABASES")
        return {name for (name,) in cur.fetchall()}
    finally:
        con.close()
