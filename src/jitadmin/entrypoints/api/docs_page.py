"""``/docs`` when ``JITADMIN_API_DOCS=true``: the API's operations as one script-free page.

FastAPI's own /docs and /redoc load Swagger UI and ReDoc from a CDN and run inline script; they
are never served. This page is rendered here from the OpenAPI document (also served as
``/openapi.json``) with no script, style sheet or image, and the API's CSP (nothing may load).
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

METHODS = ("get", "post", "put", "patch", "delete")


def _rows(document: dict[str, Any]) -> list[str]:
    rows = []
    for path, item in sorted(document.get("paths", {}).items()):
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            summary = operation.get("summary") or operation.get("operationId", "")
            rows.append(
                f"<tr><td>{method.upper()}</td><td><code>{escape(path)}</code></td>"
                f"<td>{escape(str(summary))}</td></tr>"
            )
    return rows


def render(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"</head><body><h1>{title}</h1><p>The full description is "
        "<a href='/openapi.json'>/openapi.json</a> (OpenAPI 3).</p><table>"
        "<tr><th>Method</th><th>Path</th><th>Summary</th></tr>"
        + "".join(_rows(document))
        + "</table></body></html>"
    )


def install(api: FastAPI) -> None:
    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(render(api.openapi()))
