"""The customer invoice pages, mounted at / under the "portal" namespace."""

from django.contrib.auth import views as auth_views
from django.urls import path

from invoices.portal import contacts, fapiao, topup, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("invoices/", views.invoice_list, name="invoice-list"),
    path("invoices/<str:number>/", views.invoice_detail, name="invoice-detail"),
    path("invoices/<str:number>/pdf/", views.invoice_pdf, name="invoice-pdf"),
    path("invoices/<str:number>/fapiao/", fapiao.fapiao_request, name="fapiao-request"),
    path(
        "invoices/<str:number>/fapiao/<int:request_id>/file/",
        fapiao.fapiao_file,
        name="fapiao-file",
    ),
    path("credit-notes/<str:number>/", views.credit_note_detail, name="credit-note-detail"),
    path("credit-notes/<str:number>/pdf/", views.credit_note_pdf, name="credit-note-pdf"),
    path("balance/", views.balance, name="balance"),
    path("balance/low-balance/", views.low_balance, name="low-balance"),
    path("balance/top-up/", topup.top_up, name="top-up"),
    path("balance/top-up/<str:number>/", topup.top_up_detail, name="top-up-detail"),
    path("balance/top-up/<str:number>/status/", topup.top_up_status, name="top-up-status"),
    path("this-month/", views.estimate, name="estimate"),
    path("contacts/", contacts.contacts, name="contacts"),
    # Django's authentication views; django-axes throttles the login form.
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PortalPasswordResetView.as_view(), name="password-reset"),
    path(
        "password-reset/sent/",
        views.PortalPasswordResetDoneView.as_view(),
        name="password-reset-done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PortalPasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path(
        "password-reset/complete/",
        views.PortalPasswordResetCompleteView.as_view(),
        name="password-reset-complete",
    ),
]
