"""The invoices, credit notes and runs back-office with the finance dashboard: Django's admin
autodiscovery imports this package, which registers the ModelAdmins of its modules and the
finance site's index figures and audit page (`site_pages`)."""

from invoices.admin import billing, fapiao, site_pages  # noqa: F401
