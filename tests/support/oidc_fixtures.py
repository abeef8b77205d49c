"""Fixtures of the OIDC sign-in tests (loaded through ``pytest_plugins``): the real OpenID
Provider and a jitadmin set up for it (tests/support/oidc.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from support.oidc import OpenIdProvider, start_oidc_system
from support.system import System, stop_system


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[OpenIdProvider]:
    running = OpenIdProvider(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def sso(tmp_path: Path, provider: OpenIdProvider) -> Iterator[System]:
    """jitadmin with single sign-on through ``provider`` (admins need TOTP for local
    sign-in, as by default; the provider's MFA stands in for it)."""
    running = start_oidc_system(tmp_path, provider, totp_required_roles="admin")
    yield running
    stop_system(running)
