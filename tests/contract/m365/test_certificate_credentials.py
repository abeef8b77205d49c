"""Certificate credentials: the emulator's token endpoint checks a ``client_assertion`` as Entra
does, and the M365 adapter authenticates with a certificate through MSAL.

What is checked, per https://learn.microsoft.com/entra/identity-platform/certificate-credentials
("Assertion format"): header ``alg`` PS256 with ``x5t#S256`` (or RS256 with the SHA-1 ``x5t``)
naming a certificate uploaded to the app, signed by its key; ``aud`` =
``https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token``; ``iss`` = ``sub`` = the
client id; ``exp``/``nbf`` around now; a ``jti``. AADSTS700027 (key not found / bad signature)
and 700024 (time range) are the codes Entra answers (e.g. AzureAD/microsoft-authentication-
library-for-dotnet#4951 quotes 700024).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from jitadmin.adapters.m365.connection import M365Connection
from jitadmin.adapters.m365.provider import M365IdentityProvider
from jitadmin.core.errors import MisconfiguredError
from jitadmin.emulators.graph.registration import JWT_BEARER

from support.certificates import TestCertificate, assertion, make_certificate
from support.config import TEST_EGRESS
from support.m365 import FAST, TENANT, Emulator, Recorder, access, reset, serve_emulator

SCOPE = "https://graph.microsoft.com/.default"
AUDIENCE = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def registered(emulator: Emulator) -> TestCertificate:
    cert = make_certificate("jitadmin registered")
    emulator.admin.post(
        "/_admin/app-registration/certificates", json={"pem": cert.certificate_pem}
    ).raise_for_status()
    return cert


@pytest.fixture(autouse=True)
def _clean(emulator: Emulator) -> None:
    reset(emulator)


def token_call(emulator: Emulator, client_assertion: str, **extra: str) -> httpx.Response:
    form = {
        "grant_type": "client_credentials",
        "client_id": emulator.creds.graph_client_id,
        "scope": SCOPE,
        "client_assertion_type": JWT_BEARER,
        "client_assertion": client_assertion,
        **extra,
    }
    return emulator.admin.post(f"/login/{TENANT}/oauth2/v2.0/token", data=form)


def signed(emulator: Emulator, cert: TestCertificate, **kw: Any) -> str:
    kw.setdefault("audience", AUDIENCE)
    return assertion(cert, client_id=emulator.creds.graph_client_id, **kw)


def aadsts(response: httpx.Response) -> list[int]:
    codes: list[int] = response.json()["error_codes"]
    return codes


# -- the emulator does what Entra does ---------------------------------------------------------


def test_a_ps256_assertion_with_the_sha256_thumbprint_gets_a_token(
    emulator: Emulator, registered: TestCertificate
) -> None:
    response = token_call(emulator, signed(emulator, registered))
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_an_rs256_assertion_with_the_sha1_thumbprint_gets_a_token(
    emulator: Emulator, registered: TestCertificate
) -> None:
    response = token_call(emulator, signed(emulator, registered, alg="RS256"))
    assert response.status_code == 200, response.text


def test_the_same_assertion_may_be_sent_again_before_it_expires(
    emulator: Emulator, registered: TestCertificate
) -> None:
    # MSAL re-sends one assertion until it nears exp (create_regenerative_assertion).
    one = signed(emulator, registered)
    assert token_call(emulator, one).status_code == 200
    assert token_call(emulator, one).status_code == 200


def test_a_certificate_not_uploaded_to_the_app_is_700027(
    emulator: Emulator, registered: TestCertificate
) -> None:
    response = token_call(emulator, signed(emulator, make_certificate("stranger")))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert aadsts(response) == [700027]


def test_a_signature_by_another_key_is_700027(
    emulator: Emulator, registered: TestCertificate
) -> None:
    other = make_certificate("other key")
    response = token_call(emulator, signed(emulator, registered, sign_with=other.key))
    assert response.status_code == 401
    assert aadsts(response) == [700027]
    assert "signature" in response.json()["error_description"]


def test_an_expired_assertion_is_700024(emulator: Emulator, registered: TestCertificate) -> None:
    now = int(time.time())
    response = token_call(
        emulator, signed(emulator, registered, nbf=now - 3600, iat=now - 3600, exp=now - 1800)
    )
    assert response.status_code == 401
    assert aadsts(response) == [700024]


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"audience": "https://login.microsoftonline.com/common/oauth2/v2.0/token"}, "aud"),
        ({"iss": "11111111-2222-3333-4444-555555555555"}, "iss"),
        ({"sub": "11111111-2222-3333-4444-555555555555"}, "sub"),
        ({"jti": ""}, "jti"),
    ],
)
def test_a_misaddressed_assertion_is_refused(
    emulator: Emulator, registered: TestCertificate, claims: dict[str, str], why: str
) -> None:
    response = token_call(emulator, signed(emulator, registered, **claims))
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert why in response.json()["error_description"]


def test_an_unsigned_assertion_is_refused(emulator: Emulator, registered: TestCertificate) -> None:
    head, body, _ = signed(emulator, registered).split(".")
    response = token_call(emulator, f"{head}.{body}.")
    assert response.status_code == 401
    assert aadsts(response) == [700027]


def test_an_assertion_without_its_type_is_refused(
    emulator: Emulator, registered: TestCertificate
) -> None:
    response = token_call(emulator, signed(emulator, registered), client_assertion_type="")
    assert response.status_code == 400
    assert "client_assertion_type" in response.json()["error_description"]


def test_the_journal_never_holds_the_assertion(
    emulator: Emulator, registered: TestCertificate
) -> None:
    token_call(emulator, signed(emulator, registered))
    bodies = [e["body"] for e in emulator.journal() if e["path"].endswith("/token")]
    assert bodies and all(b["client_assertion"] == "***" for b in bodies)


# -- the adapter copes ---------------------------------------------------------------------------


def provider(emulator: Emulator, cert: TestCertificate) -> M365IdentityProvider:
    connection = M365Connection(
        tenant_id=TENANT,
        client_id=emulator.creds.graph_client_id,
        certificate_pem=cert.certificate_pem,
        private_key_pem=cert.private_key_pem,
        authority_url=f"{emulator.url}/login",
        graph_url=f"{emulator.url}/v1.0",
    )
    knobs: dict[str, Any] = dict(FAST)
    return M365IdentityProvider(connection, egress=TEST_EGRESS, **knobs)


def test_the_adapter_grants_and_revokes_with_a_certificate(
    emulator: Emulator, registered: TestCertificate
) -> None:
    idp = provider(emulator, registered)
    try:
        assert "token acquired" in idp.check()
        spec = access()
        recorder = Recorder()
        result = idp.grant(spec, recorder)
        assert result.username in {u["userPrincipalName"] for u in emulator.users_of(spec.grant_id)}
    finally:
        idp.close()
    forms = [e["body"] for e in emulator.journal() if e["path"].endswith("/oauth2/v2.0/token")]
    assert forms, "MSAL asked for a token"
    assert all(f.get("client_assertion_type") == JWT_BEARER for f in forms)
    assert all("client_secret" not in f for f in forms)


def test_a_certificate_the_app_does_not_know_names_the_upload(
    emulator: Emulator, registered: TestCertificate
) -> None:
    idp = provider(emulator, make_certificate("not uploaded"))
    try:
        with pytest.raises(MisconfiguredError) as caught:
            idp.check()
    finally:
        idp.close()
    assert caught.value.vendor_code == "AADSTS700027"
    assert "upload certificate_pem to the app registration" in caught.value.message
