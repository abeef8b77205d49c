"""Microsoft Graph v1.0 routes of the emulator: domains, users, recycle bin, roles.

Every route authenticates first (401), then checks the token's application permissions (403),
then parses the query (400), as Graph does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request, Response

from jitadmin.emulators.graph import odata
from jitadmin.emulators.graph.filters import FilterRules, matches, parse_filter
from jitadmin.emulators.graph.http import (
    GraphJSONResponse,
    bad_request,
    denied,
    json_object,
    relative_path,
    root_url,
    unsupported_query,
)
from jitadmin.emulators.graph.model import (
    ASSIGNMENT_DEFAULT_SELECT,
    ASSIGNMENT_FILTERABLE,
    ASSIGNMENT_PROPERTIES,
    DOMAIN_PROPERTIES,
    USER_ADVANCED_EQ,
    USER_DEFAULT_SELECT,
    USER_ENDS_WITH,
    USER_FILTERABLE,
    USER_PROPERTIES,
    USER_STARTS_WITH,
)
from jitadmin.emulators.graph.state import Caller, GraphState

# Application permissions that satisfy each operation (higher ones included), as in each
# operation's Permissions table on learn.microsoft.com/graph/api.
_DIR_READ = {"Directory.Read.All", "Directory.ReadWrite.All"}
READ_DOMAINS = {"Domain.Read.All", "Domain.ReadWrite.All", *_DIR_READ}
WRITE_USERS = {"User.ReadWrite.All", "Directory.ReadWrite.All"}
READ_USERS = {"User.Read.All", "User.ReadBasic.All", *WRITE_USERS, *_DIR_READ}
ENABLE_USERS = {"User.EnableDisableAccount.All", *WRITE_USERS}
RESET_PASSWORDS = {"User-PasswordProfile.ReadWrite.All", *WRITE_USERS}
REVOKE_SESSIONS = {"User.RevokeSessions.All", *WRITE_USERS}
# Deleting and purging users: Directory.ReadWrite.All is not enough
# (https://learn.microsoft.com/graph/api/user-delete,
# https://learn.microsoft.com/graph/api/directory-deleteditems-delete).
DELETE_USERS = {"User.DeleteRestore.All", "User.ReadWrite.All"}
READ_DELETED = {"User.DeleteRestore.All", *READ_USERS}
RESTORE_USERS = {"User.DeleteRestore.All", *WRITE_USERS}
PURGE_USERS = {"User.DeleteRestore.All"}
WRITE_ROLES = {"RoleManagement.ReadWrite.Directory"}
WRITE_AUTH_METHODS = {"UserAuthenticationMethod.ReadWrite.All"}
READ_AUTH_POLICY = {"Policy.Read.All", "Policy.ReadWrite.AuthenticationMethod"}
READ_ROLES = {"RoleManagement.Read.Directory", "RoleManagement.Read.All", *WRITE_ROLES, *_DIR_READ}

_PATCH_PERMISSIONS = {"accountEnabled": ENABLE_USERS, "passwordProfile": RESET_PASSWORDS}

_USER_TYPE = "microsoft.graph.user"
_DELETED_DEFAULT = (*USER_DEFAULT_SELECT, "deletedDateTime")
_USER_TYPE_ANNOTATION = {"@odata.type": "#microsoft.graph.user"}
_ASSIGNMENTS = "roleManagement/directory/roleAssignments"
_TAP_POLICY = "policies/authenticationMethodsPolicy/authenticationMethodConfigurations"

USER_FILTER = FilterRules(
    "User",
    USER_FILTERABLE,
    advanced_eq=USER_ADVANCED_EQ,
    starts_with=USER_STARTS_WITH,
    ends_with=USER_ENDS_WITH,
    directory_object=True,
)
DOMAIN_FILTER = FilterRules(
    "Domain", {"id": str, "isDefault": bool, "isInitial": bool, "isVerified": bool}
)
# principalId, roleDefinitionId, directoryScopeId, appScopeId: eq and in (unifiedRoleAssignment).
ASSIGNMENT_FILTER = FilterRules("UnifiedRoleAssignment", ASSIGNMENT_FILTERABLE)


def _caller(state: GraphState, request: Request, *needs: set[str]) -> Caller:
    caller = state.authenticate(request.headers.get("authorization"))
    for allowed in needs:
        if not caller.roles & allowed:
            raise denied()
    return caller


def _options(request: Request, allowed: Iterable[str]) -> dict[str, str]:
    return odata.system_options(request.query_params.multi_items(), allowed)


def _advanced(request: Request, options: Mapping[str, str]) -> bool:
    """Advanced query parameters: the ConsistencyLevel header *and* ``$count=true``
    (https://learn.microsoft.com/graph/aad-advanced-queries)."""
    count = odata.wants_count(options.get("$count"))
    return count and request.headers.get("consistencylevel", "").strip().lower() == "eventual"


def _collection(
    request: Request,
    rows: Sequence[Mapping[str, Any]],
    *,
    entity_set: str,
    options: dict[str, str],
    default: Sequence[str],
    known: Iterable[str],
    rules: FilterRules,
    type_name: str,
    extra: Mapping[str, str] | None = None,
) -> GraphJSONResponse:
    """Filter, page and project a collection; add an absolute ``@odata.nextLink``."""
    select = odata.parse_select(options.get("$select"), known, type_name)
    top = odata.parse_top(options.get("$top"))
    advanced = rules.directory_object and _advanced(request, options)
    if "$filter" in options:
        node = parse_filter(options["$filter"], replace(rules, advanced=advanced))
        rows = [row for row in rows if matches(node, row)]
    page, token = odata.paginate(rows, top, options.get("$skiptoken"))
    root = root_url(request)
    items = []
    for row in page:
        item = odata.project(row, select, default)
        for key, value in (extra or {}).items():
            item[key] = row.get(value)
        items.append(item)
    body: dict[str, Any] = {"@odata.context": odata.context_url(root, entity_set, select)}
    # Without ConsistencyLevel: eventual, Graph silently ignores $count=true.
    if advanced and "$skiptoken" not in options:
        body["@odata.count"] = len(rows)
    body["value"] = items
    if token is not None:
        body["@odata.nextLink"] = odata.next_link(
            root, relative_path(request.scope), request.query_params.multi_items(), token
        )
    return GraphJSONResponse(body)


def _entity(
    request: Request,
    row: Mapping[str, Any],
    *,
    entity_set: str,
    select: list[str] | None,
    default: Sequence[str],
    status: int = 200,
    extra: Mapping[str, Any] | None = None,
) -> GraphJSONResponse:
    root = root_url(request)
    body: dict[str, Any] = {
        "@odata.context": odata.context_url(root, entity_set, select, "/$entity"),
        **(extra or {}),
    }
    body.update(odata.project(row, select, default))
    return GraphJSONResponse(body, status_code=status)


def build_v1_router(state: GraphState) -> APIRouter:  # noqa: PLR0915 - one closure per route
    router = APIRouter(prefix="/v1.0")

    @router.get("/domains")
    async def list_domains(request: Request) -> Response:
        caller = _caller(state, request, READ_DOMAINS)
        options = _options(request, {"$select", "$top", "$skiptoken", "$filter"})
        return _collection(
            request,
            state.list_domains(caller.tenant_id),
            entity_set="domains",
            options=options,
            default=DOMAIN_PROPERTIES,
            known=DOMAIN_PROPERTIES,
            rules=DOMAIN_FILTER,
            type_name="microsoft.graph.domain",
        )

    @router.get("/users")
    async def list_users(request: Request) -> Response:
        caller = _caller(state, request, READ_USERS)
        options = _options(request, {"$select", "$filter", "$top", "$skiptoken", "$count"})
        return _collection(
            request,
            state.list_users(caller.tenant_id),
            entity_set="users",
            options=options,
            default=USER_DEFAULT_SELECT,
            known=USER_PROPERTIES,
            rules=USER_FILTER,
            type_name=_USER_TYPE,
        )

    @router.post("/users")
    async def create_user(request: Request) -> Response:
        caller = _caller(state, request, WRITE_USERS)
        created = state.create_user(caller, await json_object(request))
        return _entity(
            request,
            created,
            entity_set="users",
            select=None,
            default=USER_DEFAULT_SELECT,
            status=201,
        )

    @router.get("/users/{key}")
    async def get_user(request: Request, key: str) -> Response:
        caller = _caller(state, request, READ_USERS)
        select = odata.parse_select(
            _options(request, {"$select"}).get("$select"), USER_PROPERTIES, _USER_TYPE
        )
        user = state.get_user(caller.tenant_id, key)
        return _entity(
            request, user, entity_set="users", select=select, default=USER_DEFAULT_SELECT
        )

    @router.patch("/users/{key}")
    async def update_user(request: Request, key: str) -> Response:
        caller = _caller(state, request, READ_USERS)
        body = await json_object(request)
        # Least privilege per property: enabling and password resets have their own permissions.
        for prop in body:
            allowed = _PATCH_PERMISSIONS.get(prop, WRITE_USERS)
            if prop != "@odata.type" and not caller.roles & allowed:
                raise denied()
        state.update_user(caller, key, body)
        return Response(status_code=204)

    @router.delete("/users/{key}")
    async def delete_user(request: Request, key: str) -> Response:
        caller = _caller(state, request, DELETE_USERS)
        state.delete_user(caller, key)
        return Response(status_code=204)

    @router.post("/users/{key}/revokeSignInSessions")
    async def revoke_sessions(request: Request, key: str) -> Response:
        caller = _caller(state, request, REVOKE_SESSIONS)
        state.revoke_sessions(caller.tenant_id, key)
        # Documented as 204, but production answers 200 with this body (a known issue in
        # https://learn.microsoft.com/graph/api/user-revokesigninsessions).
        context = f"{root_url(request)}/v1.0/$metadata#Edm.Boolean"
        return GraphJSONResponse({"@odata.context": context, "value": True})

    @router.post("/users/{key}/authentication/temporaryAccessPassMethods")
    async def create_temporary_access_pass(request: Request, key: str) -> Response:
        caller = _caller(state, request, WRITE_AUTH_METHODS)
        body = await json_object(request)
        created = state.create_temporary_access_pass(caller.tenant_id, key, body)
        return _entity(
            request,
            created,
            entity_set=f"users('{key}')/authentication/temporaryAccessPassMethods",
            select=None,
            default=tuple(created),
            status=201,
        )

    # The configuration's id is case-insensitive: Microsoft's examples use both spellings.
    @router.get(f"/{_TAP_POLICY}/TemporaryAccessPass")
    @router.get(f"/{_TAP_POLICY}/temporaryAccessPass")
    async def get_tap_policy(request: Request) -> Response:
        caller = _caller(state, request, READ_AUTH_POLICY)
        policy = state.tap_policy(caller.tenant_id)
        return _entity(
            request,
            policy,
            entity_set="policies/authenticationMethodsPolicy/authenticationMethodConfigurations",
            select=None,
            default=tuple(policy),
        )

    @router.get("/directory/deletedItems")
    async def deleted_items_without_cast(request: Request) -> Response:
        _caller(state, request, READ_DELETED)
        raise bad_request(
            "The type cast segment is required, e.g. /directory/deletedItems/microsoft.graph.user."
        )

    # Graph accepts the namespace alias "graph." in cast segments, and Microsoft's SDKs send it
    # (https://learn.microsoft.com/graph/api/directory-deleteditems-list).
    @router.get("/directory/deletedItems/microsoft.graph.user")
    @router.get("/directory/deletedItems/graph.user")
    async def list_deleted(request: Request) -> Response:
        caller = _caller(state, request, READ_DELETED)
        options = _options(request, {"$select", "$filter", "$top", "$skiptoken", "$count"})
        return _collection(
            request,
            state.list_deleted(caller.tenant_id),
            entity_set="directoryObjects/microsoft.graph.user",
            options=options,
            default=_DELETED_DEFAULT,
            known=USER_PROPERTIES,
            rules=USER_FILTER,
            type_name=_USER_TYPE,
        )

    @router.get("/directory/deletedItems/{key}")
    async def get_deleted(request: Request, key: str) -> Response:
        caller = _caller(state, request, READ_DELETED)
        select = odata.parse_select(
            _options(request, {"$select"}).get("$select"), USER_PROPERTIES, _USER_TYPE
        )
        user = state.get_deleted(caller.tenant_id, key)
        return _entity(
            request,
            user,
            entity_set="directory/deletedItems",
            select=select,
            default=_DELETED_DEFAULT,
            extra=_USER_TYPE_ANNOTATION,
        )

    @router.delete("/directory/deletedItems/{key}")
    async def purge_deleted(request: Request, key: str) -> Response:
        caller = _caller(state, request, PURGE_USERS)
        state.purge_deleted(caller.tenant_id, key)
        return Response(status_code=204)

    @router.post("/directory/deletedItems/{key}/restore")
    async def restore_deleted(request: Request, key: str) -> Response:
        caller = _caller(state, request, RESTORE_USERS)
        user = state.restore_deleted(caller.tenant_id, key)
        return _entity(
            request,
            user,
            entity_set="directoryObjects",
            select=None,
            default=USER_DEFAULT_SELECT,
            extra=_USER_TYPE_ANNOTATION,
        )

    def _expand(caller: Caller, options: dict[str, str], rows: list[dict[str, Any]]) -> bool:
        expand = options.get("$expand")
        if expand is None:
            return False
        if expand.strip() != "principal":
            raise unsupported_query(f"Expand of '{expand}' is not supported.")
        for row in rows:
            row["principal"] = state.principal_view(caller.tenant_id, str(row["principalId"]))
        return True

    @router.post(f"/{_ASSIGNMENTS}")
    async def create_assignment(request: Request) -> Response:
        caller = _caller(state, request, WRITE_ROLES)
        created = state.create_assignment(caller, await json_object(request))
        return _entity(
            request,
            created,
            entity_set=_ASSIGNMENTS,
            select=None,
            default=ASSIGNMENT_DEFAULT_SELECT,
            status=201,
        )

    @router.get(f"/{_ASSIGNMENTS}")
    async def list_assignments(request: Request) -> Response:
        caller = _caller(state, request, READ_ROLES)
        options = _options(request, {"$select", "$filter", "$top", "$skiptoken", "$expand"})
        rows = state.list_assignments(caller.tenant_id)
        expanded = _expand(caller, options, rows)
        return _collection(
            request,
            rows,
            entity_set=_ASSIGNMENTS,
            options=options,
            default=ASSIGNMENT_DEFAULT_SELECT,
            known=ASSIGNMENT_PROPERTIES,
            rules=ASSIGNMENT_FILTER,
            type_name="microsoft.graph.unifiedRoleAssignment",
            extra={"principal": "principal"} if expanded else None,
        )

    @router.get(f"/{_ASSIGNMENTS}/{{rid}}")
    async def get_assignment(request: Request, rid: str) -> Response:
        caller = _caller(state, request, READ_ROLES)
        options = _options(request, {"$select", "$expand"})
        select = odata.parse_select(
            options.get("$select"), ASSIGNMENT_PROPERTIES, "microsoft.graph.unifiedRoleAssignment"
        )
        row = state.get_assignment(caller.tenant_id, rid)
        expanded = _expand(caller, options, [row])
        return _entity(
            request,
            row,
            entity_set=_ASSIGNMENTS,
            select=select,
            default=ASSIGNMENT_DEFAULT_SELECT,
            extra={"principal": row["principal"]} if expanded else None,
        )

    @router.delete(f"/{_ASSIGNMENTS}/{{rid}}")
    async def delete_assignment(request: Request, rid: str) -> Response:
        caller = _caller(state, request, WRITE_ROLES)
        state.delete_assignment(caller.tenant_id, rid)
        return Response(status_code=204)

    return router
