"""The ticket-system contract (support/ticket_contract.py) asked of every registered PSA,
and its behaviour half asked of the in-memory fake (``jitadmin.testing.FakeTicketSystem``).

Each PSA in the connector registry runs the same suite against its emulator over real HTTP;
adding a PSA to the registry adds it here with no change to this file.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jitadmin.emulators.seed import CUSTOMERS
from jitadmin.emulators.server import EmulatorWorld

from support.psa_harness import BIGCO, KINDS, FakeHarness, Harness, fresh_harness, running_world
from support.ticket_contract import TicketSystemBehaviour, TicketSystemContract


@pytest.fixture(scope="module")
def world() -> Iterator[EmulatorWorld]:
    yield from running_world(customers=(*CUSTOMERS, BIGCO))


class TestEveryRegisteredPsa(TicketSystemContract):
    @pytest.fixture(params=KINDS)
    def psa(self, request: pytest.FixtureRequest, world: EmulatorWorld) -> Iterator[Harness]:
        yield from fresh_harness(request.param, world)


class TestTheFake(TicketSystemBehaviour):
    """The fake the service tests run on answers like the adapters it stands in for."""

    @pytest.fixture
    def psa(self) -> FakeHarness:
        return FakeHarness()
