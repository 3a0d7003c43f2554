"""JSON request bodies as the API accepts them: every JSON endpoint parses through
`json_loads_bounded` (DRF's default parser below, and the usage ingest, which reads its body
itself), so hostile bodies are refused with a 400 in one place instead of failing later."""

from __future__ import annotations

import json

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Our deepest real body is two levels (a list of usage rows, a quote's add-on map). Python's
# parser recurses per level: 100,000 levels are a RecursionError (a 500), and a few hundred
# would still overflow later in code that walks or prints the value.
MAX_JSON_DEPTH = 32


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _walk_refusing(value: object, *, nul_possible: bool) -> None:
    """Iterative, so the check itself cannot overflow; strings are looked at only when the
    raw body may hold a NUL at all (the common body costs one pass over its containers)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if type(node) is dict:
            if nul_possible and any("\x00" in key for key in node):
                raise ValueError("a JSON key contains a NUL character (\\u0000)")
            children = node.values()
        elif type(node) is list:
            children = node
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif nul_possible and kind is str and "\x00" in child:
                # PostgreSQL cannot store NUL in text; no field of ours has a use for one.
                raise ValueError("a JSON string contains a NUL character (\\u0000)")
    if nul_possible and type(value) is str and "\x00" in value:
        raise ValueError("a JSON string contains a NUL character (\\u0000)")


def json_loads_bounded(raw: bytes | str) -> object:
    """`json.loads` for request bodies. Raises ValueError (with a message for the client) for
    invalid JSON, NaN/Infinity, nesting deeper than MAX_JSON_DEPTH and NUL characters."""
    try:
        value = json.loads(raw, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"the JSON is nested deeper than {MAX_JSON_DEPTH} levels") from None
    # In JSON text a NUL can only be the escape \u0000 (a raw NUL byte is not valid JSON).
    nul_possible = (b"\\u0000" if isinstance(raw, bytes) else "\\u0000") in raw
    _walk_refusing(value, nul_possible=nul_possible)
    return value


class BoundedJSONParser(parsers.JSONParser):
    """DRF's JSON parser through `json_loads_bounded`: hostile bodies are a ParseError (400)."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        raw = stream.read() if stream is not None else b""
        try:
            return json_loads_bounded(raw.decode(encoding))
        except (ValueError, LookupError) as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
