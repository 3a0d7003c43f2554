"""Admin for customer e-mails: billing contacts (a customer inline), what was sent to whom, and
finance's resend of a document."""

from __future__ import annotations

from django.contrib import admin, messages
from django.forms.models import BaseInlineFormSet
from django.utils import timezone

from accounts.mail.sending import email_resend
from accounts.models import BillingContact, CustomerEvent, EmailDelivery, MailBounce
from billingsite.admin import ReadOnlyAdminMixin


class NamedDeleteFormSet(BaseInlineFormSet):
    """A tabular inline whose 'Delete' checkboxes have an accessible name (the column head
    alone gives them none)."""

    def add_fields(self, form, index):
        super().add_fields(form, index)
        if "DELETE" in form.fields:
            form.fields["DELETE"].widget.attrs.setdefault("aria-label", "Delete")


class BillingContactInline(admin.TabularInline):
    model = BillingContact
    formset = NamedDeleteFormSet
    extra = 0
    fields = [
        "email",
        "name",
        "receives_invoices",
        "receives_warnings",
        "receives_receipts",
        "bounced_at",
        "bounce_reason",
    ]
    readonly_fields = ["bounced_at", "bounce_reason"]
    verbose_name_plural = (
        "Billing contacts (who receives which e-mails; the billing e-mail is always one; "
        "a bounce is the last refusal of the address: by the mail server, a bounce notice of the provider or a returned message)"
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # A tabular inline shows the labels once, as column heads: each input still needs its
        # own accessible name (screen readers, the axe check in tests/browser).
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None:
            field.widget.attrs.setdefault("aria-label", str(db_field.verbose_name).capitalize())
        return field


class EmailDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = EmailDelivery
    extra = 0
    can_delete = False
    fields = [
        "created_at",
        "recipient",
        "resend",
        "language",
        "subject",
        "attachments",
        "status",
        "attempts",
        "sent_at",
        "error",
        "requested_by",
    ]
    readonly_fields = fields
    verbose_name_plural = "E-mails (one row per recipient; resends are numbered 1, 2, ...)"


def _can_resend(request) -> bool:
    return request.user.has_perm("accounts.add_emaildelivery")


def _resend(modeladmin, request, pairs: list[tuple[CustomerEvent, list[str] | None]]) -> None:
    if not _can_resend(request):
        modeladmin.message_user(request, "You may not resend e-mails.", messages.ERROR)
        return
    count = 0
    for event, recipients in pairs:
        count += len(
            email_resend(
                event=event, requested_by=request.user, now=timezone.now(), recipients=recipients
            )
        )
    modeladmin.message_user(request, f"{count} e-mail(s) queued to be sent again.")


@admin.action(description="Resend the e-mail to the customer's current contacts")
def resend_to_contacts(modeladmin, request, queryset):
    _resend(modeladmin, request, [(event, None) for event in queryset.select_related("customer")])


@admin.register(EmailDelivery)
class EmailDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """What was sent to whom. Resending creates a new row, on purpose."""

    list_display = [
        "created_at",
        "customer",
        "kind",
        "recipient",
        "resend",
        "language",
        "status",
        "sent_at",
        "error_short",
    ]
    list_filter = ["status", "event__kind", "language"]
    list_select_related = ["event__customer"]
    search_fields = ["recipient", "event__customer__name", "event__customer__external_id"]
    actions = ["resend_to_same_address"]

    @admin.display(description="Customer", ordering="event__customer__name")
    def customer(self, delivery):
        return delivery.event.customer

    @admin.display(description="Kind", ordering="event__kind")
    def kind(self, delivery):
        return delivery.event.get_kind_display()

    @admin.display(description="Error")
    def error_short(self, delivery):
        return delivery.error[:80]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not _can_resend(request):
            actions.pop("resend_to_same_address", None)
        return actions

    @admin.action(description="Resend to the same address")
    def resend_to_same_address(self, request, queryset):
        _resend(
            self,
            request,
            [(row.event, [row.recipient]) for row in queryset.select_related("event__customer")],
        )


@admin.register(MailBounce)
class MailBounceAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Bounces and complaints reported after sending: the mail provider's webhook and returned
    messages (accounts.mail.bounces). Each marked its delivery refused (bounces) and the
    billing contacts with the address bounced."""

    list_display = ["received_at", "kind", "recipient", "source", "reason_short", "delivery"]
    list_filter = ["kind", "source"]
    list_select_related = ["delivery"]
    search_fields = ["recipient", "notice_id"]
    date_hierarchy = "received_at"

    @admin.display(description="Reason")
    def reason_short(self, bounce):
        return bounce.reason[:80]
