"""The connector registry is the one list of vendors: everything that lists them derives from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from jitadmin.connectors import REGISTRY, Connector, markdown_table
from jitadmin.core.connectors import ConnectorFamily
from jitadmin.entrypoints import cli
from jitadmin.entrypoints.api.schemas import PsaIn
from jitadmin.entrypoints.web.render import IDP_LABELS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "jitadmin"
CONNECTORS = list(REGISTRY)
TICKET_SYSTEMS = REGISTRY.family(ConnectorFamily.TICKET_SYSTEM)
IDENTITY_PROVIDERS = REGISTRY.family(ConnectorFamily.IDENTITY_PROVIDER)


def test_the_docs_table_is_the_registrys() -> None:
    docs = (ROOT / "docs" / "connectors.md").read_text()
    assert markdown_table() in docs, "regenerate with jitadmin.connectors.markdown_table()"


def test_the_form_labels_stay_what_technicians_know() -> None:
    # A public interface: the request form's identity provider labels.
    assert dict(IDP_LABELS) == {
        "m365": "M365", "ad": "On Prem AD", "ad_agent": "On Prem AD (via agent)",
    }  # fmt: skip


@pytest.mark.parametrize("connector", CONNECTORS, ids=lambda c: c.kind)
def test_each_spec_names_its_secret_and_its_servers(connector: Connector) -> None:
    spec = connector.spec
    if not spec.saved_by_admin:
        # Through an on-prem agent: the server stores no credential and reaches no server.
        assert not spec.fields and not spec.secret_fields and not spec.url_fields
        return
    assert spec.secret_fields, "every connection has a credential to seal"
    if spec.app is None:
        assert set(spec.secret_fields) <= set(spec.required_fields)
    else:
        # M365: the credential is a secret or a certificate key, and may be the MSP app's
        # (the spec's check insists on exactly one where client_id is given).
        assert set(spec.app.secret_fields) == set(spec.secret_fields)
    assert spec.url_fields, "every connector reaches a server the egress policy must judge"
    assert not set(spec.url_fields) & set(spec.secret_fields)
    assert spec.vendor_docs.startswith("https://")


def test_kinds_and_names_are_unique() -> None:
    kinds = [c.kind for c in CONNECTORS]
    names = [c.spec.display_name for c in CONNECTORS]
    assert len(set(kinds)) == len(kinds) and len(set(names)) == len(names)


@pytest.mark.parametrize("connector", IDENTITY_PROVIDERS, ids=lambda c: c.kind)
def test_each_identity_provider_words_its_own_notes(connector: Connector) -> None:
    wording = connector.spec.wording
    assert wording is not None
    assert "{username}" in wording.granted and "{username}" in wording.revoked
    # Its vendor package (the on-prem agent's entry lives in the AD package it drives).
    package = SRC / "adapters" / connector.build.__module__.split(".")[2]
    assert package.name == connector.kind.split("_")[0]
    assert (package / "provider.py").is_file() and (package / "connector.py").is_file()


@pytest.mark.parametrize("connector", TICKET_SYSTEMS, ids=lambda c: c.kind)
def test_each_psa_has_the_files_docs_connectors_lists(connector: Connector) -> None:
    kind = connector.kind
    assert connector.emulator is not None and connector.emulator.kind == kind
    for path in (
        SRC / "adapters" / "psa" / kind / "adapter.py",
        SRC / "adapters" / "psa" / kind / "connector.py",
        SRC / "emulators" / "psa" / kind / "app.py",
        SRC / "emulators" / "psa" / kind / "emulator.py",
        ROOT / "tests" / "contract" / "psa" / f"test_{kind}.py",
    ):
        assert path.is_file(), path


def test_the_interfaces_list_what_the_registry_holds() -> None:
    assert tuple(c.kind for c in TICKET_SYSTEMS) == cli.PSA_CHOICES
    assert tuple(c.kind for c in IDENTITY_PROVIDERS) == cli.IDP_CHOICES
    enum = PsaIn.model_json_schema()["properties"]["kind"]["enum"]
    assert enum == [c.kind for c in TICKET_SYSTEMS]
