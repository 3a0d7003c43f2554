from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0012_ledger_deposit_method")]

    operations = [
        migrations.AddField(
            model_name="customerevent",
            name="recorded_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
