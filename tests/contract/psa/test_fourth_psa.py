"""A fourth PSA is one package plus one registry line: Deskline (tests/fourth_psa), registered
here for this module's run only, goes through the whole ticket-system contract, appears in the
catalog, and is accepted and used by the services (PUT /psa, the connection test, the picker).

Nothing outside tests/fourth_psa and this file names Deskline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fourth_psa import connector as deskline
from fourth_psa.emulator import EMULATOR
from fourth_psa.expectations import EXPECTATIONS
from fourth_psa.state import DesklineState
from jitadmin.connectors import REGISTRY, Connector, markdown_table
from jitadmin.core.connectors import ConnectorFamily
from jitadmin.core.errors import TransientError, ValidationFailedError
from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.services import admin
from jitadmin.wiring import build as build_app

from support.config import fast_settings
from support.psa_expectations import expect
from support.psa_harness import BIGCO, Harness, fresh_harness, running_world
from support.services import ROOT
from support.ticket_contract import TicketSystemContract

PEDRO = CUSTOMERS[0]


@pytest.fixture(scope="module")
def registered() -> Iterator[Connector]:
    """Deskline in the registry (the one line a built-in PSA has in jitadmin/connectors.py)."""
    entry = Connector(deskline.SPEC, deskline.build, EMULATOR)
    REGISTRY.register(entry)
    try:
        with expect(deskline.KIND, EXPECTATIONS):
            yield entry
    finally:
        REGISTRY.unregister(deskline.KIND)


@pytest.fixture(scope="module")
def world(registered: Connector) -> Iterator[EmulatorWorld]:
    # Built after registering: emulator_world mounts every registered PSA, Deskline included.
    yield from running_world(customers=(*CUSTOMERS, BIGCO), psa_kind=deskline.KIND)


@pytest.fixture
def psa(world: EmulatorWorld) -> Iterator[Harness]:
    yield from fresh_harness(deskline.KIND, world)


class TestDeskline(TicketSystemContract):
    """Every test of the ticket-system contract, asked of Deskline."""


# --- what registering changes -------------------------------------------------------------


def test_registering_adds_it_to_the_catalog_and_the_docs_table(registered: Connector) -> None:
    assert deskline.KIND in REGISTRY.catalog.ticket_systems
    assert REGISTRY.catalog.ticket_systems[:3] == ("connectwise", "autotask", "halopsa")
    assert REGISTRY.get(deskline.KIND, ConnectorFamily.TICKET_SYSTEM) is registered
    assert EMULATOR in REGISTRY.psa_emulators()
    assert "| `deskline` | ticket system | Deskline | base_url, **api_key** |" in markdown_table()


def test_the_services_save_test_and_use_it(
    registered: Connector, world: EmulatorWorld, tmp_path: Path
) -> None:
    app = build_app(fast_settings(tmp_path))
    try:
        ctx = app.ctx
        body = world.psa_settings(deskline.KIND)
        with pytest.raises(ValidationFailedError) as missing:
            admin.put_psa(ctx, ROOT, {k: v for k, v in body.items() if k != "api_key"})
        assert [p.field for p in missing.value.problems] == ["api_key"]
        saved = admin.put_psa(ctx, ROOT, dict(body))
        assert saved == {"kind": "deskline", "base_url": body["base_url"]}  # the key is sealed
        findings = admin.check_psa(ctx, ROOT)["findings"]
        assert any("open tickets visible" in f for f in findings)
        admin.create_customer(
            ctx, ROOT, slug=PEDRO.slug, name=PEDRO.name, psa_company_id=str(PEDRO.psa_company_id)
        )
        picked = admin.list_tickets(ctx, ROOT, PEDRO.slug)
        assert sorted(t.id for t in picked) == sorted(PEDRO.open_ticket_ids)
        assert {t.number for t in picked} == {f"DL-{i}" for i in PEDRO.open_ticket_ids}
    finally:
        app.close()


def test_the_vendors_own_rate_limit_is_transient_with_its_retry_after(
    psa: Harness, world: EmulatorWorld
) -> None:
    state: DesklineState = world.psa_state(deskline.KIND)
    state.rate.configure(limit=1, used=1)  # reset with the faults after the test
    with pytest.raises(TransientError) as caught:
        psa.adapter(read_attempts=1).get_ticket(PEDRO.open_ticket_ids[0])
    assert caught.value.retry_after_s == 60
    assert "more than 1 requests" in str(caught.value)
