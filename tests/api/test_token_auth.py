"""Token authentication reads the user's roles with the token (billingsite.api
TokenWithRolesAuthentication): same answers as DRF's, one query fewer, never a stale role."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts import roles
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_a_role_is_read_with_the_token_and_a_lost_role_refuses_the_next_request():
    CustomerFactory(external_id="acme")
    user = UserFactory(groups=[roles.CONSOLE])
    client = token_client(user)

    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"{URL}acme/")
    assert response.status_code == 200, response.content
    group_reads = [q["sql"] for q in queries if q["sql"].lstrip().startswith('SELECT "auth_group"')]
    # PostgreSQL: the roles come with the token; elsewhere one query reads them.
    assert len(group_reads) == (0 if connection.vendor == "postgresql" else 1)

    user.groups.remove(Group.objects.get(name=roles.CONSOLE))
    response = client.get(f"{URL}acme/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


@pytest.mark.parametrize("header", ["Token not-a-token", "Token "])
def test_an_unknown_token_is_401(header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] in {"authentication_failed", "not_authenticated"}


def test_an_inactive_users_token_is_401():
    user = UserFactory(groups=[roles.CONSOLE], is_active=False)
    response = token_client(user).get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"
