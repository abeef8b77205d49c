"""Where Deskline differs on purpose, for the ticket-system contract (support.psa_expectations)."""

from __future__ import annotations

from typing import Any

import httpx

from support.psa_expectations import EvilServer, InvalidNote, PsaExpectations


def _numbers(numbers: list[str], ids: list[str]) -> None:
    # Deskline shows a reference ("DL-48211"), not the bare id.
    assert numbers == [f"DL-{i}" for i in ids]


def _internal(body: Any) -> None:
    assert body["internal"] is True  # Deskline's notes are public unless marked internal


def _evil(_request: httpx.Request) -> httpx.Response:
    # A well-formed first page whose "next" points at another host.
    following = "https://evil.example/api/v1/companies/250/tickets?status=open&page=2"
    return httpx.Response(200, json={"tickets": [], "page": 1, "next": following})


EXPECTATIONS = PsaExpectations(
    check_numbers=_numbers,
    assert_internal=_internal,
    invalid_note=InvalidNote({}, "   ", "text must not be blank"),
    wrong_secret_hint="API key",
    one_read_attempt={"read_attempts": 1},
    evil=EvilServer("https://psa.deskline.example", _evil, refused=True),
)
