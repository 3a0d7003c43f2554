from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    name = "invoices"
    verbose_name = "Invoices and billing runs"

    def ready(self):
        # Registers the document e-mails (invoice, credit note, statement) with
        # accounts.mail.content, which may not import invoices; at start-up, once the models
        # are loaded.
        from invoices.mail import messages  # noqa: F401, PLC0415
