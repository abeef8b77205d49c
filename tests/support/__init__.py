"""Helpers the tests import: ``from support.system import System``, never ``from conftest``.

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so this package is importable
as ``support``. Fixtures live in the conftest.py files; everything else a test shares lives here:

- ``config``: the test settings (``fast_settings``), the secret key, the loopback egress policy.
- ``waiting``: ``wait_for``, polling for a condition with a deadline.
- ``system``: a whole jitadmin (API + worker + database) against the emulators over HTTP.
- ``faults``: the emulators' fault switches.
- ``postgres``: fresh databases on the test PostgreSQL server.
- ``ad``: the real Samba AD DC the AD tests run against.
- ``psa_harness``, ``psa_clients``: each PSA behind one harness; notes read by a vendor client.
- ``identity_harness``: M365, AD and the fake identity provider behind one harness.
- ``worker_process``, ``crash_worker``: real worker processes, and one that SIGKILLs itself.
- ``insiders``, ``web``: insider-attack helpers; Chromium helpers for the browser tests.
"""
