"""services/admin.py on the fakes: connections, their tests, the ticket picker."""

from __future__ import annotations

import pytest

from jitadmin.core.errors import (
    MisconfiguredError,
    TransientError,
    UpstreamUnavailableError,
    ValidationFailedError,
)
from jitadmin.services import admin

from support.services import CUSTOMER, OTHER_COMPANY, ROOT, TECH, ServiceWorld


def test_a_connection_test_answers_with_the_targets_findings(services: ServiceWorld) -> None:
    findings = admin.check_connection(services.ctx, ROOT, CUSTOMER, "m365")
    assert findings == services.identity("m365").check()
    assert services.audit_kinds()[-1] == "connection.tested"


def test_a_failed_connection_test_never_repeats_the_remotes_words(services: ServiceWorld) -> None:
    remote = "AADSTS7000215: secret 'abc123' is wrong"
    services.identity("m365").faults.fail_next(MisconfiguredError(remote), on="check")
    with pytest.raises(UpstreamUnavailableError) as refused:
        admin.check_connection(services.ctx, ROOT, CUSTOMER, "m365")
    assert refused.value.status == 503
    assert "refused the credentials" in str(refused.value)
    assert "abc123" not in str(refused.value)


def test_bad_connection_settings_name_the_field_and_change_nothing(
    services: ServiceWorld,
) -> None:
    with services.ctx.uow() as uow:
        before = uow.connections.get(CUSTOMER, "m365")
    body = {"tenant_id": "not a tenant", "client_id": "app", "client_secret": "s"}
    with pytest.raises(ValidationFailedError) as refused:
        admin.put_connection(services.ctx, ROOT, CUSTOMER, "m365", body)
    assert [p.field for p in refused.value.problems] == ["tenant_id"]
    with services.ctx.uow() as uow:
        assert uow.connections.get(CUSTOMER, "m365") == before


def test_the_ticket_picker_lists_the_customers_open_tickets(services: ServiceWorld) -> None:
    older, newer = services.open_ticket(), services.open_ticket()
    services.open_ticket(closed=True)
    services.open_ticket(company=OTHER_COMPANY)
    tickets = admin.list_tickets(services.ctx, TECH, CUSTOMER)
    assert [t.id for t in tickets] == [newer, older]


def test_the_ticket_picker_says_when_the_psa_is_down(services: ServiceWorld) -> None:
    services.psa.faults.fail_next(TransientError("PSA answered 502"), on="list_open_tickets")
    with pytest.raises(UpstreamUnavailableError) as down:
        admin.list_tickets(services.ctx, TECH, CUSTOMER)
    assert down.value.status == 503
