"""PIM in the Graph emulator: role assignment schedule requests, their schedules, and the end
of a time-bound assignment.

As Graph does (https://learn.microsoft.com/graph/api/rbacapplication-post-roleassignmentschedulerequests):
``adminAssign`` with ``scheduleInfo.expiration`` (``afterDateTime`` + ``endDateTime``,
``afterDuration`` + ``duration``, or ``noExpiration``) makes an active assignment that is listed
with the others in ``roleAssignments`` and disappears at its end; ``adminUpdate`` /
``adminExtend`` move the end; ``adminRemove`` ends it now. A tenant without Entra ID P2 (or
Governance) answers ``400 AadPremiumLicenseRequired`` (maester365/maester#1421); assigning what
is assigned already is ``400 RoleAssignmentExists``, changing what is not
``400 RoleAssignmentDoesNotExist`` (Microsoft365DSC#5532 quotes both).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from jitadmin.emulators.graph.consents import ConsentDirectory
from jitadmin.emulators.graph.http import GraphError, bad_request, iso_z, not_found, utc_now
from jitadmin.emulators.graph.model import (
    ROLE_DEFINITIONS,
    RoleAssignment,
    Tenant,
    assignment_id,
    parse_guid,
)

ACTIONS = frozenset({"adminAssign", "adminUpdate", "adminExtend", "adminRemove"})
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def licence_required() -> GraphError:
    return bad_request(
        "The tenant needs to have Microsoft Entra ID P2 or Microsoft Entra ID Governance license.",
        code="AadPremiumLicenseRequired",
    )


@dataclass
class RoleSchedule:
    id: str
    principal_id: str
    role_definition_id: str
    assignment_id: str
    start: datetime
    end: datetime | None  # None: noExpiration
    expiration_type: str

    def schedule_info(self) -> dict[str, Any]:
        return {
            "startDateTime": iso_z(self.start),
            "recurrence": None,
            "expiration": {
                "type": self.expiration_type,
                "endDateTime": iso_z(self.end) if self.end else None,
                "duration": None,
            },
        }

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "principalId": self.principal_id,
            "roleDefinitionId": self.role_definition_id,
            "directoryScopeId": "/",
            "appScopeId": None,
            "assignmentType": "Assigned",
            "memberType": "Direct",
            "status": "Provisioned",
            "createdUsing": self.id,
            "scheduleInfo": self.schedule_info(),
        }


def _parse_time(value: object, prop: str) -> datetime:
    if not isinstance(value, str):
        raise bad_request(f"Invalid value specified for property '{prop}'.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid value specified for property '{prop}'.") from None
    if moment.tzinfo is None:
        raise bad_request(f"Invalid value specified for property '{prop}'.")
    return moment


def _duration(value: object) -> timedelta:
    found = _DURATION.match(value) if isinstance(value, str) else None
    if found is None or not any(found.groups()):
        raise bad_request("Invalid value specified for property 'duration'.")
    days, hours, minutes, seconds = (int(g or 0) for g in found.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class PimDirectory(ConsentDirectory):
    """The schedule-request operations; GraphState builds on this."""

    def now(self) -> datetime:
        """The directory's clock: real time plus what a test moved it on by (PIM expiry)."""
        return utc_now() + self.clock_offset

    def reset_clock(self) -> None:
        with self.lock:
            self.clock_offset = timedelta(0)

    def advance_clock(self, seconds: float) -> None:
        with self.lock:
            self.clock_offset += timedelta(seconds=seconds)
            for tenant in self._tenants.values():
                self._expire_schedules(tenant)

    def set_p2(self, tenant_id: str, has_p2: bool) -> None:
        with self.lock:
            self._tenants[tenant_id.lower()].has_p2 = has_p2

    def schedules(self, tenant_id: str) -> list[RoleSchedule]:
        with self.lock:
            tenant = self._tenant(tenant_id.lower())
            return [s for s in tenant.schedules.values() if isinstance(s, RoleSchedule)]

    def _expire_schedules(self, tenant: Tenant) -> None:
        now = self.now()
        for schedule in list(tenant.schedules.values()):
            if schedule.end is not None and schedule.end <= now:
                del tenant.schedules[schedule.id]
                if schedule.assignment_id in tenant.assignments:
                    self._end_assignment(tenant, schedule.assignment_id)

    def _end_assignment(self, tenant: Tenant, rid: str) -> None:
        gone = tenant.assignments.pop(rid)
        gone.removed_mono = time.monotonic()
        gone.removed_request = tenant.requests
        tenant.removed[rid] = gone

    def list_schedules(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.lock:
            tenant = self._tenant(tenant_id)
            if not tenant.has_p2:
                raise licence_required()
            return [s.view() for s in tenant.schedules.values()]

    def schedule_request(self, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
        action = body.get("action")
        if action not in ACTIONS:
            raise bad_request("Invalid value specified for property 'action'.")
        principal = parse_guid(body.get("principalId"))
        role = parse_guid(body.get("roleDefinitionId"))
        if principal is None:
            raise bad_request(f"Invalid object identifier '{body.get('principalId')}'.")
        if role is None or role not in ROLE_DEFINITIONS:
            raise bad_request(f"Invalid role definition id '{body.get('roleDefinitionId')}'.")
        if body.get("directoryScopeId") != "/":
            raise bad_request("The emulator supports only directoryScopeId '/'.")
        with self.lock:
            tenant = self._tenant(tenant_id)
            if not tenant.has_p2:
                raise licence_required()
            if principal not in tenant.users or not self._replicated(tenant.users[principal]):
                raise not_found(principal)
            current = next(
                (s for s in tenant.schedules.values()
                 if s.principal_id == principal and s.role_definition_id == role),
                None,
            )  # fmt: skip
            rid = assignment_id(role, principal)
            if action == "adminAssign":
                if current is not None or rid in tenant.assignments:
                    raise bad_request("The Role assignment already exists.", "RoleAssignmentExists")
                current = self._assign(tenant, principal, role, body)
            elif current is None:
                raise bad_request(
                    "The Role assignment does not exist.", "RoleAssignmentDoesNotExist"
                )
            elif action == "adminRemove":
                del tenant.schedules[current.id]
                if current.assignment_id in tenant.assignments:
                    self._end_assignment(tenant, current.assignment_id)
            else:  # adminUpdate, adminExtend: a new end
                _start, end, kind = self._schedule(body)
                current.end, current.expiration_type = end, kind
            return self._request_view(body, current, str(action))

    def _schedule(self, body: dict[str, Any]) -> tuple[datetime, datetime | None, str]:
        info = body.get("scheduleInfo")
        if not isinstance(info, dict):
            raise bad_request("Invalid value specified for property 'scheduleInfo'.")
        now = self.now()
        start = _parse_time(info["startDateTime"], "startDateTime") if info.get(
            "startDateTime") else now  # fmt: skip
        expiration = info.get("expiration") or {"type": "noExpiration"}
        kind = expiration.get("type") if isinstance(expiration, dict) else None
        if kind == "afterDateTime":
            end: datetime | None = _parse_time(expiration.get("endDateTime"), "endDateTime")
        elif kind == "afterDuration":
            end = start + _duration(expiration.get("duration"))
        elif kind in ("noExpiration", "notSpecified"):
            end = None
        else:
            raise bad_request("Invalid value specified for property 'expiration'.")
        if end is not None and end <= max(start, now):
            # The role policy's expiration rule refuses an end that is already past.
            raise bad_request(
                'The following policy rules failed: ["ExpirationRule"]',
                "RoleAssignmentRequestPolicyValidationFailed",
            )
        return start, end, str(kind)

    def _assign(
        self, tenant: Tenant, principal: str, role: str, body: dict[str, Any]
    ) -> RoleSchedule:
        start, end, kind = self._schedule(body)
        rid = assignment_id(role, principal)
        tenant.removed.pop(rid, None)
        tenant.assignments[rid] = RoleAssignment(
            rid, role, principal, created_request=tenant.requests
        )
        schedule = RoleSchedule(str(uuid.uuid4()), principal, role, rid, start, end, kind)
        tenant.schedules[schedule.id] = schedule
        return schedule

    def _request_view(
        self, body: dict[str, Any], schedule: RoleSchedule, action: str
    ) -> dict[str, Any]:
        now = iso_z(self.now())
        return {
            "id": str(uuid.uuid4()),
            "status": "Revoked" if action == "adminRemove" else "Provisioned",
            "createdDateTime": now,
            "completedDateTime": now,
            "approvalId": None,
            "customData": None,
            "action": action,
            "principalId": schedule.principal_id,
            "roleDefinitionId": schedule.role_definition_id,
            "directoryScopeId": "/",
            "appScopeId": None,
            "isValidationOnly": False,
            "targetScheduleId": schedule.id,
            "justification": body.get("justification"),
            "createdBy": {"application": None, "device": None, "user": None},
            "scheduleInfo": schedule.schedule_info(),
            "ticketInfo": body.get("ticketInfo") or {"ticketNumber": None, "ticketSystem": None},
        }
