from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0011_ledger_sign_matches_kind")]

    operations = [
        migrations.AddField(
            model_name="customerevent",
            name="recorded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
