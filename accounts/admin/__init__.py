"""The customer back-office: Django's admin autodiscovery imports this package, which registers
the ModelAdmins of its modules."""

from accounts.admin import bank, customers, payments  # noqa: F401
