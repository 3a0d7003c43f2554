"""Users are deactivated, never deleted: the database keeps what they did (history rows,
decisions, issued invoices) with their id and refuses the cascade a delete would start."""

import pytest

from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db


def test_the_admin_offers_no_delete_of_a_user_and_refuses_one_posted(client):
    superuser = StaffFactory(is_superuser=True, username="root-admin")
    leaver = StaffFactory(username="leaver")
    client.force_login(superuser)

    change_page = client.get(f"/admin/auth/user/{leaver.pk}/change/")
    assert change_page.status_code == 200
    assert f"/admin/auth/user/{leaver.pk}/delete/" not in change_page.content.decode()

    assert client.get(f"/admin/auth/user/{leaver.pk}/delete/").status_code == 403
    assert client.post(f"/admin/auth/user/{leaver.pk}/delete/", {"post": "yes"}).status_code == 403
    response = client.post(
        "/admin/auth/user/",
        {"action": "delete_selected", "_selected_action": [leaver.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    leaver.refresh_from_db()  # still there

    # Deactivating is the way out, and it works.
    leaver.is_active = False
    leaver.save()
    leaver.refresh_from_db()
    assert leaver.is_active is False
