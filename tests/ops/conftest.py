import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _empty_cache():
    # The beat lease and heartbeat live in the cache.
    cache.clear()
    yield
    cache.clear()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of the first sample of `name` with these labels in an exposition text."""
    for line in text.splitlines():
        if not line.startswith((name + "{", name + " ")):
            continue
        if all(f'{key}="{value}"' in line for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None
