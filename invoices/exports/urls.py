"""Accounting export, included under /api/v1/ (read-only; see invoices/exports/views.py)."""

from django.urls import path

from invoices.exports import views as export_views

urlpatterns = [
    path(
        "accounting/invoices/",
        export_views.InvoiceExportView.as_view(),
        name="accounting-invoices",
    ),
    path(
        "accounting/credit-notes/",
        export_views.CreditNoteExportView.as_view(),
        name="accounting-credit-notes",
    ),
    path(
        "accounting/ledger-entries/",
        export_views.LedgerEntryExportView.as_view(),
        name="accounting-ledger-entries",
    ),
    path(
        "accounting/customers/",
        export_views.CustomerExportView.as_view(),
        name="accounting-customers",
    ),
    path(
        "accounting/revenue-summary/",
        export_views.RevenueSummaryView.as_view(),
        name="accounting-revenue-summary",
    ),
    path(
        "accounting/journal/",
        export_views.JournalView.as_view(),
        name="accounting-journal",
    ),
    path(
        "accounting/prepayment-rollforward/",
        export_views.PrepaymentRollForwardView.as_view(),
        name="accounting-prepayment-rollforward",
    ),
]
