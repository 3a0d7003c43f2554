"""Read one returned message (a delivery status notification, RFC 3464) from standard input or
a file and record its permanent failures as bounces (`accounts.mail.bounces`). Meant for the
mail server's pipe of the bounce address, e.g. a Postfix alias
`billing-bounces: "|/srv/billing/.venv/bin/python /srv/billing/manage.py mail_bounce_read"`.
A message that reports no permanent failure is ignored; the same message read twice changes
nothing the second time."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from django.utils import timezone

from accounts.mail.bounces import dsn_notice, notice_record

# A returned message quotes at most the original's headers and a part of its body.
MAX_MESSAGE = 10 * 1024 * 1024


class Command(BaseCommand):
    help = "Record the permanent failures of a returned message (DSN) read from stdin or a file."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="the message file (default: standard input)")

    def handle(self, *args, path=None, **options):
        if path:
            with open(path, "rb") as source:
                raw = source.read(MAX_MESSAGE)
        else:
            raw = sys.stdin.buffer.read(MAX_MESSAGE)
        notice = dsn_notice(raw)
        if notice is None:
            self.stdout.write("no permanent failure reported: nothing recorded")
            return
        recorded = notice_record(notice=notice, now=timezone.now())
        addresses = ", ".join(notice.recipients)
        if recorded:
            self.stdout.write(f"bounce recorded for {addresses}")
        else:
            self.stdout.write(f"already recorded: {addresses}")
