"""What one customer tenant connection is made of (settings and opened secrets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from jitadmin.adapters.m365.auth import CANONICAL_AUTHORITY
from jitadmin.adapters.m365.certificate import msal_credential
from jitadmin.adapters.m365.client import GRAPH_URL


@dataclass(frozen=True)
class M365Connection:
    tenant_id: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    authority_url: str = CANONICAL_AUTHORITY
    graph_url: str = GRAPH_URL
    domain: str | None = None
    credential: str = "password"  # or "tap": a Temporary Access Pass for the technician
    # A certificate credential instead of the secret: the public certificate registered on the
    # app and its private key (sealed at rest like the secret).
    certificate_pem: str | None = None
    private_key_pem: str | None = field(default=None, repr=False)
    # "auto": a time-bound PIM assignment where the tenant has Entra ID P2, else a plain one;
    # "off": always a plain assignment.
    pim: str = "auto"

    def msal_credential(self) -> str | dict[str, Any]:
        return msal_credential(self.client_secret, self.certificate_pem, self.private_key_pem)
