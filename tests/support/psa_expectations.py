"""Where PSAs differ on purpose, for the ticket-system contract (support/ticket_contract.py).

One ``PsaExpectations`` per PSA kind: how its ticket numbers read, how its note body keeps a note
internal, how it rejects a note, what a wrong secret's message points at, and how its answers
name URLs (which the adapter must never follow to another host). A PSA registered by a test
adds its own with ``expect`` (and removes it after); a ticket system without HTTP (the fake)
adds only ``TicketExpectations``, the part its half of the contract asks about.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass(frozen=True)
class InvalidNote:
    overrides: dict[str, Any]  # adapter settings/options that make the note invalid
    text: str
    reason: str  # what the vendor's refusal says, as the adapter's error must carry it


@dataclass(frozen=True)
class EvilServer:
    """A well-formed answer whose server-named URL points at evil.example."""

    base_url: str
    answer: Callable[[httpx.Request], httpx.Response]
    refused: bool  # the adapter refuses the answer (True) or reads it as empty (False)
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TicketExpectations:
    """What the behaviour half of the contract (``TicketSystemBehaviour``) needs to know."""

    check_numbers: Callable[[list[str], list[str]], None]  # (ticket numbers, ticket ids)
    assert_internal: Callable[[Any], None]  # the note POST's body
    invalid_note: InvalidNote


@dataclass(frozen=True)
class PsaExpectations(TicketExpectations):
    """The above, and what the HTTP half (``TicketSystemHttp``) needs to know."""

    wrong_secret_hint: str
    one_read_attempt: dict[str, Any]  # the adapter option that allows a single read attempt
    evil: EvilServer


def numbers_are_ids(numbers: list[str], ids: list[str]) -> None:
    assert numbers == ids


def _autotask_numbers(numbers: list[str], _ids: list[str]) -> None:
    # Autotask shows ticketNumber (T<date>.<seq>), not the id.
    assert all(n.startswith("T2026") and "." in n for n in numbers)
    assert len(set(numbers)) == len(numbers)


def _connectwise_internal(body: Any) -> None:
    assert body["internalAnalysisFlag"] is True
    assert body["processNotifications"] is False


def _autotask_internal(body: Any) -> None:
    assert body["publish"] == 2  # Internal Users
    assert body["noteType"] == 1
    assert body["title"] == "The account x is now enabled."


def _halopsa_internal(body: Any) -> None:
    assert isinstance(body, list) and len(body) == 1  # Halo takes an array, always
    assert body[0]["hiddenfromuser"] is True
    assert body[0]["sendemail"] is False
    assert body[0]["outcome_id"] == 7


def _connectwise_evil(_request: httpx.Request) -> httpx.Response:
    link = '<https://evil.example/v4_6_release/apis/3.0/service/tickets?page=2>; rel="next"'
    return httpx.Response(200, json=[], headers={"Link": link})


def _autotask_or_halo_evil(request: httpx.Request) -> httpx.Response:
    path = request.url.path.rsplit("/", 1)[-1]
    next_url = "https://evil.example/ATServicesRest/V1.0/Tickets/query/next?paging=x"
    token = {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}
    answers: dict[str, dict[str, Any]] = {
        "zoneInformation": {"url": "https://webservices5.autotask.net/ATServicesRest/"},
        "ThresholdInformation": {
            "externalRequestThreshold": 10000, "currentTimeframeRequestCount": 1,
            "requestThresholdTimeframe": 60,
        },
        "query": {"items": [], "pageDetails": {
            "count": 0, "requestCount": 500, "prevPageUrl": None, "nextPageUrl": next_url,
        }},
        "authinfo": {"auth_url": "https://evil.example/auth", "tenant_id": "t"},
        "token": token,
    }  # fmt: skip
    return httpx.Response(200, json=answers.get(path, {"record_count": 0, "tickets": []}))


_EXPECTATIONS: dict[str, TicketExpectations] = {
    "connectwise": PsaExpectations(
        check_numbers=numbers_are_ids,
        assert_internal=_connectwise_internal,
        invalid_note=InvalidNote({}, "   ", "serviceNote object is invalid"),
        wrong_secret_hint="API keys",
        one_read_attempt={"get_attempts": 1},
        evil=EvilServer(
            "https://psa.msp.example/v4_6_release/apis/3.0", _connectwise_evil, refused=True
        ),
    ),
    "autotask": PsaExpectations(
        check_numbers=_autotask_numbers,
        assert_internal=_autotask_internal,
        invalid_note=InvalidNote({}, "   ", "description"),
        wrong_secret_hint="integration code",
        one_read_attempt={"read_attempts": 1},
        evil=EvilServer(
            "https://webservices.autotask.net/ATServicesRest", _autotask_or_halo_evil, refused=True
        ),
    ),
    "halopsa": PsaExpectations(
        check_numbers=numbers_are_ids,
        assert_internal=_halopsa_internal,
        invalid_note=InvalidNote(
            {"outcome_id": 9999}, "a note [jitadmin:rejected:granted]", "Outcome 9999"
        ),
        wrong_secret_hint="client_secret",
        one_read_attempt={"read_attempts": 1},
        # No tenant configured: the adapter asks authinfo, which names an evil auth server.
        evil=EvilServer(
            "https://psa.msp.example",
            _autotask_or_halo_evil,
            refused=False,
            overrides={"auth_url": "https://psa.msp.example/auth", "tenant": None},
        ),
    ),
    # jitadmin.testing.FakeTicketSystem: notes in memory, always internal, nothing sent.
    "fake-psa": TicketExpectations(
        check_numbers=numbers_are_ids,
        assert_internal=lambda body: None,
        invalid_note=InvalidNote({}, "   ", "it has no text"),
    ),
}


def expectations(kind: str) -> TicketExpectations:
    found = _EXPECTATIONS.get(kind)
    if found is None:
        raise LookupError(f"PSA {kind!r} has no PsaExpectations: add them with expect()")
    return found


def http_expectations(kind: str) -> PsaExpectations:
    found = expectations(kind)
    if not isinstance(found, PsaExpectations):
        raise LookupError(f"PSA {kind!r} has no PsaExpectations (only TicketExpectations)")
    return found


@contextmanager
def expect(kind: str, expected: TicketExpectations) -> Iterator[None]:
    """``expected`` for ``kind`` while the block runs (a PSA registered by a test)."""
    _EXPECTATIONS[kind] = expected
    try:
        yield
    finally:
        _EXPECTATIONS.pop(kind, None)
