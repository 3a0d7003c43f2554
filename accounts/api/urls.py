"""Provisioning (console), deposits (finance) and usage ingest (IM platform), under /api/v1/."""

from django.urls import path

from accounts.api import views as api

urlpatterns = [
    path("customers/", api.CustomerListView.as_view(), name="api-customer-list"),
    path(
        "customers/<str:external_id>/",
        api.CustomerDetailView.as_view(),
        name="api-customer-detail",
    ),
    path(
        "customers/<str:external_id>/deposits/",
        api.CustomerDepositView.as_view(),
        name="api-customer-deposits",
    ),
    path(
        "customers/<str:external_id>/estimate/",
        api.CustomerEstimateView.as_view(),
        name="api-customer-estimate",
    ),
    path(
        "customers/<str:external_id>/invoices/",
        api.CustomerInvoicesView.as_view(),
        name="api-customer-invoices",
    ),
    path("applications/", api.ApplicationListView.as_view(), name="api-application-list"),
    path(
        "applications/<str:app_key>/",
        api.ApplicationDetailView.as_view(),
        name="api-application-detail",
    ),
    path(
        "applications/<str:app_key>/plan-changes/",
        api.PlanChangeView.as_view(),
        name="api-application-plan-changes",
    ),
    path(
        "applications/<str:app_key>/addons/",
        api.AddOnListView.as_view(),
        name="api-application-addons",
    ),
    path(
        "applications/<str:app_key>/addons/<str:addon>/",
        api.AddOnDetailView.as_view(),
        name="api-application-addon-detail",
    ),
    path("usage/", api.UsageIngestView.as_view(), name="api-usage"),
]
