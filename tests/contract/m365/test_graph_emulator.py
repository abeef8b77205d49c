"""Microsoft Graph + Entra token emulator, spoken to over real HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msal
import pytest
from fastapi import FastAPI

from jitadmin.emulators.faults import FaultSettings
from jitadmin.emulators.graph.app import GraphState, create_graph_app
from jitadmin.emulators.graph.model import (
    GLOBAL_ADMINISTRATOR,
    USER_ADMINISTRATOR,
    USER_DEFAULT_SELECT,
    assignment_id,
)
from jitadmin.emulators.runner import RunningServer, serve_in_thread
from jitadmin.emulators.seed import CUSTOMERS, SeedCredentials

from support.faults import HELD_MS

T = TypeVar("T")

PEDRO, NORTHWIND = CUSTOMERS[0], CUSTOMERS[1]
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PASSWORD = "Sq7!vR2#kLm9@Tz"
ASSIGNMENTS = "roleManagement/directory/roleAssignments"
ENTRA_KEYS = {
    "error",
    "error_description",
    "error_codes",
    "timestamp",
    "trace_id",
    "correlation_id",
    "error_uri",
}


@dataclass
class World:
    server: RunningServer
    state: GraphState
    creds: SeedCredentials
    url: str  # the app root: /login, /v1.0 and /_admin live below it

    def token_response(self, tenant: str = PEDRO.tenant_id, **form: str) -> httpx.Response:
        data = {
            "client_id": self.creds.graph_client_id,
            "client_secret": self.creds.graph_client_secret,
            "scope": GRAPH_SCOPE,
            "grant_type": "client_credentials",
        }
        data.update(form)
        return httpx.post(f"{self.url}/login/{tenant}/oauth2/v2.0/token", data=data)

    def token(self, tenant: str = PEDRO.tenant_id) -> str:
        response = self.token_response(tenant)
        response.raise_for_status()
        return str(response.json()["access_token"])

    def graph(self, tenant: str = PEDRO.tenant_id, token: str | None = None) -> httpx.Client:
        bearer = token or self.token(tenant)
        return httpx.Client(
            base_url=f"{self.url}/v1.0/", headers={"Authorization": f"Bearer {bearer}"}
        )

    def faults(self, **settings: Any) -> dict[str, Any]:
        response = httpx.put(f"{self.url}/_admin/faults", json=settings)
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def journal(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/_admin/requests")
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()
        return entries


def new_user(
    client: httpx.Client, alias: str | None = None, domain: str = PEDRO.domain, **extra: Any
) -> dict[str, Any]:
    alias = alias or f"jit-{uuid.uuid4().hex[:10]}"
    body = {
        "accountEnabled": True,
        "displayName": f"JIT {alias}",
        "mailNickname": alias.replace("'", ""),
        "userPrincipalName": f"{alias}@{domain}",
        "passwordProfile": {"forceChangePasswordNextSignIn": False, "password": PASSWORD},
        **extra,
    }
    response = client.post("users", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def graph_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert the Graph envelope with this status and code; return the ``error`` object."""
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}
    assert error["innerError"]["request-id"] == response.headers["request-id"]
    return error


def entra_error(response: httpx.Response, status: int, error: str, aadsts: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == ENTRA_KEYS
    assert (body["error"], body["error_codes"]) == (error, [aadsts])
    assert body["error_description"].startswith(f"AADSTS{aadsts}: ")


def wait_for(probe: Callable[[], T | None], what: str, timeout_s: float = 10.0) -> T:
    """Poll ``probe`` until it returns something truthy; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.01)  # poll interval only; the deadline decides
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    creds = SeedCredentials()
    app, state = create_graph_app(CUSTOMERS, creds)
    server = serve_in_thread(app)
    try:
        yield World(server=server, state=state, creds=creds, url=server.url)
    finally:
        server.stop()


# Replication lag counted in requests is on by default (as Entra ID always lags); tests of
# other behaviours turn it off with ``settled``.
NO_LAG = {
    "deleted_lag_requests": 0,
    "assignment_lag_requests": 0,
    "removed_lag_requests": 0,
    "privileged_lag_requests": 0,
}


@pytest.fixture
def settled(world: World) -> None:
    world.faults(**NO_LAG)


@pytest.fixture(autouse=True)
def _clean_switches(world: World) -> Iterator[None]:
    yield
    httpx.delete(f"{world.url}/_admin/faults").raise_for_status()
    httpx.delete(f"{world.url}/_admin/requests").raise_for_status()


# --- Entra: discovery and tokens --------------------------------------------------------


@pytest.mark.parametrize("tenant", [PEDRO.tenant_id, PEDRO.domain])
def test_discovery_names_the_canonical_https_endpoints(world: World, tenant: str) -> None:
    response = httpx.get(f"{world.url}/login/{tenant}/v2.0/.well-known/openid-configuration")
    assert response.status_code == 200
    doc = response.json()
    base = f"https://login.microsoftonline.com/{PEDRO.tenant_id}"
    assert doc["issuer"] == f"{base}/v2.0"
    assert doc["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert doc["token_endpoint"] == f"{base}/oauth2/v2.0/token"


def test_discovery_of_an_unknown_tenant_is_400(world: World) -> None:
    unknown = str(uuid.uuid4())
    response = httpx.get(f"{world.url}/login/{unknown}/v2.0/.well-known/openid-configuration")
    entra_error(response, 400, "invalid_tenant", 90002)


def test_client_credentials_token(world: World) -> None:
    response = world.token_response()
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("token_type", "expires_in", "ext_expires_in")} == {
        "token_type": "Bearer",
        "expires_in": 3599,
        "ext_expires_in": 3599,
    }
    assert len(body["access_token"]) >= 32
    assert world.token_response(tenant=PEDRO.domain).status_code == 200


@pytest.mark.parametrize(
    ("tenant", "form", "status", "error", "aadsts"),
    [
        (None, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        (None, {"client_secret": ""}, 401, "invalid_client", 7000218),
        (None, {"client_id": str(uuid.uuid4())}, 400, "unauthorized_client", 700016),
        ("unknown", {}, 400, "invalid_request", 90002),
        (None, {"scope": "https://graph.microsoft.com/User.Read"}, 400, "invalid_scope", 70011),
        (None, {"grant_type": "refresh_token"}, 400, "unsupported_grant_type", 70003),
        (None, {"grant_type": ""}, 400, "invalid_request", 900144),
    ],
)
def test_token_errors_use_the_entra_envelope(
    world: World, tenant: str | None, form: dict[str, str], status: int, error: str, aadsts: int
) -> None:
    tenant_id = str(uuid.uuid4()) if tenant == "unknown" else PEDRO.tenant_id
    entra_error(world.token_response(tenant_id, **form), status, error, aadsts)


def test_expired_secret_and_missing_consent(world: World) -> None:
    try:
        world.state.set_app(NORTHWIND.tenant_id, secret_expired=True)
        entra_error(world.token_response(NORTHWIND.tenant_id), 401, "invalid_client", 7000222)
        world.state.set_app(NORTHWIND.tenant_id, secret_expired=False, consented=False)
        entra_error(world.token_response(NORTHWIND.tenant_id), 400, "unauthorized_client", 700016)
    finally:
        world.state.set_app(NORTHWIND.tenant_id, secret_expired=False, consented=True)
    assert world.token_response(NORTHWIND.tenant_id).status_code == 200


def test_correlation_id_echoes_client_request_id(world: World) -> None:
    correlation = str(uuid.uuid4())
    response = httpx.post(
        f"{world.url}/login/{PEDRO.tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials"},
        headers={"client-request-id": correlation},
    )
    entra_error(response, 400, "invalid_request", 900144)
    assert response.json()["correlation_id"] == correlation
    assert response.headers["client-request-id"] == correlation


class _LoginRewrite:
    """MSAL's ``http_client`` seam (MSAL wants https): Microsoft's login host -> the emulator."""

    def __init__(self, login_root: str) -> None:
        self.login_root = login_root
        self.client = httpx.Client()

    def _url(self, url: str) -> str:
        return url.replace("https://login.microsoftonline.com", self.login_root)

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
    ) -> httpx.Response:
        return self.client.post(self._url(url), params=params, data=data, headers=headers)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> httpx.Response:
        return self.client.get(self._url(url), params=params, headers=headers)

    def close(self) -> None:
        self.client.close()


def test_msal_gets_tokens_and_error_dicts(world: World) -> None:
    def app(secret: str) -> Any:
        return msal.ConfidentialClientApplication(
            world.creds.graph_client_id,
            client_credential=secret,
            authority=f"https://login.microsoftonline.com/{PEDRO.tenant_id}",
            http_client=_LoginRewrite(f"{world.url}/login"),
        )

    good = app(world.creds.graph_client_secret).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert good["token_type"] == "Bearer"
    with world.graph(token=good["access_token"]) as client:
        assert client.get("domains").status_code == 200
    # A failure comes back as a dict (MSAL then asks /common/discovery/instance).
    bad = app("wrong").acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert bad["error"] == "invalid_client"
    assert bad["error_codes"] == [7000215]


# --- bearer tokens and permissions ----------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "Access token is empty."),
        ("Bearer not-a-token", "CompactToken parsing failed"),
        ("Basic dXNlcjpwdw==", "Access token is empty."),
    ],
)
def test_missing_or_unknown_token_is_401(
    world: World, authorization: str | None, message: str
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = httpx.get(f"{world.url}/v1.0/users", headers=headers)
    error = graph_error(response, 401, "InvalidAuthenticationToken")
    assert error["message"].startswith(message)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expired_token_is_401(world: World) -> None:
    token = world.state.issue_token(PEDRO.tenant_id, lifetime_s=0)
    with world.graph(token=token) as client:
        error = graph_error(client.get("users"), 401, "InvalidAuthenticationToken")
    assert error["message"] == "Access token has expired or is not yet valid."


def test_admin_can_expire_every_token(world: World) -> None:
    with world.graph() as client:
        assert client.get("domains").status_code == 200
        assert httpx.delete(f"{world.url}/_admin/tokens").status_code == 204
        graph_error(client.get("domains"), 401, "InvalidAuthenticationToken")


def test_missing_application_permission_is_403(world: World) -> None:
    token = world.state.issue_token(PEDRO.tenant_id, roles=["User.Read.All"])
    with world.graph(token=token) as client:
        assert client.get("users").status_code == 200
        denied = client.post("users", json={"displayName": "x"})
        error = graph_error(denied, 403, "Authorization_RequestDenied")
        assert error["message"] == "Insufficient privileges to complete the operation."
        graph_error(client.get(ASSIGNMENTS), 403, "Authorization_RequestDenied")
        graph_error(client.get("domains"), 403, "Authorization_RequestDenied")


def test_every_response_carries_request_ids(world: World) -> None:
    with world.graph() as client:
        mine = str(uuid.uuid4())
        echoed = client.get("domains", headers={"client-request-id": mine})
        generated = client.get(f"users/{uuid.uuid4()}")
    assert echoed.headers["client-request-id"] == mine
    assert echoed.headers["request-id"] != mine
    assert echoed.headers["content-type"].startswith("application/json")
    error = graph_error(generated, 404, "Request_ResourceNotFound")
    assert error["innerError"]["client-request-id"] == generated.headers["client-request-id"]


def test_unknown_segment_is_400(world: World) -> None:
    with world.graph() as client:
        error = graph_error(client.get("nonsense"), 400, "BadRequest")
    assert "nonsense" in error["message"]


# --- domains and users ------------------------------------------------------------------


def test_domains_list_initial_and_unverified(world: World) -> None:
    with world.graph() as client:
        response = client.get("domains", params={"$select": "id,isInitial,isDefault,isVerified"})
    assert response.status_code == 200
    domains = {d["id"]: d for d in response.json()["value"]}
    assert domains[PEDRO.domain] == {
        "id": PEDRO.domain,
        "isInitial": True,
        "isDefault": True,
        "isVerified": True,
    }
    unverified = [d for d in domains.values() if not d["isVerified"]]
    assert len(unverified) == 1
    assert set(unverified[0]) == {"id", "isInitial", "isDefault", "isVerified"}


def test_create_user_answers_201_with_the_default_property_set(world: World) -> None:
    with world.graph() as client:
        user = new_user(client, employeeType="jitadmin")
        selected = client.get(
            f"users/{user['id']}",
            params={"$select": "id,accountEnabled,employeeType,mailNickname,createdDateTime"},
        )
    assert set(user) == {"@odata.context", *USER_DEFAULT_SELECT}
    assert user["@odata.context"] == f"{world.url}/v1.0/$metadata#users/$entity"
    assert user["businessPhones"] == []
    assert user["givenName"] is None
    assert str(uuid.UUID(user["id"])) == user["id"]
    props = selected.json()
    assert props["accountEnabled"] is True
    assert props["employeeType"] == "jitadmin"
    assert props["createdDateTime"].endswith("Z")
    assert "displayName" not in props
    stored = world.state.find_user(PEDRO.tenant_id, user["id"])
    assert stored is not None
    assert stored.password == PASSWORD
    assert PASSWORD not in repr(stored)


BAD_PASSWORD = "The specified password does not comply with password complexity requirements."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"passwordProfile": {"password": "Sh0rt!"}}, BAD_PASSWORD),
        ({"passwordProfile": {"password": "alllowercase1234"}}, BAD_PASSWORD),
        ({"passwordProfile": {"password": "Unicode\u00e9Pass1"}}, BAD_PASSWORD),
        ({"userPrincipalName": "x@pedroaviary.example"}, "The domain portion of the"),
        ({"userPrincipalName": "x@elsewhere.com"}, "The domain portion of the"),
        ({"userPrincipalName": "j\u00f6rg@pedroaviary.onmicrosoft.com"}, "Property userPrinc"),
        ({"userPrincipalName": "a b@pedroaviary.onmicrosoft.com"}, "Property userPrinc"),
        ({"mailNickname": "has space"}, "Invalid value specified for property 'mailNickname'"),
        ({"accountEnabled": "yes"}, "Invalid value specified for property 'accountEnabled'"),
        ({"favouriteColour": "blue"}, "Property 'favouriteColour' does not exist"),
        ({"displayName": None}, "Invalid value specified for property 'displayName'"),
    ],
)
def test_create_user_validation(world: World, change: dict[str, Any], message: str) -> None:
    body: dict[str, Any] = {
        "accountEnabled": True,
        "displayName": "JIT",
        "mailNickname": "jit-valid",
        "userPrincipalName": f"jit-valid@{PEDRO.domain}",
        "passwordProfile": {"password": PASSWORD},
    }
    body.update(change)
    with world.graph() as client:
        error = graph_error(client.post("users", json=body), 400, "Request_BadRequest")
    assert error["message"].startswith(message)


@pytest.mark.parametrize("missing", ["accountEnabled", "mailNickname", "passwordProfile"])
def test_create_user_requires_properties(world: World, missing: str) -> None:
    body: dict[str, Any] = {
        "accountEnabled": True,
        "displayName": "JIT",
        "mailNickname": "jit-x",
        "userPrincipalName": f"jit-x@{PEDRO.domain}",
        "passwordProfile": {"password": PASSWORD},
    }
    del body[missing]
    with world.graph() as client:
        error = graph_error(client.post("users", json=body), 400, "Request_BadRequest")
    assert missing in error["message"]


def test_duplicate_upn_is_an_object_conflict(world: World) -> None:
    with world.graph() as client:
        user = new_user(client)
        again = client.post(
            "users",
            json={
                "accountEnabled": True,
                "displayName": "dup",
                "mailNickname": "dup",
                "userPrincipalName": user["userPrincipalName"].upper(),
                "passwordProfile": {"password": PASSWORD},
            },
        )
    error = graph_error(again, 400, "Request_BadRequest")
    assert error["details"][0] == {"code": "ObjectConflict", "target": "userPrincipalName"}


def test_get_user_by_id_or_upn(world: World) -> None:
    with world.graph() as client:
        user = new_user(client, alias=f"o'neil-{uuid.uuid4().hex[:6]}")
        by_id = client.get(f"users/{user['id']}").json()
        by_upn = client.get(f"users/{user['userPrincipalName']}").json()
        missing = client.get(f"users/nobody@{PEDRO.domain}")
        bad_select = client.get(f"users/{user['id']}", params={"$select": "id,shoeSize"})
    assert by_id == by_upn
    assert by_id["userPrincipalName"] == user["userPrincipalName"]
    error = graph_error(missing, 404, "Request_ResourceNotFound")
    assert f"nobody@{PEDRO.domain}" in error["message"]
    graph_error(bad_select, 400, "BadRequest")


EVENTUAL = {"ConsistencyLevel": "eventual"}


def test_filter_equality_with_and_or_and_quote_doubling(world: World) -> None:
    marker = f"t{uuid.uuid4().hex[:8]}"
    with world.graph() as client:
        quoted = new_user(client, alias=f"o'brien-{marker}", employeeType=marker)
        plain = new_user(client, alias=f"plain-{marker}", employeeType=marker)
        client.patch(f"users/{plain['id']}", json={"accountEnabled": False})

        def query(expression: str, *, advanced: bool = False) -> list[str]:
            params = {"$filter": expression, "$select": "id"}
            headers = EVENTUAL if advanced else {}
            if advanced:
                params["$count"] = "true"
            response = client.get("users", params=params, headers=headers)
            assert response.status_code == 200, response.text
            return sorted(u["id"] for u in response.json()["value"])

        upn = quoted["userPrincipalName"].replace("'", "''")
        assert query(f"userPrincipalName eq '{upn}'") == [quoted["id"]]
        assert query(f"userPrincipalName eq '{upn.upper()}'") == [quoted["id"]]
        both = sorted([quoted["id"], plain["id"]])
        assert query(f"employeeType eq '{marker}'", advanced=True) == both
        assert query(f"employeeType eq '{marker}' and accountEnabled eq false", advanced=True) == [
            plain["id"]
        ]
        assert query(
            f"(id eq '{quoted['id']}' or id eq '{plain['id']}') and accountEnabled eq true"
        )
        assert query(f"mailNickname eq 'nobody-{marker}'") == []


def test_advanced_only_properties_need_consistency_level_and_count(world: World) -> None:
    """employeeType (like companyName, officeLocation, ...) is marked "advanced" even for eq in
    Microsoft's per-property table; without ``ConsistencyLevel: eventual`` and ``$count=true``
    Graph answers 400 Request_UnsupportedQuery. With both it filters, and ``$count=true`` adds
    ``@odata.count``: https://learn.microsoft.com/graph/aad-advanced-queries"""
    marker = f"a{uuid.uuid4().hex[:8]}"
    with world.graph() as client:
        ids = sorted(new_user(client, employeeType=marker)["id"] for _ in range(3))
        expression = f"employeeType eq '{marker}'"
        message = (
            "Unsupported or invalid query filter clause specified for property 'employeeType' "
            "of resource 'User'."
        )
        for params, headers in (
            ({"$filter": expression}, {}),
            ({"$filter": expression}, EVENTUAL),
            ({"$filter": expression, "$count": "true"}, {}),
        ):
            error = graph_error(
                client.get("users", params=params, headers=headers),
                400,
                "Request_UnsupportedQuery",
            )
            assert error["message"] == message
        for prop in ("companyName", "officeLocation", "passwordPolicies"):
            refused = client.get("users", params={"$filter": f"{prop} eq 'x'"})
            graph_error(refused, 400, "Request_UnsupportedQuery")

        advanced = {"$filter": expression, "$count": "true", "$top": "2", "$select": "id"}
        first = client.get("users", params=advanced, headers=EVENTUAL)
        assert first.status_code == 200, first.text
        assert first.json()["@odata.count"] == 3
        link = first.json()["@odata.nextLink"]
        # ConsistencyLevel is not carried in the link: a client must send it again.
        graph_error(client.get(link), 400, "Request_UnsupportedQuery")
        second = client.get(link, headers=EVENTUAL).json()
        assert "@odata.count" not in second  # only on the first page
        seen = [u["id"] for u in first.json()["value"] + second["value"]]
        assert sorted(seen) == ids


def test_count_without_consistency_level_is_silently_ignored(world: World) -> None:
    """https://learn.microsoft.com/graph/aad-advanced-queries ("Error handling"): ``$count=true``
    without the ConsistencyLevel header is ignored, not refused."""
    with world.graph() as client:
        plain = client.get("users", params={"$count": "true", "$select": "id"})
        counted = client.get("users", params={"$count": "true", "$select": "id"}, headers=EVENTUAL)
    assert plain.status_code == 200 and "@odata.count" not in plain.json()
    assert counted.json()["@odata.count"] == len(counted.json()["value"]) >= 1


def test_in_and_starts_with_work_by_default_where_graph_allows(world: World) -> None:
    """``in`` works wherever ``eq`` does by default; ``startsWith`` by default on displayName,
    userPrincipalName and mail; ``ne``/``endsWith`` only as advanced queries:
    https://learn.microsoft.com/graph/aad-advanced-queries"""
    marker = f"s{uuid.uuid4().hex[:8]}"
    with world.graph() as client:
        one = new_user(client, alias=f"{marker}-one")
        two = new_user(client, alias=f"{marker}-two")

        def ids(expression: str, headers: dict[str, str] | None = None) -> list[str]:
            params = {"$filter": expression, "$select": "id"}
            if headers:
                params["$count"] = "true"
            response = client.get("users", params=params, headers=headers or {})
            assert response.status_code == 200, response.text
            return sorted(u["id"] for u in response.json()["value"])

        both = sorted([one["id"], two["id"]])
        upns = ",".join(f"'{u['userPrincipalName']}'" for u in (one, two))
        assert ids(f"userPrincipalName in ({upns})") == both
        assert ids(f"startsWith(userPrincipalName, '{marker}')") == both
        assert ids(f"startswith(displayName,'JIT {marker}-o')") == [one["id"]]
        assert ids(f"id in ('{one['id']}')") == [one["id"]]
        ends = f"endsWith(userPrincipalName, '{marker}-two@{PEDRO.domain}')"
        error = graph_error(
            client.get("users", params={"$filter": ends}), 400, "Request_UnsupportedQuery"
        )
        assert "ConsistencyLevel:eventual" in error["message"]
        assert ids(ends, EVENTUAL) == [two["id"]]
        not_one = f"startsWith(userPrincipalName, '{marker}') and id ne '{one['id']}'"
        assert ids(not_one, EVENTUAL) == [two["id"]]
        in_tag = client.get("users", params={"$filter": "employeeType in ('jitadmin')"})
        graph_error(in_tag, 400, "Request_UnsupportedQuery")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"$filter": "userPrincipalName ne 'x'"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "startswith(jobTitle,'J')"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "contains(displayName,'J')"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "not accountEnabled eq true"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "employeeType eq 'x'"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "shoeSize eq 'x'"}, 400, "Request_UnsupportedQuery"),
        ({"$filter": "userPrincipalName eq 'unterminated"}, 400, "BadRequest"),
        ({"$filter": "accountEnabled eq 'true'"}, 400, "BadRequest"),
        ({"$orderby": "displayName"}, 400, "Request_UnsupportedQuery"),
        ({"$count": "maybe"}, 400, "BadRequest"),
        ({"$top": "1000"}, 400, "Request_UnsupportedQuery"),
        ({"$top": "0"}, 400, "Request_UnsupportedQuery"),
        ({"$skiptoken": "bm9wZQ"}, 400, "Request_BadRequest"),
    ],
)
def test_unsupported_queries_are_400(
    world: World, params: dict[str, str], status: int, code: str
) -> None:
    with world.graph() as client:
        graph_error(client.get("users", params=params), status, code)


def test_paging_with_absolute_next_links(world: World) -> None:
    marker = f"p{uuid.uuid4().hex[:8]}"
    with world.graph() as client:
        created = {new_user(client, employeeType=marker)["id"] for _ in range(5)}
        url: str | None = "users"
        params: dict[str, str] | None = {"$filter": f"employeeType eq '{marker}'", "$top": "2",
                                         "$count": "true"}  # fmt: skip
        seen: list[str] = []
        pages = 0
        while url is not None:
            page = client.get(url, params=params, headers=EVENTUAL).json()
            pages += 1
            seen += [u["id"] for u in page["value"]]
            url, params = page.get("@odata.nextLink"), None
            if url is not None:
                assert url.startswith(f"{world.url}/v1.0/users?")
                assert "$skiptoken=" in url
                assert "$top=2" in url
    assert pages == 3
    assert sorted(seen) == sorted(created)


def test_patch_user_and_password_reset_needs_a_directory_role(world: World, settled: None) -> None:
    with world.graph() as client:
        user = new_user(client)
        assert (
            client.patch(f"users/{user['id']}", json={"accountEnabled": False}).status_code == 204
        )
        props = client.get(f"users/{user['id']}", params={"$select": "accountEnabled"}).json()
        assert props["accountEnabled"] is False
        weak = client.patch(f"users/{user['id']}", json={"passwordProfile": {"password": "a"}})
        graph_error(weak, 400, "Request_BadRequest")
        reset = {"passwordProfile": {"password": "Nw8%hT3!kP6@yQ1&"}}
        graph_error(
            client.patch(f"users/{user['id']}", json=reset), 403, "Authorization_RequestDenied"
        )
        # With User Administrator on the app's service principal, the app-only reset works.
        sp_id = world.state.service_principal_id(PEDRO.tenant_id)
        grant = client.post(
            ASSIGNMENTS,
            json={
                "roleDefinitionId": USER_ADMINISTRATOR,
                "principalId": sp_id,
                "directoryScopeId": "/",
            },
        )
        assert grant.status_code == 201
        try:
            assert client.patch(f"users/{user['id']}", json=reset).status_code == 204
        finally:
            assert client.delete(f"{ASSIGNMENTS}/{grant.json()['id']}").status_code == 204
    stored = world.state.find_user(PEDRO.tenant_id, user["id"])
    assert stored is not None
    assert stored.password == reset["passwordProfile"]["password"]


def test_revoke_sign_in_sessions_answers_200_with_a_boolean(world: World) -> None:
    with world.graph() as client:
        user = new_user(client)
        select = {"$select": "signInSessionsValidFromDateTime"}
        before = client.get(f"users/{user['id']}", params=select).json()
        response = client.post(f"users/{user['id']}/revokeSignInSessions")
        after = client.get(f"users/{user['id']}", params=select).json()
    assert response.status_code == 200
    assert response.json() == {
        "@odata.context": f"{world.url}/v1.0/$metadata#Edm.Boolean",
        "value": True,
    }
    assert after["signInSessionsValidFromDateTime"] >= before["signInSessionsValidFromDateTime"]


def test_soft_delete_mangles_the_upn_which_can_be_reused(world: World, settled: None) -> None:
    with world.graph() as client:
        first = new_user(client)
        upn, uid = first["userPrincipalName"], first["id"]
        assert client.delete(f"users/{uid}").status_code == 204
        graph_error(client.get(f"users/{uid}"), 404, "Request_ResourceNotFound")
        graph_error(client.delete(f"users/{uid}"), 404, "Request_ResourceNotFound")
        listed = client.get(
            "directory/deletedItems/microsoft.graph.user",
            params={"$select": "id,userPrincipalName,deletedDateTime"},
        ).json()
        one = client.get(f"directory/deletedItems/{uid}").json()
        second = new_user(client, alias=upn.split("@")[0])
        restore = client.post(f"directory/deletedItems/{uid}/restore")
        purged = client.delete(f"directory/deletedItems/{uid}")
        again = client.delete(f"directory/deletedItems/{uid}")
        gone = client.get(f"directory/deletedItems/{uid}")
    mangled = uid.replace("-", "") + upn
    entry = next(u for u in listed["value"] if u["id"] == uid)
    assert entry["userPrincipalName"] == mangled
    assert entry["deletedDateTime"].endswith("Z")
    assert one["@odata.type"] == "#microsoft.graph.user"
    assert one["userPrincipalName"] == mangled
    assert second["userPrincipalName"] == upn
    assert second["id"] != uid
    error = graph_error(restore, 400, "Request_BadRequest")
    assert error["details"][0]["code"] == "ObjectConflict"
    assert purged.status_code == 204
    graph_error(again, 404, "Request_ResourceNotFound")
    graph_error(gone, 404, "Request_ResourceNotFound")


def test_restore_brings_back_the_original_upn(world: World, settled: None) -> None:
    with world.graph() as client:
        user = new_user(client)
        assert client.delete(f"users/{user['id']}").status_code == 204
        restored = client.post(f"directory/deletedItems/{user['id']}/restore")
        fetched = client.get(f"users/{user['id']}")
    assert restored.status_code == 200
    assert restored.json()["userPrincipalName"] == user["userPrincipalName"]
    assert fetched.status_code == 200


def test_deleted_items_need_the_type_cast(world: World) -> None:
    with world.graph() as client:
        graph_error(client.get("directory/deletedItems"), 400, "Request_BadRequest")


# --- role assignments -------------------------------------------------------------------


def test_assignment_ids_match_the_documented_examples() -> None:
    expected = "lAPpYvVpN0KRkAEhdxReEHJ1hPGqSKpHlqMuxhkE9B8-1"
    assert assignment_id(GLOBAL_ADMINISTRATOR, "f1847572-48aa-47aa-96a3-2ec61904f41f") == expected
    other = "lAPpYvVpN0KRkAEhdxReEH6aPA0bj3pLnFUfDi08S1o-1"
    assert assignment_id(GLOBAL_ADMINISTRATOR, "0d3c9a7e-8f1b-4b7a-9c55-1f0e2d3c4b5a") == other


def _assign(
    client: httpx.Client, principal: str, role: str = GLOBAL_ADMINISTRATOR
) -> httpx.Response:
    return client.post(
        ASSIGNMENTS,
        json={
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "roleDefinitionId": role,
            "principalId": principal,
            "directoryScopeId": "/",
        },
    )


def test_role_assignment_lifecycle(world: World, settled: None) -> None:
    with world.graph() as client:
        user = new_user(client)
        created = _assign(client, user["id"])
        duplicate = _assign(client, user["id"])
        by_principal = client.get(ASSIGNMENTS, params={"$filter": f"principalId eq '{user['id']}'"})
        by_role = client.get(
            ASSIGNMENTS, params={"$filter": f"roleDefinitionId eq '{GLOBAL_ADMINISTRATOR}'"}
        )
        rid = created.json()["id"]
        one = client.get(f"{ASSIGNMENTS}/{rid}", params={"$expand": "principal"})
        deleted = client.delete(f"{ASSIGNMENTS}/{rid}")
        deleted_again = client.delete(f"{ASSIGNMENTS}/{rid}")
        fetched_again = client.get(f"{ASSIGNMENTS}/{rid}")
        after = client.get(ASSIGNMENTS, params={"$filter": f"principalId eq '{user['id']}'"})
    assert created.status_code == 201
    assert created.json() == {
        "@odata.context": f"{world.url}/v1.0/$metadata#{ASSIGNMENTS}/$entity",
        "id": assignment_id(GLOBAL_ADMINISTRATOR, user["id"]),
        "principalId": user["id"],
        "resourceScope": "/",
        "directoryScopeId": "/",
        "roleDefinitionId": GLOBAL_ADMINISTRATOR,
    }
    error = graph_error(duplicate, 400, "Request_BadRequest")
    assert error["message"].startswith("A conflicting object")
    assert [a["id"] for a in by_principal.json()["value"]] == [rid]
    assert rid in [a["id"] for a in by_role.json()["value"]]
    assert one.json()["principal"]["userPrincipalName"] == user["userPrincipalName"]
    assert deleted.status_code == 204
    graph_error(deleted_again, 404, "Request_ResourceNotFound")
    graph_error(fetched_again, 404, "Request_ResourceNotFound")
    assert after.json()["value"] == []


def test_assigning_to_an_unknown_principal_is_404(world: World) -> None:
    with world.graph() as client:
        graph_error(_assign(client, str(uuid.uuid4())), 404, "Request_ResourceNotFound")
        graph_error(_assign(client, "not-a-guid"), 400, "Request_BadRequest")


def test_deleting_a_user_who_holds_a_role_is_403(world: World, settled: None) -> None:
    with world.graph() as client:
        user = new_user(client)
        rid = _assign(client, user["id"]).json()["id"]
        graph_error(client.delete(f"users/{user['id']}"), 403, "Authorization_RequestDenied")
        disable = client.patch(f"users/{user['id']}", json={"accountEnabled": False})
        graph_error(disable, 403, "Authorization_RequestDenied")
        # A non-sensitive property may still change.
        assert client.patch(f"users/{user['id']}", json={"jobTitle": "x"}).status_code == 204
        assert client.delete(f"{ASSIGNMENTS}/{rid}").status_code == 204
        assert client.delete(f"users/{user['id']}").status_code == 204


def test_the_seeded_foreign_admin_holds_global_admin(world: World) -> None:
    upn = f"admin@{PEDRO.domain}"
    with world.graph() as client:
        found = client.get("users", params={"$filter": f"userPrincipalName eq '{upn}'"}).json()
        uid = found["value"][0]["id"]
        roles = client.get(ASSIGNMENTS, params={"$filter": f"principalId eq '{uid}'"}).json()
        refused = client.delete(f"users/{uid}")
    assert [a["roleDefinitionId"] for a in roles["value"]] == [GLOBAL_ADMINISTRATOR]
    graph_error(refused, 403, "Authorization_RequestDenied")


def test_tenants_are_isolated(world: World, settled: None) -> None:
    with world.graph(PEDRO.tenant_id) as pedro, world.graph(NORTHWIND.tenant_id) as north:
        user = new_user(pedro)
        rid = _assign(pedro, user["id"]).json()["id"]
        graph_error(north.get(f"users/{user['id']}"), 404, "Request_ResourceNotFound")
        upn_filter = {"$filter": f"userPrincipalName eq '{user['userPrincipalName']}'"}
        assert north.get("users", params=upn_filter).json()["value"] == []
        graph_error(north.delete(f"{ASSIGNMENTS}/{rid}"), 404, "Request_ResourceNotFound")
        graph_error(_assign(north, user["id"]), 404, "Request_ResourceNotFound")
        # Northwind's own domain is the only verified one there.
        graph_error(
            north.post(
                "users",
                json={
                    "accountEnabled": True,
                    "displayName": "x",
                    "mailNickname": "x",
                    "userPrincipalName": f"x@{PEDRO.domain}",
                    "passwordProfile": {"password": PASSWORD},
                },
            ),
            400,
            "Request_BadRequest",
        )
        north_domains = [d["id"] for d in north.get("domains").json()["value"]]
        assert pedro.delete(f"{ASSIGNMENTS}/{rid}").status_code == 204
    assert PEDRO.domain not in north_domains


# --- fault switches and journal ---------------------------------------------------------


def test_latency_holds_the_request_in_flight_until_the_faults_change(world: World) -> None:
    world.faults(latency_ms=HELD_MS, match="GET /v1.0/domains")
    with world.graph() as client, ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(client.get, "domains")
        in_flight = wait_for(
            lambda: [
                e for e in world.journal() if e["path"] == "/v1.0/domains" and e["status"] is None
            ],
            "the domains call to be in flight",
        )
        assert in_flight[0]["method"] == "GET"
        assert not future.done()
        httpx.delete(f"{world.url}/_admin/faults").raise_for_status()  # lets it go at once
        assert future.result(timeout=30).status_code == 200
    finished = [e for e in world.journal() if e["path"] == "/v1.0/domains"]
    assert [e["status"] for e in finished] == [200]


def test_429_with_retry_after_for_the_next_call_only(world: World) -> None:
    token = world.token()
    settings = world.faults(error_status=429, retry_after_s=7, error_count=1)
    assert settings["error_status"] == 429
    with world.graph(token=token) as client:
        throttled = client.get("users")
        recovered = client.get("users")
    graph_error(throttled, 429, "TooManyRequests")
    assert throttled.headers["Retry-After"] == "7"
    assert recovered.status_code == 200


def test_429_without_retry_after(world: World) -> None:
    token = world.token()
    world.faults(error_status=429)
    with world.graph(token=token) as client:
        response = client.get("users")
    graph_error(response, 429, "TooManyRequests")
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, "generalException"), (503, "serviceNotAvailable"), (504, "UnknownError")],
)
def test_injected_server_errors(world: World, status: int, code: str) -> None:
    token = world.token()
    world.faults(error_status=status)
    with world.graph(token=token) as client:
        graph_error(client.get("users"), status, code)


def test_error_count_limits_injected_errors(world: World) -> None:
    token = world.token()
    world.faults(error_status=503, error_count=2)
    with world.graph(token=token) as client:
        statuses = [client.get("domains").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_match_limits_faults_to_one_route(world: World) -> None:
    world.faults(error_status=500, match="POST /v1.0/users")
    with world.graph() as client:
        assert client.get("users").status_code == 200
        failed = client.post("users", json={})
    graph_error(failed, 500, "generalException")


def test_outage_fails_graph_and_tokens_but_not_the_admin_api(world: World) -> None:
    token = world.token()
    world.faults(outage=True)
    with world.graph(token=token) as client:
        graph_error(client.get("users"), 503, "serviceNotAvailable")
    entra_error(world.token_response(), 503, "temporarily_unavailable", 90033)
    assert httpx.get(f"{world.url}/_admin/requests").status_code == 200
    httpx.delete(f"{world.url}/_admin/faults").raise_for_status()
    with world.graph(token=token) as client:
        assert client.get("users").status_code == 200


def test_token_endpoint_faults_use_the_entra_envelope(world: World) -> None:
    world.faults(error_status=500, match="/oauth2/v2.0/token")
    entra_error(world.token_response(), 500, "server_error", 90033)


def test_fault_settings_merge_and_reset(world: World) -> None:
    world.faults(error_status=500)
    merged = world.faults(retry_after_s=3)
    assert (merged["error_status"], merged["retry_after_s"]) == (500, 3)
    assert httpx.put(f"{world.url}/_admin/faults", json={"latency_ms": -1}).status_code == 422
    reset = httpx.delete(f"{world.url}/_admin/faults").json()
    assert (reset["error_status"], reset["retry_after_s"]) == (None, None)


def test_journal_records_requests_without_secrets(world: World) -> None:
    with world.graph() as client:
        new_user(client)
    entries = world.journal()
    token_call, create = entries[0], entries[-1]
    assert token_call["path"] == f"/login/{PEDRO.tenant_id}/oauth2/v2.0/token"
    assert token_call["body"]["client_secret"] == "***"
    assert (create["method"], create["path"], create["status"]) == ("POST", "/v1.0/users", 201)
    assert create["body"]["passwordProfile"]["password"] == "***"
    assert world.creds.graph_client_secret not in str(entries)
    assert PASSWORD not in str(entries)
    assert httpx.delete(f"{world.url}/_admin/requests").status_code == 204
    assert world.journal() == []


# --- replication delay -------------------------------------------------------------------


def test_a_new_user_is_invisible_until_replicated(world: World) -> None:
    with world.graph() as client:
        # A long delay first, so the "not yet visible" checks cannot race the clock.
        world.faults(replication_delay_ms=60_000)
        user = new_user(client, employeeType="replicating")
        graph_error(client.get(f"users/{user['id']}"), 404, "Request_ResourceNotFound")
        graph_error(
            client.get(f"users/{user['userPrincipalName']}"), 404, "Request_ResourceNotFound"
        )
        upn_filter = {"$filter": f"userPrincipalName eq '{user['userPrincipalName']}'"}
        assert client.get("users", params=upn_filter).json()["value"] == []
        graph_error(_assign(client, user["id"]), 404, "Request_ResourceNotFound")
        # The UPN is taken on the primary even though reads cannot see it yet.
        again = client.post(
            "users",
            json={
                "accountEnabled": True,
                "displayName": "x",
                "mailNickname": "x",
                "userPrincipalName": user["userPrincipalName"],
                "passwordProfile": {"password": PASSWORD},
            },
        )
        graph_error(again, 400, "Request_BadRequest")

        world.faults(replication_delay_ms=300)
        fresh = new_user(client)

        def visible(uid: str) -> Callable[[], bool]:
            return lambda: client.get(f"users/{uid}").status_code == 200

        for uid in (user["id"], fresh["id"]):
            wait_for(visible(uid), f"user {uid} to replicate")
        assert client.get("users", params=upn_filter).json()["value"] != []
        assert _assign(client, fresh["id"]).status_code == 201


def test_a_removed_role_lingers_until_replicated(world: World, settled: None) -> None:
    uid = world.state.add_user(PEDRO.tenant_id, f"lingering-{uuid.uuid4().hex[:8]}@{PEDRO.domain}")
    with world.graph() as client:
        rid = _assign(client, uid).json()["id"]
        world.faults(replication_delay_ms=60_000)
        assert client.delete(f"{ASSIGNMENTS}/{rid}").status_code == 204
        listed = client.get(ASSIGNMENTS, params={"$filter": f"principalId eq '{uid}'"}).json()
        assert [a["id"] for a in listed["value"]] == [rid]
        assert client.get(f"{ASSIGNMENTS}/{rid}").status_code == 200
        graph_error(client.delete(f"{ASSIGNMENTS}/{rid}"), 404, "Request_ResourceNotFound")
        # Replication lag: deleting right after the role removal is still refused.
        graph_error(client.delete(f"users/{uid}"), 403, "Authorization_RequestDenied")
        world.faults(replication_delay_ms=0)
        assert (
            client.get(ASSIGNMENTS, params={"$filter": f"principalId eq '{uid}'"}).json()["value"]
            == []
        )
        assert client.delete(f"users/{uid}").status_code == 204


def test_a_just_deleted_user_reaches_deleted_items_only_later(world: World) -> None:
    """Entra ID is eventually consistent: right after ``DELETE /users/{id}`` the object may not
    be in ``/directory/deletedItems`` yet, so reading or purging it answers 404 for a while
    (https://learn.microsoft.com/graph/api/directory-deleteditems-get,
    https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/).
    The emulator does that by default, counted in the tenant's later requests."""
    lag = FaultSettings().deleted_lag_requests
    assert lag > 0, "on by default"
    with world.graph() as client:
        uid = new_user(client)["id"]
        assert client.delete(f"users/{uid}").status_code == 204
        graph_error(client.get(f"directory/deletedItems/{uid}"), 404, "Request_ResourceNotFound")
        graph_error(client.delete(f"directory/deletedItems/{uid}"), 404, "Request_ResourceNotFound")
        graph_error(
            client.post(f"directory/deletedItems/{uid}/restore"), 404, "Request_ResourceNotFound"
        )
        listed = client.get("directory/deletedItems/microsoft.graph.user").json()["value"]
        assert uid not in [d["id"] for d in listed]
        assert any(u.id == uid for u in world.state.deleted_users(PEDRO.tenant_id))  # it is there
        # Once the replicas caught up (here: after `lag` requests) it is seen, and purgeable.
        seen = wait_for(
            lambda: client.get(f"directory/deletedItems/{uid}").status_code == 200,
            "the deleted user to replicate",
        )
        assert seen
        assert client.delete(f"directory/deletedItems/{uid}").status_code == 204


def test_a_new_role_assignment_is_invisible_for_a_while(world: World) -> None:
    """A just-created role assignment may not be readable by id, listed for its principal, or
    deletable yet (https://learn.microsoft.com/graph/api/unifiedroleassignment-get; Entra ID is
    eventually consistent). The emulator lags creations by default."""
    assert FaultSettings().assignment_lag_requests > 0, "on by default"
    uid = world.state.add_user(PEDRO.tenant_id, f"fresh-{uuid.uuid4().hex[:8]}@{PEDRO.domain}")
    with world.graph() as client:
        created = _assign(client, uid)
        assert created.status_code == 201
        rid = created.json()["id"]
        graph_error(client.get(f"{ASSIGNMENTS}/{rid}"), 404, "Request_ResourceNotFound")
        by_principal = {"$filter": f"principalId eq '{uid}'"}
        assert client.get(ASSIGNMENTS, params=by_principal).json()["value"] == []
        graph_error(client.delete(f"{ASSIGNMENTS}/{rid}"), 404, "Request_ResourceNotFound")
        assert [a.id for a in world.state.assignments(PEDRO.tenant_id) if a.id == rid] == [rid]
        # A second POST is refused though: the primary has it.
        graph_error(_assign(client, uid), 400, "Request_BadRequest")
        wait_for(
            lambda: client.get(f"{ASSIGNMENTS}/{rid}").status_code == 200,
            "the assignment to replicate",
        )
        assert [a["id"] for a in client.get(ASSIGNMENTS, params=by_principal).json()["value"]] == [
            rid
        ]


def test_still_privileged_for_longer_than_still_listed(world: World) -> None:
    """After a role removal, lists stop showing it before Entra stops treating the user as an
    administrator: deleting the user answers 403 a little longer
    (https://learn.microsoft.com/graph/api/user-delete: admins need a higher role to delete)."""
    defaults = FaultSettings()
    assert defaults.privileged_lag_requests > defaults.removed_lag_requests
    world.faults(assignment_lag_requests=0)
    uid = world.state.add_user(PEDRO.tenant_id, f"demoted-{uuid.uuid4().hex[:8]}@{PEDRO.domain}")
    with world.graph() as client:
        rid = _assign(client, uid).json()["id"]
        assert client.delete(f"{ASSIGNMENTS}/{rid}").status_code == 204
        by_principal = {"$filter": f"principalId eq '{uid}'"}
        listings = [
            client.get(ASSIGNMENTS, params=by_principal).json()["value"]
            for _ in range(defaults.removed_lag_requests + 1)
        ]
        assert listings[0] != [] and listings[-1] == [], "listed for a while, then gone"
        graph_error(client.delete(f"users/{uid}"), 403, "Authorization_RequestDenied")
        wait_for(lambda: client.delete(f"users/{uid}").status_code == 204, "the 403 to end")


def test_concurrency_violation_on_a_fault_switch(world: World) -> None:
    """409 ``Directory_ConcurrencyViolation``: "Error due to concurrent requests being made to
    the tenant. Please wait briefly and retry." (https://learn.microsoft.com/graph/errors)."""
    world.faults(error_status=409, error_count=1, match="POST /v1.0/users")
    with world.graph() as client:
        body = {
            "accountEnabled": True, "displayName": "x", "mailNickname": "x",
            "userPrincipalName": f"cv-{uuid.uuid4().hex[:8]}@{PEDRO.domain}",
            "passwordProfile": {"password": PASSWORD},
        }  # fmt: skip
        refused = client.post("users", json=body)
        error = graph_error(refused, 409, "Directory_ConcurrencyViolation")
        assert "wait briefly and retry" in error["message"]
        assert client.post("users", json=body).status_code == 201


def test_a_fresh_consent_answers_identity_not_found_for_a_while(world: World) -> None:
    """Right after admin consent Graph may not know the app in the tenant yet: 401
    ``Authorization_IdentityNotFound`` "The identity of the calling application could not be
    established." (https://learn.microsoft.com/graph/errors)."""
    world.state.set_app(NORTHWIND.tenant_id, identity_pending_requests=2)
    try:
        with world.graph(NORTHWIND.tenant_id) as client:
            for _ in range(2):
                error = graph_error(client.get("domains"), 401, "Authorization_IdentityNotFound")
                assert error["message"] == (
                    "The identity of the calling application could not be established."
                )
            assert client.get("domains").status_code == 200
    finally:
        world.state.set_app(NORTHWIND.tenant_id, identity_pending_requests=0)


def test_the_graph_namespace_alias_is_accepted_in_cast_segments(
    world: World, settled: None
) -> None:
    """``graph.`` stands for ``microsoft.graph.`` in a cast segment; Microsoft's SDKs send
    ``/directory/deletedItems/graph.user`` (https://learn.microsoft.com/graph/api/directory-deleteditems-list)."""
    with world.graph() as client:
        uid = new_user(client)["id"]
        assert client.delete(f"users/{uid}").status_code == 204
        long = client.get("directory/deletedItems/microsoft.graph.user", params={"$select": "id"})
        short = client.get("directory/deletedItems/graph.user", params={"$select": "id"})
    assert short.status_code == 200, short.text
    assert uid in [d["id"] for d in short.json()["value"]]
    assert short.json()["value"] == long.json()["value"]


def test_a_federated_domain_holds_no_cloud_password_account(world: World) -> None:
    """A federated domain (``authenticationType: Federated``) signs its users in at the
    customer's identity provider: a new user there needs ``onPremisesImmutableId``
    (https://learn.microsoft.com/graph/api/user-post-users). And the part after "@" is at most
    48 characters (https://learn.microsoft.com/entra/identity/authentication/concept-sspr-policy)."""
    federated = f"sso.{PEDRO.slug}.example"
    with world.graph() as client:
        domains = {d["id"]: d for d in client.get("domains").json()["value"]}
        assert domains[federated]["authenticationType"] == "Federated"
        assert domains[federated]["isVerified"] is True
        assert domains[PEDRO.domain]["authenticationType"] == "Managed"
        body = {
            "accountEnabled": True, "displayName": "x", "mailNickname": "fedx",
            "userPrincipalName": f"fedx-{uuid.uuid4().hex[:6]}@{federated}",
            "passwordProfile": {"password": PASSWORD},
        }  # fmt: skip
        refused = graph_error(client.post("users", json=body), 400, "Request_BadRequest")
        assert "onPremisesImmutableId" in refused["message"]
        long_domain = "x" * 49
        too_long = {**body, "userPrincipalName": f"fedx@{long_domain}"}
        graph_error(client.post("users", json=too_long), 400, "Request_BadRequest")


# --- mounted under a prefix ---------------------------------------------------------------


def test_urls_carry_the_mount_prefix() -> None:
    creds = SeedCredentials()
    app, state = create_graph_app(CUSTOMERS, creds)
    outer = FastAPI()
    outer.mount("/graph", app)
    server = serve_in_thread(outer)
    try:
        world = World(server=server, state=state, creds=creds, url=f"{server.url}/graph")
        with world.graph() as client:
            for _ in range(3):
                new_user(client)
            first = client.get("users", params={"$top": "2"}).json()
            link = first["@odata.nextLink"]
            second = client.get(link)
        assert link.startswith(f"{server.url}/graph/v1.0/users?")
        assert first["@odata.context"] == f"{server.url}/graph/v1.0/$metadata#users"
        assert second.status_code == 200
        assert "@odata.nextLink" not in second.json()
        assert len(first["value"]) + len(second.json()["value"]) == 4  # 3 + the seeded admin
        paths = [e["path"] for e in world.journal()]
        assert "/v1.0/users" in paths
        assert any(p.endswith("/oauth2/v2.0/token") for p in paths)
        disco = httpx.get(f"{world.url}/login/{PEDRO.domain}/v2.0/.well-known/openid-configuration")
        assert disco.json()["token_endpoint"].startswith("https://login.microsoftonline.com/")
    finally:
        server.stop()
