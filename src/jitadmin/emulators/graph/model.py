"""Directory objects of the Graph emulator and the validation rules Entra applies to them.

What it mirrors: the default property set of a user, domains, the required properties of a new
user, UPN characters and password complexity
(https://learn.microsoft.com/graph/api/user-post-users), the built-in role template ids
(https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference) and
the shape of role-assignment ids.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jitadmin.emulators.graph.http import GraphError, bad_request, iso_z

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
PRIVILEGED_AUTHENTICATION_ADMINISTRATOR = "7be44c8a-adaf-4e2a-84d6-ab2649e08a13"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"

ROLE_DEFINITIONS: dict[str, str] = {
    GLOBAL_ADMINISTRATOR: "Global Administrator",
    PRIVILEGED_ROLE_ADMINISTRATOR: "Privileged Role Administrator",
    PRIVILEGED_AUTHENTICATION_ADMINISTRATOR: "Privileged Authentication Administrator",
    USER_ADMINISTRATOR: "User Administrator",
    GLOBAL_READER: "Global Reader",
}

# What the seed consents in every tenant: the application permissions jitadmin asks for.
CONSENTED_PERMISSIONS: tuple[str, ...] = (
    "User.ReadWrite.All",
    "RoleManagement.ReadWrite.Directory",
    "User.RevokeSessions.All",
    "User.DeleteRestore.All",
    "Domain.Read.All",
    "UserAuthenticationMethod.ReadWrite.All",
    "Policy.Read.All",
)

USER_DEFAULT_SELECT: tuple[str, ...] = (
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
)

# Property -> Python type of its JSON value (list = list of strings).
USER_PROPERTIES: dict[str, type] = {
    "id": str,
    "businessPhones": list,
    "displayName": str,
    "givenName": str,
    "jobTitle": str,
    "mail": str,
    "mobilePhone": str,
    "officeLocation": str,
    "preferredLanguage": str,
    "surname": str,
    "userPrincipalName": str,
    "accountEnabled": bool,
    "ageGroup": str,
    "city": str,
    "companyName": str,
    "country": str,
    "createdDateTime": str,
    "deletedDateTime": str,
    "department": str,
    "employeeId": str,
    "employeeType": str,
    "mailNickname": str,
    "onPremisesImmutableId": str,
    "onPremisesSamAccountName": str,
    "onPremisesSyncEnabled": bool,
    "otherMails": list,
    "passwordPolicies": str,
    "passwordProfile": dict,
    "postalCode": str,
    "proxyAddresses": list,
    "signInSessionsValidFromDateTime": str,
    "state": str,
    "streetAddress": str,
    "usageLocation": str,
    "userType": str,
}
USER_READ_ONLY = frozenset(
    {
        "id",
        "createdDateTime",
        "deletedDateTime",
        "signInSessionsValidFromDateTime",
        "onPremisesSyncEnabled",
        "onPremisesSamAccountName",
        "proxyAddresses",
    }
)
USER_REQUIRED = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName")
# Changing these on a user who holds an admin role needs PAA/GA on the caller
# (https://learn.microsoft.com/graph/api/user-update).
SENSITIVE_PROPERTIES = frozenset(
    {
        "accountEnabled",
        "passwordProfile",
        "userPrincipalName",
        "businessPhones",
        "mobilePhone",
        "otherMails",
        "onPremisesImmutableId",
    }
)
# $filter on users, after https://learn.microsoft.com/graph/aad-advanced-queries (the
# per-property table): eq/in work by default on these...
USER_FILTERABLE: dict[str, type] = {
    "id": str,
    "userPrincipalName": str,
    "mail": str,
    "mailNickname": str,
    "displayName": str,
    "givenName": str,
    "surname": str,
    "jobTitle": str,
    "department": str,
    "city": str,
    "country": str,
    "state": str,
    "usageLocation": str,
    "employeeId": str,
    "ageGroup": str,
    "userType": str,
    "accountEnabled": bool,
    "onPremisesSyncEnabled": bool,
    # ...and even eq on these needs ConsistencyLevel: eventual and $count=true.
    "employeeType": str,
    "companyName": str,
    "officeLocation": str,
    "mobilePhone": str,
    "onPremisesImmutableId": str,
    "onPremisesSamAccountName": str,
    "passwordPolicies": str,
    "postalCode": str,
    "preferredLanguage": str,
    "streetAddress": str,
}
USER_ADVANCED_EQ = frozenset(
    {
        "employeeType",
        "companyName",
        "officeLocation",
        "mobilePhone",
        "onPremisesImmutableId",
        "onPremisesSamAccountName",
        "passwordPolicies",
        "postalCode",
        "preferredLanguage",
        "streetAddress",
    }
)
USER_STARTS_WITH = frozenset(
    {
        "displayName",
        "userPrincipalName",
        "mail",
        "mailNickname",
        "givenName",
        "surname",
        "city",
        "country",
        "department",
        "employeeId",
        "state",
        "usageLocation",
    }
)
USER_ENDS_WITH = frozenset({"mail", "userPrincipalName"})
DOMAIN_PROPERTIES: tuple[str, ...] = (
    "authenticationType",
    "availabilityStatus",
    "id",
    "isAdminManaged",
    "isDefault",
    "isInitial",
    "isRoot",
    "isVerified",
    "supportedServices",
    "passwordValidityPeriodInDays",
    "passwordNotificationWindowInDays",
    "state",
)
ASSIGNMENT_PROPERTIES: tuple[str, ...] = (
    "id",
    "principalId",
    "resourceScope",
    "directoryScopeId",
    "roleDefinitionId",
    "appScopeId",
    "condition",
)
ASSIGNMENT_DEFAULT_SELECT = (
    "id",
    "principalId",
    "resourceScope",
    "directoryScopeId",
    "roleDefinitionId",
)
ASSIGNMENT_FILTERABLE: dict[str, type] = {
    "id": str,
    "principalId": str,
    "roleDefinitionId": str,
    "directoryScopeId": str,
}

COMPLEXITY_MESSAGE = (
    "The specified password does not comply with password complexity requirements. "
    "Please provide a different password."
)
_ALIAS = re.compile(r"[A-Za-z0-9'.\-_!#^~]+")
_NICKNAME_FORBIDDEN = set(' @()\\[]";:<>,')


@dataclass
class User:
    id: str
    props: dict[str, Any]
    password: str = field(repr=False)
    created_mono: float
    deleted_at: datetime | None = None
    deleted_mono: float | None = None  # when it went to the recycle bin (replication delay)
    deleted_request: int | None = None  # the tenant's request count then (see Tenant.requests)
    # The user's one Temporary Access Pass method (a new one replaces it), pass included.
    temporary_access_pass: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def upn(self) -> str:
        return str(self.props["userPrincipalName"])

    def view(self) -> dict[str, Any]:
        """Every readable property; the password is never part of a view."""
        out: dict[str, Any] = {
            name: ([] if kind is list else None) for name, kind in USER_PROPERTIES.items()
        }
        out.update(self.props)
        out["passwordProfile"] = None
        out["deletedDateTime"] = iso_z(self.deleted_at) if self.deleted_at else None
        return out


@dataclass(frozen=True)
class Domain:
    id: str
    is_initial: bool
    is_default: bool
    is_verified: bool
    # "Federated": sign-in goes to the customer's own identity provider, so a cloud-only
    # account with a password cannot live there.
    authentication_type: str = "Managed"

    def view(self) -> dict[str, Any]:
        return {
            "authenticationType": self.authentication_type,
            "availabilityStatus": None,
            "id": self.id,
            "isAdminManaged": True,
            "isDefault": self.is_default,
            "isInitial": self.is_initial,
            "isRoot": True,
            "isVerified": self.is_verified,
            "supportedServices": ["Email", "OfficeCommunicationsOnline"]
            if self.is_verified
            else [],
            "passwordValidityPeriodInDays": 2147483647,
            "passwordNotificationWindowInDays": 14,
            "state": None,
        }


@dataclass
class RoleAssignment:
    id: str
    role_definition_id: str
    principal_id: str
    directory_scope_id: str = "/"
    removed_mono: float | None = None
    # The tenant's request count when it was created / removed (None: long replicated).
    created_request: int | None = None
    removed_request: int | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "principalId": self.principal_id,
            "resourceScope": self.directory_scope_id,
            "directoryScopeId": self.directory_scope_id,
            "roleDefinitionId": self.role_definition_id,
            "appScopeId": None,
            "condition": None,
        }


@dataclass
class AppConsent:
    """The multi-tenant app as consented in one tenant (its service principal there)."""

    client_id: str
    secret: str = field(repr=False)
    roles: frozenset[str]
    sp_id: str
    consented: bool = True
    secret_expired: bool = False
    # Right after admin consent Graph may not know the app's identity in the tenant yet: the
    # next N Graph requests by it answer 401 Authorization_IdentityNotFound.
    identity_pending_requests: int = 0


@dataclass
class TapPolicy:
    """The tenant's Temporary Access Pass policy, Entra's defaults
    (https://learn.microsoft.com/graph/api/resources/temporaryaccesspassauthenticationmethodconfiguration)."""

    state: str = "enabled"
    default_lifetime: int = 60
    minimum_lifetime: int = 60
    maximum_lifetime: int = 480
    default_length: int = 8
    is_usable_once: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
            "id": "TemporaryAccessPass",
            "state": self.state,
            "defaultLifetimeInMinutes": self.default_lifetime,
            "defaultLength": self.default_length,
            "minimumLifetimeInMinutes": self.minimum_lifetime,
            "maximumLifetimeInMinutes": self.maximum_lifetime,
            "isUsableOnce": self.is_usable_once,
            "includeTargets": [
                {"targetType": "group", "id": "all_users", "isRegistrationRequired": False}
            ],
            "excludeTargets": [],
        }


@dataclass
class Tenant:
    id: str
    name: str
    domains: list[Domain]
    users: dict[str, User] = field(default_factory=dict)
    deleted: dict[str, User] = field(default_factory=dict)
    assignments: dict[str, RoleAssignment] = field(default_factory=dict)
    # Removed assignments, kept so replication delay can keep showing them for a while.
    removed: dict[str, RoleAssignment] = field(default_factory=dict)
    apps: dict[str, AppConsent] = field(default_factory=dict)
    tap_policy: TapPolicy = field(default_factory=TapPolicy)
    # Entra ID P2 (or Governance): what PIM's schedule requests need. Schedules by id.
    has_p2: bool = False
    schedules: dict[str, Any] = field(default_factory=dict)
    # Graph requests served for this tenant: the clock replication lag is counted on.
    requests: int = 0


def assignment_id(role_definition_id: str, principal_id: str) -> str:
    """Graph's observed format: base64url(bytes_le(role) + bytes_le(principal)), no padding, ``-1``.

    Not contractual (clients treat ids as opaque), but it makes the same role + principal + scope
    conflict naturally, as on Graph."""
    raw = uuid.UUID(role_definition_id).bytes_le + uuid.UUID(principal_id).bytes_le
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") + "-1"


def parse_guid(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def invalid_value(prop: str) -> GraphError:
    return bad_request(f"Invalid value specified for property '{prop}' of resource 'User'.")


def check_password(password: object) -> str:
    if not isinstance(password, str) or not 8 <= len(password) <= 256:
        raise bad_request(COMPLEXITY_MESSAGE)
    # Entra allows ASCII letters, digits, symbols and the space; no Unicode.
    if not all(" " <= ch <= "~" for ch in password):
        raise bad_request(COMPLEXITY_MESSAGE)
    classes = (
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    )
    if sum(classes) < 3:
        raise bad_request(COMPLEXITY_MESSAGE)
    return password


def check_upn(upn: object, verified_domains: set[str]) -> str:
    if not isinstance(upn, str) or upn.count("@") != 1 or len(upn) > 113:
        raise bad_request("Property userPrincipalName is invalid.")
    alias, domain = upn.split("@")
    if (
        len(domain) > 48  # Entra username policy: at most 48 characters after "@"
        or not alias
        or len(alias) > 64
        or not _ALIAS.fullmatch(alias)
        or alias.startswith(".")
        or alias.endswith(".")
        or ".." in alias
    ):
        raise bad_request("Property userPrincipalName is invalid.")
    if domain.lower() not in verified_domains:
        raise bad_request(
            "The domain portion of the userPrincipalName property is invalid. "
            "You must use one of the verified domain names in your organization."
        )
    return upn


def check_mail_nickname(value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 64
        or not value.isascii()
        or not value.isprintable()
        or any(ch in _NICKNAME_FORBIDDEN for ch in value)
    ):
        raise invalid_value("mailNickname")
    return value


def _check_type(prop: str, value: object) -> None:
    if value is None:
        if prop == "accountEnabled":
            raise invalid_value(prop)
        return
    kind = USER_PROPERTIES[prop]
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind is dict:
        ok = isinstance(value, dict)
    else:
        ok = isinstance(value, str) and len(value) <= 256
    if not ok:
        raise invalid_value(prop)


def clean_user_body(
    body: dict[str, Any], *, creating: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check a POST/PATCH body; return (properties to store, passwordProfile or None)."""
    props: dict[str, Any] = {}
    profile: dict[str, Any] | None = None
    for key, value in body.items():
        if key == "@odata.type":
            continue
        if key.startswith("extension_"):
            props[key] = value  # directory extension attributes pass through untouched
            continue
        if key not in USER_PROPERTIES:
            raise bad_request(
                f"Property '{key}' does not exist as a declared property or extension property."
            )
        if key in USER_READ_ONLY:
            raise bad_request(f"Property '{key}' is read-only and cannot be set.")
        _check_type(key, value)
        if key == "passwordProfile":
            profile = dict(value) if value is not None else None
            if profile is None or "password" not in profile:
                raise invalid_value("passwordProfile")
            check_password(profile["password"])
            continue
        if key == "mailNickname":
            check_mail_nickname(value)
        if key == "displayName" and (not isinstance(value, str) or not value.strip()):
            raise invalid_value(key)
        props[key] = value
    if creating:
        for key in (*USER_REQUIRED, "passwordProfile"):
            if key not in body:
                raise bad_request(f"Property '{key}' is required when creating the user.")
    return props, profile
