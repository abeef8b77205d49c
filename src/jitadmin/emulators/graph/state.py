"""In-memory directory behind the Graph emulator: the operations the v1.0 routes perform.

Every method takes the directory lock and raises ``GraphError`` with Graph's status and code.
"""

from __future__ import annotations

import secrets
import string
import time
import uuid
from datetime import timedelta
from typing import Any

from jitadmin.emulators.graph.directory import TOKEN_LIFETIME_S, Caller
from jitadmin.emulators.graph.http import GraphError, bad_request, denied, iso_z, not_found, utc_now
from jitadmin.emulators.graph.model import (
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR,
    ROLE_DEFINITIONS,
    SENSITIVE_PROPERTIES,
    USER_ADMINISTRATOR,
    RoleAssignment,
    TapPolicy,
    Tenant,
    User,
    assignment_id,
    check_upn,
    clean_user_body,
    parse_guid,
)
from jitadmin.emulators.graph.pim_state import PimDirectory

__all__ = ["TOKEN_LIFETIME_S", "Caller", "GraphState"]

_CONFLICT = (
    "A conflicting object with one or more of the specified property values is present "
    "in the directory."
)


_TAP_ALPHABET = string.ascii_letters + string.digits + "!#$%&*+-=?@"


def _tap_refused(message: str) -> GraphError:
    # Graph's own code for a refused pass is the lower-case "badRequest"
    # (microsoft-graph-docs#12187 quotes it for a lifetime outside the policy).
    return bad_request(message, code="badRequest")


def _upn_conflict() -> GraphError:
    return bad_request(
        "Another object with the same value for property userPrincipalName already exists.",
        details=[{"code": "ObjectConflict", "target": "userPrincipalName"}],
    )


class GraphState(PimDirectory):
    """The whole emulated directory: ``GraphState(customers, creds)``."""

    # --- domains and users -----------------------------------------------------------------

    def list_domains(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d.view() for d in self._tenant(tenant_id).domains]

    def list_users(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [u.view() for u in self._tenant(tenant_id).users.values() if self._replicated(u)]

    def get_user(self, tenant_id: str, key: str) -> dict[str, Any]:
        with self.lock:
            return self._user(self._tenant(tenant_id), key).view()

    def _verified(self, tenant: Tenant) -> set[str]:
        return {d.id.lower() for d in tenant.domains if d.is_verified}

    def _check_not_federated(self, tenant: Tenant, props: dict[str, Any]) -> None:
        # A UPN in a federated domain needs onPremisesImmutableId: the account signs in at the
        # customer's identity provider (https://learn.microsoft.com/graph/api/user-post-users).
        domain = str(props["userPrincipalName"]).rsplit("@", 1)[-1].lower()
        federated = {d.id.lower() for d in tenant.domains if d.authentication_type == "Federated"}
        if domain in federated and not props.get("onPremisesImmutableId"):
            raise bad_request(
                "Property 'onPremisesImmutableId' is required when creating a user in a "
                "federated domain."
            )

    def _check_upn_free(self, tenant: Tenant, upn: str, except_id: str | None = None) -> None:
        # Only active users count: a soft-deleted user's UPN gets its object id as a prefix.
        other = self._lookup(tenant, upn)
        if other is not None and other.id != except_id:
            raise _upn_conflict()

    def create_user(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        props, profile = clean_user_body(body, creating=True)
        with self.lock:
            tenant = self._tenant(caller.tenant_id)
            check_upn(props["userPrincipalName"], self._verified(tenant))
            self._check_not_federated(tenant, props)
            self._check_upn_free(tenant, props["userPrincipalName"])
            assert profile is not None  # clean_user_body insists on it when creating
            user = self._new_user(tenant, props, str(profile["password"]))
            return user.view()

    def update_user(self, caller: Caller, key: str, body: dict[str, Any]) -> None:
        props, profile = clean_user_body(body, creating=False)
        with self.lock:
            tenant = self._tenant(caller.tenant_id)
            user = self._user(tenant, key)
            changing = set(props) | ({"passwordProfile"} if profile else set())
            high = (PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR)
            if (
                changing & SENSITIVE_PROPERTIES
                and self._holds_role(tenant, user.id)
                and not self._sp_holds(tenant, caller, high)
            ):
                raise denied()
            # A user's own token may change users only while that user holds an admin role.
            if caller.delegated and not self._sp_holds(tenant, caller, (USER_ADMINISTRATOR, *high)):
                raise denied()
            # App-only password resets need a directory role (User Administrator) on the app itself.
            if profile and not self._sp_holds(tenant, caller, (USER_ADMINISTRATOR, *high)):
                raise denied()
            if "userPrincipalName" in props:
                check_upn(props["userPrincipalName"], self._verified(tenant))
                self._check_upn_free(tenant, props["userPrincipalName"], except_id=user.id)
            user.props.update(props)
            if profile:
                user.password = str(profile["password"])

    def revoke_sessions(self, tenant_id: str, key: str) -> None:
        with self.lock:
            user = self._user(self._tenant(tenant_id), key)
            user.props["signInSessionsValidFromDateTime"] = iso_z(utc_now())

    def delete_user(self, caller: Caller, key: str) -> None:
        with self.lock:
            tenant = self._tenant(caller.tenant_id)
            user = self._user(tenant, key)
            high = (PRIVILEGED_AUTHENTICATION_ADMINISTRATOR, GLOBAL_ADMINISTRATOR)
            if self._holds_role(tenant, user.id) and not self._sp_holds(tenant, caller, high):
                raise denied()
            for rid in [r for r, a in tenant.assignments.items() if a.principal_id == user.id]:
                self._remove_assignment(tenant, rid)
            del tenant.users[user.id]
            user.props["userPrincipalName"] = user.id.replace("-", "") + user.upn
            user.deleted_at = utc_now()
            user.deleted_mono = time.monotonic()
            user.deleted_request = tenant.requests
            tenant.deleted[user.id] = user

    # --- recycle bin -----------------------------------------------------------------------

    def _deleted(self, tenant: Tenant, key: str) -> User:
        guid = parse_guid(key)
        user = tenant.deleted.get(guid) if guid else None
        if user is None or not self._deletion_replicated(tenant, user):
            raise not_found(key)
        return user

    def _deletion_replicated(self, tenant: Tenant, user: User) -> bool:
        # A just-deleted user is not yet visible, purgeable or restorable in deletedItems: a
        # 404 then means "not yet", not "already purged".
        if time.monotonic() - (user.deleted_mono or float("-inf")) < self._lag_s():
            return False
        lag = self.faults.settings.deleted_lag_requests
        return not self._lagging(tenant, user.deleted_request, lag)

    def list_deleted(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.lock:
            tenant = self._tenant(tenant_id)
            deleted = tenant.deleted.values()
            return [u.view() for u in deleted if self._deletion_replicated(tenant, u)]

    def get_deleted(self, tenant_id: str, key: str) -> dict[str, Any]:
        with self.lock:
            return self._deleted(self._tenant(tenant_id), key).view()

    def purge_deleted(self, tenant_id: str, key: str) -> None:
        with self.lock:
            tenant = self._tenant(tenant_id)
            del tenant.deleted[self._deleted(tenant, key).id]

    def restore_deleted(self, tenant_id: str, key: str) -> dict[str, Any]:
        with self.lock:
            tenant = self._tenant(tenant_id)
            user = self._deleted(tenant, key)
            prefix = user.id.replace("-", "")
            original = user.upn[len(prefix) :] if user.upn.startswith(prefix) else user.upn
            self._check_upn_free(tenant, original)
            del tenant.deleted[user.id]
            user.props["userPrincipalName"] = original
            user.deleted_at = None
            user.deleted_mono = None
            user.deleted_request = None
            tenant.users[user.id] = user
            return user.view()

    # --- role assignments ------------------------------------------------------------------

    def _remove_assignment(self, tenant: Tenant, rid: str) -> None:
        gone = tenant.assignments.pop(rid)
        gone.removed_mono = time.monotonic()
        gone.removed_request = tenant.requests
        tenant.removed[rid] = gone

    def _live_assignments(self, tenant: Tenant) -> list[RoleAssignment]:
        """What reads see: replicated assignments, and removed ones a replica still has."""
        live = [a for a in tenant.assignments.values() if self._assignment_visible(tenant, a)]
        return [*live, *self._visible_removed(tenant)]

    def _principal_exists(self, tenant: Tenant, principal_id: str) -> bool:
        user = tenant.users.get(principal_id)
        if user is not None:
            return self._replicated(user)
        return any(app.sp_id == principal_id for app in tenant.apps.values())

    def create_assignment(self, caller: Caller, body: dict[str, Any]) -> dict[str, Any]:
        for prop in ("roleDefinitionId", "principalId", "directoryScopeId"):
            if not isinstance(body.get(prop), str):
                raise bad_request(f"Invalid value specified for property '{prop}'.")
        role = parse_guid(body["roleDefinitionId"])
        principal = parse_guid(body["principalId"])
        if principal is None:
            raise bad_request(f"Invalid object identifier '{body['principalId']}'.")
        if role is None or role not in ROLE_DEFINITIONS:
            raise bad_request(f"Invalid role definition id '{body['roleDefinitionId']}'.")
        if body["directoryScopeId"] != "/":
            raise bad_request("The emulator supports only directoryScopeId '/'.")
        with self.lock:
            tenant = self._tenant(caller.tenant_id)
            if not self._principal_exists(tenant, principal):
                raise not_found(principal)
            rid = assignment_id(role, principal)
            if rid in tenant.assignments:
                raise bad_request(_CONFLICT)
            tenant.removed.pop(rid, None)
            created = RoleAssignment(rid, role, principal, created_request=tenant.requests)
            tenant.assignments[rid] = created
            return created.view()

    def list_assignments(self, tenant_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a.view() for a in self._live_assignments(self._tenant(tenant_id))]

    def get_assignment(self, tenant_id: str, rid: str) -> dict[str, Any]:
        with self.lock:
            live = self._live_assignments(self._tenant(tenant_id))
            found = next((a for a in live if a.id == rid), None)
            if found is None:
                raise not_found(rid)
            return found.view()

    def delete_assignment(self, tenant_id: str, rid: str) -> None:
        with self.lock:
            tenant = self._tenant(tenant_id)
            found = tenant.assignments.get(rid)
            # A just-created assignment is not on the replica yet: 404, and it stays.
            if found is None or not self._assignment_visible(tenant, found):
                raise not_found(rid)
            self._remove_assignment(tenant, rid)

    def principal_view(self, tenant_id: str, principal_id: str) -> dict[str, Any] | None:
        """The ``principal`` of an assignment for ``$expand=principal``."""
        with self.lock:
            tenant = self._tenant(tenant_id)
            user = tenant.users.get(principal_id)
            if user is not None:
                return {"@odata.type": "#microsoft.graph.user", **user.view()}
            for app in tenant.apps.values():
                if app.sp_id == principal_id:
                    return {
                        "@odata.type": "#microsoft.graph.servicePrincipal",
                        "id": app.sp_id,
                        "appId": app.client_id,
                    }
            return None

    # --- Temporary Access Pass (https://learn.microsoft.com/graph/api/authentication-post-temporaryaccesspassmethods)

    def tap_policy(self, tenant_id: str) -> dict[str, Any]:
        with self.lock:
            return self._tenant(tenant_id).tap_policy.view()

    def set_tap_policy(self, tenant_id: str, **changes: Any) -> None:
        """Test control: change the TAP policy (``state``, ``minimum_lifetime``, …)."""
        with self.lock:
            tenant = self._tenants[tenant_id.lower()]
            current = tenant.tap_policy
            tenant.tap_policy = TapPolicy(**{**current.__dict__, **changes})

    def create_temporary_access_pass(
        self, tenant_id: str, key: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        lifetime = body.get("lifetimeInMinutes")
        once = body.get("isUsableOnce")
        if lifetime is not None and (isinstance(lifetime, bool) or not isinstance(lifetime, int)):
            raise bad_request("Invalid value specified for property 'lifetimeInMinutes'.")
        if once is not None and not isinstance(once, bool):
            raise bad_request("Invalid value specified for property 'isUsableOnce'.")
        with self.lock:
            tenant = self._tenant(tenant_id)
            user = self._user(tenant, key)
            policy = tenant.tap_policy
            if policy.state != "enabled":
                raise _tap_refused(
                    "Temporary Access Pass is disabled for the user by the authentication "
                    "methods policy."
                )
            minutes = policy.default_lifetime if lifetime is None else lifetime
            if not policy.minimum_lifetime <= minutes <= policy.maximum_lifetime:
                raise _tap_refused(
                    "Invalid LifetimeInMinutes specified. The valid range between "
                    f"{policy.minimum_lifetime} and {policy.maximum_lifetime}."
                )
            if policy.is_usable_once and once is False:
                raise _tap_refused("The policy allows only one-time Temporary Access Passes.")
            now = utc_now()
            method = {
                "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
                "id": str(uuid.uuid4()),
                "temporaryAccessPass": "".join(
                    secrets.choice(_TAP_ALPHABET) for _ in range(policy.default_length)
                ),
                "createdDateTime": iso_z(now),
                "startDateTime": iso_z(now),
                "lifetimeInMinutes": minutes,
                "isUsableOnce": bool(once) or policy.is_usable_once,
                "isUsable": True,
                "methodUsabilityReason": "EnabledByPolicy",
                "expiresDateTime": iso_z(now + timedelta(minutes=minutes)),
            }
            user.temporary_access_pass = method  # one per user: a new pass replaces the old
            shown = dict(method)
            shown.pop("expiresDateTime")
            return shown
