"""Recording the steps an identity provider completes, one small transaction each."""

from __future__ import annotations

from typing import Any

from jitadmin.core.events import AuditEvent
from jitadmin.core.grant import Grant
from jitadmin.ports import TAMPERING_STEP, ProgressRecorder
from jitadmin.services.backoff import SYSTEM
from jitadmin.services.context import ServiceContext
from jitadmin.services.tampering import note_tampering


def progress_recorder(ctx: ServiceContext, grant_id: str) -> ProgressRecorder:
    """Commits each step the identity provider (or an on-prem agent) reports, with its audit
    event, at once: progress survives a crash."""

    def record(step: str, data: dict[str, Any]) -> None:
        tampered: Grant | None = None
        with ctx.uow() as uow:
            customer = uow.grants.record_progress(grant_id, step, data)
            if customer is None:
                return
            if step == TAMPERING_STEP:
                grant = uow.grants.get(grant_id)
                fields = str(data.get("tampered_fields") or "attributes")
                if grant is not None and note_tampering(ctx, uow, grant, fields):
                    tampered = grant
            uow.audit.append(
                AuditEvent(
                    kind=f"account.{step}",
                    actor=SYSTEM,
                    at=ctx.clock.now(),
                    grant_id=grant_id,
                    customer=customer,
                    data={k: v for k, v in data.items() if isinstance(v, str | int | bool | None)},
                )
            )
            uow.commit()
        if tampered is not None:
            ctx.metrics.tampering(tampered.identity_provider)
            ctx.wake()

    return record
