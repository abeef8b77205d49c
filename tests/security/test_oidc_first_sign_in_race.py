"""Two first sign-ins of one new OIDC user at the same moment (PostgreSQL: SQLite serialises
the whole transaction): the one whose insert loses reads the winner instead of a 500."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jitadmin.db.repos import SqlUserRepo
from jitadmin.ports import AuditQuery
from jitadmin.services import oidc_signin, sessions
from jitadmin.services.oidc_signin import OidcPolicy

from support.system import System

POLICY = sessions.SessionPolicy(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
OIDC = OidcPolicy(issuer="https://idp.example", role_map={"jit-admins": "admin"})
CLAIMS = {"sub": "sub-new", "preferred_username": "new@msp.example", "roles": ["jit-admins"],
          "amr": ["pwd", "mfa"]}  # fmt: skip


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_loser_of_a_first_sign_in_race_signs_in_as_the_winner(
    system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = system.app.ctx
    insert = SqlUserRepo.add_external
    raced: list[str] = []

    def racing(repo: SqlUserRepo, *args: Any) -> None:
        # The loser has read "no such user"; the winner's whole first sign-in commits now,
        # in its own transaction, before the loser's insert.
        if not raced:
            raced.append("winner")  # the winner's own insert goes straight through
            raced[0] = oidc_signin.sign_in(ctx, CLAIMS, OIDC, POLICY).user.username
        insert(repo, *args)

    monkeypatch.setattr(SqlUserRepo, "add_external", racing)
    loser = oidc_signin.sign_in(ctx, CLAIMS, OIDC, POLICY)
    assert raced == [loser.user.username] == ["new@msp.example"]
    assert sessions.resolve(ctx, loser.session_id, POLICY) is not None
    with ctx.uow() as uow:
        assert uow.users.by_external(OIDC.issuer, "sub-new") is not None
        created = [e for e in uow.audit.search(AuditQuery(kind="user.created"), 100)
                   if e.data.get("user") == "new@msp.example"]  # fmt: skip
    assert len(created) == 1
