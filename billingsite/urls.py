from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from billingsite.ops import views as ops_views

urlpatterns = [
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    path("api/v1/", include("plans.api_urls")),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("invoices.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(("invoices.portal_urls", "portal"), namespace="portal")),
]

# Branded pages for the portal, JSON for /api/ (see billingsite/ops/errors.py).
handler400 = "billingsite.ops.errors.bad_request"
handler403 = "billingsite.ops.errors.permission_denied"
handler404 = "billingsite.ops.errors.page_not_found"
handler500 = "billingsite.ops.errors.server_error"
