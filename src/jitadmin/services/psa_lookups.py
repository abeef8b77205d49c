"""PSA lookups on behalf of a user: a budget per user and a short cache of ticket lists.

Every call that reaches the PSA for a user — the ticket picker's listing, the ticket check at
grant request and extend, the grant page's ticket — spends one of the user's
``per_minute`` lookups (a sliding minute); beyond it the answer is 429 with ``Retry-After``
and the PSA is not asked. The PSA's API quota (Autotask's hourly threshold, ConnectWise's and
Halo's throttles) is shared with the worker's notes, so one user looping must not use it up.

The picker's lists are kept ``cache_ttl_s`` seconds, keyed by the PSA adapter (new PSA
settings start empty), the customer, and the user with its scope: no one else's lookup feeds
a user's answer, and a change of scope starts afresh. A cached answer costs no lookup. The
security checks (ticket open and the customer's, at request and extend) never read the cache.

Counted per process, in memory (the numbers are a budget for the PSA, not evidence).
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from jitadmin.core.errors import RateLimitedError
from jitadmin.ports import Customer, Ticket, User

WINDOW = timedelta(minutes=1)
CacheKey = tuple[str, str, str, tuple[str, ...] | None]


@dataclass
class PsaLookups:
    per_minute: int = 30
    cache_ttl_s: float = 30.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _spent: dict[str, deque[datetime]] = field(default_factory=dict)
    _lists: weakref.WeakKeyDictionary[Any, dict[CacheKey, tuple[datetime, list[Ticket]]]] = field(
        default_factory=weakref.WeakKeyDictionary
    )

    def spend(self, user: User, now: datetime) -> None:
        """Count one PSA call for ``user``, or refuse it (429) when the minute's are spent."""
        with self._lock:
            spent = self._spent.setdefault(user.username, deque())
            while spent and spent[0] <= now - WINDOW:
                spent.popleft()
            if len(spent) >= self.per_minute:
                wait = math.ceil((spent[0] + WINDOW - now).total_seconds())
                raise RateLimitedError(
                    f"at most {self.per_minute} PSA lookups a minute per user; try again in "
                    f"{max(1, wait)} s",
                    wait,
                )
            spent.append(now)

    def cached(
        self, system: Any, customer: Customer, user: User, now: datetime
    ) -> list[Ticket] | None:
        with self._lock:
            try:
                fetched_at, tickets = self._lists.get(system, {})[_key(customer, user)]
            except (KeyError, TypeError):
                return None
        age = (now - fetched_at).total_seconds()
        return list(tickets) if 0 <= age < self.cache_ttl_s else None

    def remember(self, system: Any, customer: Customer, user: User, now: datetime,
                 tickets: list[Ticket]) -> None:  # fmt: skip
        if self.cache_ttl_s <= 0:
            return
        try:
            with self._lock:
                lists = self._lists.setdefault(system, {})
                fresh_after = now - timedelta(seconds=self.cache_ttl_s)
                for stale in [k for k, (at, _) in lists.items() if at <= fresh_after]:
                    del lists[stale]
                lists[_key(customer, user)] = (now, list(tickets))
        except TypeError:
            return  # an adapter that cannot be weakly referenced is simply not cached


def _key(customer: Customer, user: User) -> CacheKey:
    return (customer.slug, str(customer.psa_company_id), user.username, user.customers)
