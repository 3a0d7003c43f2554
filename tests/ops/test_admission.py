"""Admission control of the web process (billingsite/ops/admission.py and
`AdmissionMiddleware`): heavy requests share a fixed number of slots, light ones never wait,
a slot always comes back, a wait that runs out is a clean 503."""

from __future__ import annotations

import json
import os
import threading

import pytest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory
from django.urls import reverse

from billingsite.ops import admission
from billingsite.ops.middleware import AdmissionMiddleware

# Long enough never to run out in a test that expects a wait to end by a release.
PATIENT = 10.0
# Short enough that a test expecting the 503 does not wait for it.
IMPATIENT = 0.005

QUOTE = "/api/v1/quotes/"
USAGE = "/api/v1/usage/"
PORTAL_PAGE = "/invoices/"
ESTIMATE_API = "/api/v1/customers/acme/estimate/"


@pytest.fixture
def install():
    def install(count: int = 1, wait: float = PATIENT, light: int = 0) -> admission.HeavySlots:
        slots = admission.slots_install(count, light=light, wait_seconds=wait)
        assert slots is not None
        return slots

    yield install
    admission.slots_install(0, wait_seconds=0)


def ok(request):
    return HttpResponse("served")


def in_thread(target):
    """Run `target` in a thread; the returned dict gets its result under "value"."""
    outcome: dict = {}

    def run():
        outcome["value"] = target()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


# The limiter alone.


def test_a_second_holder_waits_until_the_first_releases(install):
    slots = install(count=1)
    release = slots.acquire()
    admitted = threading.Event()

    def second():
        give_back = slots.acquire()
        admitted.set()
        give_back()

    waiting = in_thread(second)
    assert not admitted.wait(0.02)
    release()
    assert admitted.wait(PATIENT)
    waiting["thread"].join(PATIENT)
    assert slots.taken() == 0


def test_as_many_holders_as_slots_and_the_next_one_times_out(install):
    slots = install(count=2, wait=IMPATIENT)
    first, second = slots.acquire(), slots.acquire()
    assert slots.taken() == 2
    with pytest.raises(admission.SlotsBusy):
        slots.acquire()
    first()
    third = slots.acquire()
    second()
    third()
    assert slots.taken() == 0


def test_a_release_called_twice_gives_back_one_slot(install):
    slots = install(count=2, wait=IMPATIENT)
    release = slots.acquire()
    other = slots.acquire()
    release()
    release()
    assert slots.taken() == 1
    slots.acquire()
    # Still one held by `other` and one by the last acquire: the double release freed nothing.
    with pytest.raises(admission.SlotsBusy):
        slots.acquire()
    other()


def test_the_slots_of_a_killed_worker_are_reclaimed(install):
    slots = install(count=1, wait=IMPATIENT)
    pid = os.fork()
    if pid == 0:  # the "worker": takes the slot and dies without giving it back
        slots.acquire()
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(admission.SlotsBusy):
        slots.acquire()
    assert slots.reclaim(os.getpid()) == 0
    assert slots.reclaim(pid) == 1
    slots.acquire()()
    assert slots.reclaim(pid) == 0


def test_no_slots_means_admission_is_off():
    assert admission.slots_install(0, wait_seconds=1) is None
    assert admission.installed_slots() is None
    response = AdmissionMiddleware(ok)(RequestFactory().get(PORTAL_PAGE))
    assert response.content == b"served"


# The middleware.


@pytest.fixture
def light_pool_worker(monkeypatch):
    """This process as a worker of the light pool (`billingsite.ops.gunicorn.post_fork`)."""
    monkeypatch.setattr(admission, "_light_routes_only", False)
    admission.serve_light_routes_only()


@pytest.mark.parametrize("path", [QUOTE, "/healthz", "/readyz", "/metrics", "/no-such-page/"])
def test_a_light_pool_worker_serves_the_light_routes(light_pool_worker, path):
    response = AdmissionMiddleware(ok)(RequestFactory().post(path))
    assert (response.status_code, response.content) == (200, b"served")


@pytest.mark.parametrize("path", [PORTAL_PAGE, ESTIMATE_API, USAGE, "/admin/"])
def test_a_light_pool_worker_refuses_everything_else_with_a_421(light_pool_worker, path):
    served = []
    response = AdmissionMiddleware(lambda request: served.append(request) or ok(request))(
        RequestFactory().get(path)
    )
    assert not served
    assert response.status_code == 421
    assert json.loads(response.content)["code"] == "misdirected_request"


def test_a_page_sent_to_the_light_port_is_refused_through_the_whole_stack(
    light_pool_worker, client
):
    response = client.get(PORTAL_PAGE)
    assert response.status_code == 421
    assert response.json() == {
        "code": "misdirected_request",
        "message": "This port serves only the short machine-facing calls (quote, health checks, "
        "metrics, payment and mail notifications); send other requests to the main port.",
        "field": None,
    }
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.parametrize("path", [QUOTE, "/healthz", "/readyz", "/metrics", "/no-such-page/"])
def test_light_requests_pass_while_every_slot_is_taken(install, path):
    slots = install(count=1, wait=IMPATIENT)
    release = slots.acquire()
    response = AdmissionMiddleware(ok)(RequestFactory().post(path))
    release()
    assert response.status_code == 200
    assert response.content == b"served"


def test_a_heavy_page_gets_the_branded_503_when_the_wait_runs_out(install):
    slots = install(count=1, wait=IMPATIENT)
    release = slots.acquire()
    served = []
    response = AdmissionMiddleware(lambda request: served.append(request) or ok(request))(
        RequestFactory().get(PORTAL_PAGE)
    )
    release()
    assert not served
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response["Content-Type"].startswith("text/html")
    assert "We are busy" in response.content.decode()
    assert "系统繁忙" in response.content.decode()


def test_a_heavy_api_call_gets_the_json_503(install):
    slots = install(count=1, wait=IMPATIENT)
    release = slots.acquire()
    request = RequestFactory().get(ESTIMATE_API)
    response = AdmissionMiddleware(ok)(request)
    release()
    assert response.status_code == 503
    assert json.loads(response.content) == {
        "code": "server_busy",
        "message": "The server is busy; try again in a few seconds.",
        "field": None,
    }
    # The request log names the route of the refused request.
    assert request.resolver_match.view_name == "api-customer-estimate"


def test_a_heavy_request_waits_for_a_slot_then_runs(install):
    slots = install(count=1)
    release = slots.acquire()
    started = threading.Event()

    def view(request):
        started.set()
        return ok(request)

    waiting = in_thread(lambda: AdmissionMiddleware(view)(RequestFactory().get(PORTAL_PAGE)))
    assert not started.wait(0.02)
    release()
    waiting["thread"].join(PATIENT)
    assert waiting["value"].content == b"served"
    assert slots.taken() == 0


def test_a_heavy_request_holds_its_slot_while_it_runs(install):
    slots = install(count=1, wait=IMPATIENT)
    running, finish = threading.Event(), threading.Event()

    def view(request):
        running.set()
        finish.wait(PATIENT)
        return ok(request)

    first = in_thread(lambda: AdmissionMiddleware(view)(RequestFactory().get(PORTAL_PAGE)))
    assert running.wait(PATIENT)
    assert AdmissionMiddleware(ok)(RequestFactory().get(ESTIMATE_API)).status_code == 503
    assert AdmissionMiddleware(ok)(RequestFactory().post(QUOTE)).status_code == 200
    finish.set()
    first["thread"].join(PATIENT)
    assert first["value"].status_code == 200
    assert slots.taken() == 0


def test_the_slot_comes_back_when_the_view_raises(install):
    slots = install(count=1, wait=IMPATIENT)

    def broken(request):
        raise ValueError("bug")

    with pytest.raises(ValueError, match="bug"):
        AdmissionMiddleware(broken)(RequestFactory().get(PORTAL_PAGE))
    assert slots.taken() == 0


# Closing a response sends request_finished, which looks at the database connections.
@pytest.mark.django_db
def test_a_streamed_response_holds_its_slot_until_the_server_closes_it(install):
    slots = install(count=1, wait=IMPATIENT)
    response = AdmissionMiddleware(lambda request: StreamingHttpResponse(iter([b"a", b"b"])))(
        RequestFactory().get("/api/v1/accounting/invoices/")
    )
    assert slots.taken() == 1
    # The client went away before reading a byte: the server still closes the response.
    response.close()
    assert slots.taken() == 0


def test_light_slots_cap_the_light_requests_apart_from_the_heavy_ones(install):
    heavy = install(count=1, light=1, wait=IMPATIENT)
    light = admission.installed_light_slots()
    assert light is not None
    release = light.acquire()
    # A quote waits only for another light request, and answers 503 (JSON) when that lasts.
    response = AdmissionMiddleware(ok)(RequestFactory().post(QUOTE))
    assert response.status_code == 503
    assert json.loads(response.content)["code"] == "server_busy"
    # The pages' slot is not taken by light requests.
    assert AdmissionMiddleware(ok)(RequestFactory().get(PORTAL_PAGE)).status_code == 200
    release()
    assert AdmissionMiddleware(ok)(RequestFactory().post(QUOTE)).status_code == 200
    assert (heavy.taken(), light.taken()) == (0, 0)


def test_light_slots_without_heavy_slots_are_off():
    assert admission.slots_install(0, light=2, wait_seconds=1) is None
    assert admission.installed_light_slots() is None


def test_every_light_route_names_a_url():
    for name in admission.LIGHT_ROUTES:
        assert reverse(name)
