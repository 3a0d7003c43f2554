"""JSON log lines: one object per line with the current request's or task's context."""

import datetime as dt
import logging

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter

from billingsite.ops.context import log_context


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("timestamp", False)
        super().__init__(*args, **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # UTC, ISO 8601: the same in every process whatever its local time zone.
        return dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        super().add_fields(log_record, record, message_dict)
        for key, value in log_context().items():
            log_record.setdefault(key, value)
        # Django attaches the request to its own records; it is not serialisable.
        log_record.pop("request", None)
        log_record.pop("server_time", None)
