"""Swagger UI at `/api/docs` from files shipped with Tally (the fastapi-offline wheel's static
folder): the page loads nothing from the internet."""

from __future__ import annotations

from pathlib import Path

STATIC = "/api/static"


def static_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def install(app, openapi_url: str) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    app.mount(STATIC, StaticFiles(directory=static_dir()), name="api-static")

    @app.get("/api/docs", include_in_schema=False)
    def swagger():
        return get_swagger_ui_html(openapi_url=openapi_url, title="Tally API",
                                   swagger_js_url=f"{STATIC}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{STATIC}/swagger-ui.css",
                                   swagger_favicon_url=f"{STATIC}/favicon.png",
                                   swagger_ui_parameters={"validatorUrl": None})
