"""The Entra ID reads and writes the M365 adapter is built from, over GraphClient.

Knows Graph paths, the tag that marks an account as jitadmin's, and how to find our user and
its Global Administrator assignment. No flow logic: that lives in ``provider``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from jitadmin.adapters.m365.client import (
    DENIED_UNTIL_REPLICATED,
    NOT_YET_REPLICATED,
    GraphClient,
)
from jitadmin.adapters.m365.errors import (
    GraphBadRequestError,
    GraphConflictError,
    GraphNotFoundError,
)
from jitadmin.adapters.m365.permissions import (
    DELETE_RESTORE,
    DELETE_USER,
    REVOKE_SESSIONS,
    ROLE_MANAGEMENT,
    USER_READ_WRITE,
    need,
)
from jitadmin.core.errors import MisconfiguredError, TransientError

GLOBAL_ADMIN_ROLE_ID = "62e90394-69f5-4237-9190-012177145e10"
TENANT_SCOPE = "/"
MANAGED_TAG = "jitadmin"  # employeeType of every account jitadmin creates
ROLE_ASSIGNMENTS = "/roleManagement/directory/roleAssignments"
USER_FIELDS = "id,userPrincipalName,displayName,accountEnabled,employeeType"
# employeeType is an advanced-query-only property, even for eq: without these Graph answers
# 400 Request_UnsupportedQuery (https://learn.microsoft.com/graph/aad-advanced-queries).
ADVANCED_QUERY = {"ConsistencyLevel": "eventual"}
# Reads that follow our own writes: Entra ID is replicated, so a read may lag behind them.
REPLICATION = NOT_YET_REPLICATED
AFTER_ROLE_REMOVAL = DENIED_UNTIL_REPLICATED


# Entra ID username policy: the part of a UPN after "@" is at most 48 characters
# (https://learn.microsoft.com/entra/identity/authentication/concept-sspr-policy).
UPN_DOMAIN_MAX = 48
UPN_DOMAIN_RULE = f"must be at most {UPN_DOMAIN_MAX} characters (the part of a user name after @)"


def check_upn_domain(domain: dict[str, Any] | None, name: str) -> None:
    """A domain new accounts can live in: verified, managed (not federated), short enough."""
    if len(name) > UPN_DOMAIN_MAX:
        raise MisconfiguredError(f"domain {name} {UPN_DOMAIN_RULE}")
    if domain is None or not domain.get("isVerified"):
        raise MisconfiguredError(f"domain {name} is not a verified tenant domain")
    if str(domain.get("authenticationType") or "Managed").lower() == "federated":
        raise MisconfiguredError(
            f"domain {name} is federated: its accounts sign in at the customer's own identity "
            "provider, so a cloud account with a password cannot live there; configure a "
            "managed domain (for example the tenant's onmicrosoft.com domain)"
        )


def odata_quote(value: str) -> str:
    """An OData string literal: single quotes doubled; httpx percent-encodes."""
    return "'" + value.replace("'", "''") + "'"


def segment(value: str) -> str:
    """An id as one path segment, so a tampered record cannot reach another resource."""
    return quote(value, safe="")


_NAME_HEAD, _NAME_TAIL = "jitadmin temporary admin (grant ", ")"


def display_name(grant_id: str) -> str:
    return f"{_NAME_HEAD}{grant_id}{_NAME_TAIL}"


def grant_id_in(user: dict[str, Any]) -> str | None:
    """The grant id a tagged account was named after (``display_name``), if it has one."""
    name = user.get("displayName")
    if user.get("employeeType") != MANAGED_TAG or not isinstance(name, str):
        return None
    if not (name.startswith(_NAME_HEAD) and name.endswith(_NAME_TAIL)):
        return None
    return name[len(_NAME_HEAD) : -len(_NAME_TAIL)] or None


def is_ours(user: dict[str, Any], grant_id: str) -> bool:
    """Tagged by us for this grant: the tag alone could be copied, the grant id pins it."""
    name = user.get("displayName")
    return user.get("employeeType") == MANAGED_TAG and isinstance(name, str) and grant_id in name


def tampered_fields(
    user: dict[str, Any], grant_id: str, upn: str | None, *, deleted: bool = False
) -> list[str]:
    """What no longer reads as jitadmin wrote it on the account it created for ``grant_id``.

    Deleted items may come back without ``employeeType`` and with a UPN prefixed by the object
    id (that is how Entra frees the UPN), so those two are not held against a deleted item."""
    changed = []
    tag = user.get("employeeType")
    if tag != MANAGED_TAG and not (deleted and tag is None):
        changed.append("employeeType")
    if user.get("displayName") != display_name(grant_id):
        changed.append("displayName")
    current = str(user.get("userPrincipalName") or "")
    if not deleted and upn and current and current.lower() != upn.lower():
        changed.append("userPrincipalName")
    return changed


class Directory:
    """Tenant-level operations used by grant, revoke and check."""

    def __init__(self, graph: GraphClient, domain: str | None = None) -> None:
        self.graph = graph
        self._configured_domain = domain.lower() if domain else None
        self._initial_domain: str | None = None
        self._configured_checked = False

    # -- domains -----------------------------------------------------------------------

    def domains(self) -> list[dict[str, Any]]:
        domains = self.graph.list_all(
            "/domains", {"$select": "id,isDefault,isInitial,isVerified,authenticationType"}
        )
        for domain in domains:
            if domain.get("isInitial") and isinstance(domain.get("id"), str):
                self._initial_domain = str(domain["id"]).lower()
        if self._configured_domain:
            configured = self._configured_domain
            found = next((d for d in domains if str(d.get("id", "")).lower() == configured), None)
            check_upn_domain(found, configured)
            self._configured_checked = True
        return domains

    def upn_domain(self, *, checked: bool = True) -> str:
        """The configured domain (checked once against the tenant unless ``checked`` is
        False), else the tenant's ``*.onmicrosoft.com`` (cached)."""
        if self._configured_domain:
            if checked and not self._configured_checked:
                self.domains()
            return self._configured_domain
        if self._initial_domain is None:
            self.domains()
        if self._initial_domain is None:
            raise MisconfiguredError("the tenant reports no initial (onmicrosoft.com) domain")
        return self._initial_domain

    # -- users -------------------------------------------------------------------------

    def user(self, user_id: str) -> dict[str, Any] | None:
        return self.graph.get_optional(f"/users/{segment(user_id)}", {"$select": USER_FIELDS})

    def user_eventually(self, user_id: str) -> dict[str, Any] | None:
        """A user we know was created: wait out replication before believing a 404."""
        found: dict[str, Any] | None = None

        def visible() -> bool:
            nonlocal found
            found = self.user(user_id)
            return found is not None

        self.graph.poll(visible)
        return found

    def user_by_upn(self, upn: str) -> dict[str, Any] | None:
        matches = self.graph.list_all(
            "/users",
            {"$filter": f"userPrincipalName eq {odata_quote(upn)}", "$select": USER_FIELDS},
        )
        for user in matches:
            if str(user.get("userPrincipalName", "")).lower() == upn.lower():
                return user
        return None

    def managed_users(self) -> list[dict[str, Any]]:
        """Every account carrying jitadmin's tag. An advanced query: it reads the separately
        indexed query store, so a just-tagged account may show up a little later."""
        users = self.graph.list_all(
            "/users",
            {
                "$filter": f"employeeType eq {odata_quote(MANAGED_TAG)}",
                "$select": USER_FIELDS,
                "$count": "true",
            },
            headers=ADVANCED_QUERY,
        )
        return [user for user in users if user.get("employeeType") == MANAGED_TAG]

    def deleted_user(self, user_id: str) -> dict[str, Any] | None:
        return self.graph.get_optional(
            f"/directory/deletedItems/{segment(user_id)}", {"$select": USER_FIELDS}
        )

    def create_user(self, body: dict[str, Any]) -> dict[str, Any]:
        created = self.graph.post("/users", body, needs=need(USER_READ_WRITE))
        if not isinstance(created.get("id"), str):
            raise TransientError("Graph POST /users answered without an object id")
        return created

    def disable_user(self, user_id: str) -> bool:
        """False if the user is already gone."""
        try:
            self.graph.patch(
                f"/users/{segment(user_id)}",
                {"accountEnabled": False},
                retry_on=AFTER_ROLE_REMOVAL,
                needs=need(USER_READ_WRITE),
            )
        except GraphNotFoundError:
            return False
        return True

    def enable_user(self, user_id: str) -> None:
        self.graph.patch(f"/users/{segment(user_id)}", {"accountEnabled": True})

    def revoke_sessions(self, user_id: str) -> bool:
        """200 (with a boolean body) and 204 both mean done: Graph documents 204 but answers 200."""
        try:
            self.graph.post(
                f"/users/{segment(user_id)}/revokeSignInSessions",
                idempotent=True,
                retry_on=AFTER_ROLE_REMOVAL,
                needs=need(REVOKE_SESSIONS),
            )
        except GraphNotFoundError:
            return False
        return True

    def delete_user(self, user_id: str) -> bool:
        return self.graph.delete(
            f"/users/{segment(user_id)}", retry_on=AFTER_ROLE_REMOVAL, needs=DELETE_USER
        )

    def purge_user(self, user_id: str) -> bool:
        return self.graph.delete(
            f"/directory/deletedItems/{segment(user_id)}",
            retry_on=AFTER_ROLE_REMOVAL,
            needs=need(DELETE_RESTORE),
        )

    # -- role assignments --------------------------------------------------------------

    def assignments_of(self, principal_id: str) -> list[dict[str, Any]]:
        # Filter by principal only and match the rest here: combining it with roleDefinitionId
        # in one $filter is not documented to work.
        items = self.graph.list_all(
            ROLE_ASSIGNMENTS, {"$filter": f"principalId eq {odata_quote(principal_id)}"}
        )
        return [item for item in items if item.get("principalId") == principal_id]

    def role_members(self, role_definition_id: str) -> list[str]:
        """Every principal holding the role at any scope (``$filter`` on roleDefinitionId)."""
        items = self.graph.list_all(
            ROLE_ASSIGNMENTS, {"$filter": f"roleDefinitionId eq {odata_quote(role_definition_id)}"}
        )
        members = {
            str(item["principalId"])
            for item in items
            if item.get("roleDefinitionId") == role_definition_id
            and isinstance(item.get("principalId"), str)
        }
        return sorted(members)

    def global_admin_of(self, principal_id: str) -> dict[str, Any] | None:
        for item in self.assignments_of(principal_id):
            if (
                item.get("roleDefinitionId") == GLOBAL_ADMIN_ROLE_ID
                and item.get("directoryScopeId") == TENANT_SCOPE
                and isinstance(item.get("id"), str)
            ):
                return item
        return None

    def assign_global_admin(self, principal_id: str) -> str:
        """POST the assignment; an "already assigned" 400 counts once a list confirms it."""
        body = {
            "@odata.type": "#microsoft.graph.unifiedRoleAssignment",
            "roleDefinitionId": GLOBAL_ADMIN_ROLE_ID,
            "principalId": principal_id,
            "directoryScopeId": TENANT_SCOPE,
        }
        try:
            created = self.graph.post(
                ROLE_ASSIGNMENTS, body, retry_on=REPLICATION, needs=need(ROLE_MANAGEMENT)
            )
        except (GraphBadRequestError, GraphConflictError):
            existing = self.global_admin_eventually(principal_id)
            if existing is None:
                raise
            return str(existing["id"])
        if not isinstance(created.get("id"), str):
            raise TransientError("Graph POST roleAssignments answered without an id")
        return str(created["id"])

    def global_admin_eventually(self, principal_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = None

        def visible() -> bool:
            nonlocal found
            found = self.global_admin_of(principal_id)
            return found is not None

        self.graph.poll(visible)
        return found

    def assignment(self, assignment_id: str) -> dict[str, Any] | None:
        return self.graph.get_optional(f"{ROLE_ASSIGNMENTS}/{segment(assignment_id)}")

    def delete_assignment(self, assignment_id: str) -> bool:
        return self.graph.delete(
            f"{ROLE_ASSIGNMENTS}/{segment(assignment_id)}", needs=need(ROLE_MANAGEMENT)
        )
