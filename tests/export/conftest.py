import csv
import io
import json

import pytest
from django.core.cache import cache

from accounts import roles
from tests.export.factories import token_client


@pytest.fixture(autouse=True)
def _fresh_throttle_counts():
    # Throttle counters live in the cache; each test starts with a full budget.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def accounting(db):
    """An API client holding an Accounting token."""
    return token_client(groups=(roles.ACCOUNTING,))


def body(response) -> bytes:
    """The body of a plain or streamed response."""
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def json_body(response):
    return json.loads(body(response))


def csv_rows(response) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body(response).decode("utf-8"))))


def csv_header(response) -> list[str]:
    return next(csv.reader(io.StringIO(body(response).decode("utf-8"))))
