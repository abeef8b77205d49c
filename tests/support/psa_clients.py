"""Reading a ticket's notes the way a real client of each PSA would: through its vendor API.

``psa`` is the emulators' ``psa`` object of demo.json (``EmulatorWorld.psa_settings()``), i.e.
exactly the PUT /psa body plus ``admin_url``. Notes come back oldest first.
"""

from __future__ import annotations

from typing import Any

import httpx


def vendor_notes(psa: dict[str, Any], ticket_id: str) -> list[str]:
    kind = psa["kind"]
    if kind == "connectwise":
        return _connectwise(psa, ticket_id)
    if kind == "autotask":
        return _autotask(psa, ticket_id)
    if kind == "halopsa":
        return _halopsa(psa, ticket_id)
    raise ValueError(f"unknown PSA kind {kind!r}")


def _connectwise(psa: dict[str, Any], ticket_id: str) -> list[str]:
    with httpx.Client(
        base_url=psa["base_url"],
        auth=(f"{psa['company_id']}+{psa['public_key']}", psa["private_key"]),
        headers={"clientId": psa["client_id"]},
        timeout=30,
    ) as cw:
        response = cw.get(
            f"/service/tickets/{ticket_id}/notes", params={"pageSize": 1000, "orderBy": "id asc"}
        )
        response.raise_for_status()
        return [str(n["text"]) for n in response.json()]


def autotask_client(psa: dict[str, Any]) -> httpx.Client:
    """A client on the zone that zoneInformation names, with the three auth headers."""
    zone = httpx.get(
        f"{psa['base_url']}/V1.0/zoneInformation", params={"user": psa["username"]}, timeout=30
    )
    zone.raise_for_status()
    headers = {
        "ApiIntegrationCode": psa["integration_code"],
        "UserName": psa["username"],
        "Secret": psa["secret"],
    }
    return httpx.Client(base_url=zone.json()["url"], headers=headers, timeout=30)


def _autotask(psa: dict[str, Any], ticket_id: str) -> list[str]:
    query = {"MaxRecords": 500, "filter": [{"op": "eq", "field": "ticketID", "value": ticket_id}]}
    notes: list[dict[str, Any]] = []
    with autotask_client(psa) as at:
        url: str = "V1.0/TicketNotes/query"
        while url:
            response = at.post(url, json=query)
            response.raise_for_status()
            page = response.json()
            notes += page["items"]
            url = page["pageDetails"]["nextPageUrl"] or ""
    return [str(n["description"]) for n in sorted(notes, key=lambda n: int(n["id"]))]


def halo_client(psa: dict[str, Any]) -> httpx.Client:
    """A client on the resource server with a fresh client-credentials token."""
    token = httpx.post(
        f"{psa['auth_url']}/token",
        params={"tenant": psa["tenant"]},
        data={
            "grant_type": "client_credentials",
            "client_id": psa["client_id"],
            "client_secret": psa["client_secret"],
            "scope": "all",
        },
        timeout=30,
    )
    token.raise_for_status()
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return httpx.Client(base_url=f"{psa['base_url']}/api", headers=headers, timeout=30)


def _halopsa(psa: dict[str, Any], ticket_id: str) -> list[str]:
    with halo_client(psa) as halo:
        response = halo.get("/Actions", params={"ticket_id": ticket_id, "count": 10_000})
        response.raise_for_status()
        actions = response.json()["actions"]
    return [str(a["note"]) for a in sorted(actions, key=lambda a: int(a["id"]))]
