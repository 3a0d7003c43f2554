"""One date format for the portal, the admin, PDFs and e-mails in both languages: ISO 8601
(`2026-11-30`, `2026-11-30 14:05`). Unambiguous to English and Chinese readers alike (11/30 vs
30/11 never arises), sorts as text, and is what the API, the CSV exports and the invoice
numbers' periods already use. Month names stay in words (YEAR_MONTH_FORMAT, the locale's own).
`FORMAT_MODULE_PATH` in settings points here; what a module does not set comes from Django's
locale."""
