"""The MSP's app registration in the Graph emulator: certificates, redirect URIs, client
assertions, and what a customer admin's consent does in a tenant (``consent.py`` serves it)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable

from jitadmin.emulators.graph.directory import Directory
from jitadmin.emulators.graph.model import AppConsent, Tenant
from jitadmin.emulators.graph.registration import check_assertion


class ConsentDirectory(Directory):
    def register_certificate(self, pem: str) -> str:
        """Upload a certificate to the app registration; returns its SHA-256 thumbprint."""
        with self.lock:
            return self.registration.add_certificate(pem)

    def set_redirect_uris(self, uris: Iterable[str]) -> None:
        with self.lock:
            self.registration.redirect_uris = list(uris)

    def check_client_assertion(self, tenant_id: str, tenant_key: str, assertion: str) -> None:
        with self.lock:
            check_assertion(self.registration, assertion, {tenant_id.lower(), tenant_key})

    def grant_admin_consent(self, tenant_id: str, *, identity_pending_requests: int = 0) -> None:
        """What a customer admin's consent does: the app's service principal in the tenant,
        holding the permissions the registration asks for."""
        with self.lock:
            tenant = self._tenants[tenant_id.lower()]
            reg = self.registration
            app = tenant.apps.get(reg.client_id)
            if app is None:
                secret = next(iter(self._tenants.values())).apps[reg.client_id].secret
                app = AppConsent(reg.client_id, secret, frozenset(), str(uuid.uuid4()))
                tenant.apps[reg.client_id] = app
            app.roles = frozenset(reg.required_permissions)
            app.consented = True
            app.identity_pending_requests = identity_pending_requests

    def all_tenants(self) -> list[Tenant]:
        with self.lock:
            return copy.deepcopy(list(self._tenants.values()))
