"""Global Administrator as a time-bound PIM assignment, where the tenant has Entra ID P2.

``POST /roleManagement/directory/roleAssignmentScheduleRequests`` with ``action: adminAssign``
and ``scheduleInfo.expiration`` (https://learn.microsoft.com/graph/api/rbacapplication-post-roleassignmentschedulerequests)
makes an active assignment that Entra itself ends, so the role goes even if jitadmin is gone.
jitadmin still removes, deletes, purges and verifies as for a plain assignment. A tenant
without P2 answers ``400 AadPremiumLicenseRequired``: the grant then falls back to a plain
assignment and says so. The tenant's end is the grant's end plus ``MARGIN``: jitadmin's own
revocation comes first, Entra's is the safety net.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jitadmin.adapters.m365.client import NOT_YET_REPLICATED, GraphClient
from jitadmin.adapters.m365.directory import odata_quote
from jitadmin.adapters.m365.errors import GraphBadRequestError
from jitadmin.adapters.m365.permissions import ROLE_MANAGEMENT, need
from jitadmin.core.errors import TransientError

SCHEDULE_REQUESTS = "/roleManagement/directory/roleAssignmentScheduleRequests"
SCHEDULES = "/roleManagement/directory/roleAssignmentSchedules"
LICENCE_REQUIRED = "AadPremiumLicenseRequired"
EXISTS = "RoleAssignmentExists"
DOES_NOT_EXIST = "RoleAssignmentDoesNotExist"
MARGIN = timedelta(minutes=15)
PIM = "pim"
DIRECT = "direct"
AVAILABLE = (
    "PIM available (Entra ID P2): Global Administrator is assigned with a tenant-side expiry "
    f"{int(MARGIN.total_seconds() // 60)} minutes after the grant's end"
)
NO_P2_NOTICE = (
    "No tenant-side expiry: the tenant has no Entra ID P2 licence (PIM), so Global "
    "Administrator is a plain assignment that jitadmin removes itself."
)


def _z(moment: datetime) -> str:
    """Whole seconds, rounded up: the tenant's end is never before the one asked for."""
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tenant_end(expires_at: datetime) -> datetime:
    return expires_at + MARGIN


def supported(graph: GraphClient) -> bool:
    """Whether the tenant has PIM: the schedules list answers, or 400 without P2."""
    try:
        graph.get(SCHEDULES, {"$top": "1"}, needs=need(ROLE_MANAGEMENT))
    except GraphBadRequestError as error:
        if error.vendor_code == LICENCE_REQUIRED:
            return False
        raise
    return True


def scheduled(graph: GraphClient, principal_id: str) -> bool:
    """Whether the principal's Global Administrator comes from a PIM schedule."""
    try:
        found = graph.list_all(
            SCHEDULES, {"$filter": f"principalId eq {odata_quote(principal_id)}"}
        )
    except GraphBadRequestError as error:
        if error.vendor_code == LICENCE_REQUIRED:
            return False
        raise
    return any(item.get("principalId") == principal_id for item in found)


def _request(
    graph: GraphClient, action: str, principal_id: str, role_id: str, **extra: object
) -> None:
    body = {
        "action": action,
        "principalId": principal_id,
        "roleDefinitionId": role_id,
        "directoryScopeId": "/",
        **extra,
    }
    # Not idempotent: a 5xx may have landed, so the caller re-reads before trying again.
    graph.post(SCHEDULE_REQUESTS, body, retry_on=NOT_YET_REPLICATED, needs=need(ROLE_MANAGEMENT))


def assign(
    graph: GraphClient, principal_id: str, role_id: str, now: datetime, expires_at: datetime,
    justification: str,
) -> bool:  # fmt: skip
    """An active assignment ending at ``tenant_end(expires_at)``; False without P2 (the
    caller assigns plainly). "Already exists" is ours from an earlier attempt: True."""
    schedule = {
        "startDateTime": _z(now.replace(microsecond=0)),
        "expiration": {"type": "afterDateTime", "endDateTime": _z(tenant_end(expires_at))},
    }
    try:
        _request(graph, "adminAssign", principal_id, role_id,
                 justification=justification, scheduleInfo=schedule)  # fmt: skip
    except GraphBadRequestError as error:
        if error.vendor_code == LICENCE_REQUIRED:
            return False
        if error.vendor_code != EXISTS:
            raise
    return True


def extend(
    graph: GraphClient, principal_id: str, role_id: str, now: datetime, expires_at: datetime
) -> None:
    """Move the tenant's end with the grant's (``adminUpdate``: change an existing one)."""
    schedule = {
        "startDateTime": _z(now.replace(microsecond=0)),
        "expiration": {"type": "afterDateTime", "endDateTime": _z(tenant_end(expires_at))},
    }
    try:
        _request(graph, "adminUpdate", principal_id, role_id,
                 justification="jitadmin: grant extended", scheduleInfo=schedule)  # fmt: skip
    except GraphBadRequestError as error:
        if error.vendor_code == DOES_NOT_EXIST:
            raise TransientError(
                "the tenant-side (PIM) assignment is not there to extend (not yet visible, or "
                "already ended)", vendor_code=DOES_NOT_EXIST,
            ) from None  # fmt: skip
        raise


def remove(graph: GraphClient, principal_id: str, role_id: str) -> bool:
    """End it now (``adminRemove``). False when the tenant has none (ended, or never made)."""
    try:
        _request(graph, "adminRemove", principal_id, role_id, justification="jitadmin: revoked")
    except GraphBadRequestError as error:
        if error.vendor_code in (DOES_NOT_EXIST, LICENCE_REQUIRED):
            return False
        raise
    return True
