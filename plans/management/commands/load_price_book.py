from pathlib import Path

from django.core.management.base import BaseCommand

from plans.price_book import DEFAULT_BOOK, load_price_book


class Command(BaseCommand):
    help = "Load the default price book idempotently; report rows finance has edited."

    def add_arguments(self, parser):
        parser.add_argument("--file", type=Path, default=DEFAULT_BOOK)
        parser.add_argument(
            "--force", action="store_true", help="reset rows that differ from the file"
        )

    def handle(self, *args, file: Path, force: bool, **options):
        report = load_price_book(path=file, force=force)
        self.stdout.write(
            f"price book: {len(report.created)} created, {len(report.unchanged)} unchanged, "
            f"{len(report.reset)} reset, {len(report.differences)} kept as edited"
        )
        for line in report.reset:
            self.stdout.write(f"reset: {line}")
        for line in report.differences:
            self.stdout.write(self.style.WARNING(f"differs (kept; --force resets): {line}"))
