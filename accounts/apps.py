from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customers and balances"

    def ready(self):
        # Registers bank transfer among the balance page's top-up options.
        from accounts.payments import how_to_pay  # noqa: F401, PLC0415
