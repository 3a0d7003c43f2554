from django.db import migrations


def resync_roles(apps, schema_editor):
    # Same step as 0003: the Finance manager may now change and run periodic tasks.
    from accounts.roles import sync_roles_migration

    sync_roles_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_application_fillfactor"),
    ]

    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
