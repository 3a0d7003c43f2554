"""Loads the default price book (plans/price_book.json) into the database.

Idempotent: a second run changes nothing. Rows finance has edited are never overwritten
silently: the difference is reported and kept, unless `force` resets them to the file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from moneyed import Money

from billingsite.audit import system_actor
from billingsite.clock import billing_date
from plans.models import AddOn, AddOnPrice, Plan, PlanPrice
from plans.selectors import price_in_force

DEFAULT_BOOK = Path(__file__).with_name("price_book.json")


@dataclass
class LoadReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Rows whose database values differ from the file: kept as finance set them.
    differences: list[str] = field(default_factory=list)
    reset: list[str] = field(default_factory=list)

    @property
    def changed_anything(self) -> bool:
        return bool(self.created or self.reset)


def _cny(text: str) -> Money:
    return Money(Decimal(text), "CNY")


def _sync(
    model, lookup: dict, wanted: dict, label: str, report: LoadReport, force: bool, today: dt.date
):
    row = model.objects.filter(**lookup).first()
    if row is None:
        row = model.objects.create(**lookup, **wanted)
        report.created.append(label)
        return row
    diffs = [
        f"{name}: database {getattr(row, name)} != file {value}"
        for name, value in wanted.items()
        if getattr(row, name) != value
    ]
    if not diffs:
        report.unchanged.append(label)
    elif force and model in (PlanPrice, AddOnPrice) and price_in_force(price=row, today=today):
        report.differences.append(
            f"{label}: {'; '.join(diffs)} (in force since {row.valid_from}: never reset, a "
            "new price is a new row from a future month)"
        )
    elif force:
        for name, value in wanted.items():
            setattr(row, name, value)
        row.save()
        report.reset.append(f"{label} ({'; '.join(diffs)})")
    else:
        report.differences.append(f"{label}: {'; '.join(diffs)}")
    return row


# The process name of the loader's history records (the audit trail hides its loads).
PRICE_BOOK_LOADER = "load_price_book"


@transaction.atomic
@system_actor(PRICE_BOOK_LOADER)
def load_price_book(
    *, path: Path = DEFAULT_BOOK, force: bool = False, now: dt.datetime | None = None
) -> LoadReport:
    """`force` resets rows that differ from the file, except prices already in force on
    `now`'s day (default: now), which are reported."""
    today = billing_date(now or timezone.now())
    book = json.loads(Path(path).read_text(encoding="utf-8"))
    if book.get("currency") != "CNY":
        raise ValueError("the price book must be in CNY")
    valid_from = dt.date.fromisoformat(book["valid_from"])
    report = LoadReport()
    plans: dict[str, Plan] = {}
    for spec in book["plans"]:
        plan = _sync(
            Plan,
            {"code": spec["code"]},
            {
                "name": spec["name"],
                "name_zh": spec.get("name_zh", ""),
                "activation": spec["activation"],
                "rank": spec["rank"],
                "supports_ultragroups": spec["supports_ultragroups"],
                "daily_message_limit": spec["daily_message_limit"],
                "notes": spec["notes"],
            },
            f"plan {spec['code']}",
            report,
            force,
            today,
        )
        plans[plan.code] = plan
        _sync(
            PlanPrice,
            {"plan": plan, "valid_from": valid_from},
            {
                "minimum_deposit": _cny(spec["minimum_deposit"]),
                "dau_base_fee": _cny(spec["dau_base_fee"]),
                "included_dau": spec["included_dau"],
                "dau_block_size": spec["dau_block_size"],
                "dau_block_price": _cny(spec["dau_block_price"]),
            },
            f"plan price {spec['code']} from {valid_from}",
            report,
            force,
            today,
        )
    addons: dict[str, AddOn] = {}
    for spec in book["addons"]:
        requires = spec.get("requires")
        if requires is not None and requires not in addons:
            raise ValueError(
                f"add-on {spec['code']} requires {requires!r}, which must be listed before it"
            )
        addon = _sync(
            AddOn,
            {"code": spec["code"]},
            {
                "name": spec["name"],
                "category": spec["category"],
                "unit_description": spec["unit_description"],
                "name_zh": spec.get("name_zh", ""),
                "unit_description_zh": spec.get("unit_description_zh", ""),
                "is_switch": spec["is_switch"],
                "max_quantity": spec["max_quantity"],
                "requires": addons.get(requires),
                "sort_order": spec["sort_order"],
                "notes": spec["notes"],
            },
            f"add-on {spec['code']}",
            report,
            force,
            today,
        )
        addons[addon.code] = addon
        for plan_code, price in spec["prices"].items():
            if price in ("included", "unavailable"):
                wanted = {"availability": price, "unit_price": _cny("0")}
            else:
                wanted = {"availability": "priced", "unit_price": _cny(price)}
            _sync(
                AddOnPrice,
                {"addon": addon, "plan": plans[plan_code], "valid_from": valid_from},
                wanted,
                f"add-on price {spec['code']} on {plan_code} from {valid_from}",
                report,
                force,
                today,
            )
    return report
