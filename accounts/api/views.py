"""Provisioning API for the developer console, deposits for finance, and usage ingest for the
IM platform. Thin: each view checks the request's shape, calls one service, and turns the
service's refusal into a status code and a body that names the rule.

Roles (token users in Django groups): Console may call the customer/application endpoints;
deposits need a finance role (the console may not invent money); usage ingest needs Ingest.
A token of any other role gets 403.
"""

from __future__ import annotations

from django.db.models import Sum
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
)
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from accounts.api import serializers as s
from accounts.models import Application, Customer, LedgerEntry
from accounts.services import (
    AccountError,
    DuplicateError,
    IdempotencyConflict,
    LedgerError,
    application_create,
    customer_create,
    deposit_record_by_key,
)
from accounts.usage import (
    UsageBilledMonthError,
    UsageValidationError,
    usage_ingest,
)
from billingsite.api import role_permission
from billingsite.clock import Period, billing_date
from billingsite.money import CURRENCY, CurrencyError, format_amount
from billingsite.ops import metrics
from billingsite.parsers import BoundedJSONParser, json_loads_bounded
from invoices.models import Invoice
from invoices.selectors import customer_financials, estimate_current_month
from plans.selectors import addon_history, plan_history
from plans.services import (
    InsufficientDeposit,
    SubscriptionError,
    addon_end,
    addon_set,
    plan_change_request,
)

# A usage request of 10,000 rows is about 1 MB; anything far larger is refused unread.
MAX_USAGE_BODY_BYTES = 16 * 1024 * 1024

ConsolePermission = role_permission(roles.CONSOLE)
FinancePermission = role_permission(*roles.FINANCE_ROLES)
IngestPermission = role_permission(roles.INGEST)

# Refusals that are not "bad input" get their own status; every other rule is a 400.
SUBSCRIPTION_STATUS = {
    "insufficient_deposit": status.HTTP_402_PAYMENT_REQUIRED,
    "addon_not_active": status.HTTP_404_NOT_FOUND,
    "month_invoiced": status.HTTP_409_CONFLICT,
}


def refusal(http_status: int, code: str, message: str, field: str | None = None, **extra):
    return Response({"code": code, "message": message, "field": field, **extra}, status=http_status)


def invalid(serializer) -> Response:
    return refusal(
        status.HTTP_400_BAD_REQUEST,
        "invalid",
        "the request has invalid fields",
        field=next(iter(serializer.errors), None),
        errors=serializer.errors,
    )


def subscription_refusal(exc: SubscriptionError) -> Response:
    if isinstance(exc, InsufficientDeposit):
        # The console shows these two figures; the body shape is part of the contract.
        return Response(
            {
                "code": "insufficient_deposit",
                "required": format_amount(exc.required),
                "balance": format_amount(exc.balance),
            },
            status=status.HTTP_402_PAYMENT_REQUIRED,
        )
    http_status = SUBSCRIPTION_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST)
    return refusal(http_status, exc.code, exc.message, exc.field)


def _customer(external_id: str) -> Customer:
    customer = Customer.objects.filter(external_id=external_id).first()
    if customer is None:
        raise Http404(f"unknown customer {external_id!r}")
    return customer


def _application(app_key: str) -> Application:
    application = Application.objects.select_related("customer").filter(app_key=app_key).first()
    if application is None:
        raise Http404(f"unknown application {app_key!r}")
    return application


class ApiView(APIView):
    parser_classes = [BoundedJSONParser]

    def handle_exception(self, exc):
        # Every refusal names its rule in `code`, including a body that is not JSON and a
        # customer or app that does not exist.
        if isinstance(exc, ParseError):
            return refusal(status.HTTP_400_BAD_REQUEST, "malformed_json", str(exc.detail))
        if isinstance(exc, Http404):
            message = str(exc) or "not found"
            code = "unknown_application" if "application" in message else "unknown_customer"
            return refusal(status.HTTP_404_NOT_FOUND, code, message)
        return super().handle_exception(exc)


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

ERROR_400 = OpenApiResponse(s.ErrorSerializer, description="Invalid input; `code` names the rule.")
ERROR_401 = OpenApiResponse(s.DetailSerializer, description="No token, or an unknown one.")
ERROR_403 = OpenApiResponse(
    s.DetailSerializer, description="The token's role may not call this endpoint."
)
ERROR_404 = OpenApiResponse(s.ErrorSerializer, description="Unknown customer or application.")
ERROR_409 = OpenApiResponse(s.ErrorSerializer, description="Duplicate identifier or conflict.")

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
        serializer = s.CustomerCreateSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        now = timezone.now()
        try:
            customer = customer_create(**serializer.validated_data, now=now)
        except DuplicateError as exc:
            return refusal(status.HTTP_409_CONFLICT, exc.code, exc.message, exc.field)
        except AccountError as exc:
            return refusal(status.HTTP_400_BAD_REQUEST, exc.code, exc.message, exc.field)
        financials = customer_financials(customer=customer, today=billing_date(now))
        return Response(
            s.customer_payload(customer=customer, financials=financials),
            status=status.HTTP_201_CREATED,
        )


class CustomerDetailView(ConsoleView):
    @extend_schema(
        operation_id="customer_read",
        parameters=[EXTERNAL_ID],
        summary="A customer with its balance and arrears state",
        responses={200: s.CustomerSerializer, 401: ERROR_401, 403: ERROR_403, 404: ERROR_404},
        examples=[OpenApiExample("Customer", response_only=True, value=CUSTOMER_EXAMPLE)],
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        financials = customer_financials(customer=customer, today=billing_date(timezone.now()))
        return Response(s.customer_payload(customer=customer, financials=financials))


def _balance_after(entry: LedgerEntry) -> str:
    # The customer's rows are written under its row lock, so ids follow commit order and the
    # balance up to this entry never changes: a replayed answer is byte-for-byte the same.
    total = LedgerEntry.objects.filter(customer_id=entry.customer_id, id__lte=entry.id).aggregate(
        total=Sum("amount")
    )["total"]
    return format_amount(total)


def deposit_payload(*, entry: LedgerEntry, customer: Customer, key: str) -> dict:
    return {
        "id": entry.pk,
        "customer": customer.external_id,
        "amount": format_amount(entry.amount),
        "currency": CURRENCY,
        "reference": entry.reference,
        "idempotency_key": key,
        "created_at": timezone.localtime(entry.created_at).isoformat(),
        "balance_after": _balance_after(entry),
    }


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
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
            422: OpenApiResponse(s.ErrorSerializer, description="Key reused for another body."),
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
            return refusal(
                status.HTTP_400_BAD_REQUEST,
                "idempotency_key_required",
                "send an Idempotency-Key header: a deposit must be recorded once",
                "Idempotency-Key",
            )
        serializer = s.DepositRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        data = serializer.validated_data
        if data["currency"] != CURRENCY:
            return refusal(
                status.HTTP_400_BAD_REQUEST, "non_cny", CurrencyError.message, "currency"
            )
        if data["amount"] <= 0:
            return refusal(
                status.HTTP_400_BAD_REQUEST,
                "non_positive_amount",
                "a deposit must be a positive amount",
                "amount",
            )
        try:
            entry, created = deposit_record_by_key(
                customer=customer,
                amount=data["amount"],
                reference=data["reference"],
                idempotency_key=key,
                now=timezone.now(),
                created_by=request.user,
            )
        except IdempotencyConflict as exc:
            return refusal(
                status.HTTP_422_UNPROCESSABLE_ENTITY, "idempotency_conflict", str(exc), exc.field
            )
        except LedgerError as exc:
            return refusal(status.HTTP_400_BAD_REQUEST, "invalid_amount", str(exc), exc.field)
        response = Response(
            deposit_payload(entry=entry, customer=customer, key=key),
            status=status.HTTP_201_CREATED,
        )
        if not created:
            response["Idempotent-Replayed"] = "true"
        return response


class CustomerEstimateView(ConsoleView):
    @extend_schema(
        operation_id="customer_estimate",
        parameters=[EXTERNAL_ID],
        summary="This month's bill so far",
        description="Priced by the one rating engine from today's plans and add-ons and the "
        "usage received to date (peak DAU so far). An estimate: the month-end run bills the "
        "real peak.",
        responses={200: s.EstimateSerializer, 401: ERROR_401, 403: ERROR_403, 404: ERROR_404},
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        today = billing_date(timezone.now())
        rated = estimate_current_month(customer=customer, today=today)
        return Response(
            {
                "customer": customer.external_id,
                "period": str(Period.containing(today)),
                "as_of": today,
                "total": format_amount(rated.total),
                "hold_reasons": list(rated.hold_reasons),
                "lines": [s.line_payload(line) for line in rated.lines],
            }
        )


class CustomerInvoicesView(ConsoleView):
    @extend_schema(
        operation_id="customer_invoices",
        parameters=[EXTERNAL_ID],
        summary="The customer's issued invoices, with lines",
        responses={
            200: s.InvoiceSerializer(many=True),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
        },
    )
    def get(self, request, external_id: str):
        customer = _customer(external_id)
        invoices = (
            Invoice.objects.filter(customer=customer, status__in=Invoice.ISSUED_STATES)
            .prefetch_related("lines", "credit_notes")
            .order_by("-period")
        )
        return Response(
            [
                {
                    "number": invoice.number,
                    "period": f"{invoice.period:%Y-%m}",
                    "status": invoice.status,
                    "issue_date": invoice.issue_date,
                    "total": format_amount(invoice.total),
                    "lines": [s.line_payload(line) for line in invoice.lines.all()],
                    "credit_notes": [
                        {
                            "number": note.number,
                            "total": format_amount(note.total),
                            "issue_date": note.issue_date,
                            "reason": note.reason,
                        }
                        for note in invoice.credit_notes.all()
                    ],
                }
                for invoice in invoices
            ]
        )


# --- applications --------------------------------------------------------------------------


def _row(row, *, addon: bool = False) -> dict:
    if addon:
        return {
            "addon": row.code,
            "name": row.name,
            "quantity": row.quantity,
            "first_day": row.first_day,
            "last_day": row.last_day,
        }
    return {
        "plan": row.code,
        "name": row.name,
        "first_day": row.first_day,
        "last_day": row.last_day,
    }


def application_payload(application: Application) -> dict:
    today = billing_date(timezone.now())
    plans = plan_history(application_ids=[application.pk]).get(application.pk, [])
    addons = addon_history(application_ids=[application.pk]).get(application.pk, [])

    def covers(row) -> bool:
        return row.first_day <= today and (row.last_day is None or today <= row.last_day)

    current = next((row for row in plans if covers(row)), None)
    return {
        "app_key": application.app_key,
        "name": application.name,
        "customer": application.customer.external_id,
        "data_center": application.data_center,
        "status": application.status,
        "created_on": application.created_on,
        "current_plan": _row(current) if current else None,
        "plan_history": [_row(row) for row in plans],
        "addons": [_row(row, addon=True) for row in addons if covers(row)],
        "addon_history": [
            _row(row, addon=True) for row in sorted(addons, key=lambda r: (r.first_day, r.code))
        ],
        "dedicated_contracts": [
            {
                "monthly_fee": format_amount(contract.monthly_fee),
                "first_day": contract.first_day,
                "last_day": contract.last_day,
                "reference": contract.reference,
            }
            for contract in application.dedicated_contracts.order_by("first_day")
        ],
    }


class ApplicationListView(ConsoleView):
    @extend_schema(
        operation_id="application_create",
        summary="Create an application (on the Free plan from today)",
        description="An application of a suspended customer starts suspended.",
        request=s.ApplicationCreateSerializer,
        responses={
            201: s.ApplicationSerializer,
            400: ERROR_400,
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
            409: ERROR_409,
        },
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
        serializer = s.ApplicationCreateSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        data = serializer.validated_data
        customer = Customer.objects.filter(external_id=data["customer"]).first()
        if customer is None:
            return refusal(
                status.HTTP_404_NOT_FOUND,
                "unknown_customer",
                f"unknown customer {data['customer']!r}",
                "customer",
            )
        try:
            application = application_create(
                customer=customer,
                app_key=data["app_key"],
                name=data["name"],
                data_center=data["data_center"],
                now=timezone.now(),
                created_by=request.user,
            )
        except DuplicateError as exc:
            return refusal(status.HTTP_409_CONFLICT, exc.code, exc.message, exc.field)
        except AccountError as exc:
            return refusal(status.HTTP_400_BAD_REQUEST, exc.code, exc.message, exc.field)
        return Response(application_payload(application), status=status.HTTP_201_CREATED)


class ApplicationDetailView(ConsoleView):
    @extend_schema(
        operation_id="application_read",
        parameters=[APP_KEY],
        summary="An application: status, current plan, plan history, add-ons",
        responses={200: s.ApplicationSerializer, 401: ERROR_401, 403: ERROR_403, 404: ERROR_404},
    )
    def get(self, request, app_key: str):
        return Response(application_payload(_application(app_key)))


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
            402: OpenApiResponse(
                s.InsufficientDepositSerializer, description="Balance below the minimum deposit."
            ),
            401: ERROR_401,
            403: ERROR_403,
            404: ERROR_404,
            409: OpenApiResponse(
                s.ErrorSerializer, description="The month already has an invoice."
            ),
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
                value={"code": "insufficient_deposit", "required": "8000.00", "balance": "5000.00"},
            ),
        ],
    )
    def post(self, request, app_key: str):
        application = _application(app_key)
        serializer = s.PlanChangeRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        data = serializer.validated_data
        try:
            result = plan_change_request(
                application=application,
                plan_code=data["plan"],
                effective_date=data["effective_date"],
                now=timezone.now(),
                created_by=request.user,
            )
        except SubscriptionError as exc:
            return subscription_refusal(exc)
        return Response(
            {
                "application": application.app_key,
                "plan": result.change.plan.code,
                "requested_date": result.requested_date,
                "effective_date": result.effective_date,
                "kind": result.kind,
                "ended_addons": result.ended_addons,
                "cancelled_changes": [
                    {
                        "plan": change.plan.code,
                        "name": change.plan.name,
                        "first_day": change.effective_date,
                        "last_day": None,
                    }
                    for change in result.cancelled_changes
                ],
            },
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


def _addon_change_payload(application: Application, change) -> dict:
    return {
        "application": application.app_key,
        "addon": change.addon.code,
        "quantity": change.quantity,
        "effective_date": change.effective_date,
    }


def _addon_set_response(
    *,
    request,
    application: Application,
    addon_code: str,
    data: dict,
    success_status: int,
) -> Response:
    """Set an add-on's quantity from a date and answer with the change or the refusal.

    POST (add, code in the body) and PATCH (change, code in the URL) are the same service
    call; they differ only in where the code comes from and in the success status."""
    try:
        change = addon_set(
            application=application,
            addon_code=addon_code,
            quantity=data["quantity"],
            effective_date=data["effective_date"],
            now=timezone.now(),
            created_by=request.user,
        )
    except SubscriptionError as exc:
        return subscription_refusal(exc)
    return Response(_addon_change_payload(application, change), status=success_status)


ADDON_REFUSALS = {
    400: ERROR_400,
    401: ERROR_401,
    403: ERROR_403,
    404: ERROR_404,
    409: OpenApiResponse(s.ErrorSerializer, description="The month already has an invoice."),
}


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
        serializer = s.AddOnRequestSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        data = serializer.validated_data
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
        serializer = s.AddOnUpdateSerializer(data=request.data)
        if not serializer.is_valid():
            return invalid(serializer)
        data = serializer.validated_data
        if not _addon_subscribed(application, addon):
            return refusal(
                status.HTTP_404_NOT_FOUND,
                "addon_not_active",
                f"application {application.app_key} has no {addon!r} add-on to change",
                "addon",
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
        serializer = s.AddOnEndSerializer(data=request.query_params)
        if not serializer.is_valid():
            return invalid(serializer)
        try:
            change = addon_end(
                application=application,
                addon_code=addon,
                effective_date=serializer.validated_data["effective_date"],
                now=timezone.now(),
                created_by=request.user,
            )
        except SubscriptionError as exc:
            return subscription_refusal(exc)
        return Response(_addon_change_payload(application, change))


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
            400: OpenApiResponse(s.UsageErrorSerializer, description="Bad rows, each listed."),
            401: ERROR_401,
            403: ERROR_403,
            409: OpenApiResponse(s.UsageErrorSerializer, description="Invoiced month."),
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
            return Response(
                {
                    "code": "invalid_content_length",
                    "message": "the Content-Length header must be a whole number of bytes",
                    "errors": [{"index": None, "field": None, "message": "invalid Content-Length"}],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        if length > MAX_USAGE_BODY_BYTES:
            return refusal(
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
                "too_large",
                f"the body is larger than {MAX_USAGE_BODY_BYTES:,} bytes; send at most 10,000 rows",
            )
        try:
            rows = json_loads_bounded(request._request.read(length) if length else b"")
        except ValueError as exc:
            return Response(
                {
                    "code": "malformed_json",
                    "message": f"the body is not valid JSON: {exc}",
                    "errors": [{"index": None, "field": None, "message": "malformed JSON"}],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            result = usage_ingest(rows=rows, now=timezone.now(), changed_by=request.user)
        except UsageValidationError as exc:
            metrics.count_usage_rows(refused=len(rows) if isinstance(rows, list) else 1)
            return Response(
                {
                    "code": "invalid_rows",
                    "message": f"{len(exc.errors)} row error(s); nothing was stored",
                    "errors": exc.errors,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        except UsageBilledMonthError as exc:
            metrics.count_usage_rows(refused=len(rows))
            return Response(
                {"code": "month_invoiced", "message": str(exc), "conflicts": exc.conflicts},
                status=status.HTTP_409_CONFLICT,
            )
        metrics.count_usage_rows(**result.as_dict())
        return Response(result.as_dict())
