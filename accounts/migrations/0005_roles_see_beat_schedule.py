from django.db import migrations


def resync_roles(apps, schema_editor):
    # Same step as 0003, now that django-celery-beat's models exist too.
    from accounts.roles import sync_roles_migration

    sync_roles_migration(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_verbose_names"),
        ("plans", "0002_verbose_names"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(resync_roles, migrations.RunPython.noop)]
