"""The web console: server-rendered pages (Jinja2) over the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from jitadmin.entrypoints.web import (
    account_pages,
    admin_pages,
    agent_pages,
    app_pages,
    approval_pages,
    grant_pages,
    jsonapi,
    notification_pages,
    oidc_pages,
    request_form,
    signin,
    user_pages,
)
from jitadmin.entrypoints.web.render import STATIC


def install(api: FastAPI) -> None:
    """Mount the console on the API's application (``/`` is the request form)."""
    pages = (signin, request_form, grant_pages, approval_pages, admin_pages, user_pages,
             account_pages, notification_pages, oidc_pages, agent_pages, app_pages,
             jsonapi)  # fmt: skip
    for module in pages:
        api.include_router(module.router)
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
