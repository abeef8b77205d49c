"""Tenants, tokens and replication bookkeeping of the Graph emulator's directory.

One ``threading.RLock`` guards everything: the server thread mutates, tests read from theirs.
Read helpers for tests return deep copies. Replication delay is applied on read: by real time
(``faults.settings.replication_delay_ms``, off by default) and by the tenant's request count
(the ``*_lag_requests`` settings, on by default, as Entra ID always lags a little).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jitadmin.emulators.faults import FaultState
from jitadmin.emulators.graph.http import EntraError, GraphError, iso_z, not_found, utc_now
from jitadmin.emulators.graph.model import (
    CONSENTED_PERMISSIONS,
    GLOBAL_ADMINISTRATOR,
    AppConsent,
    Domain,
    RoleAssignment,
    Tenant,
    User,
    assignment_id,
    parse_guid,
)
from jitadmin.emulators.graph.registration import AppRegistration
from jitadmin.emulators.seed import SeedCredentials, SeedCustomer

TOKEN_LIFETIME_S = 3599
# Delegated permissions a signed-in user's token carries (the user's directory roles decide
# what it may really do, as in Entra: the effective right is the intersection).
DELEGATED_SCOPES = frozenset(
    {"User.ReadWrite.All", "Directory.Read.All", "RoleManagement.ReadWrite.Directory"}
)
RECYCLE_BIN_RETENTION = timedelta(days=30)
GRAPH_RESOURCE_ID = "00000003-0000-0000-c000-000000000000"
LONG_AGO = float("-inf")  # seeded objects have long since replicated


@dataclass(frozen=True)
class Caller:
    """Who a bearer token stands for: the app's service principal in one tenant."""

    tenant_id: str
    client_id: str
    roles: frozenset[str]
    sp_id: str  # the principal acting: the app's service principal, or the signed-in user
    delegated: bool = False  # a user's own token (ROPC), not the app's


@dataclass(frozen=True)
class _Token:
    caller: Caller
    expires_mono: float


class Directory:
    """State and helpers shared by every operation; ``GraphState`` adds the operations."""

    def __init__(self, customers: Sequence[SeedCustomer], creds: SeedCredentials) -> None:
        self.faults = FaultState()
        self.lock = threading.RLock()
        self.client_id = creds.graph_client_id
        self._tenants: dict[str, Tenant] = {}
        self._tokens: dict[str, _Token] = {}
        self._signing_key = secrets.token_bytes(32)
        self.clock_offset = timedelta(0)
        # The MSP's one multi-tenant app; each tenant's AppConsent is its service principal.
        self.registration = AppRegistration(
            client_id=creds.graph_client_id.lower(), required_permissions=CONSENTED_PERMISSIONS
        )
        for customer in customers:
            self._seed(customer, creds)

    # --- seeding and test helpers ----------------------------------------------------------

    def _seed(self, customer: SeedCustomer, creds: SeedCredentials) -> None:
        tenant = Tenant(
            id=customer.tenant_id.lower(),
            name=customer.name,
            domains=[
                Domain(customer.domain, is_initial=True, is_default=True, is_verified=True),
                Domain(
                    f"{customer.slug}.example",
                    is_initial=False,
                    is_default=False,
                    is_verified=False,
                ),
                Domain(
                    f"sso.{customer.slug}.example",
                    is_initial=False,
                    is_default=False,
                    is_verified=True,
                    authentication_type="Federated",
                ),
            ],
        )
        tenant.apps[creds.graph_client_id.lower()] = AppConsent(
            client_id=creds.graph_client_id.lower(),
            secret=creds.graph_client_secret,
            roles=frozenset(CONSENTED_PERMISSIONS),
            sp_id=str(uuid.uuid4()),
        )
        self._tenants[tenant.id] = tenant
        # A human admin jitadmin never created: clients must refuse to touch it.
        self.add_user(
            tenant.id,
            f"admin@{customer.domain}",
            display_name=f"{customer.name} Admin",
            roles=[GLOBAL_ADMINISTRATOR],
        )

    def add_user(
        self,
        tenant_id: str,
        upn: str,
        *,
        display_name: str | None = None,
        roles: Iterable[str] = (),
        account_enabled: bool = True,
        employee_type: str | None = None,
    ) -> str:
        """Create an already-replicated user (e.g. a foreign account); returns its id."""
        with self.lock:
            tenant = self._tenants[tenant_id.lower()]
            alias = upn.split("@", maxsplit=1)[0]
            user = self._new_user(
                tenant,
                {
                    "userPrincipalName": upn,
                    "displayName": display_name or alias,
                    "mailNickname": alias,
                    "accountEnabled": account_enabled,
                    "employeeType": employee_type,
                },
                password=secrets.token_urlsafe(18) + "aA1!",
            )
            user.created_mono = LONG_AGO
            user.props["createdDateTime"] = iso_z(utc_now() - timedelta(days=400))
            for role in roles:
                rid = assignment_id(role, user.id)
                tenant.assignments[rid] = RoleAssignment(rid, role, user.id)
            return user.id

    def set_app(
        self,
        tenant_id: str,
        client_id: str | None = None,
        *,
        roles: Iterable[str] | None = None,
        consented: bool | None = None,
        secret_expired: bool | None = None,
        identity_pending_requests: int | None = None,
    ) -> None:
        """Change how the app is consented in one tenant (tokens issued later see it).
        ``identity_pending_requests``: a consent so fresh that Graph answers the app's next N
        requests there with 401 Authorization_IdentityNotFound."""
        with self.lock:
            app = self._tenants[tenant_id.lower()].apps[(client_id or self.client_id).lower()]
            if roles is not None:
                app.roles = frozenset(roles)
            if consented is not None:
                app.consented = consented
            if secret_expired is not None:
                app.secret_expired = secret_expired
            if identity_pending_requests is not None:
                app.identity_pending_requests = identity_pending_requests

    def tenant(self, tenant_id: str) -> Tenant:
        """A deep copy of one tenant's whole state."""
        with self.lock:
            return copy.deepcopy(self._tenants[tenant_id.lower()])

    def service_principal_id(self, tenant_id: str, client_id: str | None = None) -> str:
        with self.lock:
            return (
                self._tenants[tenant_id.lower()].apps[(client_id or self.client_id).lower()].sp_id
            )

    def find_user(self, tenant_id: str, key: str) -> User | None:
        """Active user by id or UPN, ignoring replication delay."""
        with self.lock:
            user = self._lookup(self._tenants[tenant_id.lower()], key)
            return copy.deepcopy(user)

    def deleted_users(self, tenant_id: str) -> list[User]:
        with self.lock:
            return copy.deepcopy(list(self._tenants[tenant_id.lower()].deleted.values()))

    def assignments(self, tenant_id: str) -> list[RoleAssignment]:
        with self.lock:
            tenant = self._tenants[tenant_id.lower()]
            self._expire_schedules(tenant)
            return copy.deepcopy(list(tenant.assignments.values()))

    # --- tenants and tokens ----------------------------------------------------------------

    def resolve_tenant(self, key: str) -> str | None:
        """Tenant id for a GUID or any of its verified domain names."""
        with self.lock:
            if key.lower() in self._tenants:
                return key.lower()
            for tenant in self._tenants.values():
                if any(d.is_verified and d.id.lower() == key.lower() for d in tenant.domains):
                    return tenant.id
            return None

    def app_consent(self, tenant_id: str, client_id: str) -> AppConsent | None:
        with self.lock:
            app = self._tenants[tenant_id.lower()].apps.get(client_id.lower())
            return copy.deepcopy(app) if app is not None and app.consented else None

    def issue_token(
        self,
        tenant_id: str,
        client_id: str | None = None,
        *,
        roles: Iterable[str] | None = None,
        lifetime_s: float = TOKEN_LIFETIME_S,
    ) -> str:
        """Mint an opaque access token (the token route calls this; tests may too)."""
        with self.lock:
            app = self._tenants[tenant_id.lower()].apps[(client_id or self.client_id).lower()]
            caller = Caller(
                tenant_id=tenant_id.lower(),
                client_id=app.client_id,
                roles=frozenset(app.roles if roles is None else roles),
                sp_id=app.sp_id,
            )
            token = self._mint(caller, lifetime_s, {"idtyp": "app", "roles": sorted(caller.roles)})
            self._tokens[token] = _Token(caller, time.monotonic() + lifetime_s)
            return token

    def issue_user_token(self, tenant_id: str, username: str, password: str) -> str:
        """ROPC sign-in of a user with their password (Entra ``v2-oauth-ropc``): the token acts
        as that user, whose directory roles are checked like a service principal's."""
        with self.lock:
            tenant = self._tenants[tenant_id.lower()]
            user = self._lookup(tenant, username)
            if user is None or not secrets.compare_digest(user.password, password):
                raise EntraError(
                    400, "invalid_grant", 50126,
                    "Error validating credentials due to invalid username or password.",
                )  # fmt: skip
            if user.props.get("accountEnabled") is False:
                raise EntraError(400, "invalid_grant", 50057, "The user account is disabled.")
            caller = Caller(
                tenant_id=tenant.id,
                client_id=self.client_id,
                roles=DELEGATED_SCOPES,
                sp_id=user.id,
                delegated=True,
            )
            claims = {"idtyp": "user", "scp": " ".join(sorted(DELEGATED_SCOPES)), "upn": user.upn}
            token = self._mint(caller, TOKEN_LIFETIME_S, claims)
            self._tokens[token] = _Token(caller, time.monotonic() + TOKEN_LIFETIME_S)
            return token

    def _mint(self, caller: Caller, lifetime_s: float, extra: dict[str, Any]) -> str:
        """A JWT-shaped access token like Entra's (app permissions in ``roles``), signed
        HS256 with the emulator's own key: clients read it, never validate it
        (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": "https://graph.microsoft.com",
            "iss": f"https://sts.windows.net/{caller.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + int(lifetime_s),
            "appid": caller.client_id,
            "azp": caller.client_id,
            "oid": caller.sp_id,
            "sub": caller.sp_id,
            "tid": caller.tenant_id,
            "uti": secrets.token_urlsafe(16),
            "ver": "1.0",
            **extra,
        }
        header = {"typ": "JWT", "alg": "HS256"}
        signing_input = f"{_b64_json(header)}.{_b64_json(claims)}"
        digest = hmac.new(self._signing_key, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(digest)}"

    def expire_tokens(self) -> None:
        with self.lock:
            self._tokens = {t: _Token(v.caller, LONG_AGO) for t, v in self._tokens.items()}

    def authenticate(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        with self.lock:
            grant = self._tokens.get(token)
        if grant is None:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "CompactToken parsing failed with error code: 80049217",
            )
        if time.monotonic() >= grant.expires_mono:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        with self.lock:
            tenant = self._tenants[grant.caller.tenant_id]
            tenant.requests += 1  # replication's clock ticks
            app = tenant.apps.get(grant.caller.client_id)
            if not grant.caller.delegated and app is not None and app.identity_pending_requests:
                app.identity_pending_requests -= 1
                # A fresh admin consent still replicating (https://learn.microsoft.com/graph/errors).
                raise GraphError(
                    401,
                    "Authorization_IdentityNotFound",
                    "The identity of the calling application could not be established.",
                )
        return grant.caller

    # --- replication and role bookkeeping -------------------------------------------------

    def _lag_s(self) -> float:
        return self.faults.settings.replication_delay_ms / 1000

    def _replicated(self, user: User) -> bool:
        return time.monotonic() - user.created_mono >= self._lag_s()

    def _lookup(self, tenant: Tenant, key: str) -> User | None:
        guid = parse_guid(key)
        if guid is not None and guid in tenant.users:
            return tenant.users[guid]
        folded = key.casefold()
        return next((u for u in tenant.users.values() if u.upn.casefold() == folded), None)

    def _user(self, tenant: Tenant, key: str) -> User:
        user = self._lookup(tenant, key)
        if user is None or not self._replicated(user):
            raise not_found(key)
        return user

    @staticmethod
    def _lagging(tenant: Tenant, mark: int | None, lag: int) -> bool:
        """Within ``lag`` requests after the write made at request ``mark``."""
        return mark is not None and tenant.requests - mark <= lag

    def _assignment_visible(self, tenant: Tenant, assignment: RoleAssignment) -> bool:
        lag = self.faults.settings.assignment_lag_requests
        return not self._lagging(tenant, assignment.created_request, lag)

    def _recently_removed(self, tenant: Tenant, lag_requests: int) -> list[RoleAssignment]:
        now, lag = time.monotonic(), self._lag_s()
        return [
            a
            for rid, a in tenant.removed.items()
            if rid not in tenant.assignments
            and (
                now - (a.removed_mono or LONG_AGO) < lag
                or self._lagging(tenant, a.removed_request, lag_requests)
            )
        ]

    def _visible_removed(self, tenant: Tenant) -> list[RoleAssignment]:
        """Removed, but reads are still served by a replica that has it."""
        return self._recently_removed(tenant, self.faults.settings.removed_lag_requests)

    def _holds_role(self, tenant: Tenant, principal_id: str) -> bool:
        # A just-removed role still counts for a while, longer than lists still show it
        # (Graph answers 403 to deleting a user whose admin role was just removed).
        lag = self.faults.settings.privileged_lag_requests
        live = [*tenant.assignments.values(), *self._recently_removed(tenant, lag)]
        return any(a.principal_id == principal_id for a in live)

    def _sp_holds(self, tenant: Tenant, caller: Caller, roles: Iterable[str]) -> bool:
        wanted = set(roles)
        return any(
            a.principal_id == caller.sp_id and a.role_definition_id in wanted
            for a in tenant.assignments.values()
        )

    def _expire_schedules(self, tenant: Tenant) -> None:
        """Ends time-bound PIM assignments whose end has passed (``pim_state`` does it)."""

    def _tenant(self, tenant_id: str) -> Tenant:
        tenant = self._tenants[tenant_id]
        self._expire_schedules(tenant)
        cutoff = utc_now() - RECYCLE_BIN_RETENTION
        for uid in [
            u.id for u in tenant.deleted.values() if u.deleted_at and u.deleted_at < cutoff
        ]:
            del tenant.deleted[uid]  # the 30-day automatic purge
        return tenant

    def _new_user(self, tenant: Tenant, props: dict[str, Any], password: str) -> User:
        now = utc_now()
        user = User(
            id=str(uuid.uuid4()),
            props={"userType": "Member", **props},
            password=password,
            created_mono=time.monotonic(),
        )
        user.props["id"] = user.id
        user.props["createdDateTime"] = iso_z(now)
        user.props["signInSessionsValidFromDateTime"] = iso_z(now)
        tenant.users[user.id] = user
        return user


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _b64_json(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())
