"""Mounted at /payments/ under the "payments" namespace."""

from django.urls import path

from accounts.api import payments as views

app_name = "payments"

urlpatterns = [
    path("alipay/notify/", views.alipay_notify, name="alipay-notify"),
    path("wechat/notify/", views.wechat_notify, name="wechat-notify"),
]
