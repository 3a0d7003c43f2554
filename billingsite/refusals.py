"""The one base of every refusal a service may answer a caller with.

A refusal names the rule that refused (`code`, a stable snake_case word the API publishes), says
why in words (`message`) and names the offending input (`field`, or None for the request as a
whole). `extra` holds machine-readable details some rules publish (the amounts of
`insufficient_deposit`, the bad rows of a usage batch). Services raise these; the API turns
every one of them into its one error body in `billingsite.api_errors` (which also decides the
HTTP status from the code), and the admin shows `message` as a form error.

No Django or DRF import here: domain code (and the pure parts of it) may raise refusals.
"""

from __future__ import annotations

from typing import Any


class Refusal(ValueError):
    """A request refused by a rule; nothing was changed. Subclasses set `code` (and `field`)
    as class attributes or per instance."""

    code: str = "invalid"
    field: str | None = None

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        field: str | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if field is not None:
            self.field = field
        self.extra: dict[str, Any] = extra

    def body(self) -> dict[str, Any]:
        """The API's error body: {code, message, field} and the rule's extra details."""
        return {"code": self.code, "message": self.message, "field": self.field, **self.extra}
