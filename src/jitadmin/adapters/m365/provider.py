"""IdentityProvider for Microsoft 365: temporary Global Administrator via Graph v1.0.

Grant creates a per-grant cloud account tagged ``employeeType = "jitadmin"`` with
the grant id in its display name, assigns Global Administrator at "/" and reads it back.
Revoke removes every role assignment of that account, verifies, disables it,
revokes its sessions, deletes and purges it, and returns only after reading all of that back.
Every step treats "already so" as success and reports progress through ``record`` at once,
so a retry after a crash at any point converges.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jitadmin.adapters.m365 import permissions, pim, tap
from jitadmin.adapters.m365.client import GraphClient
from jitadmin.adapters.m365.connection import M365Connection
from jitadmin.adapters.m365.directory import (
    GLOBAL_ADMIN_ROLE_ID,
    MANAGED_TAG,
    Directory,
    display_name,
    grant_id_in,
    is_ours,
)
from jitadmin.adapters.m365.errors import GraphConflictError
from jitadmin.adapters.m365.revoke_steps import RevokeSteps
from jitadmin.core import naming
from jitadmin.core.egress import EgressPolicy
from jitadmin.core.errors import AlreadyExistsError, MisconfiguredError, TransientError
from jitadmin.ports import (
    AccessResult,
    AccessSpec,
    ManagedAccount,
    ProgressRecorder,
    RevokeSpec,
)

__all__ = ["M365Connection", "M365IdentityProvider"]

log = logging.getLogger(__name__)

# POST /users is not idempotent: after an ambiguous failure we re-read, then try again.
_CREATE_ATTEMPTS = 3
# How long a new role assignment may stay invisible to reads by id and to lists (Terraform's
# azuread provider waits up to 5 minutes for one): until then a 404 for it means "not yet".
NEW_ASSIGNMENT_WAIT_S = 300.0
# What the grant records of how Global Administrator was given (PIM or plain, and why).
_HOW = ("role_assignment", "role_notice")


class M365IdentityProvider(RevokeSteps):
    kind = "m365"

    def __init__(
        self,
        connection: M365Connection,
        *,
        timeout_s: float = 30.0,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 16.0,
        budget_s: float = 60.0,
        max_attempts: int = 8,
        client: GraphClient | None = None,
        egress: EgressPolicy | None = None,
        now: Callable[[], datetime] | None = None,
        new_assignment_wait_s: float = NEW_ASSIGNMENT_WAIT_S,
    ) -> None:
        self.connection = connection
        self._new_assignment_wait = timedelta(seconds=new_assignment_wait_s)
        self._now = now or (lambda: datetime.now(UTC))
        self._graph = client or GraphClient.connect(
            connection.tenant_id,
            connection.client_id,
            connection.msal_credential(),
            authority_url=connection.authority_url,
            graph_url=connection.graph_url,
            timeout_s=timeout_s,
            backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s,
            budget_s=budget_s,
            max_attempts=max_attempts,
            egress=egress,
        )
        self._dir = Directory(self._graph, connection.domain)

    def __repr__(self) -> str:
        return f"M365IdentityProvider(tenant={self.connection.tenant_id!r})"

    def close(self) -> None:
        self._graph.close()

    # -- IdentityProvider --------------------------------------------------------------

    def planned_username(self, grant_id: str, requester: str) -> str:
        # Called while a technician's request is answered: a configured domain is taken as it
        # is (no Graph call, so a slow or throttled tenant never holds the form); the grant
        # itself checks it against the tenant before anything is created.
        domain = self._dir.upn_domain(checked=False)
        return naming.m365_user_principal_name(requester, grant_id, domain)

    def check(self) -> list[str]:
        findings: list[str] = []
        self._graph.ensure_token()
        findings.append("token acquired")
        findings.append(self._check_permissions())
        self._dir.domains()  # refuses a configured domain that is federated, unverified, too long
        configured = self.connection.domain
        if configured:
            findings.append(f"configured domain {configured.lower()}")
        else:
            findings.append(f"initial domain {self._dir.upn_domain()}")
        admins = self._graph.list_all(
            "/roleManagement/directory/roleAssignments",
            {"$filter": f"roleDefinitionId eq '{GLOBAL_ADMIN_ROLE_ID}'"},
        )
        findings.append(f"role assignments readable ({len(admins)} Global Administrator)")
        if self._uses_tap:
            findings.append(tap.read_policy(self._graph).describe())
        if self.connection.pim != "auto":
            findings.append("PIM not used for this connection: Global Administrator is a plain "
                            "assignment that jitadmin removes itself")  # fmt: skip
        elif pim.supported(self._graph):
            findings.append(pim.AVAILABLE)
        else:
            findings.append(pim.NO_P2_NOTICE)
        return findings

    @property
    def _uses_tap(self) -> bool:
        return self.connection.credential == "tap"

    def _check_permissions(self) -> str:
        """Every missing application permission at once, from the token's roles claim; a
        token that lacks some is dropped once, so consent granted since it was issued counts."""
        needed = permissions.REQUIRED
        if self._uses_tap:
            needed = (*needed, *permissions.TAP_PERMISSIONS)
        granted = self._graph.granted_permissions()
        if granted is not None and permissions.missing(granted, needed):
            granted = self._graph.granted_permissions(fresh=True)
        if granted is None:
            return "application permissions not readable from the token (not a JWT)"
        absent = permissions.missing(granted, needed)
        if absent:
            raise MisconfiguredError(
                permissions.consent_advice(absent, self.connection.tenant_id),
                vendor_code="Authorization_RequestDenied",
            )
        return "application permissions granted: " + ", ".join(needed)

    def grant(self, spec: AccessSpec, record: ProgressRecorder) -> AccessResult:
        self._graph.ensure_token()  # fail fast on consent/secret problems
        self._dir.upn_domain()  # refuses a federated, unverified or too long domain first
        upn = self.planned_username(spec.grant_id, spec.requester)
        user = self._find_for_grant(spec, upn, record)
        created = False
        if user is None:
            user, created = self._create_user(spec, upn)
        user_id = str(user["id"])
        upn = str(user.get("userPrincipalName") or upn)
        if spec.account.get("user_id") != user_id:
            record("user_created", {"user_id": user_id, "upn": upn})
        if not created and user.get("accountEnabled") is False:
            self._dir.enable_user(user_id)  # still no admin role, so User.ReadWrite.All suffices
            record("user_enabled", {})

        existing = None if created else self._dir.global_admin_of(user_id)
        how = {k: spec.account[k] for k in _HOW if k in spec.account}
        if existing:
            assignment_id = str(existing["id"])
            if "role_assignment" not in how:
                # Made by an attempt that crashed before recording it: PIM or plain? (An
                # extension must know whether the tenant holds an end to move.)
                pim_made = self.connection.pim == "auto" and pim.scheduled(self._graph, user_id)
                how = {"role_assignment": pim.PIM if pim_made else pim.DIRECT}
        else:
            assignment_id, how = self._assign_role(spec, user_id)
        assigned_at = _text(spec.account.get("assigned_at"))
        if spec.account.get("assignment_id") != assignment_id:
            # When: a revoke soon after must not read a 404 for it as "already gone".
            assigned_at = self._now().isoformat()
            record("role_assigned",
                   {"assignment_id": assignment_id, "assigned_at": assigned_at, **how})  # fmt: skip
        if self._dir.global_admin_eventually(user_id) is None:
            raise TransientError(
                f"Global Administrator for {upn} is not visible yet (pending replication)"
            )
        record("verified_granted", {})
        account: dict[str, Any] = {
            "user_id": user_id, "upn": upn, "assignment_id": assignment_id, **how
        }  # fmt: skip
        if assigned_at is not None:
            account["assigned_at"] = assigned_at
        if not self._uses_tap:
            return AccessResult(username=upn, account=account)
        # Last, so the pass lives as long as the access and no failed grant leaves one behind.
        issued = tap.issue(self._graph, user_id, self._now(), spec.expires_at)
        account.update(issued.account)
        return AccessResult(upn, account, temporary_access_pass=issued.temporary_access_pass)

    def _assign_role(self, spec: AccessSpec, user_id: str) -> tuple[str, dict[str, Any]]:
        """Global Administrator: time-bound through PIM where the tenant has P2, else plain
        (visibly). Returns the assignment id and how it was made."""
        if self.connection.pim != "auto":
            return self._dir.assign_global_admin(user_id), {"role_assignment": pim.DIRECT}
        justification = f"jitadmin grant {spec.grant_id}"
        if pim.assign(self._graph, user_id, GLOBAL_ADMIN_ROLE_ID, self._now(), spec.expires_at,
                      justification):  # fmt: skip
            found = self._dir.global_admin_eventually(user_id)
            if found is None:
                raise TransientError("the PIM assignment is not visible yet (pending replication)")
            return str(found["id"]), {"role_assignment": pim.PIM}
        fallback = {"role_assignment": pim.DIRECT, "role_notice": pim.NO_P2_NOTICE}
        return self._dir.assign_global_admin(user_id), fallback

    def extend(self, spec: AccessSpec) -> None:
        """A PIM assignment's end moves with the grant's; a plain one has none in the tenant."""
        user_id = _text(spec.account.get("user_id"))
        if spec.account.get("role_assignment") == pim.PIM and user_id is not None:
            pim.extend(self._graph, user_id, GLOBAL_ADMIN_ROLE_ID, self._now(), spec.expires_at)

    def revoke(self, spec: RevokeSpec, record: ProgressRecorder) -> None:
        """Trusts the object id jitadmin recorded at creation, never the account's attributes:
        the grantee, while Global Administrator, can rewrite its own tag and name. What was
        changed is reported as tampering and the revocation goes on."""
        self._graph.ensure_token()
        account = spec.account
        user_id = _text(account.get("user_id"))
        upn = _text(account.get("upn")) or spec.username
        if user_id is None:
            # A crash between POST /users and record() leaves an account we never noted.
            upn = upn or self.planned_username(spec.grant_id, spec.requester)
            found = self._dir.user_by_upn(upn)
            if found is None:
                record("verified_revoked", {})  # never created: nothing to take away
                return
            if not is_ours(found, spec.grant_id):
                # Someone else's account holds the name (the grant failed on that collision):
                # nothing of ours exists, and theirs is never touched.
                log.warning("grant %s: %s belongs to someone else; left alone", spec.grant_id, upn)
                record("verified_revoked", {"foreign_account_left_alone": True})
                return
            user_id = str(found["id"])
            record("user_found", {"user_id": user_id, "upn": found.get("userPrincipalName")})
        else:
            self._report_tampering(user_id, spec.grant_id, _text(account.get("upn")), record)
        label = upn or user_id

        # A PIM assignment is ended through PIM (deleting it directly is not documented); one
        # whose making was not recorded (a crash) may be one too, so ask unless it is plain.
        ended = False
        if self.connection.pim == "auto" and account.get("role_assignment") != pim.DIRECT:
            ended = not account.get("role_removed") and pim.remove(
                self._graph, user_id, GLOBAL_ADMIN_ROLE_ID
            )
        # Once removal was verified (or PIM ended it), a 404 for the stored id means gone.
        young = self._young(account) and not account.get("role_removed") and not ended
        self._remove_stored_role(user_id, _text(account.get("assignment_id")), young, label)
        if not self._graph.poll(lambda: self._roles_cleared(user_id)):
            raise TransientError(f"role assignments of {label} are still listed after removal")
        record("role_removed", {"role_removed": True})
        if self._dir.disable_user(user_id):
            record("user_disabled", {})
        if self._dir.revoke_sessions(user_id):
            record("sessions_revoked", {})
        if self._dir.delete_user(user_id):
            record("user_deleted", {"user_deleted": True})

        # "Gone" needs one positive observation: the deleted item seen in the recycle bin, or a
        # purge that succeeded. Two 404s alone prove nothing (another tenant, or a replica that
        # has not caught up: right after the delete, the purge may 404 meaning "not yet").
        proof = [key for key in ("deleted_seen", "user_purged") if account.get(key)]
        remaining: list[str] = []
        if not self._graph.poll(lambda: self._confirm_gone(user_id, remaining, proof, record)):
            raise TransientError(f"revoke of {label} not verified; still missing: {remaining}")
        record("verified_revoked", {})

    def tenant_id(self) -> str:
        return self._graph.tenant_id()

    def list_managed(self) -> list[ManagedAccount]:
        """Tagged accounts, and every user holding Global Administrator without the tag (the
        reconciler matches those against the object ids in its ledger)."""
        self._graph.ensure_token()
        found = []
        for user in self._dir.managed_users():
            user_id = str(user["id"])
            found.append(self._managed(user, bool(self._dir.assignments_of(user_id)), True))
        listed = {account.object_id for account in found}
        for principal in self._dir.role_members(GLOBAL_ADMIN_ROLE_ID):
            if principal in listed:
                continue
            member = self._dir.user(principal)
            if member is not None:  # None: a service principal, or gone since the listing
                found.append(self._managed(member, True, False))
        return found

    @staticmethod
    def _managed(user: dict[str, Any], holds_admin: bool, tagged: bool) -> ManagedAccount:
        user_id, upn = str(user["id"]), str(user.get("userPrincipalName") or user["id"])
        return ManagedAccount(
            username=upn,
            object_id=user_id,
            grant_id=grant_id_in(user),
            requester=None,
            enabled=user.get("accountEnabled") is not False,
            holds_admin=holds_admin,
            account={"user_id": user_id, "upn": upn},
            tagged=tagged,
        )

    # -- grant helpers -----------------------------------------------------------------

    def _find_for_grant(
        self, spec: AccessSpec, upn: str, record: ProgressRecorder
    ) -> dict[str, Any] | None:
        recorded = _text(spec.account.get("user_id"))
        if recorded is not None:
            user = self._dir.user_eventually(recorded)
            if user is not None:
                # Ours by the id we recorded, whatever its attributes say now.
                self._report_tampering(recorded, spec.grant_id, _text(spec.account.get("upn")),
                                       record, user)  # fmt: skip
                return user
            # Gone (deleted by someone, or purged): forget it and go by UPN.
            log.warning("recorded user %s of grant %s is gone", recorded, spec.grant_id)
        return self._adoptable(self._dir.user_by_upn(upn), spec.grant_id, upn)

    @staticmethod
    def _adoptable(user: dict[str, Any] | None, grant_id: str, upn: str) -> dict[str, Any] | None:
        if user is not None and not is_ours(user, grant_id):
            raise AlreadyExistsError(
                f"UPN collision with an account jitadmin does not manage: {upn}"
            )
        return user

    def _create_user(self, spec: AccessSpec, upn: str) -> tuple[dict[str, Any], bool]:
        body = {
            "accountEnabled": True,
            "displayName": display_name(spec.grant_id),
            "mailNickname": naming.m365_mail_nickname(spec.requester, spec.grant_id),
            "userPrincipalName": upn,
            "employeeType": MANAGED_TAG,
            "passwordProfile": {
                "forceChangePasswordNextSignIn": False,
                "password": spec.password,
            },
        }
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            try:
                return self._dir.create_user(body), True
            except GraphConflictError:
                # Perhaps our own earlier attempt succeeded before a timeout.
                existing = self._adoptable(self._dir.user_by_upn(upn), spec.grant_id, upn)
                if existing is None:
                    raise TransientError(
                        f"UPN {upn} is taken but the account is not visible yet",
                        vendor_code="ObjectConflict",
                    ) from None
                return existing, False
            except TransientError:
                # 5xx/timeout on a non-idempotent call: look before trying again.
                existing = self._adoptable(self._dir.user_by_upn(upn), spec.grant_id, upn)
                if existing is not None:
                    return existing, False
                if attempt == _CREATE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
