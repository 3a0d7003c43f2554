from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from billingsite.ops import views as ops_views


def api_docs_view(view):
    """The schema and the docs map every endpoint: unless API_DOCS_PUBLIC opens them (the
    default when DEBUG is on), only a staff login reads them; others go to the admin login.
    The setting is read per request so a deployment (or a test) can flip it."""
    for_staff = staff_member_required(view)

    def serve(request, *args, **kwargs):
        if settings.API_DOCS_PUBLIC:
            return view(request, *args, **kwargs)
        return for_staff(request, *args, **kwargs)

    return serve


urlpatterns = [
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", ops_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", api_docs_view(SpectacularAPIView.as_view()), name="schema"),
    path(
        "api/docs/",
        api_docs_view(SpectacularSwaggerView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path(
        "api/redoc/",
        api_docs_view(SpectacularRedocView.as_view(url_name="schema")),
        name="api-redoc",
    ),
    path("api/v1/", include("plans.api.urls")),
    path("api/v1/", include("accounts.api.urls")),
    path("api/v1/", include("invoices.exports.urls")),
    path("payments/", include("accounts.api.payment_urls")),
    path("mail/", include("accounts.api.mail_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(("invoices.portal.urls", "portal"), namespace="portal")),
]

# Branded pages for the portal, JSON for /api/ (see billingsite/ops/errors.py).
handler400 = "billingsite.ops.errors.bad_request"
handler403 = "billingsite.ops.errors.permission_denied"
handler404 = "billingsite.ops.errors.page_not_found"
handler500 = "billingsite.ops.errors.server_error"
