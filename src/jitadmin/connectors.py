"""The connector registry: every vendor jitadmin can talk to, one entry each.

An entry joins what one vendor package provides: its spec (``core.connectors``: settings model,
secret fields, display name, the words its notes use), how to build its adapter from saved
settings, and, for a PSA, its emulator (which also answers the contract suite's ground-truth
questions). The services, the REST API's schemas, the web admin forms, the CLI's choices, the
demo's seeding and the docs' table all read this registry; nothing else lists vendors.

Adding a vendor: write its adapter package (with a ``connector.py`` holding ``SPEC`` and
``build``), its emulator package (with an ``emulator.py`` holding ``EMULATOR``), and add one
``Connector`` line below. docs/connectors.md lists the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jitadmin.adapters.ad import connector as ad
from jitadmin.adapters.m365 import connector as m365
from jitadmin.adapters.psa.autotask import connector as autotask
from jitadmin.adapters.psa.connectwise import connector as connectwise
from jitadmin.adapters.psa.halopsa import connector as halopsa
from jitadmin.core.connectors import AdapterEnv, ConnectorCatalog, ConnectorFamily, ConnectorSpec
from jitadmin.core.errors import ValidationFailedError
from jitadmin.emulators.graph.emulator import m365_connection
from jitadmin.emulators.psa.autotask.emulator import EMULATOR as AUTOTASK_EMULATOR
from jitadmin.emulators.psa.common import PsaEmulator
from jitadmin.emulators.psa.connectwise.emulator import EMULATOR as CONNECTWISE_EMULATOR
from jitadmin.emulators.psa.halopsa.emulator import EMULATOR as HALOPSA_EMULATOR
from jitadmin.emulators.seed import SeedCustomer
from jitadmin.emulators.server import EmulatorWorld
from jitadmin.ports import IdentityProvider, TicketSystem


class AdapterBuilder(Protocol):
    """(saved settings, opened secrets, environment, adapter options) → the adapter."""

    def __call__(
        self, settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv, **extra: Any
    ) -> Any: ...


@dataclass(frozen=True)
class Connector:
    spec: ConnectorSpec
    build: AdapterBuilder
    emulator: PsaEmulator | None = None  # ticket systems: the emulator and its ground truth
    # Identity providers the emulators stand in for: a seeded customer's connection settings.
    emulated: Callable[[EmulatorWorld, SeedCustomer], dict[str, Any]] | None = None

    @property
    def kind(self) -> str:
        return self.spec.kind


class ConnectorRegistry:
    def __init__(self, connectors: list[Connector]) -> None:
        self.catalog = ConnectorCatalog()
        self._entries: dict[str, Connector] = {}
        for connector in connectors:
            self.register(connector)

    def register(self, connector: Connector) -> None:
        if connector.spec.family is ConnectorFamily.TICKET_SYSTEM and connector.emulator is None:
            raise ValueError(f"ticket system {connector.kind!r} needs its emulator")
        self.catalog.add(connector.spec)
        self._entries[connector.kind] = connector

    def unregister(self, kind: str) -> None:
        self.catalog.remove(kind)
        self._entries.pop(kind, None)

    def __iter__(self) -> Iterator[Connector]:
        return iter(list(self._entries.values()))

    def get(self, kind: str, family: ConnectorFamily) -> Connector:
        entry = self._entries.get(kind)
        if entry is None or entry.spec.family is not family:
            field = "identity_provider" if family is ConnectorFamily.IDENTITY_PROVIDER else "kind"
            known = ", ".join(self.catalog.kinds(family))
            raise ValidationFailedError.single(field, f"must be one of {known}")
        return entry

    def family(self, family: ConnectorFamily) -> list[Connector]:
        return [c for c in self if c.spec.family is family]

    def identity_provider(
        self, kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv
    ) -> IdentityProvider:
        built: IdentityProvider = self.get(kind, ConnectorFamily.IDENTITY_PROVIDER).build(
            settings, secrets, env
        )
        return built

    def ticket_system(
        self, kind: str, settings: Mapping[str, Any], secrets: Mapping[str, Any], env: AdapterEnv,
        **extra: Any,
    ) -> TicketSystem:  # fmt: skip
        built: TicketSystem = self.get(kind, ConnectorFamily.TICKET_SYSTEM).build(
            settings, secrets, env, **extra
        )
        return built

    def psa_emulators(self) -> list[PsaEmulator]:
        return [c.emulator for c in self.family(ConnectorFamily.TICKET_SYSTEM) if c.emulator]


def _emulated_m365(world: EmulatorWorld, customer: SeedCustomer) -> dict[str, Any]:
    return m365_connection(world.graph_settings(customer))


REGISTRY = ConnectorRegistry(
    [
        Connector(m365.SPEC, m365.build, emulated=_emulated_m365),
        Connector(ad.SPEC, ad.build),
        Connector(ad.AGENT_SPEC, ad.build_agent),
        Connector(connectwise.SPEC, connectwise.build, CONNECTWISE_EMULATOR),
        Connector(autotask.SPEC, autotask.build, AUTOTASK_EMULATOR),
        Connector(halopsa.SPEC, halopsa.build, HALOPSA_EMULATOR),
    ]
)


def emulator_world(**options: Any) -> EmulatorWorld:
    """An ``EmulatorWorld`` with every registered PSA's emulator mounted."""
    return EmulatorWorld(psa_emulators=REGISTRY.psa_emulators(), **options)


def markdown_table(registry: ConnectorRegistry = REGISTRY) -> str:
    """The connectors table of docs/connectors.md (a test keeps the two equal)."""
    rows = [
        "| Kind | Family | Name | Settings (secret in bold) | Vendor API |",
        "| --- | --- | --- | --- | --- |",
    ]
    for connector in registry:
        spec = connector.spec
        names = [
            f"**{n}**" if n in spec.secret_fields else (n if n in spec.required_fields else f"{n}?")
            for n in spec.fields
        ]
        family = spec.family.value.replace("_", " ")
        rows.append(
            f"| `{spec.kind}` | {family} | {spec.display_name} | {', '.join(names) or 'none'} "
            f"| {spec.vendor_docs} |"
        )
    return "\n".join(rows) + "\n"
