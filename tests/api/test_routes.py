"""Every route of the API through the app: shapes, paging, errors as {"error": {code, message}},
offline Swagger UI, Prometheus text, OpenAPI."""

from __future__ import annotations

import re

import pytest

from tests.api.conftest import client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert "Traceback" not in response.text
    return body["error"]


def test_health_and_ready(duck):
    assert duck.get("/healthz").json() == {"status": "ok"}
    assert duck.get("/readyz").json() == {"status": "ready", "project": "h5api"}


def test_readyz_is_503_when_the_warehouse_is_gone(tmp_path):
    from tally import Project

    (tmp_path / "tally.yml").write_text("name: gone\nwarehouse: postgresql://u:s3cretpw@127.0.0.1:1/x\n")
    project = Project.load(tmp_path)
    response = client(project).get("/readyz")
    project.close()
    assert error_of(response, 503)["code"] == "not_ready"
    assert "s3cretpw" not in response.text


def test_metric_catalog(duck):
    rows = duck.get("/api/v1/metrics").json()
    assert {r["metric"] for r in rows} == {"revenue", "sold", "avg_sale"}
    assert next(r for r in rows if r["metric"] == "revenue")["dimensions"] == ["shop"]


def test_query_get_and_post_agree(duck):
    got = duck.get("/api/v1/query", params={"metrics": "revenue,sold", "by": "shop", "from": "2026-09-01",
                                            "to": "2026-10-01"})
    posted = duck.post("/api/v1/query", json={"metrics": ["revenue", "sold"], "by": ["shop"], "from": "2026-09-01",
                                              "to": "2026-10-01"})
    assert got.status_code == posted.status_code == 200
    assert got.json() == posted.json()
    assert got.json()["rows"] == [{"shop": "a", "revenue": 15.5, "sold": 2}, {"shop": "b", "revenue": 120.26, "sold": 2}]
    assert '"revenue": 120.26' in got.text   # the decimal's digits, as --format json writes them


def test_query_meta_says_rollup_or_live(duck):
    routed = duck.get("/api/v1/query", params={"metrics": "revenue", "grain": "day", "from": "2026-09-01",
                                               "to": "2026-09-03"}).json()["meta"]
    live = duck.get("/api/v1/query", params={"metrics": "revenue", "grain": "day", "from": "2026-09-01",
                                             "to": "2026-09-03", "live": "true"}).json()["meta"]
    assert routed["source"] == "rollup" and routed["rollup"]["name"] == "h5_daily" and routed["rollup"]["built_at"]
    assert live["source"] == "live" and live["forced_live"] is True and live["rollup"] is None
    assert live["timezone"] == "Europe/Istanbul" and live["grain"] == "day"
    assert live["models"]["sales"]["last_load"] and live["models"]["sales"]["table"] == "h5_sales"
    # a live answer did not take the router away from the next one
    again = duck.get("/api/v1/query", params={"metrics": "revenue", "grain": "day", "from": "2026-09-01",
                                              "to": "2026-09-03"}).json()["meta"]
    assert again["source"] == "rollup"


def test_query_options(duck):
    rows = duck.get("/api/v1/query", params={"metrics": "revenue", "by": "shop", "order": "-revenue", "limit": 1,
                                             "period": "2026-09"}).json()["rows"]
    assert rows == [{"shop": "b", "revenue": 120.26}]
    compared = duck.post("/api/v1/query", json={"metrics": "revenue", "grain": "day", "from": "2026-09-02",
                                                "to": "2026-09-03", "compare": "previous_period",
                                                "where": "shop = 'a'", "timezone": "UTC", "fill": False}).json()
    assert compared["rows"] == [{"period": "2026-09-02", "revenue": 5.0, "revenue_previous": 10.5,
                                 "revenue_change": -5.5, "revenue_change_pct": pytest.approx(-52.381, abs=1e-3)}]
    assert compared["meta"]["compare"]["kind"] == "previous_period"


@pytest.mark.parametrize("params,code", [
    ({"metrics": "nope"}, "bad_query"),
    ({"metrics": "revenue", "from": "2026-13-45"}, "bad_query"),
    ({"metrics": "revenue", "where": "shop = = 'a'"}, "bad_expression"),
    ({"metrics": "revenue", "where": "drop_table(x)"}, "bad_expression"),
    ({"metrics": "revenue", "grain": "fortnight"}, "bad_query"),
    ({"metrics": "revenue", "last": "30x"}, "bad_query"),
    ({"metrics": "revenue", "last": "30d", "period": "2026"}, "bad_query"),
    ({"metrics": "revenue", "timezone": "Mars/Base"}, "bad_query"),
    ({"metrics": "revenue", "by": "nope"}, "bad_query"),
    ({"metrics": "revenue", "limit": "ten"}, "bad_request"),
    ({"metrics": "revenue", "limit": 10 ** 9}, "bad_page"),
    ({}, "bad_request"),
])
def test_bad_queries_are_4xx_in_the_error_shape(duck, params, code):
    response = duck.get("/api/v1/query", params=params)
    assert 400 <= response.status_code < 500, response.text
    assert error_of(response, response.status_code)["code"] == code


def test_bad_post_bodies(duck):
    assert error_of(duck.post("/api/v1/query", content=b"{not json", headers={"content-type": "application/json"}),
                    400)["code"] == "bad_request"
    assert error_of(duck.post("/api/v1/query", json={"metrics": "revenue", "colour": "red"}), 400)["code"] == "bad_request"
    assert error_of(duck.post("/api/v1/query", json={"metrics": "revenue", "fill": "sometimes"}), 400)


def test_unknown_route_and_method(duck):
    assert error_of(duck.get("/api/v1/nothing"), 404)["code"] == "not_found"
    assert error_of(duck.delete("/api/v1/query"), 405)["code"] == "method_not_allowed"


def test_rollup_list_and_rows(duck):
    listed = duck.get("/api/v1/rollups").json()
    assert [r["name"] for r in listed] == ["h5_daily"] and listed[0]["grains"] == ["day", "month"]
    assert listed[0]["built_at"]
    rows = duck.get("/api/v1/rollups/h5_daily", params={"grain": "day", "shop": "a"}).json()
    assert [(r["period_start"], r["shop"], r["revenue"], r["sold"]) for r in rows["rows"]] == [
        ("2026-09-01", "a", 10.5, 1), ("2026-09-02", "a", 5.0, 1)]
    month = duck.get("/api/v1/rollups/h5_daily", params={"grain": "month", "from": "2026-09-01", "to": "2026-10-01"})
    assert {(r["shop"], r["revenue"]) for r in month.json()["rows"]} == {("a", 15.5), ("b", 120.26)}


def test_rollup_rows_page_by_offset_and_cursor(duck):
    whole = duck.get("/api/v1/rollups/h5_daily", params={"limit": 100}).json()
    assert whole["next"] is None and len(whole["rows"]) == 6   # 4 day rows + 2 month rows
    seen, cursor = [], None
    while True:
        params = {"limit": 4} | ({"cursor": cursor} if cursor else {})
        page = duck.get("/api/v1/rollups/h5_daily", params=params).json()
        seen += page["rows"]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == whole["rows"]
    by_offset = duck.get("/api/v1/rollups/h5_daily", params={"limit": 4, "offset": 4}).json()
    assert by_offset["rows"] == whole["rows"][4:]


@pytest.mark.parametrize("params,status,code", [
    ({"limit": 0}, 400, "bad_page"),
    ({"limit": 10 ** 6}, 400, "bad_page"),
    ({"offset": -1}, 400, "bad_page"),
    ({"cursor": "garbage!"}, 400, "bad_page"),
    ({"limit": "x"}, 400, "bad_request"),
    ({"grain": "hour"}, 422, "bad_query"),
    ({"from": "yesterday"}, 422, "bad_query"),
    ({"colour": "red"}, 422, "bad_query"),
])
def test_bad_rollup_pages(duck, params, status, code):
    assert error_of(duck.get("/api/v1/rollups/h5_daily", params=params), status)["code"] == code


def test_cursor_of_another_listing_is_refused(duck):
    cursor = duck.get("/api/v1/rollups/h5_daily", params={"limit": 1}).json()["next"]
    response = duck.get("/api/v1/rollups/h5_daily", params={"limit": 1, "cursor": cursor, "shop": "a"})
    assert error_of(response, 400)["code"] == "bad_page"


def test_unknown_rollup_and_source_are_404(duck):
    assert error_of(duck.get("/api/v1/rollups/nope"), 404)["code"] == "not_found"
    assert error_of(duck.get("/api/v1/sources/nope/rejects"), 404)["code"] == "not_found"


def test_sources_and_rejects(duck):
    (source,) = duck.get("/api/v1/sources").json()
    assert source["source"] == "h5_sales" and source["rows"] == 4 and source["rejects"] == 1
    assert source["last_load"]["rows_read"] == 5 and source["last_load"]["rows_loaded"] == 4
    assert source["last_load"]["rows_rejected"] == 1 and source["last_load"]["status"] == "ok"
    page = duck.get("/api/v1/sources/h5_sales/rejects").json()
    assert len(page["rows"]) == 1 and "not a time" in page["rows"][0]["raw"] and page["next"] is None
    empty = duck.get("/api/v1/sources/h5_sales/rejects", params={"offset": 1}).json()
    assert empty["rows"] == []


def test_prometheus_text_parses(duck):
    from prometheus_client.parser import text_string_to_metric_families

    duck.get("/api/v1/rollups/h5_daily")
    duck.get("/api/v1/rollups/nope")
    text = duck.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    latency = families["tally_http_request_duration_seconds"]
    routes = {(s.labels["route"], s.labels["status"]) for s in latency.samples if s.name.endswith("_count")}
    assert ("/api/v1/rollups/{name}", "200") in routes and ("/api/v1/rollups/{name}", "404") in routes
    assert not any("nope" in route for route, _ in routes)   # templates, not paths
    loaded = {s.labels["source"]: s.value for s in families["tally_source_rows_loaded"].samples
              if s.name == "tally_source_rows_loaded_total"}
    rejected = {s.labels["source"]: s.value for s in families["tally_source_rows_rejected"].samples
                if s.name == "tally_source_rows_rejected_total"}
    assert loaded == {"h5_sales": 4.0} and rejected == {"h5_sales": 1.0}
    (lag,) = families["tally_source_data_lag_seconds"].samples
    assert 0 <= lag.value < 3600


def test_openapi_document(duck):
    document = duck.get("/api/openapi.json").json()
    paths = document["paths"]
    for path in ("/api/v1/query", "/api/v1/metrics", "/api/v1/rollups", "/api/v1/rollups/{name}", "/api/v1/sources",
                 "/api/v1/sources/{name}/rejects", "/healthz", "/readyz", "/metrics"):
        assert path in paths, path
    assert set(paths["/api/v1/query"]) == {"get", "post"}
    assert paths["/api/v1/query"]["get"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/ErrorBody")


def test_swagger_ui_works_offline(duck):
    page = duck.get("/api/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)""", page.text)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in page.text and "https://" not in page.text
    for url in urls:
        assert duck.get(url).status_code == 200, url
    assert "/api/openapi.json" in urls


def test_create_app_has_no_side_effect(tmp_path):
    import subprocess
    import sys

    code = "import sys, tally.api; print('fastapi' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
    from tally import Project
    from tally.api import create_app

    (tmp_path / "tally.yml").write_text(f"name: fresh\nwarehouse: duckdb:///{tmp_path}/w.duckdb\n")
    project = Project.load(tmp_path)
    create_app(project)
    assert not (tmp_path / "w.duckdb").exists() and "warehouse" not in project.__dict__
    project.close()


def test_rollups_answer_as_a_fresh_servers_first_request(duck_dir):
    """GET /api/v1/rollups before anything opened the warehouse (it read Tally's state through the
    plain driver, which cannot compile: a 500 when the suite ran it first)."""
    from tally import Project

    project = Project.load(duck_dir)
    try:
        response = client(project).get("/api/v1/rollups")
        assert response.status_code == 200, response.text
        assert [row["name"] for row in response.json()] == list(project.config.rollups)
    finally:
        project.close()
