"""Deskline: a fictional fourth PSA that exists only in the tests.

It shows that a PSA is one package plus one registry line: an adapter on the shared PSA HTTP
plumbing (``adapter.py``), a connector spec and builder (``connector.py``), an emulator on the
shared emulator pieces (``state.py``, ``emulator.py``) and its contract expectations
(``expectations.py``). tests/contract/psa/test_fourth_psa.py registers it for its own run and
puts it through the whole ticket-system contract. Nothing outside this package names it.

Deskline's API, under ``{base_url}/api/v1`` with ``Authorization: Bearer <api key>``:

- ``GET /account``: ``{"name", "open_tickets"}``
- ``GET /companies/{id}/tickets?status=open&page=N&per_page=M``: newest first,
  ``{"tickets": [...], "page": N, "next": <absolute URL of the next page> | null}``
- ``GET /tickets/{id}``: ``{"id", "reference", "subject", "state": "open"|"closed",
  "status_label", "company_id"}``
- ``GET /tickets/{id}/notes?page=N`` (oldest first, same paging) and
  ``POST /tickets/{id}/notes {"text", "internal": true}`` → 201 ``{"id", ...}``
- errors: ``{"error": {"code", "message"}}``; 429 carries ``Retry-After`` (seconds)
"""
