"""The price book, kept in each process between requests until the price book changes.

A quote, an estimate and the portal's balance page each need the prices valid in a period:
read from the database that is four queries and ~150 model instances per request, most of a
quote's time. Here they are read once per process and period, and kept under the price book's
version token (`plans_price_book_version`, migration plans/0006): database triggers replace the
token in the same transaction as every insert, update, delete or truncate of plans, plan
prices, add-ons and add-on prices, whatever wrote them (admin, `load_price_book`, a bulk update,
a shell). Each use reads the token (one primary-key query) and rebuilds the book when it
changed, so the next quote after a committed price edit prices with the edit, in every process.

Why the token lives in the database and not in the shared cache: a price written by a path that
forgot to bump a cache key, or a process on the embedded per-process cache, would be served
stale prices; the trigger cannot be forgotten. Why random and not a counter: a transaction
that edits prices and rolls back must not leave a token a later edit could reuse.

The month-end run reads the price book directly (plans.selectors.price_book_for_period): once
per chunk, inside its own transaction, no need for this.
"""

from __future__ import annotations

import threading

from django.db import connection

from billingsite.clock import Period
from billingsite.postgresql.prepared import fetch_fixed
from plans.models import AddOn
from plans.rating.engine import PriceBook
from plans.selectors import price_book_for_period

# Periods kept per token: quotes may ask for any month, the cache must stay small.
MAX_PERIODS = 24
# Vendors whose migration installed the triggers (plans/migrations/0006_price_book_version.py).
VENDORS_WITH_TRIGGERS = ("postgresql", "sqlite")


class _Entries:
    """What one process holds for one token."""

    def __init__(self, token: str):
        self.token = token
        self.books: dict = {}
        self.addons: dict[str, AddOn] | None = None


_lock = threading.Lock()
_current: _Entries | None = None


def price_book_token() -> str | None:
    """The price book's version token now (None: no trigger-maintained token to trust)."""
    if connection.vendor not in VENDORS_WITH_TRIGGERS:
        return None
    # Asked on every quote and estimate: on PostgreSQL planned once per connection.
    row = fetch_fixed(connection, _TOKEN_SQL, (), one=True)
    return row[0] if row else None


_TOKEN_SQL = "SELECT token FROM plans_price_book_version WHERE id = 1"


def _entries() -> _Entries | None:
    global _current
    token = price_book_token()
    if token is None:
        return None
    current = _current
    if current is None or current.token != token:
        with _lock:
            if _current is None or _current.token != token:
                _current = _Entries(token)
            current = _current
    return current


def cached_price_book(*, period: Period) -> PriceBook:
    """`plans.selectors.price_book_for_period`, read again only after the price book changed.
    PriceBook is frozen: callers share it."""
    return _book(_entries(), period)


def _book(entries: _Entries | None, period: Period) -> PriceBook:
    if entries is None:
        return price_book_for_period(period=period)
    book = entries.books.get(period.start)
    if book is None:
        book = price_book_for_period(period=period)
        if len(entries.books) >= MAX_PERIODS:
            entries.books.clear()
        entries.books[period.start] = book
    return book


def cached_price_book_and_addons(*, period: Period) -> tuple[PriceBook, dict[str, AddOn]]:
    """The price book of `period` and every add-on by code with `requires` loaded (the
    catalogue a quote checks orders against: quantities, the base an extension needs), for one
    token query. Shared instances: read them only."""
    entries = _entries()
    book = _book(entries, period)
    if entries is not None and entries.addons is not None:
        return book, entries.addons
    addons = {addon.code: addon for addon in AddOn.objects.select_related("requires")}
    if entries is not None:
        entries.addons = addons
    return book, addons


def forget_price_book() -> None:
    """Drop this process's copy (tests; the token makes it unnecessary in production)."""
    global _current
    with _lock:
        _current = None
