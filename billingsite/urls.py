from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include("plans.api_urls")),
    path("api/v1/", include("accounts.api_urls")),
    path("api/v1/", include("invoices.api_urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include(("invoices.portal_urls", "portal"), namespace="portal")),
]

handler404 = "billingsite.api.not_found"
