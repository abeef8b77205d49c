"""Graph v1.0 PIM routes of the emulator, and the test controls for licences and the clock.

``POST /v1.0/roleManagement/directory/roleAssignmentScheduleRequests`` and
``GET /v1.0/roleManagement/directory/roleAssignmentSchedules`` (see ``pim_state``). Application
permissions per https://learn.microsoft.com/graph/api/rbacapplication-post-roleassignmentschedulerequests:
RoleAssignmentSchedule.ReadWrite.Directory, or the higher RoleManagement.ReadWrite.Directory.

Test controls (no auth): ``PUT /_admin/tenants/{tenant}/licences`` ``{"p2": bool}``;
``POST /_admin/clock`` ``{"advance_s": n}`` moves the directory's clock on (schedules end).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from jitadmin.emulators.graph import odata
from jitadmin.emulators.graph.filters import FilterRules, matches, parse_filter
from jitadmin.emulators.graph.http import GraphJSONResponse, denied, json_object, root_url
from jitadmin.emulators.graph.state import GraphState

WRITE_SCHEDULES = {
    "RoleAssignmentSchedule.ReadWrite.Directory",
    "RoleManagement.ReadWrite.Directory",
}
READ_SCHEDULES = {
    "RoleAssignmentSchedule.Read.Directory", "RoleManagement.Read.Directory",
    "RoleManagement.Read.All", "Directory.Read.All", *WRITE_SCHEDULES,
}  # fmt: skip
_REQUESTS = "roleManagement/directory/roleAssignmentScheduleRequests"
_SCHEDULES = "roleManagement/directory/roleAssignmentSchedules"
SCHEDULE_FILTER = FilterRules(
    "UnifiedRoleAssignmentSchedule",
    {"principalId": str, "roleDefinitionId": str, "directoryScopeId": str},
)


class Licences(BaseModel):
    p2: bool


class Advance(BaseModel):
    advance_s: float


def build_pim_router(state: GraphState) -> APIRouter:
    router = APIRouter()

    def caller_with(request: Request, allowed: set[str]) -> str:
        caller = state.authenticate(request.headers.get("authorization"))
        if not caller.roles & allowed:
            raise denied()
        return caller.tenant_id

    @router.post(f"/v1.0/{_REQUESTS}")
    async def create_request(request: Request) -> Response:
        tenant = caller_with(request, WRITE_SCHEDULES)
        made = state.schedule_request(tenant, await json_object(request))
        context = f"{root_url(request)}/$metadata#{_REQUESTS}/$entity"
        return GraphJSONResponse({"@odata.context": context, **made}, status_code=201)

    @router.get(f"/v1.0/{_SCHEDULES}")
    async def list_schedules(request: Request) -> Response:
        tenant = caller_with(request, READ_SCHEDULES)
        options = odata.system_options(request.query_params.multi_items(), {"$filter", "$top"})
        rows = state.list_schedules(tenant)
        if "$filter" in options:
            node = parse_filter(options["$filter"], SCHEDULE_FILTER)
            rows = [row for row in rows if matches(node, row)]
        top = odata.parse_top(options.get("$top"))
        body: dict[str, Any] = {
            "@odata.context": f"{root_url(request)}/$metadata#{_SCHEDULES}",
            "value": rows[:top] if top else rows,
        }
        return GraphJSONResponse(body)

    @router.put("/_admin/tenants/{tenant}/licences")
    async def put_licences(tenant: str, body: Licences) -> dict[str, Any]:
        found = state.resolve_tenant(tenant)
        if found is None:
            return {"error": "unknown tenant"}
        state.set_p2(found, body.p2)
        return {"tenant": found, "p2": body.p2}

    @router.post("/_admin/clock")
    async def advance(body: Advance) -> dict[str, Any]:
        state.advance_clock(body.advance_s)
        return {"offset_s": state.clock_offset.total_seconds()}

    @router.delete("/_admin/clock")
    async def reset_clock() -> dict[str, Any]:
        state.reset_clock()
        return {"offset_s": 0.0}

    return router
