"""The billing clock: periods and days are calendar dates in Asia/Shanghai."""

import calendar
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

BILLING_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True, order=True)
class Period:
    """One calendar month in Asia/Shanghai."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> "Period":
        try:
            year_text, month_text = text.split("-")
            period = cls(int(year_text), int(month_text))
        except (ValueError, AttributeError) as exc:
            raise ValueError(f"period must look like 2026-10, got {text!r}") from exc
        if not 1 <= period.month <= 12 or not 2000 <= period.year <= 2999:
            raise ValueError(f"period must look like 2026-10, got {text!r}")
        return period

    @classmethod
    def containing(cls, day: dt.date) -> "Period":
        return cls(day.year, day.month)

    @property
    def start(self) -> dt.date:
        return dt.date(self.year, self.month, 1)

    @property
    def days(self) -> int:
        return calendar.monthrange(self.year, self.month)[1]

    @property
    def end(self) -> dt.date:
        return dt.date(self.year, self.month, self.days)

    def next(self) -> "Period":
        return Period(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> "Period":
        return Period(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


def billing_date(moment: dt.datetime) -> dt.date:
    """The Asia/Shanghai calendar date of an aware datetime."""
    if moment.tzinfo is None:
        raise ValueError("billing needs aware datetimes")
    return moment.astimezone(BILLING_TZ).date()


def start_of_day(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=BILLING_TZ)
