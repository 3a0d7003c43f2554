import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import UserFactory


@pytest.fixture
def client_for(db):
    """An API client whose token belongs to a user in the given roles (Django groups)."""

    def make(*role_names: str) -> APIClient:
        user = UserFactory(groups=list(role_names))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        client.user = user
        return client

    return make
