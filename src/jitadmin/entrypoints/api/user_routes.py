"""REST API v1: one user's lifecycle (show, change, password reset, end its web sessions)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from jitadmin.core.clock import iso
from jitadmin.entrypoints.api import responses as out
from jitadmin.entrypoints.api.responses import problem_responses
from jitadmin.entrypoints.api.routes import Actor, Ctx
from jitadmin.entrypoints.api.schemas import UserPatch
from jitadmin.services import users

router = APIRouter(prefix="/api/v1/users", responses=problem_responses(401, 403, 404, 422))


def detail_out(detail: users.UserDetail) -> dict[str, Any]:
    user = detail.user
    return {
        "username": user.username,
        "role": user.role,
        "customers": None if user.customers is None else list(user.customers),
        "disabled": user.disabled,
        "created_at": iso(detail.created_at),
        "sessions": detail.sessions,
        "tokens": detail.tokens,
        "second_factor": detail.second_factor,
        "oidc_issuer": detail.oidc_issuer,
    }


@router.get("/{username}", response_model=out.UserDetail)
def show_user(username: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return detail_out(users.show_user(ctx, actor, username))


@router.patch("/{username}", response_model=out.UserUpdated)
def update_user(username: str, body: UserPatch, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    given = body.model_fields_set
    change = users.UserChange(
        role=body.role,
        customers=None if body.customers is None else tuple(body.customers),
        set_customers="customers" in given,
        disabled=body.disabled,
        revoke_grants=body.revoke_grants,
    )
    done = users.update_user(ctx, actor, username, change)
    return {
        **detail_out(done.detail),
        "sessions_ended": done.sessions_ended,
        "revoked_grants": done.revoked_grants,
        "not_revoked": [{"id": g, "reason": why} for g, why in done.not_revoked],
    }


@router.post("/{username}/password-reset", response_model=out.PasswordReset)
def reset_password(username: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    # The only answer that ever carries the new password.
    reset = users.reset_password(ctx, actor, username)
    return {
        "username": reset.username,
        "password": reset.password,
        "sessions_ended": reset.sessions_ended,
    }


@router.delete("/{username}/sessions", response_model=out.SessionsEnded)
def end_sessions(username: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    return {"username": username, "sessions_ended": users.end_sessions(ctx, actor, username)}


@router.delete("/{username}/second-factor", response_model=out.SecondFactorReset)
def reset_second_factor(username: str, ctx: Ctx, actor: Actor) -> dict[str, Any]:
    """The user enrols a new authenticator app at their next sign-in (audited)."""
    return {"username": username, "reset": users.reset_second_factor(ctx, actor, username)}
