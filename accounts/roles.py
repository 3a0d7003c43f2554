from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions

"""Roles are Django groups. Admin roles get model permissions; API roles are checked by the
API's permission classes by group name (a token belongs to a user in exactly these groups).

`sync_roles` is idempotent and is run by a data migration, so every database has the groups.
"""

FINANCE_CLERK = "Finance clerk"
FINANCE_MANAGER = "Finance manager"
AUDITOR = "Auditor"
# API-only roles.
INGEST = "Ingest"
CONSOLE = "Console"
ACCOUNTING = "Accounting"
# Deposits through the provisioning API need a finance token: either finance group qualifies.
FINANCE_ROLES = (FINANCE_CLERK, FINANCE_MANAGER)

ALL_MODELS = {
    "accounts": [
        "customer",
        "customeruser",
        "application",
        "dailyusage",
        "usagerevision",
        "ledgerentry",
        "adjustmentrequest",
        "customerevent",
        "webhookdelivery",
        "billingcontact",
        "emaildelivery",
        "mailbounce",
        "topup",
        "bankstatement",
        "bankstatementline",
    ],
    "plans": [
        "plan",
        "planprice",
        "addon",
        "addonprice",
        "planchange",
        "addonchange",
        "dedicatedcontract",
        "discount",
        "vatrate",
    ],
    "invoices": [
        "invoice",
        "invoiceline",
        "creditnote",
        "creditnoteline",
        "billingrun",
        "billingrunerror",
        "numbersequence",
        "fapiaorequest",
    ],
    # The month-end and arrears schedule, so finance can see when jobs fire.
    "django_celery_beat": ["periodictask", "crontabschedule"],
}


# Edit who receives the customer's e-mails; resend a document (a new e-mail delivery).
BILLING_CONTACTS = {
    ("accounts", "add_billingcontact"),
    ("accounts", "change_billingcontact"),
    ("accounts", "delete_billingcontact"),
    ("accounts", "add_emaildelivery"),
}

# Upload bank statements; assign an unmatched line to a customer (also needs add_ledgerentry:
# it is a deposit) or mark it not ours.
BANK_STATEMENTS = {
    ("accounts", "add_bankstatement"),
    ("accounts", "change_bankstatementline"),
}


def _view_all() -> set[tuple[str, str]]:
    return {(app, f"view_{model}") for app, models in ALL_MODELS.items() for model in models}


ROLE_PERMISSIONS: dict[str, set[tuple[str, str]]] = {
    AUDITOR: _view_all(),
    FINANCE_CLERK: _view_all()
    | {
        # Record deposits and negative adjustments; propose positive ones (for approval).
        ("accounts", "add_ledgerentry"),
        ("accounts", "add_dailyusage"),  # import usage
        ("accounts", "change_dailyusage"),
        ("accounts", "add_customer"),
        ("accounts", "change_customer"),
        ("accounts", "add_application"),
        ("accounts", "change_application"),
        *BILLING_CONTACTS,
        *BANK_STATEMENTS,
        # Record an issued fapiao or reject a request (the fapiao queue).
        ("invoices", "change_fapiaorequest"),
    },
    FINANCE_MANAGER: _view_all()
    | {
        ("accounts", "add_ledgerentry"),
        ("accounts", "add_dailyusage"),
        ("accounts", "change_dailyusage"),
        ("accounts", "add_customer"),
        ("accounts", "change_customer"),
        ("accounts", "add_application"),
        ("accounts", "change_application"),
        *BILLING_CONTACTS,
        *BANK_STATEMENTS,
        ("plans", "add_plan"),
        ("plans", "change_plan"),
        ("plans", "add_planprice"),
        ("plans", "change_planprice"),
        ("plans", "add_addon"),
        ("plans", "change_addon"),
        ("plans", "add_addonprice"),
        ("plans", "change_addonprice"),
        ("plans", "add_vatrate"),
        ("plans", "change_vatrate"),
        ("invoices", "change_fapiaorequest"),
        ("plans", "add_planchange"),
        ("plans", "add_addonchange"),
        ("plans", "add_dedicatedcontract"),
        ("plans", "change_dedicatedcontract"),
        ("plans", "add_discount"),
        ("plans", "change_discount"),
        ("invoices", "change_invoice"),  # re-rate and issue
        ("invoices", "add_creditnote"),
        ("invoices", "add_billingrun"),
        ("invoices", "change_billingrun"),
        # A positive manual adjustment is economically a credit note: a clerk proposes it.
        ("accounts", "approve_adjustmentrequest"),
        # Enable, disable, edit or run the beat schedule (month-end billing): managers only.
        ("django_celery_beat", "change_periodictask"),
    },
    INGEST: set(),
    CONSOLE: set(),
    ACCOUNTING: set(),
}


def sync_roles(apps=None) -> None:

    registry = apps or global_apps
    group_model = registry.get_model("auth", "Group")
    permission_model = registry.get_model("auth", "Permission")
    for role, wanted in ROLE_PERMISSIONS.items():
        group, _ = group_model.objects.get_or_create(name=role)
        # A permission whose app is not migrated yet is skipped; a later migration re-syncs.
        permissions = [
            permission
            for app, codename in sorted(wanted)
            for permission in permission_model.objects.filter(
                content_type__app_label=app, codename=codename
            )
        ]
        group.permissions.set(permissions)


def sync_roles_migration(apps, schema_editor) -> None:
    """RunPython step: create the permissions now (Django normally does it after all
    migrations), then sync the groups."""

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    sync_roles(apps)
