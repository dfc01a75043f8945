"""Throwaway PostgreSQL 15 and MariaDB servers for the tests and benchmarks.

Each server lives in its own temporary directory, listens on 127.0.0.1 and a
free port, and is stopped and deleted afterwards. Nothing touches the machine's
own (apt-installed) clusters or config files.

Plain context managers, usable outside pytest (the benchmarks use them)::

    with postgres_server() as url:         # postgresql://tally:PW@127.0.0.1:PORT/tally
        with postgres_database(url) as db_url:   # a fresh empty database, dropped after
            ...

    with mariadb_server() as url:          # mysql://tally:PW@127.0.0.1:PORT/tally
        with mariadb_database(url) as db_url:
            ...

Loaded as a pytest plugin (``pytest_plugins = ["tests.servers"]``) it provides:

- ``postgres_url`` / ``mariadb_url`` (session): the server's ``tally`` database.
  A server starts only when a test first asks for it.
- ``postgres_db_url`` / ``mariadb_db_url`` (function): a new empty database on
  that server, dropped after the test.

and, for fixtures parametrized over the three warehouses (``WAREHOUSE_KINDS``),
``warehouse_url_for(kind, request, name)``: a new empty DuckDB file, PostgreSQL
or MariaDB database, as a context manager.

Tests using any of these get the ``servers`` marker automatically, so
``-m "not servers"`` runs the rest without starting anything.

The URL's user is allowed to create and drop databases. Both servers run in
UTC with UTF-8 text, and trade durability for speed (fsync off): they are for
tests and benchmarks only. A missing server binary is an error, never a skip.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

__all__ = [
    "WAREHOUSE_KINDS",
    "ServerError",
    "mariadb_database",
    "mariadb_server",
    "mysql_connect_kwargs",
    "postgres_database",
    "postgres_server",
    "redis_server",
    "warehouse_url_for",
]

PG_BIN = Path(os.environ.get("TALLY_PG_BIN", "/usr/lib/postgresql/15/bin"))
ZONEINFO = Path("/usr/share/zoneinfo")
USER = "tally"
DATABASE = "tally"
START_TIMEOUT = 60.0  # seconds
PORT_ATTEMPTS = 3  # another process may grab the free port we picked

# Under /tmp rather than $TMPDIR: the server's OS user must be able to reach
# it, and Unix socket paths must stay short (< 108 bytes).
TMP_ROOT = os.environ.get("TALLY_SERVERS_TMPDIR", "/tmp")


class ServerError(RuntimeError):
    """A test server could not be set up (missing binary, failed start, ...)."""


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a throwaway PostgreSQL 15 server; yield ``postgresql://`` URL of its ``tally`` database."""
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    for binary in (initdb, pg_ctl):
        _require(binary, "PostgreSQL 15", "postgresql")
    # initdb refuses to run as root: as root, run the server as `postgres`.
    owner = _os_user("postgres", "postgresql") if os.geteuid() == 0 else None
    password = secrets.token_hex(16)

    with _temp_dir("tally-pg-", owner) as tmp:
        data, log = tmp / "data", tmp / "postgres.log"
        pwfile = tmp / "pwfile"
        pwfile.write_text(password + "\n")
        _chown(pwfile, owner)
        _run(
            [
                initdb, "-D", data, "-U", USER, f"--pwfile={pwfile}",
                "--auth-local=trust", "--auth-host=scram-sha-256",
                "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions",
            ],
            what="PostgreSQL initdb", owner=owner, cwd=tmp,
        )
        pwfile.unlink()
        base_conf = (data / "postgresql.conf").read_text() + "\n# tests/servers.py\n" + "\n".join(
            [
                "listen_addresses = '127.0.0.1'",
                f"unix_socket_directories = '{tmp}'",
                "timezone = 'UTC'",
                "log_timezone = 'UTC'",
                "fsync = off",
                "synchronous_commit = off",
                "full_page_writes = off",
            ]
        ) + "\n"

        try:
            for attempt in range(PORT_ATTEMPTS):
                port = _free_port()
                log.unlink(missing_ok=True)
                (data / "postgresql.conf").write_text(base_conf + f"port = {port}\n")
                start = _run(
                    [pg_ctl, "-D", data, "-l", log, "-w", "-t", str(int(START_TIMEOUT)), "start"],
                    what="PostgreSQL start", owner=owner, cwd=tmp, check=False,
                )
                if start.returncode == 0:
                    break
                if attempt + 1 < PORT_ATTEMPTS and "already in use" in _tail(log):
                    continue
                raise ServerError(f"PostgreSQL did not start:\n{_output(start)}\n--- {log}:\n{_tail(log)}")

            url = f"postgresql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"
            with _pg_admin(_with_database(url, "postgres")) as con:  # over TCP, with the password
                con.execute(f'CREATE DATABASE "{DATABASE}"')
            yield url
        finally:
            stop = [pg_ctl, "-D", data, "-w", "-t", "30", "stop"]
            if _run(stop + ["-m", "fast"], what="PostgreSQL stop", owner=owner, cwd=tmp, check=False).returncode:
                _run(stop + ["-m", "immediate"], what="PostgreSQL stop", owner=owner, cwd=tmp, check=False)


@contextmanager
def postgres_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """Create an empty, uniquely named database on a PostgreSQL server; yield its URL; drop it."""
    name = _unique_name(prefix)
    admin_url = _with_database(server_url, "postgres")
    with _pg_admin(admin_url) as con:
        # FILE_COPY: with fsync off it takes ~20 ms instead of ~150 ms for the default WAL_LOG
        con.execute(f'CREATE DATABASE "{name}" STRATEGY FILE_COPY')
    try:
        yield _with_database(server_url, name)
    finally:
        with _pg_admin(admin_url) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # even if a test left connections open


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=10)


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------

MARIADB_OPTIONS = [
    "--character-set-server=utf8mb4",  # what Debian's /etc/mysql config sets; the built-in default is latin1
    "--collation-server=utf8mb4_general_ci",
    "--default-time-zone=+00:00",  # named zones are not loaded yet when the server starts
    "--skip-name-resolve",
    # speed over durability
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--innodb-flush-method=nosync",
    "--innodb-log-file-size=64M",
    "--sync-frm=0",
]


@contextmanager
def mariadb_server() -> Iterator[str]:
    """Start a throwaway MariaDB server with named time zones loaded; yield ``mysql://`` URL of its ``tally`` database."""
    install_db = _require(shutil.which("mariadb-install-db", path=_SBIN_PATH), "MariaDB", "mariadb-server", "mariadb-install-db")
    mariadbd = _require(shutil.which("mariadbd", path=_SBIN_PATH), "MariaDB", "mariadb-server", "mariadbd")
    client = _require(shutil.which("mariadb", path=_SBIN_PATH), "MariaDB", "mariadb-client", "mariadb")
    tzinfo = _require(shutil.which("mariadb-tzinfo-to-sql", path=_SBIN_PATH), "MariaDB", "mariadb-server", "mariadb-tzinfo-to-sql")
    _require(ZONEINFO, "time zone data", "tzdata")
    owner = _os_user("mysql", "mariadb-server") if os.geteuid() == 0 else None
    as_user = [f"--user={owner.pw_name}"] if owner else []
    password = secrets.token_hex(16)

    with _temp_dir("tally-mariadb-", owner) as tmp:
        data, sock, log = tmp / "data", tmp / "sock", tmp / "error.log"
        _run(
            [
                install_db, "--no-defaults", *as_user, f"--datadir={data}",
                "--auth-root-authentication-method=normal", "--skip-test-db", *MARIADB_OPTIONS,
            ],
            what="mariadb-install-db", cwd=tmp,
        )

        with ExitStack() as stack:
            for attempt in range(PORT_ATTEMPTS):
                port = _free_port()
                log.unlink(missing_ok=True)
                proc = subprocess.Popen(
                    [
                        mariadbd, "--no-defaults", *as_user, f"--datadir={data}", f"--socket={sock}",
                        f"--port={port}", "--bind-address=127.0.0.1", f"--pid-file={tmp / 'pid'}",
                        f"--log-error={log}", f"--tmpdir={tmp}", *MARIADB_OPTIONS,
                    ],
                    cwd=tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True,  # Ctrl-C reaches pytest, which then stops the server cleanly
                )
                stack.callback(_stop_process, proc)
                if _wait_for_mariadb(proc, sock):
                    break
                if attempt + 1 < PORT_ATTEMPTS and "already in use" in _tail(log):
                    continue
                raise ServerError(f"MariaDB did not start (exit code {proc.poll()}):\n--- {log}:\n{_tail(log)}")

            zones = _run([tzinfo, ZONEINFO], what="mariadb-tzinfo-to-sql", cwd=tmp)
            _run([client, "--no-defaults", "-S", sock, "-u", "root", "mysql"],
                 what="loading time zones into MariaDB", cwd=tmp, input=zones.stdout)

            import MySQLdb

            con = MySQLdb.connect(unix_socket=str(sock), user="root", autocommit=True)
            try:
                cur = con.cursor()
                cur.execute(f"CREATE DATABASE `{DATABASE}`")
                cur.execute(f"CREATE USER '{USER}'@'%%' IDENTIFIED BY %s", (password,))
                cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%' WITH GRANT OPTION")
            finally:
                con.close()
            yield f"mysql://{USER}:{password}@127.0.0.1:{port}/{DATABASE}"


@contextmanager
def mariadb_database(server_url: str, prefix: str = "t") -> Iterator[str]:
    """Create an empty, uniquely named database on a MariaDB server; yield its URL; drop it."""
    from MySQLdb import MySQLError

    name = _unique_name(prefix)
    with _mariadb_admin(server_url) as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield _with_database(server_url, name)
    finally:
        with _mariadb_admin(server_url) as cur:
            # Connections a test left open can hold locks that would block DROP DATABASE.
            cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()", (name,))
            for (thread_id,) in cur.fetchall():
                with suppress(MySQLError):  # already gone
                    cur.execute(f"KILL {int(thread_id)}")
            cur.execute("SET SESSION lock_wait_timeout = 30")
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")


def mysql_connect_kwargs(url: str) -> dict:
    """``MySQLdb.connect(**kwargs)`` arguments for a ``mysql://user:password@host:port/db`` URL."""
    parts = urlsplit(url)
    return {
        "host": parts.hostname,
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/"),
    }


@contextmanager
def _mariadb_admin(url: str):
    import MySQLdb

    kwargs = mysql_connect_kwargs(url)
    del kwargs["database"]
    con = MySQLdb.connect(**kwargs, autocommit=True, connect_timeout=10)
    try:
        yield con.cursor()
    finally:
        con.close()


def _wait_for_mariadb(proc: subprocess.Popen, sock: Path) -> bool:
    """True once the server answers on its socket; False if it exited first."""
    import MySQLdb

    deadline = time.monotonic() + START_TIMEOUT
    while proc.poll() is None:
        if sock.exists():
            try:
                MySQLdb.connect(unix_socket=str(sock), user="root", connect_timeout=5).close()
                return True
            except MySQLdb.OperationalError:
                pass
        if time.monotonic() > deadline:
            raise ServerError(f"MariaDB did not answer on {sock} within {START_TIMEOUT:.0f} s")
        time.sleep(0.02)
    return False


def _stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()  # mariadbd shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str]:
    """Start a throwaway Redis (apt `redis-server`) on 127.0.0.1; yield its ``redis://`` URL."""
    binary = _require(shutil.which("redis-server", path=_SBIN_PATH), "Redis", "redis-server", "redis-server")
    with _temp_dir("tally-redis-", None) as tmp:
        for attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            proc = subprocess.Popen([str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp),
                                     "--save", "", "--appendonly", "no", "--protected-mode", "yes"],
                                    cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            deadline = time.monotonic() + START_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
                time.sleep(0.05)
            if proc.poll() is None:
                break
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            if attempt + 1 == PORT_ATTEMPTS or "in use" not in output:
                raise ServerError(f"Redis did not start:\n{output[-2000:]}")
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            _stop_process(proc)
            if proc.stdout:
                proc.stdout.close()


# --------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of the ``tally`` database on a PostgreSQL 15 server started for this test session."""
    with _server_or_fail(postgres_server) as url:
        yield url


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    """URL of the ``tally`` database on a MariaDB server started for this test session."""
    with _server_or_fail(mariadb_server) as url:
        yield url


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """URL of a new empty PostgreSQL database, dropped after the test."""
    with postgres_database(postgres_url) as url:
        yield url


@pytest.fixture
def mariadb_db_url(mariadb_url: str) -> Iterator[str]:
    """URL of a new empty MariaDB database, dropped after the test."""
    with mariadb_database(mariadb_url) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a Redis server started for this test session (database 0)."""
    with _server_or_fail(redis_server) as url:
        yield url


SERVER_FIXTURES = frozenset({"postgres_url", "mariadb_url", "postgres_db_url", "mariadb_db_url", "redis_url"})
# DuckDB needs no server: `-m "not servers"` still runs it.
WAREHOUSE_KINDS = [
    pytest.param("duckdb", id="duckdb"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.servers),
    pytest.param("mariadb", id="mariadb", marks=pytest.mark.servers),
]


@contextmanager
def warehouse_url_for(kind: str, request: pytest.FixtureRequest, name: str = "t") -> Iterator[str]:
    """URL of a new empty warehouse of `kind`: a DuckDB file in a new temp folder, or a database
    (named `name`_...) on this session's PostgreSQL / MariaDB server, dropped afterwards."""
    if kind == "duckdb":
        yield f"duckdb:///{request.getfixturevalue('tmp_path_factory').mktemp(name)}/warehouse.duckdb"
    elif kind == "postgres":
        with postgres_database(request.getfixturevalue("postgres_url"), name) as url:
            yield url
    elif kind == "mariadb":
        with mariadb_database(request.getfixturevalue("mariadb_url"), name) as url:
            yield url
    else:
        raise ValueError(f"unknown warehouse kind {kind!r}: expected duckdb, postgres or mariadb")


SERVER_FIXTURES = frozenset({"postgres_url", "mariadb_url", "postgres_db_url", "mariadb_db_url"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "servers: needs the PostgreSQL and MariaDB servers the test suite starts")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@contextmanager
def _server_or_fail(server) -> Iterator[str]:
    with ExitStack() as stack:
        try:
            url = stack.enter_context(server())
        except ServerError as exc:
            error = str(exc)
        else:
            error = None
        if error is not None:  # outside the except block: no chained traceback
            pytest.fail(error, pytrace=False)
        yield url


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin"])


def _require(path: Path | str | None, what: str, package: str, name: str | None = None) -> Path:
    if path is None or not Path(path).exists():
        raise ServerError(
            f"{what} is not installed: {name or path} not found. "
            f"Install the Debian package '{package}' (`make system-deps` installs all test servers)."
        )
    return Path(path)


def _os_user(name: str, package: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServerError(f"OS user '{name}' does not exist; install the Debian package '{package}'.") from None


@contextmanager
def _temp_dir(prefix: str, owner: pwd.struct_passwd | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=TMP_ROOT))
    try:
        _chown(path, owner)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _chown(path: Path, owner: pwd.struct_passwd | None) -> None:
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _run(cmd, *, what: str, owner: pwd.struct_passwd | None = None, cwd: Path, check: bool = True,
         input: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(part) for part in cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []} if owner else {}
    try:
        result = subprocess.run(
            cmd, cwd=cwd, env=env, input=input, capture_output=True, text=True,
            start_new_session=True,  # servers started from here don't get the terminal's Ctrl-C
            **as_owner,
        )
    except OSError as exc:
        raise ServerError(f"{what}: could not run {cmd[0]}: {exc}") from exc
    if check and result.returncode != 0:
        raise ServerError(f"{what} failed (exit code {result.returncode}): {' '.join(cmd)}\n{_output(result)}")
    return result


def _output(result: subprocess.CompletedProcess) -> str:
    return (result.stdout or "")[-3000:] + (result.stderr or "")[-3000:]


def _tail(path: Path, size: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))
