from django.db import migrations


def make_roles(apps, schema_editor):
    from accounts.roles import sync_roles_migration

    sync_roles_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_ledger_append_only"),
        ("plans", "0001_initial"),
        ("invoices", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(make_roles, migrations.RunPython.noop)]
