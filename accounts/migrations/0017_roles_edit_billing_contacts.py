from django.db import migrations


def resync_roles(apps, schema_editor):
    # Finance edits billing contacts and resends e-mails (accounts.roles.BILLING_CONTACTS).
    from accounts.roles import sync_roles_migration

    sync_roles_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0016_billing_email_first_contact")]

    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
