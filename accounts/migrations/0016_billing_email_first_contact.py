"""Each customer's billing_email becomes its first billing contact, receiving every kind."""

from django.db import migrations


def billing_email_to_contact(apps, schema_editor):
    Customer = apps.get_model("accounts", "Customer")
    BillingContact = apps.get_model("accounts", "BillingContact")
    have = set(BillingContact.objects.values_list("customer_id", flat=True))
    batch = []
    for customer_id, email in Customer.objects.values_list("id", "billing_email").iterator():
        if customer_id in have or not email:
            continue
        batch.append(BillingContact(customer_id=customer_id, email=email))
        if len(batch) >= 1000:
            BillingContact.objects.bulk_create(batch)
            batch = []
    BillingContact.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_customer_communications")]

    operations = [migrations.RunPython(billing_email_to_contact, migrations.RunPython.noop)]
