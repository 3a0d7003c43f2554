"""The customer's own page for its e-mails: the language of e-mails, PDFs and pages, the
monthly statement, and the billing contacts with the kinds each receives."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods

from accounts.mail.contacts import normalized_email
from accounts.models import BillingContact, Customer
from invoices.portal.views import _render, customer_view

MAX_CONTACTS = 20


class CommunicationForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["preferred_language", "monthly_statement"]
        labels = {
            "preferred_language": _("Language of e-mails, PDFs and these pages"),
            "monthly_statement": _("Send me a monthly statement (PDF) after each invoice"),
        }


class ContactForm(forms.ModelForm):
    class Meta:
        model = BillingContact
        fields = ["email", "name", "receives_invoices", "receives_warnings", "receives_receipts"]
        labels = {
            "email": _("E-mail address"),
            "name": _("Name"),
            "receives_invoices": _("Invoices and credit notes"),
            "receives_warnings": _("Balance and arrears warnings"),
            "receives_receipts": _("Payment receipts"),
        }


class BaseContactFormSet(forms.BaseModelFormSet):
    def __init__(self, *args, customer: Customer, **kwargs):
        self.customer = customer
        super().__init__(*args, queryset=customer.billing_contacts.order_by("id"), **kwargs)

    def clean(self):
        super().clean()
        # An existing row's id that is not one of this customer's contacts (another customer's,
        # or none at all) is tampering: Django would quietly skip that row and save the rest.
        if any(form.instance.pk is None for form in self.initial_forms):
            raise forms.ValidationError(
                _("This list of contacts changed or was tampered with; reload the page.")
            )
        seen = set()
        primary = normalized_email(self.customer.billing_email)
        for form in self.forms:
            if not form.has_changed() and form.instance.pk is None:
                continue
            email = normalized_email(form.cleaned_data.get("email", ""))
            deleting = self.can_delete and self._should_delete_form(form)
            original = normalized_email(form.initial.get("email", ""))
            if original == primary and (deleting or email != primary):
                raise forms.ValidationError(
                    _(
                        "%(email)s is your account's billing e-mail: untick what it should not "
                        "receive, or ask us to change it."
                    )
                    % {"email": self.customer.billing_email}
                )
            if deleting or not email:
                continue
            if email in seen:
                raise forms.ValidationError(
                    _("%(email)s is listed twice.") % {"email": form.cleaned_data["email"]}
                )
            seen.add(email)


ContactFormSet = forms.modelformset_factory(
    BillingContact,
    form=ContactForm,
    formset=BaseContactFormSet,
    extra=1,
    can_delete=True,
    max_num=MAX_CONTACTS,
    validate_max=True,
)


@customer_view
@require_http_methods(["GET", "POST"])
def contacts(request, customer):
    data = request.POST if request.method == "POST" else None
    settings_form = CommunicationForm(data, instance=customer, prefix="settings")
    formset = ContactFormSet(data, customer=customer, prefix="contacts")
    if data is not None and settings_form.is_valid() and formset.is_valid():
        with transaction.atomic():
            settings_form.save()
            for contact in formset.save(commit=False):
                contact.customer = customer
                contact.save()
            for contact in formset.deleted_objects:
                contact.delete()
        messages.success(request, _("Saved."))
        return redirect("portal:contacts")
    return _render(
        request,
        customer,
        "portal/contacts.html",
        {"settings_form": settings_form, "formset": formset},
        nav="contacts",
    )
