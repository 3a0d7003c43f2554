"""Mounted at /mail/ under the "mail" namespace: the mail provider's webhook."""

from django.urls import path

from accounts.api import mail_webhooks as views

app_name = "mail"

urlpatterns = [
    path("events/", views.mail_events, name="events"),
]
