"""The portal pages made cheaper to render (issue 14) still say exactly what they said: the
invoice list's rows built in Python (invoices.portal.rows) against the row markup they
replaced, the paginators' counts taken from the totals, the charts' table rows and SVG built as
text against the template loop and format_html they replaced, and the estimate's "usage
received through" and charts taken from the rating's own read."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import translation
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from freezegun import freeze_time

from accounts.models import DailyUsage, LedgerEntry
from accounts.selectors import (
    ledger_balance_in_statement,
    ledger_statement,
    with_balance_in_statement,
)
from accounts.services import record_adjustment
from billingsite.charts import BarSeries, Chart, LineSeries, Rule, chart_svg
from billingsite.clock import Period
from invoices.documents.fapiao import fapiao_reject, fapiao_request_create
from invoices.models import FapiaoRequest, Invoice
from invoices.selectors import estimate_current_month, month_estimate
from invoices.templatetags.invoice_text import by_application, line_rows
from tests.factories import ApplicationFactory, CustomerFactory, CustomerUserFactory, usage
from tests.invoices.test_fapiao import ordinary
from tests.portal.conftest import OCTOBER
from tests.portal.factories import credit_note, issued_invoice

pytestmark = pytest.mark.django_db

# The invoice list's row as the template wrote it before invoices.portal.rows.
FORMER_ROW = Template(
    "{% load portal_urls i18n billing_format invoice_text %}"
    "<tr>\n"
    '        <td class="o1 nowrap"><a href="{% document_url "invoice-detail" invoice.number %}">'
    "{{ invoice.number }}</a></td>\n"
    '        <td class="o3 nowrap">{{ invoice.period|date:"YEAR_MONTH_FORMAT" }}</td>\n'
    '        <td class="hide-narrow nowrap muted">{{ invoice.issue_date|date:"Y-m-d" }}</td>\n'
    '        <td class="o5"><span class="badge {{ invoice.status }}">'
    "{{ invoice.status|invoice_status }}</span></td>\n"
    '        <td class="num o2">{{ invoice.total|cny_html }}</td>\n'
    '        <td class="num o4"><a href="{% document_url "invoice-pdf" invoice.number %}" download '
    'aria-label="{% blocktranslate with number=invoice.number %}Download invoice {{ number }} '
    '(PDF){% endblocktranslate %}">{% translate "Download" %}</a></td>\n'
    "      </tr>"
)


@pytest.fixture
def today():
    with freeze_time("2026-11-20 10:00:00+08:00") as frozen:
        yield frozen


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_invoice_list_rows_are_the_former_markup(today, client_for, acme_user, acme, language):
    credited = issued_invoice(customer=acme, period=OCTOBER.previous())
    credit_note(
        invoice=credited,
        amounts={credited.lines.order_by("position").first().pk: Decimal("100.00")},
    )
    plain = issued_invoice(customer=acme, period=OCTOBER)
    client = client_for(acme_user)
    client.cookies["django_language"] = language
    html = client.get(reverse("portal:invoice-list")).content.decode()
    with translation.override(language):
        for invoice in (Invoice.objects.get(pk=plain.pk), Invoice.objects.get(pk=credited.pk)):
            assert FORMER_ROW.render(Context({"invoice": invoice})) in html
    if language == "zh-hans":
        assert f'aria-label="下载账单 {plain.number}（PDF）"' in html


def test_invoice_list_pages_from_the_totals_count(today, client_for, acme_user, acme):
    period = OCTOBER
    numbers = []
    for _ in range(25):
        numbers.append(issued_invoice(customer=acme, period=period).number)
        period = period.previous()
    client = client_for(acme_user)
    first = client.get(reverse("portal:invoice-list")).content.decode()
    second = client.get(reverse("portal:invoice-list") + "?page=2").content.decode()
    # Newest first, 24 a page; the count is the totals' (25), not a second COUNT query.
    assert [n for n in numbers if f">{n}</a>" in first] == numbers[:24]
    assert [n for n in numbers if f">{n}</a>" in second] == numbers[24:]
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    assert "Total of 25 invoices" in first
    with CaptureQueriesContext(connection) as queries:
        client.get(reverse("portal:invoice-list"))
    assert not [q for q in queries if q["sql"].startswith('SELECT COUNT(*) AS "__count"')]


# The ledger table's row as the balance page wrote it before invoices.portal.rows.
FORMER_LEDGER_ROW = Template(
    "{% load portal_urls i18n billing_format invoice_text %}"
    "<tr>\n"
    '        <td class="nowrap o1">{{ entry.created_at|date:"Y-m-d" }}</td>\n'
    '        <td class="o3">{{ entry.kind|ledger_kind }}</td>\n'
    '        <td class="o5">\n'
    "          {% if entry.reference in invoice_numbers %}"
    '<a href="{% document_url "invoice-detail" entry.reference %}">{{ entry.reference }}</a>\n'
    "          {% elif entry.reference in note_numbers %}"
    '<a href="{% document_url "credit-note-detail" entry.reference %}">{{ entry.reference }}</a>\n'
    "          {% else %}{{ entry.reference }}{% endif %}\n"
    '          {% if entry.kind == "adjustment" and entry.reason %}'
    '<div class="explain">{{ entry.reason }}</div>{% endif %}\n'
    "        </td>\n"
    '        <td class="num o2 {% if entry.amount.amount < 0 %}negative{% else %}positive{% endif %}">'
    "{% if entry.amount.amount > 0 %}+{% endif %}{{ entry.amount|cny_html }}</td>\n"
    '        <td class="num o4 {% if entry.balance_after < 0 %}negative{% endif %}" '
    "data-label=\"{% translate 'Balance' %}\">{{ entry.balance_after|cny_html }}</td>\n"
    "      </tr>"
)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_ledger_rows_are_the_former_markup(today, client_for, acme_user, acme, language):
    invoice = issued_invoice(customer=acme, period=OCTOBER)
    note = credit_note(
        invoice=invoice,
        amounts={invoice.lines.order_by("position").first().pk: Decimal("100.00")},
    )
    record_adjustment(
        customer=acme,
        amount=Decimal("-40000.00"),  # the balance goes below zero
        reason="Goodwill <reversed> & corrected",
        idempotency_key="test-adjustment",
        now=dt.datetime(2026, 11, 6, 23, 30, tzinfo=dt.UTC),  # 11-07 in Shanghai
    )
    client = client_for(acme_user)
    client.cookies["django_language"] = language
    html = client.get(reverse("portal:balance")).content.decode()
    entries = list(ledger_statement(customer=acme))
    assert len(entries) == 4
    context = {"invoice_numbers": {invoice.number}, "note_numbers": {note.number}}
    with translation.override(language):
        for entry in entries:
            assert FORMER_LEDGER_ROW.render(Context({"entry": entry, **context})) in html
    assert "Goodwill &lt;reversed&gt; &amp; corrected" in html
    assert f'<a href="/invoices/{invoice.number}/">{invoice.number}</a>' in html


HOSTILE = '<b>Tom & "Jerry\'s"</b>'


def test_chart_table_rows_are_what_the_template_loop_rendered():
    chart = Chart(
        svg=mark_safe("<svg></svg>"),
        columns=["DAU"],
        rows=[("10-01", ["1,200"]), (HOSTILE, ["", HOSTILE]), ("10-03", [])],
    )
    former = Template(
        "{% for label, values in chart.rows %}"
        '<tr><th scope="row" class="nowrap">{{ label }}</th>'
        '{% for value in values %}<td class="num">{{ value }}</td>{% endfor %}</tr>{% endfor %}'
    ).render(Context({"chart": chart}))
    assert chart.table_rows_html == former
    assert "<b>" not in chart.table_rows_html


def test_chart_svg_escapes_every_text_like_format_html():
    chart = chart_svg(
        title=HOSTILE,
        labels=[HOSTILE, "10-02", "10-03"],
        bars=[BarSeries(name=HOSTILE, values=[5, None, 12], marked=frozenset({2}))],
        lines=[LineSeries(name=HOSTILE, values=[-3, 4, None])],
        rules=[Rule(value=10, label=HOSTILE)],
        value_text=lambda value: f"<{value}>",
    )
    svg = str(chart.svg)
    escaped = format_html("{}", HOSTILE)
    assert "<b>" not in svg and "<5>" not in svg
    assert f"<title>{escaped}: {escaped} &lt;5&gt;</title></rect>" in svg
    assert f"<title>{escaped}: {escaped} &lt;-3&gt;</title></circle>" in svg
    assert f'text-anchor="end">{escaped}</text>' in svg  # the rule's label
    assert f'text-anchor="middle">{escaped}</text>' in svg  # the first x label
    assert f'aria-label="{escaped}"' in svg


@freeze_time("2026-11-20 10:00:00+08:00")
def test_month_estimate_takes_usage_through_and_charts_from_the_rating_read(price_book):
    customer = CustomerFactory()
    chat = ApplicationFactory(customer=customer, app_key="chat", plan="premium")
    idle = ApplicationFactory(customer=customer, app_key="idle", plan="free")
    usage(chat, dt.date(2026, 10, 31), 90_000)  # last month: not this month's usage
    usage(chat, dt.date(2026, 11, 3), 21_000)
    usage(chat, dt.date(2026, 11, 7), 25_000)
    usage(idle, dt.date(2026, 11, 12), 40)
    with CaptureQueriesContext(connection) as queries:
        estimate = month_estimate(customer=customer, today=dt.date(2026, 11, 20))
    assert estimate.period == Period(2026, 11)
    # The last day of the month with usage of any application, as MAX(day) said.
    assert estimate.usage_through == dt.date(2026, 11, 12)
    assert estimate.dau_by_app == {
        "chat": {dt.date(2026, 11, 3): 21_000, dt.date(2026, 11, 7): 25_000},
        "idle": {dt.date(2026, 11, 12): 40},
    }
    assert estimate.rated == estimate_current_month(customer=customer, today=dt.date(2026, 11, 20))
    assert not [q for q in queries if "MAX(" in q["sql"]]
    DailyUsage.objects.filter(day__month=11).delete()
    assert month_estimate(customer=customer, today=dt.date(2026, 11, 20)).usage_through is None


@freeze_time("2026-11-20 10:00:00+08:00")
def test_estimate_page_charts_the_months_usage(client_for, price_book):
    customer = CustomerFactory()
    chat = ApplicationFactory(customer=customer, app_key="chat-app", name="Chat", plan="premium")
    usage(chat, dt.date(2026, 11, 3), 21_000)
    usage(chat, dt.date(2026, 11, 7), 25_000)
    client = client_for(CustomerUserFactory(customer=customer).user)
    html = client.get(reverse("portal:estimate")).content.decode()
    assert 'id="usage-chat-app"' in html
    assert '<tr><th scope="row" class="nowrap">11-07</th><td class="num">25,000</td></tr>' in html
    assert '<tr><th scope="row" class="nowrap">11-08</th><td class="num"></td></tr>' in html
    assert "Billed peak: 25,000 DAU on 2026-11-07." in html


FAPIAO_LINK = re.compile(r'<a class="button secondary" id="fapiao-link" [^>]*>([^<]*)</a>')


@pytest.mark.parametrize(
    ("language", "none", "pending"),
    [("en", "Request a fapiao", "Fapiao: Pending"), ("zh-hans", None, None)],
)
def test_invoice_page_reads_the_live_fapiao_status_with_the_invoice(
    today, client_for, acme_user, acme, acme_invoice, language, none, pending
):
    client = client_for(acme_user)
    client.cookies["django_language"] = language
    url = reverse("portal:invoice-detail", args=[acme_invoice.number])

    def link() -> str:
        (text,) = FAPIAO_LINK.findall(client.get(url).content.decode())
        return text

    with translation.override(language):
        none = none or gettext("Request a fapiao")
        pending = pending or f"{gettext('Fapiao')}: {FapiaoRequest.Status.PENDING.label}"
    now = dt.datetime(2026, 11, 10, tzinfo=dt.UTC)
    assert link() == none
    request = fapiao_request_create(
        invoice=acme_invoice, customer=acme, details=ordinary(), now=now
    )
    assert link() == pending
    fapiao_reject(request=request, reason="Wrong title", now=now)
    assert link() == none  # a rejected request is not the live one
    fapiao_request_create(invoice=acme_invoice, customer=acme, details=ordinary(), now=now)
    assert link() == pending
    # Another customer's request for its own invoice changes nothing here.
    other_customer = CustomerFactory()
    usage(ApplicationFactory(customer=other_customer, plan="premium"), OCTOBER.start, 8_000)
    other = issued_invoice(customer=other_customer, period=OCTOBER)
    fapiao_request_create(invoice=other, customer=other.customer, details=ordinary(), now=now)
    with CaptureQueriesContext(connection) as queries:
        assert link() == pending
    assert not [q for q in queries if q["sql"].startswith('SELECT "invoices_fapiaorequest"')]


def test_balance_in_statement_read_with_the_entries_is_the_one_rule(acme):
    # Entries at the same moment are ordered by id, like the statement.
    moment = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)
    for index, amount in enumerate(("-120.00", "-30.50", "-0.50")):
        record_adjustment(
            customer=acme,
            amount=Decimal(amount),
            reason="test",
            idempotency_key=f"same-moment-{index}",
            now=moment,
        )
    entries = list(with_balance_in_statement(LedgerEntry.objects.filter(customer=acme)))
    assert len(entries) == 4
    for entry in entries:
        assert entry.balance_in_statement == ledger_balance_in_statement(entry=entry)
    assert sorted(e.balance_in_statement for e in entries) == [
        Decimal("49849.00"),
        Decimal("49849.50"),
        Decimal("49880.00"),
        Decimal("50000.00"),
    ]


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_pages_are_the_same_with_compiled_reads_and_through_the_orm(
    today, client_for, acme_user, acme, language, monkeypatch
):
    """The portal's reads compiled once (billingsite.queries.CompiledRead) against the same
    reads through the ORM (the path of databases and inputs it does not compile): the same
    bytes and the same number of queries on every page, a second page, a credit note, a live
    fapiao request and a debit with the balance after it included."""
    from billingsite import queries as compiled_reads  # noqa: PLC0415

    period = OCTOBER
    invoices = []
    for _ in range(25):
        invoices.append(issued_invoice(customer=acme, period=period))
        period = period.previous()
    credited = invoices[1]
    credit_note(
        invoice=credited,
        amounts={credited.lines.order_by("position").first().pk: Decimal("100.00")},
    )
    fapiao_request_create(
        invoice=invoices[0],
        customer=acme,
        details=ordinary(),
        now=dt.datetime(2026, 11, 10, tzinfo=dt.UTC),
    )
    client = client_for(acme_user)
    client.cookies["django_language"] = language
    urls = [
        reverse("portal:invoice-list"),
        reverse("portal:invoice-list") + "?page=2",
        reverse("portal:invoice-list") + "?page=x",
        reverse("portal:invoice-detail", args=[invoices[0].number]),
        reverse("portal:invoice-detail", args=[credited.number]),
        reverse("portal:invoice-detail", args=["INV-2026-999999"]),
        reverse("portal:estimate"),
        reverse("portal:balance"),
    ]
    csrf = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')

    def pages() -> list[tuple[int, int, str]]:
        seen = []
        for url in urls:
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            html = csrf.sub("csrf", response.content.decode())
            seen.append((response.status_code, len(queries), html))
        return seen

    pages()  # the price books of the months into this process's cache, as in both runs below
    monkeypatch.setattr(compiled_reads, "COMPILED_READS", True)
    compiled = pages()
    monkeypatch.setattr(compiled_reads, "COMPILED_READS", False)
    orm = pages()
    assert [status for status, _, _ in compiled] == [200, 200, 200, 200, 200, 404, 200, 200]
    for url, got, want in zip(urls, compiled, orm, strict=True):
        assert got == want, url
    assert "Total of 25 invoices" in compiled[0][2] or language != "en"
    if connection.vendor == "postgresql":  # the compiled path was taken (not the ORM twice)
        from invoices.portal import views  # noqa: PLC0415
        from plans import batch_rating  # noqa: PLC0415

        for read in (views._visible_invoice, views._invoice_list, batch_rating._applications_of):
            assert [c for c in read._compiled.values() if c is not None], read


# The lines' loop of portal/_lines.html before invoice_text.line_rows.
FORMER_LINE_LOOP = Template(
    "{% load i18n billing_format invoice_text %}{% for line in lines %}\n"
    "      <tr>\n"
    "        <td>\n"
    "          <div>{{ line|line_title }}</div>\n"
    '          <div class="explain">{{ line|line_explanation }}</div>\n'
    "        </td>\n"
    '        <td class="hide-narrow nowrap small">{{ line.first_day|date:"m-d" }} – '
    '{{ line.last_day|date:"m-d" }}<br><span class="muted">{% blocktranslate with '
    "days=line.days month=line.days_in_month %}{{ days }} of {{ month }} days"
    "{% endblocktranslate %}</span></td>\n"
    '        <td class="num hide-narrow">{{ line.quantity }}</td>\n'
    '        <td class="num hide-narrow">{{ line.unit_price|cny_html }}</td>\n'
    '        <td class="num">{{ line.amount|cny_html }}</td>\n'
    "      </tr>\n"
    "    {% endfor %}"
)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_line_rows_are_the_former_loop(today, client_for, acme_user, acme, language):
    """Invoice lines (the invoice page) and the estimate's priced lines (this month's page):
    a prorated plan change, add-ons, two applications, both languages."""
    invoice = issued_invoice(customer=acme, period=OCTOBER)
    usage(acme.applications.get(app_key="acme-chat"), dt.date(2026, 11, 3), 21_000)
    estimate = month_estimate(customer=acme, today=dt.date(2026, 11, 20))
    client = client_for(acme_user)
    client.cookies["django_language"] = language
    pages = {
        "invoice": client.get(reverse("portal:invoice-detail", args=[invoice.number])),
        "estimate": client.get(reverse("portal:estimate")),
    }
    documents = {
        "invoice": list(invoice.lines.order_by("position")),
        "estimate": list(estimate.rated.lines),
    }
    with translation.override(language):
        for page, lines in documents.items():
            html = pages[page].content.decode()
            assert len({line.app_key for line in lines}) == 2 and len(lines) >= 5
            for group in by_application(lines):
                want = FORMER_LINE_LOOP.render(Context({"lines": group.lines}))
                assert line_rows(group.lines) == want
                assert f'<tbody>\n    {want}\n      <tr class="subtotal">' in html, page
    if language == "zh-hans":  # the estimate's November: 30 days
        assert "30/30 天" in html


@freeze_time("2026-11-20 10:00:00+08:00")
def test_the_estimate_draws_no_chart_before_the_months_usage(client_for, price_book, monkeypatch):
    """The page shows the charts only once usage of the month has arrived: before, they are
    not drawn at all."""
    from invoices.portal import views  # noqa: PLC0415

    customer = CustomerFactory()
    chat = ApplicationFactory(customer=customer, app_key="chat-app", name="Chat", plan="premium")
    usage(chat, dt.date(2026, 10, 30), 21_000)  # last month's only
    client = client_for(CustomerUserFactory(customer=customer).user)
    drawn = []
    draw = views.usage_charts_for_lines
    monkeypatch.setattr(
        views, "usage_charts_for_lines", lambda **kwargs: drawn.append(1) or draw(**kwargs)
    )
    html = client.get(reverse("portal:estimate")).content.decode()
    assert 'id="estimate-no-usage"' in html and 'id="usage-charts"' not in html
    assert drawn == []
    usage(chat, dt.date(2026, 11, 3), 21_000)
    html = client.get(reverse("portal:estimate")).content.decode()
    assert 'id="usage-chat-app"' in html and drawn == [1]
