"""Provisioning API for the developer console, deposits for finance, and usage ingest for the
IM platform. Thin: each view checks the request's shape, calls one service and answers with
a response serializer. A refusal is raised (a service's `Refusal`, or DRF's own): the API's
one exception handler (billingsite.api_errors) answers it in the one error shape.

Roles (token users in Django groups): Console may call the customer/application endpoints;
deposits need a finance role (the console may not invent money); usage ingest needs Ingest.
A token of any other role gets 403.
"""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
)
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from accounts.api import serializers as s
from accounts.models import Application, Customer, LedgerEntry
from accounts.selectors import ledger_balance
from accounts.services import customer_create, deposit_record_by_key
from accounts.usage import usage_ingest
from billingsite.api import role_permission
from billingsite.api_errors import (
    NOT_AUTHENTICATED,
    PERMISSION_DENIED,
    BatchErrorSerializer,
    InsufficientDepositSerializer,
    error_response,
)
from billingsite.clock import billing_date
from billingsite.money import CURRENCY, CurrencyError
from billingsite.ops import metrics
from billingsite.parsers import BoundedJSONParser, json_loads_bounded
from billingsite.queries import compiled_read
from billingsite.refusals import Refusal
from invoices.models import Invoice
from invoices.selectors import customer_financials, month_estimate
from plans.services import addon_end, addon_set, application_create, plan_change_request
from plans.timeline import addon_history, plan_history, row_on, rows_on

# A usage request of 10,000 rows is about 1 MB; anything far larger is refused unread.
MAX_USAGE_BODY_BYTES = 16 * 1024 * 1024

ConsolePermission = role_permission(roles.CONSOLE)
FinancePermission = role_permission(*roles.FINANCE_ROLES)
IngestPermission = role_permission(roles.INGEST)


def _customer(external_id: str, *, field: str | None = None) -> Customer:
    customer = _customer_by_external_id.first(external_id=external_id)
    if customer is None:
        raise Refusal(f"unknown customer {external_id!r}", code="unknown_customer", field=field)
    return customer


@compiled_read
def _customer_by_external_id(*, external_id: str):
    # `.first()`'s statement (the model's ordering, one row), compiled once per process: its
    # ORM query cost a fifth of the estimate API's CPU.
    return Customer.objects.filter(external_id=external_id)[:1]


def _application(app_key: str) -> Application:
    application = Application.objects.select_related("customer").filter(app_key=app_key).first()
    if application is None:
        raise Refusal(f"unknown application {app_key!r}", code="unknown_application")
    return application


def _valid(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ApiView(APIView):
    parser_classes = [BoundedJSONParser]


class ConsoleView(ApiView):
    permission_classes = [ConsolePermission]


# Path parameters as the services accept them; the examples are the documented customer and
# application, so the docs' "try it out" (and schemathesis) reach real rows.
EXTERNAL_ID = OpenApiParameter(
    "external_id",
    s.IDENTIFIER_SCHEMA,
    OpenApiParameter.PATH,
    examples=[OpenApiExample("Customer", value="console-10042")],
)
APP_KEY = OpenApiParameter(
    "app_key",
    s.IDENTIFIER_SCHEMA,
    OpenApiParameter.PATH,
    examples=[OpenApiExample("Application", value="k5f8w2qz9m")],
)
ADDON_CODE = OpenApiParameter(
    "addon",
    s.CODE_SCHEMA,
    OpenApiParameter.PATH,
    examples=[OpenApiExample("Add-on", value="sensitive_words")],
)

ERROR_400 = error_response("Invalid input; `code` names the rule.")
ERROR_401 = NOT_AUTHENTICATED
ERROR_403 = PERMISSION_DENIED
ERROR_404 = error_response("Unknown customer or application.")
ERROR_409 = error_response("Duplicate identifier or conflict.")
MONTH_INVOICED = error_response("The month already has an invoice (`month_invoiced`).")
# What every operation on a customer or an application may answer instead, and writes also 400.
READ_REFUSALS = {401: ERROR_401, 403: ERROR_403, 404: ERROR_404}
WRITE_REFUSALS = {400: ERROR_400, **READ_REFUSALS}

CUSTOMER_EXAMPLE = {
    "external_id": "console-10042",
    "name": "Lanting Games Ltd",
    "billing_email": "billing@lanting.example.com",
    "address": "1 Century Avenue, Pudong, Shanghai",
    "tax_id": "91310000MA1K000000",
    "contact_name": "Li Wei",
    "contact_phone": "+86 21 5555 0100",
    "status": "active",
    "balance": "10000.00",
    "in_arrears_since": None,
    "suspension_date": None,
    "recommended_balance": "18000.00",
    "monthly_run_rate": "6000.00",
}


# --- customers -----------------------------------------------------------------------------


class CustomerListView(ConsoleView):
    @extend_schema(
        operation_id="customer_create",
        summary="Create a customer account",
        request=s.CustomerCreateSerializer,
        responses={
            201: s.CustomerSerializer,
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            409: ERROR_409,
        },
        examples=[
            OpenApiExample(
                "New customer",
                request_only=True,
                value={
                    "external_id": "console-10042",
                    "name": "Lanting Games Ltd",
                    "billing_email": "billing@lanting.example.com",
                    "address": "1 Century Avenue, Pudong, Shanghai",
                    "tax_id": "91310000MA1K000000",
                },
            ),
            OpenApiExample(
                "Duplicate external_id",
                response_only=True,
                status_codes=["409"],
                value={
                    "code": "duplicate",
                    "message": "a customer with external_id 'console-10042' exists",
                    "field": "external_id",
                },
            ),
        ],
    )
    def post(self, request):
        now = timezone.now()
        customer = customer_create(**_valid(s.CustomerCreateSerializer, request.data), now=now)
        return Response(_customer_body(customer, now=now), status=status.HTTP_201_CREATED)


class CustomerDetailView(ConsoleView):
    @extend_schema(
        operation_id="customer_read",
        parameters=[EXTERNAL_ID],
        summary="A customer with its balance and arrears state",
        responses={200: s.CustomerSerializer, **READ_REFUSALS},
        examples=[OpenApiExample("Customer", response_only=True, value=CUSTOMER_EXAMPLE)],
    )
    def get(self, request, external_id: str):
        return Response(_customer_body(_customer(external_id), now=timezone.now()))


def _customer_body(customer: Customer, *, now) -> dict:
    financials = customer_financials(customer=customer, today=billing_date(now))
    return s.CustomerSerializer({"customer": customer, "financials": financials}).data


def _balance_after(entry: LedgerEntry):
    # The balance up to this entry in write order never changes: a replayed answer is
    # byte-for-byte the same.
    return ledger_balance(customer=entry.customer_id, through=entry)


class CustomerDepositView(ApiView):
    permission_classes = [FinancePermission]

    @extend_schema(
        operation_id="customer_deposit",
        summary="Record a deposit (finance role)",
        description="Needs an `Idempotency-Key` header: the same key with the same body records "
        "one deposit and answers the same body (with `Idempotent-Replayed: true`); the same key "
        "with a different body is refused with 422.",
        parameters=[
            EXTERNAL_ID,
            OpenApiParameter(
                "Idempotency-Key",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                required=True,
                description="Unique per deposit the client means to make (1-150 characters).",
            ),
        ],
        request=s.DepositRequestSerializer,
        responses={
            201: s.DepositSerializer,
            **WRITE_REFUSALS,
            422: error_response("Key reused for another body (`idempotency_conflict`)."),
        },
        examples=[
            OpenApiExample(
                "Deposit",
                request_only=True,
                value={"amount": "10000.00", "reference": "ICBC 2026-10-03 #88412"},
            ),
            OpenApiExample(
                "Recorded",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": 17,
                    "customer": "console-10042",
                    "amount": "10000.00",
                    "currency": "CNY",
                    "reference": "ICBC 2026-10-03 #88412",
                    "idempotency_key": "b7d4c1e2-deposit-1",
                    "created_at": "2026-10-03T10:15:00+08:00",
                    "balance_after": "10000.00",
                },
            ),
            OpenApiExample(
                "Key reused",
                response_only=True,
                status_codes=["422"],
                value={
                    "code": "idempotency_conflict",
                    "message": "this idempotency key was already used for a different deposit",
                    "field": "idempotency_key",
                },
            ),
        ],
    )
    def post(self, request, external_id: str):
        customer = _customer(external_id)
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            raise Refusal(
                "send an Idempotency-Key header: a deposit must be recorded once",
                code="idempotency_key_required",
                field="Idempotency-Key",
            )
        data = _valid(s.DepositRequestSerializer, request.data)
        if data["currency"] != CURRENCY:
            raise Refusal(CurrencyError.message, code="non_cny", field="currency")
        if data["amount"] <= 0:
            raise Refusal(
                "a deposit must be a positive amount", code="non_positive_amount", field="amount"
            )
        entry, created = deposit_record_by_key(
            customer=customer,
            amount=data["amount"],
            reference=data["reference"],
            idempotency_key=key,
            now=timezone.now(),
            created_by=request.user,
        )
        deposit = {
            "entry": entry,
            "customer": customer,
            "key": key,
            "balance_after": _balance_after(entry),
        }
        response = Response(s.DepositSerializer(deposit).data, status=status.HTTP_201_CREATED)
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response


# The estimate's serializer with its fields bound once per process: binding them on every
# request (a deep copy of each declared field, the lines' too) was a seventh of the estimate
# API's Python work. Representing an estimate reads the bound fields and changes none.
_ESTIMATE = s.EstimateSerializer()


class CustomerEstimateView(ConsoleView):
    @extend_schema(
        operation_id="customer_estimate",
        parameters=[EXTERNAL_ID],
        summary="This month's bill so far",
        description="Priced by the one rating engine from today's plans and add-ons and the "
        "usage received to date (peak DAU so far). An estimate: the month-end run bills the "
        "real peak. `usage_received` is false while no usage has arrived for the month: the "
        "total then prices no DAU and is not a forecast of the bill.",
        responses={200: s.EstimateSerializer, **READ_REFUSALS},
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        today = billing_date(timezone.now())
        month = month_estimate(customer=customer, today=today)
        estimate = {
            "customer": customer,
            "period": str(month.period),
            "as_of": today,
            "usage_received": month.usage_through is not None,
            "usage_through": month.usage_through,
            "rated": month.rated,
        }
        return Response(_ESTIMATE.to_representation(estimate))


class CustomerInvoicesView(ConsoleView):
    @extend_schema(
        operation_id="customer_invoices",
        parameters=[EXTERNAL_ID],
        summary="The customer's issued invoices, with lines",
        responses={200: s.InvoiceSerializer(many=True), **READ_REFUSALS},
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        invoices = (
            Invoice.objects.filter(customer=customer, status__in=Invoice.ISSUED_STATES)
            .prefetch_related("lines", "credit_notes")
            .order_by("-period")
        )
        return Response(s.InvoiceSerializer(invoices, many=True).data)


# --- applications --------------------------------------------------------------------------


def application_body(application: Application) -> dict:
    today = billing_date(timezone.now())
    plans = plan_history(application_ids=[application.pk]).get(application.pk, [])
    addons = addon_history(application_ids=[application.pk]).get(application.pk, [])

    view = {
        "application": application,
        "current_plan": row_on(plans, today),
        "plan_history": plans,
        "addons": rows_on(addons, today),
        "addon_history": sorted(addons, key=lambda r: (r.first_day, r.code)),
        "dedicated_contracts": application.dedicated_contracts.order_by("first_day"),
    }
    return s.ApplicationSerializer(view).data


class ApplicationListView(ConsoleView):
    @extend_schema(
        operation_id="application_create",
        summary="Create an application (on the Free plan from today)",
        description="An application of a suspended customer starts suspended.",
        request=s.ApplicationCreateSerializer,
        responses={201: s.ApplicationSerializer, **WRITE_REFUSALS, 409: ERROR_409},
        examples=[
            OpenApiExample(
                "New application",
                request_only=True,
                value={
                    "app_key": "k5f8w2qz9m",
                    "name": "Lanting Chat",
                    "customer": "console-10042",
                    "data_center": "singapore",
                },
            )
        ],
    )
    def post(self, request):
        data = _valid(s.ApplicationCreateSerializer, request.data)
        application = application_create(
            customer=_customer(data["customer"], field="customer"),
            app_key=data["app_key"],
            name=data["name"],
            data_center=data["data_center"],
            now=timezone.now(),
            created_by=request.user,
        )
        return Response(application_body(application), status=status.HTTP_201_CREATED)


class ApplicationDetailView(ConsoleView):
    @extend_schema(
        operation_id="application_read",
        parameters=[APP_KEY],
        summary="An application: status, current plan, plan history, add-ons",
        responses={200: s.ApplicationSerializer, **READ_REFUSALS},
    )
    def get(self, request, app_key: str):
        return Response(application_body(_application(app_key)))


class PlanChangeView(ConsoleView):
    @extend_schema(
        operation_id="application_plan_change",
        parameters=[APP_KEY],
        summary="Activate, upgrade or downgrade the application's plan",
        description="Nothing takes effect before today (Asia/Shanghai): an earlier date of "
        "this month is moved to today. An upgrade needs a balance of at least the plan's "
        "minimum deposit and takes effect on `effective_date`; a downgrade takes effect on the "
        "1st of a month, never before the 1st of the month after the request. Add-ons the new "
        "plan lacks end on the day it takes effect (`ended_addons`). A date in a month that "
        "has an invoice (draft, held or issued) is refused with 409, one more than 366 days "
        "ahead with 400 (`date_too_far`). "
        "201 when a change was recorded, 200 when the decision was already in force.",
        request=s.PlanChangeRequestSerializer,
        responses={
            200: s.PlanChangeSerializer,
            201: s.PlanChangeSerializer,
            400: ERROR_400,
            402: error_response(
                "Balance below the minimum deposit.", serializer=InsufficientDepositSerializer
            ),
            **READ_REFUSALS,
            409: MONTH_INVOICED,
        },
        examples=[
            OpenApiExample(
                "Upgrade",
                request_only=True,
                value={"plan": "ultimate", "effective_date": "2026-10-16"},
            ),
            OpenApiExample(
                "Downgrade moved to the 1st",
                response_only=True,
                status_codes=["201"],
                value={
                    "application": "k5f8w2qz9m",
                    "plan": "premium",
                    "requested_date": "2026-10-16",
                    "effective_date": "2026-11-01",
                    "kind": "downgrade",
                    "ended_addons": ["ultragroup_storage_extension"],
                    "cancelled_changes": [],
                },
            ),
            OpenApiExample(
                "Insufficient deposit",
                response_only=True,
                status_codes=["402"],
                value={
                    "code": "insufficient_deposit",
                    "message": "activating Ultimate on 2026-10-16 needs a balance of at least "
                    "8000.00 (minimum deposit); the balance is 5000.00",
                    "field": "plan",
                    "required": "8000.00",
                    "balance": "5000.00",
                },
            ),
        ],
    )
    def post(self, request, app_key: str):
        application = _application(app_key)
        data = _valid(s.PlanChangeRequestSerializer, request.data)
        result = plan_change_request(
            application=application,
            plan_code=data["plan"],
            effective_date=data["effective_date"],
            now=timezone.now(),
            created_by=request.user,
        )
        return Response(
            s.PlanChangeSerializer({"application": application, "result": result}).data,
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


def _addon_set_response(
    *,
    request,
    application: Application,
    addon_code: str,
    data: dict,
    success_status: int,
) -> Response:
    """Set an add-on's quantity from a date and answer with the change.

    POST (add, code in the body) and PATCH (change, code in the URL) are the same service
    call; they differ only in where the code comes from and in the success status."""
    change = addon_set(
        application=application,
        addon_code=addon_code,
        quantity=data["quantity"],
        effective_date=data["effective_date"],
        now=timezone.now(),
        created_by=request.user,
    )
    return Response(s.AddOnChangeSerializer(change).data, status=success_status)


ADDON_REFUSALS = {**WRITE_REFUSALS, 409: MONTH_INVOICED}


class AddOnListView(ConsoleView):
    @extend_schema(
        operation_id="application_addon_set",
        parameters=[APP_KEY],
        summary="Add an add-on (or set its quantity) from a date",
        description="Refused when the plan the application has on that date does not offer it "
        "(nothing on Free; ultragroup storage only on plans with ultragroups). Starts today at "
        "the earliest; a lower quantity tomorrow at the earliest (today is used and billed).",
        request=s.AddOnRequestSerializer,
        responses={201: s.AddOnChangeSerializer, **ADDON_REFUSALS},
        examples=[
            OpenApiExample(
                "Add sensitive words packs",
                request_only=True,
                value={"addon": "sensitive_words", "quantity": 2, "effective_date": "2026-10-16"},
            ),
            OpenApiExample(
                "Not on this plan",
                response_only=True,
                status_codes=["400"],
                value={
                    "code": "addon_not_available",
                    "message": "Chat room keep-alive (chatroom_keepalive) is not available on the "
                    "Free plan, which application k5f8w2qz9m has on 2026-10-16",
                    "field": "addon",
                },
            ),
        ],
    )
    def post(self, request, app_key: str):
        application = _application(app_key)
        data = _valid(s.AddOnRequestSerializer, request.data)
        return _addon_set_response(
            request=request,
            application=application,
            addon_code=data["addon"],
            data=data,
            success_status=status.HTTP_201_CREATED,
        )


class AddOnDetailView(ConsoleView):
    @extend_schema(
        operation_id="application_addon_update",
        parameters=[APP_KEY, ADDON_CODE],
        summary="Change an add-on's quantity from a date",
        request=s.AddOnUpdateSerializer,
        responses={200: s.AddOnChangeSerializer, **ADDON_REFUSALS},
        examples=[
            OpenApiExample(
                "Three packs from the 1st",
                request_only=True,
                value={"quantity": 3, "effective_date": "2026-11-01"},
            )
        ],
    )
    def patch(self, request, app_key: str, addon: str):
        application = _application(app_key)
        data = _valid(s.AddOnUpdateSerializer, request.data)
        if not _addon_subscribed(application, addon):
            raise Refusal(
                f"application {application.app_key} has no {addon!r} add-on to change",
                code="addon_not_active",
                field="addon",
            )
        return _addon_set_response(
            request=request,
            application=application,
            addon_code=addon,
            data=data,
            success_status=status.HTTP_200_OK,
        )

    @extend_schema(
        operation_id="application_addon_end",
        summary="End an add-on from a date",
        description="`effective_date` is the first day it is no longer billed: tomorrow at "
        "the earliest (today is used and billed); the answer has the real date.",
        parameters=[
            APP_KEY,
            ADDON_CODE,
            OpenApiParameter(
                "effective_date", OpenApiTypes.DATE, OpenApiParameter.QUERY, required=True
            ),
        ],
        request=None,
        responses={200: s.AddOnChangeSerializer, **ADDON_REFUSALS},
    )
    def delete(self, request, app_key: str, addon: str):
        application = _application(app_key)
        data = _valid(s.AddOnEndSerializer, request.query_params)
        change = addon_end(
            application=application,
            addon_code=addon,
            effective_date=data["effective_date"],
            now=timezone.now(),
            created_by=request.user,
        )
        return Response(s.AddOnChangeSerializer(change).data)


def _addon_subscribed(application: Application, addon_code: str) -> bool:
    """Whether the application has (or has scheduled) this add-on: PATCH changes one."""
    rows = addon_history(application_ids=[application.pk]).get(application.pk, [])
    today = billing_date(timezone.now())
    return any(
        row.code == addon_code and (row.last_day is None or row.last_day >= today) for row in rows
    )


# --- usage ---------------------------------------------------------------------------------


def _content_length(request) -> int | None:
    """The body size the client declared; None when the header is not a byte count."""
    text = (request.META.get("CONTENT_LENGTH") or "0").strip()
    return int(text) if text.isascii() and text.isdigit() else None


class UsageIngestView(ApiView):
    permission_classes = [IngestPermission]

    @extend_schema(
        operation_id="usage_ingest",
        summary="Report daily usage (IM platform, Ingest role)",
        description="A JSON list of up to 10,000 rows, all-or-nothing. Resending the same rows "
        "changes nothing (`unchanged`); a different value for a month not yet invoiced "
        "replaces the stored one and records a revision (`updated`). A new or different value "
        "for a day of an invoiced month is refused with 409.",
        request=s.UsageRowSerializer(many=True),
        responses={
            200: s.IngestResultSerializer,
            400: error_response("Bad rows, each listed.", serializer=BatchErrorSerializer),
            401: ERROR_401,
            403: ERROR_403,
            409: error_response("Invoiced month.", serializer=BatchErrorSerializer),
            413: error_response("The body is too large (`too_large`)."),
        },
        examples=[
            OpenApiExample(
                "Two days",
                request_only=True,
                value=[
                    {
                        "app_key": "k5f8w2qz9m",
                        "date": "2026-10-01",
                        "dau": 8123,
                        "delivered_messages": 1203311,
                    },
                    {
                        "app_key": "k5f8w2qz9m",
                        "date": "2026-10-02",
                        "dau": 9040,
                        "delivered_messages": 1320007,
                    },
                ],
            ),
            OpenApiExample(
                "Stored",
                response_only=True,
                status_codes=["200"],
                value={"created": 1, "updated": 1, "unchanged": 0},
            ),
            OpenApiExample(
                "Bad rows",
                response_only=True,
                status_codes=["400"],
                value={
                    "code": "invalid_rows",
                    "message": "2 row error(s); nothing was stored",
                    "field": None,
                    "errors": [
                        {"index": 0, "field": "app_key", "message": "unknown app_key 'nope'"},
                        {"index": 3, "field": "dau", "message": "dau cannot be negative, got -1"},
                    ],
                },
            ),
            OpenApiExample(
                "Invoiced month",
                response_only=True,
                status_codes=["409"],
                value={
                    "code": "month_invoiced",
                    "message": "1 row(s) would change usage of an invoiced month ...",
                    "field": None,
                    "conflicts": [
                        {
                            "index": 0,
                            "app_key": "k5f8w2qz9m",
                            "date": "2026-09-30",
                            "invoice": "INV-2026-000123",
                        }
                    ],
                },
            ),
        ],
    )
    def post(self, request):
        # Parsed here, not by DRF's stream parser: one json.loads of the body is the fastest
        # path for 10,000 rows, and the row checks are the service's, in bulk.
        length = _content_length(request)
        if length is None:
            raise Refusal(
                "the Content-Length header must be a whole number of bytes",
                code="invalid_content_length",
                errors=[{"index": None, "field": None, "message": "invalid Content-Length"}],
            )
        if length > MAX_USAGE_BODY_BYTES:
            raise Refusal(
                f"the body is larger than {MAX_USAGE_BODY_BYTES:,} bytes; send at most 10,000 rows",
                code="too_large",
            )
        try:
            rows = json_loads_bounded(request._request.read(length) if length else b"")
        except ValueError as exc:
            raise Refusal(
                f"the body is not valid JSON: {exc}",
                code="malformed_json",
                errors=[{"index": None, "field": None, "message": "malformed JSON"}],
            ) from None
        try:
            result = usage_ingest(rows=rows, now=timezone.now(), changed_by=request.user)
        except Refusal:
            metrics.count_usage_rows(refused=len(rows) if isinstance(rows, list) else 1)
            raise
        counts = result.as_dict()
        metrics.count_usage_rows(**counts)
        # The three counts as they are: IngestResultSerializer documents this body (the
        # schema), building it per request cost a tenth of a one-row push (its fields are
        # deep-copied); tests/accounts/test_usage_api_body.py holds the two equal.
        return Response(counts)
