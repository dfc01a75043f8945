"""No password leaves Tally: every place a URL can appear (errors, --debug, JSON, _tally_loads, Lambda
answers and logs) is checked against passwords with the characters that break naive URL parsing; and
the http connector keeps its API key from other origins."""

from __future__ import annotations

import json
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import pytest
import yaml

import tally
from tally.errors import WarehouseError
from tally.redaction import redact_text, redact_url, split_url
from tally.warehouse.connect import open_backend
from tests.cli_helpers import invoke

NASTY = ["pa/ss-word", "pa#ss-word", "pa?ss-word", "pa@ss-word", "p[a]ss-word", "pa]ss[", "pa:ss:word",
         "pa%2Fss", "pa ss word", "pässwörd", "pa&ss=word", "pa'ss\"word", "@@@", "::/?#[]@"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def url_forms(password: str, scheme: str = "postgresql", host: str = "db.internal:5432") -> list[str]:
    """The ways people write a password into a URL: pasted as is, percent-encoded, as ?password=."""
    return [f"{scheme}://analyst:{password}@{host}/shop",
            f"{scheme}://analyst:{quote(password, safe='')}@{host}/shop",
            f"{scheme}://analyst@{host}/shop?sslmode=require&password={quote(password, safe='')}"]


def assert_hidden(password: str, text: str) -> None:
    for form in {password, quote(password, safe=""), quote(password)}:
        assert form not in text, (form, text)


@pytest.mark.parametrize("password", NASTY)
def test_urls_are_redacted_and_split_at_the_right_at_sign(password):
    for url in url_forms(password):
        assert_hidden(password, redact_url(url))
        assert_hidden(password, redact_text(f"cannot connect to {url}: password {password} refused", url))
        assert "db.internal:5432/shop" in redact_url(url)
        parts = split_url(url)
        assert (parts.user, parts.host_and_port, parts.path) == ("analyst", "db.internal:5432", "/shop")
    assert split_url(url_forms(password)[0]).password == password or "%" in password
    assert split_url(url_forms(password)[1]).password == password


def test_secret_query_parameters_are_masked():
    url = "https://api.example.com/v1/orders?pw=1&passwd=2&session=3&access_token=4&api_key=5&page=6&sort=id"
    assert redact_url(url) == ("https://api.example.com/v1/orders?pw=***&passwd=***&session=***"
                               "&access_token=***&api_key=***&page=6&sort=id")


@pytest.mark.parametrize("tail", [": connection failed", ", then", ". Next", "; retry", ")"])
def test_punctuation_after_a_url_in_a_message_stays_outside_it(tail):
    # the colon after the URL was taken into its last query value and written back as %3A
    url = "postgresql://ops@db:5432/operations?password=hunter3q&sslmode=disable"
    text = redact_text(f"cannot connect to {url}{tail} refused", url)
    assert text == f"cannot connect to postgresql://ops@db:5432/operations?password=***&sslmode=disable{tail} refused"
    assert redact_text("see https://u:pw12@h/x.") == "see https://u:***@h/x."


@pytest.mark.parametrize("password", NASTY)
def test_a_warehouse_that_refuses_the_password_says_so_without_it(postgres_url, password):
    real = urlsplit(postgres_url)
    for url in url_forms(password, host=f"{real.hostname}:{real.port}"):
        with pytest.raises(WarehouseError) as error:
            open_backend(url, Path("."))
        assert_hidden(password, error.value.message)
        assert "\n" not in error.value.message


@pytest.mark.parametrize("password", ["pa/ss#wo?rd", "p[a]@ss:word", "pa ss&=%"])
def test_a_password_with_url_characters_connects_unencoded(postgres_url, password):
    import psycopg
    from psycopg import sql

    role = f"nasty_{abs(hash(password)) % 10_000}"
    with psycopg.connect(postgres_url, autocommit=True) as con:
        con.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
        con.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
    real = urlsplit(postgres_url)
    try:
        for url in [f"postgresql://{role}:{password}@{real.hostname}:{real.port}{real.path}",
                    f"postgresql://{role}@{real.hostname}:{real.port}{real.path}?password={quote(password)}"]:
            backend, _ = open_backend(url, Path("."))
            assert backend.raw_sql("SELECT current_user").fetchone() == (role,)
            backend.disconnect()
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as con:
            con.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def write_project(root: Path, warehouse: str, sources: dict | None = None) -> Path:
    config = {"name": "secrets", "warehouse": warehouse,
              "models": {"orders": {"table": "orders", "time": "at", "measures": {"orders": {"count": "*"}}}}}
    if sources:
        config["sources"] = sources
    (root / "tally.yml").write_text(yaml.safe_dump(config))
    return root


@pytest.mark.parametrize("password", NASTY)
@pytest.mark.parametrize("debug", [False, True])
def test_cli_errors_and_debug_output_hide_the_password(tmp_path, monkeypatch, password, debug):
    for url in url_forms(password, host=f"127.0.0.1:{closed_port()}"):
        monkeypatch.setenv("WAREHOUSE_URL", url)
        root = write_project(tmp_path, "${WAREHOUSE_URL}")
        args = ["-p", str(root), *(["--debug"] if debug else []), "query", "orders"]
        result = invoke(*args)
        assert result.exit_code != 0
        shown = result.output + (result.stderr if result.stderr_bytes is not None else "")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            shown += "".join(traceback.format_exception(result.exception))
        assert "cannot connect to postgresql://analyst" in shown
        assert_hidden(password, shown)


@pytest.mark.parametrize("password", NASTY[:6])
def test_ingest_json_and_the_load_record_hide_a_source_password(tmp_path, monkeypatch, password):
    source_url = url_forms(password, host=f"127.0.0.1:{closed_port()}")[0]
    monkeypatch.setenv("SOURCE_URL", source_url)
    root = write_project(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", {"orders": {
        "kind": "sql", "url": "${SOURCE_URL}", "source_table": "orders", "table": "orders"}})
    result = invoke("-p", root, "ingest", "--format", "json")
    assert result.exit_code == 1
    assert_hidden(password, result.output)
    loads = json.loads(result.stdout)
    assert loads[0]["status"] == "failed" and "***" in loads[0]["error"]
    project = tally.Project.load(root)
    try:
        warehouse = project.warehouse
        stored = warehouse.run(warehouse.compile(warehouse.table("_tally_loads"))).to_pylist()
    finally:
        project.close()
    assert stored and all(load["status"] == "failed" for load in stored)
    assert_hidden(password, json.dumps(stored, default=str))


@pytest.mark.parametrize("password", NASTY)
def test_lambda_answers_and_logs_hide_the_password(tmp_path, monkeypatch, capsys, password):
    from tally.aws import lambda_handler

    monkeypatch.setenv("WAREHOUSE_URL", url_forms(password, "mysql", f"127.0.0.1:{closed_port()}")[2])
    monkeypatch.setenv("TALLY_PROJECT", str(write_project(tmp_path, "${WAREHOUSE_URL}")))
    answer = lambda_handler({"environment": "development", "statisticsType": "financial",
                             "dateRange": {"start": "2024-01-01", "end": "2024-01-31"}}, None)
    assert answer["statusCode"] >= 400
    assert_hidden(password, json.dumps(answer) + capsys.readouterr().out)


# -- http: configured headers stay with the API's origin ------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    """Answers /records with [] and records headers; /redirect?to=URL answers 302 to it."""

    seen: list[dict] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", unquote(self.path.split("to=", 1)[1]))
            self.end_headers()
            return
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b'[{"id": 1}]'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def two_origins():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), _Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("same_origin", [True, False])
def test_configured_headers_are_not_sent_to_another_origin(two_origins, tmp_path, monkeypatch, same_origin):
    home, other = two_origins
    target = f"{home if same_origin else other}/records"
    monkeypatch.setenv("API_KEY", "k3y-s3cret")
    root = write_project(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", {"records": {
        "kind": "http", "url": f"{home}/redirect?to={target}", "table": "records",
        "headers": {"X-API-Key": "${API_KEY}", "X-Tenant": "acme", "Accept-Language": "en"}}})
    result = invoke("-p", root, "ingest", "--format", "json")
    assert result.exit_code == 0, result.output
    [headers] = _Recorder.seen
    assert headers["host"] == urlsplit(target).netloc
    assert headers["accept-language"] == "en"
    if same_origin:
        assert headers["x-api-key"] == "k3y-s3cret" and headers["x-tenant"] == "acme"
    else:
        assert "x-api-key" not in headers and "x-tenant" not in headers
