"""What may be ordered of an add-on: its quantity (whole, 1 for on/off services, at most the
price book's maximum) and the add-on it extends. The subscription services (API, admin,
demo data) and the quote all ask here, so an order refused in one is refused in all."""

from __future__ import annotations

from dataclasses import dataclass

from plans.models import AddOn


@dataclass(frozen=True)
class QuantityProblem:
    code: str
    message: str


def addon_quantity_problem(*, addon: AddOn, quantity: object) -> QuantityProblem | None:
    """Why `quantity` units of `addon` cannot be ordered, or None when they can."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        return QuantityProblem("invalid_quantity", "quantity must be a whole number of at least 1")
    if addon.is_switch and quantity != 1:
        return QuantityProblem(
            "invalid_quantity",
            f"{addon.name} ({addon.code}) is an on/off service: its quantity is 1",
        )
    if quantity > addon.max_quantity:
        unit = f" (one unit: {addon.unit_description})" if addon.unit_description else ""
        return QuantityProblem(
            "quantity_above_maximum",
            f"{addon.name} ({addon.code}): at most {addon.max_quantity:,} per application{unit}; "
            f"{quantity:,} is above the maximum",
        )
    return None


def missing_base_message(*, addon: AddOn, base: AddOn) -> str:
    """Why an extension cannot start without the add-on it extends."""
    return (
        f"{addon.name} ({addon.code}) extends {base.name} ({base.code}): order {base.code} "
        "for the same days first"
    )
