"""JITADMIN_OIDC_ISSUER: https, or http only to a loopback host (a provider on this machine)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from jitadmin.settings import Settings

from support.config import fast_settings

RULE = "JITADMIN_OIDC_ISSUER must use https:// (http:// only for a loopback host"


def with_issuer(tmp_path: Path, issuer: str) -> Settings:
    return fast_settings(
        tmp_path, oidc_issuer=issuer, oidc_client_id="jitadmin",
        oidc_client_secret=SecretStr("s" * 32), oidc_role_map={"jit-admins": "admin"},
    )  # fmt: skip


@pytest.mark.parametrize(
    "issuer",
    ["https://login.microsoftonline.com/t/v2.0", "http://127.0.0.90:4000", "http://localhost:9",
     "http://[::1]:4000/oidc"],
)  # fmt: skip
def test_https_and_loopback_http_issuers_are_accepted(tmp_path: Path, issuer: str) -> None:
    assert with_issuer(tmp_path, issuer).oidc_issuer == issuer


@pytest.mark.parametrize(
    "issuer",
    ["http://idp.example", "http://10.0.0.5/oidc", "http://127.0.0.1.evil.example",
     "http://localhost.evil.example"],
)  # fmt: skip
def test_http_to_anything_but_loopback_is_refused_naming_the_rule(
    tmp_path: Path, issuer: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(RULE)):
        with_issuer(tmp_path, issuer)


@pytest.mark.parametrize("issuer", ["idp.example", "ftp://idp.example", "https://"])
def test_an_issuer_that_is_no_url_is_refused(tmp_path: Path, issuer: str) -> None:
    with pytest.raises(ValidationError, match="JITADMIN_OIDC_ISSUER must be a URL"):
        with_issuer(tmp_path, issuer)
