import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from accounts import roles


class Command(BaseCommand):
    help = "Create the demo staff logins (development only) and print them."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_PASSWORD", "billing-demo")
        users = [
            ("admin", None, True),
            ("manager", roles.FINANCE_MANAGER, False),
            ("clerk", roles.FINANCE_CLERK, False),
            ("auditor", roles.AUDITOR, False),
        ]
        user_model = get_user_model()
        for username, group, superuser in users:
            user, created = user_model.objects.get_or_create(
                username=username, defaults={"is_staff": True, "is_superuser": superuser}
            )
            if created:
                user.set_password(password)
                user.save()
            if group:
                user.groups.add(Group.objects.get(name=group))
        self.stdout.write(
            self.style.SUCCESS(
                "Demo staff logins (password "
                f"'{password}'): admin (superuser), manager, clerk, auditor "
                "-> http://127.0.0.1:8000/admin/"
            )
        )
