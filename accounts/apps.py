from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Customers and balances"

    def ready(self):
        # Imported once the apps are ready: connects the receiver that attributes history
        # records written without a user to the process (billingsite.audit).
        from billingsite import audit  # noqa: F401, PLC0415
