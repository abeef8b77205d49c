"""The authorization matrix's table: for every route, which answer each role gets on each target.

Each rule says, for a role and a target, which answer is expected:

- ``OK``: the request was let through (any status below 500 except 401, 403, 404 and a
  redirect to the sign-in page; e.g. 200, 201, 202, 303 elsewhere, 409, 422, 503);
- a number: exactly that status (401, 403, 404, or 422 where a hidden customer is refused as
  input);
- ``SIGNIN``: a web page sending an anonymous visitor to ``/signin``.

Roles: anonymous; ``admin`` (unrestricted: every customer and the global settings);
``admin_A``, an admin restricted to customer A (manages only A's connections, grants, users
and tokens; never the PSA, new customers or unrestricted users); a technician restricted to A;
an approver; an auditor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

OK, SIGNIN = "ok", "signin"
ROLES = ("anonymous", "admin", "admin_A", "technician", "approver", "auditor")
ADMINS = ("admin", "admin_A")
RESTRICTED = ("admin_A", "technician")  # restricted to customer A


@dataclass(frozen=True)
class Target:
    """What a request is aimed at: a grant (owner own/other) or a customer, A (allowed) or B."""

    name: str
    own: bool = False
    allowed: bool = True


GRANT_TARGETS = (
    Target("own_A", own=True, allowed=True),
    Target("other_A", own=False, allowed=True),
    Target("own_B", own=True, allowed=False),
    Target("other_B", own=False, allowed=False),
)
CUSTOMER_TARGETS = (Target("A", allowed=True), Target("B", allowed=False))
# A user restricted to customer A (inside admin_A's scope), and an unrestricted one (outside).
USER_TARGETS = (Target("user_A", allowed=True), Target("user_all", allowed=False))
NO_TARGET = (Target("-"),)

Rule = Callable[[str, Target], str | int]


def public(role: str, t: Target) -> str | int:
    return OK


def signin_form(role: str, t: Target) -> str | int:
    return 403


def sso_not_set_up(role: str, t: Target) -> str | int:
    """OpenID Connect sign-in without JITADMIN_OIDC_ISSUER: absent for everyone (set up, the
    two routes are the public way in; tests/web/test_oidc_signin.py and test_oidc_flow.py)."""
    return 404


def metrics_token_only(role: str, t: Target) -> str | int:
    """/metrics answers only JITADMIN_METRICS_TOKEN: no user's token or session opens it."""
    return 401


def agent_signed(role: str, t: Target) -> str | int:
    """The agents' own routes: only a request signed with an enrolled agent's key opens them;
    no user's token or session does."""
    return 401


def signed_in(role: str, t: Target) -> str | int:
    return OK


def any_admin(role: str, t: Target) -> str | int:
    """Admin pages and lists: a restricted admin gets them too, filtered to its scope."""
    return OK if role in ADMINS else 403


def global_admin(role: str, t: Target) -> str | int:
    """Global settings (the PSA, new customers, unrestricted users): unrestricted admins only."""
    return OK if role == "admin" else 403


def customer_admin(role: str, t: Target) -> str | int:
    """A customer's connections: admins, and a restricted admin only inside its scope (404)."""
    if role not in ADMINS:
        return 403
    return 404 if role == "admin_A" and not t.allowed else OK


def deciders(role: str, t: Target) -> str | int:
    """The approvals page: approvers and admins (each sees what lies in its scope)."""
    return OK if role in (*ADMINS, "approver") else 403


def admin_or_auditor(role: str, t: Target) -> str | int:
    return OK if role in ("admin", "admin_A", "auditor") else 403


def requesters(role: str, t: Target) -> str | int:
    """Request a grant: admins and technicians; a hidden customer is refused as input (422)."""
    if role not in (*ADMINS, "technician"):
        return 403
    return OK if t.allowed or role not in RESTRICTED else 422


def customer_scoped(role: str, t: Target) -> str | int:
    return 404 if role in RESTRICTED and not t.allowed else OK


def _sees(role: str, t: Target) -> bool:
    if role in ("admin", "auditor", "approver"):  # the approver is unrestricted
        return True
    if role == "admin_A":
        return t.allowed
    return role == "technician" and t.own and t.allowed


def grant_read(role: str, t: Target) -> str | int:
    return OK if _sees(role, t) else 404


def grant_change(role: str, t: Target) -> str | int:
    """Revoke / extend / cancel: who may see it may act, except auditors (read-only) and
    approvers (they decide on requests, never change grants): 403."""
    if not _sees(role, t):
        return 404
    return 403 if role in ("auditor", "approver") else OK


def grant_decide(role: str, t: Target) -> str | int:
    """Approve / reject: approvers and admins who see the grant (the matrix's grants are not
    pending and not theirs: 409, let through); technicians and auditors 403."""
    if role not in (*ADMINS, "approver"):
        return 403
    return OK if _sees(role, t) else 404


def grant_reveal(role: str, t: Target) -> str | int:
    if role not in ADMINS:
        return 403
    return OK if _sees(role, t) else 404


def grant_tap(role: str, t: Target) -> str | int:
    """The Temporary Access Pass, once: the requester only (an admin reveals instead); every
    target grant here is the technician's."""
    if not _sees(role, t):
        return 404
    return OK if role == "technician" else 403


def token_revoke(role: str, t: Target) -> str | int:
    """The target token belongs to an unrestricted technician: outside admin_A's scope."""
    if role not in ADMINS:
        return 403
    return OK if role == "admin" else 404


def consent_return(role: str, t: Target) -> str | int:
    """Where Entra sends the admin back after consent: the SameSite=Strict cookie does not come
    along from Microsoft, so an anonymous visit gets a page that continues from our origin;
    admins are let through (the matrix's visit has no state: 422); others 403."""
    return OK if role in (*ADMINS, "anonymous") else 403


def user_admin(role: str, t: Target) -> str | int:
    """One user's lifecycle: admins; a restricted admin only for users inside its scope (404)."""
    if role not in ADMINS:
        return 403
    return 404 if role == "admin_A" and not t.allowed else OK


# (method, path) -> (targets, rule). THE table: one row per route of the application.
RULES: dict[tuple[str, str], tuple[tuple[Target, ...], Rule]] = {
    # Public: health, the OpenAPI document, the sign-in page (/docs is off by default).
    ("GET", "/healthz"): (NO_TARGET, public),
    ("GET", "/readyz"): (NO_TARGET, public),
    ("GET", "/metrics"): (NO_TARGET, metrics_token_only),
    ("GET", "/openapi.json"): (NO_TARGET, public),
    ("GET", "/signin"): (NO_TARGET, public),
    # Without the sign-in form's double-submit cookie and token: refused before anything else.
    ("POST", "/signin"): (NO_TARGET, signin_form),
    ("GET", "/auth/oidc/start"): (NO_TARGET, sso_not_set_up),
    ("GET", "/auth/oidc/callback"): (NO_TARGET, sso_not_set_up),
    # REST API.
    ("GET", "/api/v1/customers"): (NO_TARGET, signed_in),
    ("POST", "/api/v1/customers"): (NO_TARGET, global_admin),
    ("PUT", "/api/v1/customers/{slug}/connections/m365"): (CUSTOMER_TARGETS, customer_admin),
    ("PUT", "/api/v1/customers/{slug}/connections/ad"): (CUSTOMER_TARGETS, customer_admin),
    ("POST", "/api/v1/customers/{slug}/connections/{kind}/test"): (
        CUSTOMER_TARGETS,
        customer_admin,
    ),
    ("PUT", "/api/v1/psa"): (NO_TARGET, global_admin),
    ("POST", "/api/v1/psa/test"): (NO_TARGET, global_admin),
    # The MSP's multi-tenant app is every customer's: unrestricted admins. A consent link and
    # its answer belong to the customer's admins (no app is set up in the matrix: 422).
    ("PUT", "/api/v1/m365-app"): (NO_TARGET, global_admin),
    ("GET", "/api/v1/m365-app"): (NO_TARGET, global_admin),
    ("GET", "/api/v1/customers/{slug}/connections/m365/consent-link"): (
        CUSTOMER_TARGETS,
        customer_admin,
    ),
    ("POST", "/api/v1/m365-app/consent"): (NO_TARGET, any_admin),
    ("GET", "/api/v1/customers/{slug}/tickets"): (CUSTOMER_TARGETS, customer_scoped),
    ("GET", "/api/v1/customers/{slug}/policy"): (CUSTOMER_TARGETS, customer_admin),
    # The body is refused (approvals_needed 0) after the checks: no policy changes.
    ("PUT", "/api/v1/customers/{slug}/policy"): (CUSTOMER_TARGETS, customer_admin),
    # The body asks for an unrestricted user: beyond a restricted admin.
    ("POST", "/api/v1/users"): (NO_TARGET, global_admin),
    ("GET", "/api/v1/users"): (NO_TARGET, any_admin),
    ("GET", "/api/v1/users/{username}"): (USER_TARGETS, user_admin),
    ("PATCH", "/api/v1/users/{username}"): (USER_TARGETS, user_admin),
    ("POST", "/api/v1/users/{username}/password-reset"): (USER_TARGETS, user_admin),
    ("DELETE", "/api/v1/users/{username}/sessions"): (USER_TARGETS, user_admin),
    ("DELETE", "/api/v1/users/{username}/second-factor"): (USER_TARGETS, user_admin),
    ("POST", "/api/v1/grants"): (CUSTOMER_TARGETS, requesters),
    ("GET", "/api/v1/grants"): (NO_TARGET, signed_in),
    ("GET", "/api/v1/grants/{grant_id}"): (GRANT_TARGETS, grant_read),
    ("POST", "/api/v1/grants/{grant_id}/revoke"): (GRANT_TARGETS, grant_change),
    ("POST", "/api/v1/grants/{grant_id}/extend"): (GRANT_TARGETS, grant_change),
    ("POST", "/api/v1/grants/{grant_id}/password"): (GRANT_TARGETS, grant_reveal),
    ("POST", "/api/v1/grants/{grant_id}/temporary-access-pass"): (GRANT_TARGETS, grant_tap),
    ("POST", "/api/v1/grants/{grant_id}/approve"): (GRANT_TARGETS, grant_decide),
    ("POST", "/api/v1/grants/{grant_id}/reject"): (GRANT_TARGETS, grant_decide),
    ("POST", "/api/v1/grants/{grant_id}/cancel"): (GRANT_TARGETS, grant_change),
    # Notification channels carry every customer's events: unrestricted admins only.
    ("POST", "/api/v1/notification-channels"): (NO_TARGET, global_admin),
    ("GET", "/api/v1/notification-channels"): (NO_TARGET, global_admin),
    ("DELETE", "/api/v1/notification-channels/{channel_id}"): (NO_TARGET, global_admin),
    ("POST", "/api/v1/notification-channels/{channel_id}/test"): (NO_TARGET, global_admin),
    # On-prem agents: admins of the customer; the agents' routes answer signed requests only.
    ("POST", "/api/v1/customers/{slug}/agents/enrollments"): (CUSTOMER_TARGETS, customer_admin),
    ("GET", "/api/v1/customers/{slug}/agents"): (CUSTOMER_TARGETS, customer_admin),
    ("DELETE", "/api/v1/agents/{agent_id}"): (CUSTOMER_TARGETS, customer_admin),
    ("POST", "/api/v1/agent/enroll"): (NO_TARGET, agent_signed),
    ("POST", "/api/v1/agent/hello"): (NO_TARGET, agent_signed),
    ("POST", "/api/v1/agent/jobs/lease"): (NO_TARGET, agent_signed),
    ("POST", "/api/v1/agent/jobs/{job_id}/steps"): (NO_TARGET, agent_signed),
    ("POST", "/api/v1/agent/jobs/{job_id}/result"): (NO_TARGET, agent_signed),
    ("POST", "/api/v1/agent/failsafe"): (NO_TARGET, agent_signed),
    ("GET", "/api/v1/audit"): (NO_TARGET, admin_or_auditor),
    ("GET", "/api/v1/tokens"): (NO_TARGET, any_admin),
    # Everyone mints tokens for themselves (and only for themselves: tests/security/test_scope).
    ("POST", "/api/v1/tokens"): (NO_TARGET, signed_in),
    ("DELETE", "/api/v1/tokens/{token_id}"): (NO_TARGET, token_revoke),
    # Web console pages and forms.
    ("POST", "/signout"): (NO_TARGET, signed_in),
    ("GET", "/admin/notifications"): (NO_TARGET, global_admin),
    ("POST", "/admin/customers/{slug}/agents/enrollments"): (CUSTOMER_TARGETS, customer_admin),
    ("POST", "/admin/agents/{agent_id}/revoke"): (CUSTOMER_TARGETS, customer_admin),
    # An empty form: refused (422) after the checks; no channel is made.
    ("POST", "/admin/notifications"): (NO_TARGET, global_admin),
    ("POST", "/admin/notifications/{channel_id}/test"): (NO_TARGET, global_admin),
    ("POST", "/admin/notifications/{channel_id}/delete"): (NO_TARGET, global_admin),
    ("GET", "/"): (NO_TARGET, signed_in),
    ("GET", "/request"): (NO_TARGET, public),  # a redirect to "/" for everyone
    ("POST", "/request"): (CUSTOMER_TARGETS, requesters),
    ("GET", "/grants"): (NO_TARGET, signed_in),
    ("GET", "/grants/{grant_id}"): (GRANT_TARGETS, grant_read),
    ("POST", "/grants/{grant_id}/revoke"): (GRANT_TARGETS, grant_change),
    ("POST", "/grants/{grant_id}/extend"): (GRANT_TARGETS, grant_change),
    ("POST", "/grants/{grant_id}/reveal"): (GRANT_TARGETS, grant_reveal),
    ("POST", "/grants/{grant_id}/temporary-access-pass"): (GRANT_TARGETS, grant_tap),
    ("POST", "/grants/{grant_id}/cancel"): (GRANT_TARGETS, grant_change),
    ("GET", "/approvals"): (NO_TARGET, deciders),
    ("POST", "/grants/{grant_id}/approve"): (GRANT_TARGETS, grant_decide),
    ("POST", "/grants/{grant_id}/reject"): (GRANT_TARGETS, grant_decide),
    ("GET", "/admin"): (NO_TARGET, any_admin),
    ("GET", "/admin/customers"): (NO_TARGET, any_admin),
    ("POST", "/admin/customers"): (NO_TARGET, global_admin),
    ("POST", "/admin/customers/{slug}/connections/{kind}"): (CUSTOMER_TARGETS, customer_admin),
    ("POST", "/admin/customers/{slug}/connections/{kind}/test"): (
        CUSTOMER_TARGETS,
        customer_admin,
    ),
    ("GET", "/admin/{name}-app"): (NO_TARGET, global_admin),
    ("POST", "/admin/{name}-app"): (NO_TARGET, global_admin),
    ("GET", "/admin/customers/{slug}/connections/{kind}/consent"): (
        CUSTOMER_TARGETS,
        customer_admin,
    ),
    ("GET", "/admin/m365/consent"): (NO_TARGET, consent_return),
    ("GET", "/admin/psa"): (NO_TARGET, global_admin),
    ("POST", "/admin/psa"): (NO_TARGET, global_admin),
    ("POST", "/admin/psa/test"): (NO_TARGET, global_admin),
    ("GET", "/admin/users"): (NO_TARGET, any_admin),
    # The form asks for an unrestricted user (no "restrict" box): beyond a restricted admin.
    ("POST", "/admin/users"): (NO_TARGET, global_admin),
    ("GET", "/admin/users/{username}"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}/disable"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}/enable"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}/password-reset"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}/end-sessions"): (USER_TARGETS, user_admin),
    ("POST", "/admin/users/{username}/second-factor-reset"): (USER_TARGETS, user_admin),
    ("GET", "/admin/tokens"): (NO_TARGET, any_admin),
    # Everyone's own second factor (an enrolled one answers 409, a missing one 409 or 422).
    ("GET", "/account/second-factor"): (NO_TARGET, signed_in),
    ("POST", "/account/second-factor/start"): (NO_TARGET, signed_in),
    ("POST", "/account/second-factor/confirm"): (NO_TARGET, signed_in),
    ("POST", "/admin/tokens"): (NO_TARGET, any_admin),
    ("POST", "/admin/tokens/{token_id}/revoke"): (NO_TARGET, token_revoke),
    # The console's own JSON.
    ("GET", "/web/api/customers/{slug}/tickets"): (CUSTOMER_TARGETS, customer_scoped),
    ("POST", "/web/api/password"): (NO_TARGET, signed_in),
    ("GET", "/web/api/grants/{grant_id}/status"): (GRANT_TARGETS, grant_read),
    ("GET", "/web/api/grants/{grant_id}/ticket"): (GRANT_TARGETS, grant_read),
    ("POST", "/web/api/grants/{grant_id}/revoke"): (GRANT_TARGETS, grant_change),
    ("POST", "/web/api/grants/{grant_id}/extend"): (GRANT_TARGETS, grant_change),
}
PUBLIC = {
    route
    for route, (_, rule) in RULES.items()
    if rule in (public, signin_form, metrics_token_only, sso_not_set_up)
}
