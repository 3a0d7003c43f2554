"""Fapiao requests: what a customer asks for, what finance records, what the tax software imports.

A fapiao (发票) is issued in the tax system, not here: the billing system takes the customer's
request for an issued invoice (`fapiao_request_create`), gives finance a queue and an export in
the layout of the tax-control software's batch import (`fapiao_export_rows`), and keeps what
finance did: the fapiao's number, code, date, amount and file (`fapiao_issue_record`), or a
rejection with its reason (`fapiao_reject`). A credit note on an invoice whose fapiao was issued
flags that a red-letter fapiao is needed (`fapiao_red_letter_flag`, called by the credit-note
service in its transaction). Finance's record and rejection each raise one customer event
(`fapiao_issued`, `fapiao_rejected`: e-mailed to the invoice contacts, once per request and
recipient, with a link to the invoice page where the file is; `invoices.mail.messages`).

One request per invoice unless rejected (a partial unique constraint: a retried or concurrent
request gets the clear refusal, never a second row). Every read for a customer goes through
`customer_fapiao_requests`, filtered by the customer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.http import FileResponse, Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from stdnum.cn import uscc

from accounts.events.records import record_customer_event
from accounts.models import Customer, CustomerEvent
from billingsite.clock import Period
from billingsite.money import as_decimal, round_money
from billingsite.refusals import Refusal
from billingsite.text import invisible_character_message
from invoices.models import CreditNote, FapiaoRequest, Invoice
from plans.rating.tax import vat_split
from plans.selectors import vat_terms_for_period

# The largest fapiao file finance may attach (a fapiao PDF or OFD is some 100 KB).
MAX_FILE_BYTES = 5 * 1024 * 1024
# What a fapiao file is: PDF, or OFD (China's fixed-layout format, a ZIP container).
FILE_SIGNATURES = {"pdf": b"%PDF-", "ofd": b"PK\x03\x04"}
CONTENT_TYPES = {"pdf": "application/pdf", "ofd": "application/ofd"}
# The name of the item on every fapiao: the tax classification of these services (information
# technology services) and what they are. The tax software maps it to its classification code.
ITEM_NAME = "*信息技术服务*即时通讯云服务费"

FIELD_LIMITS = {
    "buyer_title": 200,
    "buyer_address": 300,
    "buyer_phone": 40,
    "buyer_bank": 200,
    "buyer_account": 64,
}
SPECIAL_FIELDS = ("buyer_address", "buyer_phone", "buyer_bank", "buyer_account")
# How a refusal names each field (as the model fields' validators do).
FIELD_LABELS = {
    "buyer_title": gettext_lazy("buyer title"),
    "buyer_tax_id": gettext_lazy("tax ID"),
    "buyer_address": gettext_lazy("registered address"),
    "buyer_phone": gettext_lazy("registered phone"),
    "buyer_bank": gettext_lazy("bank"),
    "buyer_account": gettext_lazy("bank account"),
}


class FapiaoError(Refusal):
    """A fapiao request or finance's record of it was refused; nothing was written."""

    code = "fapiao_refused"


@dataclasses.dataclass(frozen=True)
class BuyerDetails:
    kind: str
    buyer_title: str
    buyer_tax_id: str
    buyer_address: str = ""
    buyer_phone: str = ""
    buyer_bank: str = ""
    buyer_account: str = ""


def fapiao_defaults(*, customer: Customer) -> dict[str, str]:
    """What the request form starts with: the customer's record."""
    return {
        "kind": FapiaoRequest.Kind.ORDINARY,
        "buyer_title": customer.name,
        "buyer_tax_id": customer.tax_id,
        "buyer_address": customer.address,
        "buyer_phone": customer.fapiao_phone,
        "buyer_bank": customer.fapiao_bank,
        "buyer_account": customer.fapiao_bank_account,
    }


def buyer_tax_id_clean(value: str) -> str:
    """The unified social credit code (统一社会信用代码) in its compact form, check character
    verified; refused otherwise."""
    try:
        return uscc.validate(value or "")
    except Exception as error:  # stdnum's ValidationError subclasses
        raise FapiaoError(
            _(
                "The tax ID is not a valid unified social credit code (18 characters, the last "
                "one a check character)."
            ),
            field="buyer_tax_id",
        ) from error


def buyer_details_clean(details: BuyerDetails) -> BuyerDetails:
    """The details stripped and checked: a known type, a title, a valid tax ID, lengths, and
    for the special VAT fapiao the registered address, phone, bank and account."""
    if details.kind not in FapiaoRequest.Kind.values:
        raise FapiaoError(_("Choose the type of fapiao."), field="kind")
    for name, label in FIELD_LABELS.items():
        refusal = invisible_character_message(getattr(details, name) or "", label=label)
        if refusal is not None:
            raise FapiaoError(refusal, field=name)
    cleaned = {
        name: (getattr(details, name) or "").strip()
        for name in ("buyer_title", *FIELD_LIMITS.keys() - {"buyer_title"})
    }
    if not cleaned["buyer_title"]:
        raise FapiaoError(_("The buyer title is required."), field="buyer_title")
    for name, limit in FIELD_LIMITS.items():
        if len(cleaned[name]) > limit:
            raise FapiaoError(_("At most %(limit)d characters.") % {"limit": limit}, field=name)
    if details.kind == FapiaoRequest.Kind.SPECIAL:
        for name in SPECIAL_FIELDS:
            if not cleaned[name]:
                raise FapiaoError(
                    _(
                        "A special VAT fapiao needs the registered address, phone, bank and account."
                    ),
                    field=name,
                )
    return BuyerDetails(
        kind=details.kind, buyer_tax_id=buyer_tax_id_clean(details.buyer_tax_id), **cleaned
    )


def customer_fapiao_requests(*, customer: Customer) -> QuerySet[FapiaoRequest]:
    """The customer's own requests: the only way the portal reads them."""
    return FapiaoRequest.objects.filter(customer=customer)


def _live(requests: QuerySet[FapiaoRequest]) -> QuerySet[FapiaoRequest]:
    """The requests that are not rejected (at most one per invoice: a unique constraint)."""
    return requests.exclude(status=FapiaoRequest.Status.REJECTED)


def fapiao_request_live(*, invoice: Invoice) -> FapiaoRequest | None:
    """The invoice's request that is not rejected (at most one), if any."""
    return _live(FapiaoRequest.objects.filter(invoice=invoice)).first()


def fapiao_live_status() -> Subquery:
    """`fapiao_request_live`'s status as a column of an invoice query (None: no live request):
    the invoice page reads it with the invoice, not in a query of its own."""
    return Subquery(
        _live(FapiaoRequest.objects.filter(invoice=OuterRef("pk")))
        .order_by("pk")
        .values("status")[:1]
    )


def fapiao_request_create(
    *,
    invoice: Invoice,
    customer: Customer,
    details: BuyerDetails,
    now: dt.datetime,
    requested_by: User | None = None,
) -> FapiaoRequest:
    """The customer's request for a fapiao of its issued invoice. Refused for another
    customer's invoice, an invoice not issued or credited in full, and while a request that is
    not rejected exists (also under a race: the unique constraint decides)."""
    if invoice.customer_id != customer.pk:
        raise FapiaoError(_("This invoice is not yours."), field="invoice")
    if invoice.status not in (Invoice.Status.ISSUED, Invoice.Status.PARTIALLY_CREDITED):
        raise FapiaoError(
            _("A fapiao can be requested for an issued invoice that is not fully credited."),
            field="invoice",
        )
    if as_decimal(invoice.total) <= 0:
        raise FapiaoError(_("This invoice has nothing to invoice."), field="invoice")
    details = buyer_details_clean(details)
    if fapiao_request_live(invoice=invoice) is not None:
        raise FapiaoError(_("A fapiao was already requested for this invoice."), field="invoice")
    try:
        with transaction.atomic():
            return FapiaoRequest.objects.create(
                invoice=invoice,
                customer=customer,
                requested_at=now,
                requested_by=requested_by,
                **dataclasses.asdict(details),
            )
    except IntegrityError as error:
        if fapiao_request_live(invoice=invoice) is not None:
            raise FapiaoError(
                _("A fapiao was already requested for this invoice."), field="invoice"
            ) from error
        raise


def fapiao_file_check(upload: UploadedFile) -> str:
    """The file's kind ("pdf" or "ofd"), by its name and its first bytes; refused when it is
    too large or not what its name says."""
    name = (upload.name or "").lower()
    kind = name.rsplit(".", 1)[-1] if "." in name else ""
    if kind not in FILE_SIGNATURES:
        raise FapiaoError(_("The fapiao file must be a PDF or OFD file."), field="file")
    if upload.size is None or upload.size > MAX_FILE_BYTES:
        raise FapiaoError(
            _("The fapiao file is larger than %(mb)d MB.") % {"mb": MAX_FILE_BYTES // 2**20},
            field="file",
        )
    upload.seek(0)
    head = upload.read(len(FILE_SIGNATURES[kind]))
    upload.seek(0)
    if head != FILE_SIGNATURES[kind]:
        raise FapiaoError(
            _("The file's content is not a %(kind)s file.") % {"kind": kind.upper()},
            field="file",
        )
    return kind


def fapiao_issue_record(
    *,
    request: FapiaoRequest,
    number: str,
    code: str,
    date: dt.date,
    amount: Decimal,
    upload: UploadedFile,
    now: dt.datetime,
    handled_by: User | None = None,
) -> FapiaoRequest:
    """Finance records the fapiao the tax system issued for a pending request, with its file."""
    number = (number or "").strip()
    code = (code or "").strip()
    # Fully digital fapiao (全电发票) have a 20-digit number and no code; the older paper and
    # electronic ones an 8-digit number and a 10- or 12-digit code.
    if not number.isdigit() or len(number) not in (8, 20):
        raise FapiaoError(_("The fapiao number has 8 or 20 digits."), field="fapiao_number")
    if code and (not code.isdigit() or len(code) not in (10, 12)):
        raise FapiaoError(_("The fapiao code has 10 or 12 digits."), field="fapiao_code")
    if len(number) == 8 and not code:
        raise FapiaoError(_("An 8-digit fapiao number comes with its code."), field="fapiao_code")
    if date is None:
        raise FapiaoError(_("The fapiao date is required."), field="fapiao_date")
    if amount is None or amount <= 0 or round_money(amount) != amount:
        raise FapiaoError(
            _("The amount is a positive amount in yuan with at most two decimals."),
            field="fapiao_amount",
        )
    if amount > as_decimal(request.invoice.total):
        raise FapiaoError(
            _("The fapiao amount cannot be above the invoice total."), field="fapiao_amount"
        )
    fapiao_file_check(upload)
    with transaction.atomic():
        current = FapiaoRequest.objects.select_for_update().get(pk=request.pk)
        if current.status != FapiaoRequest.Status.PENDING:
            raise FapiaoError(_("Only a pending request can be recorded."), field="status")
        current.status = FapiaoRequest.Status.ISSUED
        current.fapiao_number = number
        current.fapiao_code = code
        current.fapiao_date = date
        current.fapiao_amount = amount
        current.file.save(upload.name, upload, save=False)
        current.handled_at = now
        current.handled_by = handled_by
        current.save()
        _decision_tell(current, now=now)
    return current


def fapiao_reject(
    *, request: FapiaoRequest, reason: str, now: dt.datetime, handled_by: User | None = None
) -> FapiaoRequest:
    """Finance rejects a pending request with the reason the customer reads; the customer may
    then request again."""
    reason = (reason or "").strip()
    if not reason:
        raise FapiaoError(_("Say why the request is rejected."), field="rejection_reason")
    refusal = invisible_character_message(
        reason, label=gettext_lazy("rejection reason"), multiline=True
    )
    if refusal is not None:
        raise FapiaoError(refusal, field="rejection_reason")
    with transaction.atomic():
        current = FapiaoRequest.objects.select_for_update().get(pk=request.pk)
        if current.status != FapiaoRequest.Status.PENDING:
            raise FapiaoError(_("Only a pending request can be rejected."), field="status")
        current.status = FapiaoRequest.Status.REJECTED
        current.rejection_reason = reason[:2000]
        current.handled_at = now
        current.handled_by = handled_by
        current.save()
        _decision_tell(current, now=now)
    return current


def _decision_tell(request: FapiaoRequest, *, now: dt.datetime) -> None:
    """The customer's e-mail about finance's decision, once per request (the dedupe key: a
    request is decided once, and a new request after a rejection is a new row)."""
    issued = request.status == FapiaoRequest.Status.ISSUED
    kind = CustomerEvent.Kind.FAPIAO_ISSUED if issued else CustomerEvent.Kind.FAPIAO_REJECTED
    payload = {
        "fapiao_request_id": request.pk,
        "invoice_number": request.invoice.number,
        "fapiao_kind": request.kind,
    }
    if issued:
        payload |= {
            "fapiao_number": request.fapiao_number,
            "fapiao_date": request.fapiao_date.isoformat() if request.fapiao_date else None,
            "fapiao_amount": str(request.fapiao_amount),
        }
    else:
        payload["reason"] = request.rejection_reason
    record_customer_event(
        customer=request.customer,
        kind=kind,
        dedupe_key=f"{kind}:{request.pk}",
        payload=payload,
        now=now,
    )


def fapiao_red_letter_flag(*, invoice: Invoice, now: dt.datetime) -> int:
    """A credit note was issued on `invoice`: its issued fapiao needs a red-letter fapiao
    (红字发票). Returns how many requests were flagged (0 or 1); a flag already set stays."""
    return FapiaoRequest.objects.filter(
        invoice=invoice, status=FapiaoRequest.Status.ISSUED, red_letter_needed_at__isnull=True
    ).update(red_letter_needed_at=now)


@dataclasses.dataclass(frozen=True)
class FapiaoAmounts:
    """What the fapiao says: the invoice's net, rate and VAT after its credit notes."""

    net: Decimal
    rate: Decimal
    vat: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.vat


def fapiao_amounts(*, invoice: Invoice) -> FapiaoAmounts:
    """The invoice's frozen net and VAT, less its credit notes'. An invoice issued before VAT
    was recorded has no frozen split: its gross is split by the price book's VAT terms of its
    period (`plans.rating.tax.vat_split`), which is what the fapiao of that gross says."""
    credited = CreditNote.objects.filter(invoice=invoice).aggregate(
        gross=Sum("total"), net=Sum("net_total"), vat=Sum("vat_total")
    )
    gross = as_decimal(invoice.total) - (credited["gross"] or Decimal("0.00"))
    if invoice.vat_total is not None:
        vat = invoice.vat_total - (credited["vat"] or Decimal("0.00"))
        return FapiaoAmounts(net=gross - vat, rate=invoice.vat_rate, vat=vat)
    terms = vat_terms_for_period(period=Period.containing(invoice.period))
    split = vat_split(price=gross, terms=dataclasses.replace(terms, prices_include_vat=True))
    return FapiaoAmounts(net=split.net, rate=terms.rate, vat=split.vat)


# The columns of the batch-import file, in order (English header, the tax software's Chinese
# label below it in the export).
EXPORT_COLUMNS = [
    ("request_id", "申请编号"),
    ("invoice_number", "账单号"),
    ("fapiao_type", "发票类型"),
    ("buyer_title", "购买方名称"),
    ("buyer_tax_id", "购买方纳税人识别号"),
    ("buyer_address_phone", "购买方地址电话"),
    ("buyer_bank_account", "购买方开户行及账号"),
    ("item_name", "项目名称"),
    ("amount", "金额"),
    ("tax_rate", "税率"),
    ("tax", "税额"),
    ("total", "价税合计"),
]
KIND_CODES: dict[str, str] = {
    FapiaoRequest.Kind.ORDINARY: "普通发票",
    FapiaoRequest.Kind.SPECIAL: "增值税专用发票",
}


def fapiao_export_rows(requests: QuerySet[FapiaoRequest]) -> list[list[str]]:
    """Pending requests as the tax software's batch-import rows (EXPORT_COLUMNS): buyer fields,
    the item name, the net amount, the rate, the tax and the gross."""
    rows = []
    for request in (
        requests.filter(status=FapiaoRequest.Status.PENDING)
        .select_related("invoice")
        .order_by("requested_at", "id")
    ):
        amounts = fapiao_amounts(invoice=request.invoice)
        rows.append(
            [
                str(request.pk),
                request.invoice.number or "",
                KIND_CODES[request.kind],
                request.buyer_title,
                request.buyer_tax_id,
                f"{request.buyer_address} {request.buyer_phone}".strip(),
                f"{request.buyer_bank} {request.buyer_account}".strip(),
                f"{ITEM_NAME} {request.invoice.period:%Y-%m}",
                f"{amounts.net:.2f}",
                f"{amounts.rate:.2f}",
                f"{amounts.vat:.2f}",
                f"{amounts.gross:.2f}",
            ]
        )
    return rows


def fapiao_file_response(fapiao: FapiaoRequest) -> FileResponse:
    """The fapiao's file as a private download, for the views that checked who asks (the
    invoice's customer in the portal, finance in the admin)."""
    if not fapiao.file:
        raise Http404
    kind = fapiao.file.name.rsplit(".", 1)[-1].lower()
    response = FileResponse(
        fapiao.file.open("rb"),
        as_attachment=True,
        filename=f"fapiao-{fapiao.invoice.number}-{fapiao.fapiao_number}.{kind}",
        content_type=CONTENT_TYPES.get(kind, "application/octet-stream"),
    )
    response["Cache-Control"] = "private, no-store"
    return response
