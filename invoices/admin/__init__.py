"""The invoices, credit notes and runs back-office with the finance dashboard: Django's admin
autodiscovery imports this package, which registers the ModelAdmins of its modules."""

from invoices.admin import billing, fapiao  # noqa: F401
