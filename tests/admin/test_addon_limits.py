"""Issue 12, item 2 in the admin: an add-on above its maximum (or an extension without its
base) is a form error and writes nothing; finance edits the maximum as price-book data."""

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from plans.models import AddOn, AddOnChange
from tests.admin.conftest import as_user, form_errors

pytestmark = pytest.mark.django_db


def post_addon(client, application, addon_code: str, quantity: int):
    return client.post(
        reverse("admin:accounts_application_addon", args=[application.pk]),
        {
            "addon_code": addon_code,
            "quantity": str(quantity),
            "effective_date": "2026-11-05",
            "token": uuid.uuid4().hex,
        },
    )


@pytest.mark.parametrize(
    ("addon_code", "quantity", "field", "message"),
    [
        ("sensitive_words", 1_001, "quantity", "at most 1,000 per application"),
        ("sensitive_words", 2**31, "quantity", "less than or equal to 100000"),
        ("sensitive_words", 10**12, "quantity", "less than or equal to 100000"),
        ("chatroom_storage_extension", 121, "quantity", "at most 120 per application"),
        ("chatroom_storage_extension", 1, "__all__", "order chatroom_storage"),
    ],
)
def test_addon_form_refuses_above_the_maximum(
    client, manager, month, addon_code, quantity, field, message
):
    before = AddOnChange.objects.count()
    response = post_addon(as_user(client, manager), month.alpha_app, addon_code, quantity)
    assert response.status_code == 200
    assert any(message in text for text in form_errors(response)[field]), form_errors(response)
    assert AddOnChange.objects.count() == before


def test_addon_form_accepts_the_maximum(client, manager, month):
    response = post_addon(as_user(client, manager), month.alpha_app, "sensitive_words", 1_000)
    assert response.status_code == 302
    assert AddOnChange.objects.get(application=month.alpha_app).quantity == 1_000


def test_maximum_quantity_is_validated_price_book_data(price_book):
    words = AddOn.objects.get(code="sensitive_words")
    for bad in (0, 100_001):
        words.max_quantity = bad
        with pytest.raises(ValidationError) as info:
            words.full_clean()
        assert "max_quantity" in info.value.message_dict
    switch = AddOn.objects.get(code="desktop_pc")
    switch.max_quantity = 2
    with pytest.raises(ValidationError) as info:
        switch.full_clean()
    assert info.value.message_dict["max_quantity"] == ["An on/off service has a maximum of 1."]
