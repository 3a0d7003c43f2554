"""The price-book back-office: Django's admin autodiscovery imports this package, which
registers the ModelAdmins of its modules."""

from plans.admin import catalog  # noqa: F401
