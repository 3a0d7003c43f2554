from django.urls import path

from plans.api.views import QuoteView

urlpatterns = [
    path("quotes/", QuoteView.as_view(), name="quote-create"),
]
