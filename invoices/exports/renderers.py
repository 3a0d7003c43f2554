"""CSV for the accounting export: a DRF renderer for content negotiation, and a streaming
writer so a month of documents leaves the server in chunks and memory stays flat.

Rows are UTF-8, comma separated, quoted only where needed, with a header row; the column order
of each export is fixed in `invoices/exports/serializers.py`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.http import StreamingHttpResponse
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer

CSV_MEDIA_TYPE = "text/csv"
# Rows are written to the socket in blocks of about this many bytes.
FLUSH_BYTES = 64 * 1024
# Spreadsheets run text cells starting with these as formulas; prefix free text with a quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class CSVRenderer(BaseRenderer):
    """Selected by `Accept: text/csv` or `?format=csv`.

    List views stream their CSV themselves (`csv_response`) and never reach `render`; it only
    renders small non-streamed payloads: a list of flat dicts, or one flat dict.
    """

    media_type = CSV_MEDIA_TYPE
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if data is None:
            return b""
        rows = data if isinstance(data, list) else [data]
        header: list[str] = []
        for row in rows:
            for key in row:
                if key not in header:
                    header.append(key)
        return b"".join(
            csv_chunks(header=header, rows=([row.get(k, "") for k in header] for row in rows))
        )


class ExportContentNegotiation(DefaultContentNegotiation):
    """An unknown or empty `?format=` is a client error (406 with the formats on offer), not
    DRF's 404 or a silent default."""

    def select_renderer(self, request, renderers, format_suffix=None):
        requested = request.query_params.get(self.settings.URL_FORMAT_OVERRIDE)
        if requested is not None and not requested.strip():
            self.filter_renderers(renderers, requested)
        return super().select_renderer(request, renderers, format_suffix)

    def filter_renderers(self, renderers, format):
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            offered = ", ".join(renderer.format for renderer in renderers)
            raise NotAcceptable(f"Unknown format {format!r}: use one of {offered}.")
        return matching


def safe_text(value: str) -> str:
    """Free text as a spreadsheet shows it, not as a formula it would run."""
    if value and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class _Buffer:
    """A file-like the csv module writes into; we take what it wrote after each row."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        self.parts.append(text)


def csv_chunks(*, header: Sequence[str], rows: Iterable[Sequence]) -> Iterator[bytes]:
    """Encode `header` and `rows` as CSV, yielding blocks of about FLUSH_BYTES."""
    buffer = _Buffer()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    size = 0
    for row in rows:
        writer.writerow(row)
        size += len(buffer.parts[-1])
        if size >= FLUSH_BYTES:
            yield "".join(buffer.parts).encode("utf-8")
            buffer.parts.clear()
            size = 0
    if buffer.parts:
        yield "".join(buffer.parts).encode("utf-8")


def csv_response(*, header: Sequence[str], rows: Iterable[Sequence], filename: str):
    """A streamed CSV download. `rows` should be a generator reading the database in chunks."""
    response = StreamingHttpResponse(
        csv_chunks(header=header, rows=rows), content_type=f"{CSV_MEDIA_TYPE}; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def json_stream_response(*, head: dict, list_key: str, items: Iterable[dict]):
    """A JSON object streamed as it is built: `head`'s keys, then `list_key` holding `items`.
    For reports too long to hold in memory (the journal of a month)."""

    def chunks() -> Iterator[bytes]:
        opening = json.dumps(head, cls=DjangoJSONEncoder)[:-1]
        separator = ", " if head else ""
        parts = [f'{opening}{separator}"{list_key}": [']
        size = 0
        first = True
        for item in items:
            text = json.dumps(item, cls=DjangoJSONEncoder)
            parts.append(text if first else ", " + text)
            first = False
            size += len(text)
            if size >= FLUSH_BYTES:
                yield "".join(parts).encode("utf-8")
                parts.clear()
                size = 0
        parts.append("]}")
        yield "".join(parts).encode("utf-8")

    return StreamingHttpResponse(chunks(), content_type="application/json")
