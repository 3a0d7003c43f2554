import io
import json
import logging

import pytest
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from billingsite.ops import errors
from billingsite.ops.context import logged_as
from billingsite.ops.logs import JsonFormatter
from tests.factories import CustomerUserFactory, StaffFactory


def test_unknown_api_address_is_a_json_404(client, db):
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {
        "code": "not_found",
        "message": "no such API endpoint or resource",
        "field": None,
    }


def test_unknown_portal_address_is_the_branded_404_page(client, db):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "<h1>Page not found</h1>" in page
    assert 'name="next" value="/"' in page  # the language switch never echoes the address


def test_server_errors_are_json_for_the_api_and_a_static_page_for_people():
    api = errors.server_error(RequestFactory().get("/api/v1/quotes/"))
    assert api.status_code == 500
    assert json.loads(api.content)["code"] == "server_error"
    page = errors.server_error(RequestFactory().get("/invoices/"))
    assert page.status_code == 500
    assert "Something went wrong" in page.content.decode()
    assert "出错了" in page.content.decode()


@pytest.mark.django_db
def test_permission_denied_is_json_for_the_api_and_branded_for_people():
    request = RequestFactory().get("/api/v1/customers/x/")
    assert json.loads(errors.permission_denied(request).content)["code"] == "permission_denied"
    request = RequestFactory().get("/invoices/")

    request.user = AnonymousUser()
    page = errors.permission_denied(request)
    assert page.status_code == 403
    assert "You cannot open this page" in page.content.decode()


@pytest.fixture
def json_request_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("billingsite.request")
    logger.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_refused_request_is_one_json_line_with_request_id_user_and_role(
    client, db, json_request_log
):
    staff = StaffFactory(username="ops-staff", groups=["Finance clerk"])
    client.force_login(staff)
    response = client.get("/api/v1/no-such-thing/", headers={"X-Request-ID": "req-12345678"})
    assert response["X-Request-ID"] == "req-12345678"
    (line,) = json_request_log()
    assert line["message"] == "GET /api/v1/no-such-thing/ 404"
    assert line["status"] == 404
    assert line["request_id"] == "req-12345678"
    assert line["user"] == "ops-staff"
    assert line["role"] == "Finance clerk"
    assert line["level"] == "INFO"
    assert "exc_info" not in line


def test_a_portal_request_logs_the_customer(client, price_book, json_request_log):
    link = CustomerUserFactory(customer__external_id="acme-cn")
    client.force_login(link.user)
    assert client.get("/invoices/").status_code == 200
    (line,) = json_request_log()
    assert line["customer"] == "acme-cn"
    assert line["role"] == "customer"
    assert len(line["request_id"]) == 32  # made up when the proxy sends none


def test_json_lines_carry_the_run_and_chunk_of_a_task():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.ops.chunk")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with logged_as(run_id=7, chunk_id="abc"):
            logger.info("billed %s accounts", 3)
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    first, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "billed 3 accounts"
    assert (first["run_id"], first["chunk_id"]) == (7, "abc")
    assert first["time"].endswith("+00:00")
    assert "run_id" not in after


def test_a_probe_writes_no_line_and_reads_no_session_even_when_logged_in(
    client, db, json_request_log, django_assert_num_queries
):
    # A probe's fields would go to no line: a session cookie on /healthz costs no query.
    client.force_login(StaffFactory(username="ops-staff", groups=["Finance clerk"]))
    with django_assert_num_queries(0):
        response = client.get("/healthz", headers={"X-Request-ID": "req-12345678"})
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-12345678"
    assert json_request_log() == []
    # The next request's line still names its user and role.
    assert client.get("/api/v1/no-such-thing/").status_code == 404
    (line,) = json_request_log()
    assert (line["user"], line["role"]) == ("ops-staff", "Finance clerk")
