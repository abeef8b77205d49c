"""Faithful local stand-ins for Microsoft Graph (with its token endpoint) and the PSAs.

Used by ``jitadmin demo``, ``jitadmin emulate`` and the test-suite. Each emulator is an ASGI
app reachable through its vendor API exactly as a real client would use it, plus an admin API
(``{admin_url}/faults``, ``{admin_url}/requests``) for fault switches and request journals.
"""
