"""A customer tops up by Alipay in Chinese, in Debian's chromium, against a fake Alipay gateway
(a tiny local server): it shows the cashier page, posts a correctly signed notification to our
notify URL when "paid", and sends the browser back to our return page, which shows the money;
the balance page shows the new balance."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from accounts.models import LedgerEntry, TopUp
from tests.accounts import payment_fakes as fakes
from tests.factories import CustomerFactory, CustomerUserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


class FakeAlipay(BaseHTTPRequestHandler):
    """GET /gateway.do?<alipay.trade.page.pay params>: the cashier; GET /pay?...: "pays"."""

    notify_url = ""

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/gateway.do":
            order = json.loads(params["biz_content"])
            pay = "/pay?" + urlencode(
                {
                    "out_trade_no": order["out_trade_no"],
                    "total_amount": order["total_amount"],
                    "return_url": params["return_url"],
                    "notify_url": params["notify_url"],
                }
            )
            html = (
                "<!DOCTYPE html><meta charset='utf-8'><title>支付宝收银台</title>"
                f"<p id='amount'>{order['total_amount']}</p><a id='pay' href='{pay}'>确认付款</a>"
            )
            self._answer(200, html.encode(), "text/html; charset=utf-8")
        elif url.path == "/pay":
            notification = fakes.alipay_notification(
                order_number=params["out_trade_no"],
                amount=params["total_amount"],
                trade_no="2026120122001400009999999999",
            )
            answer = requests.post(params["notify_url"], data=notification, timeout=10)
            assert answer.text == "success", answer.text
            self.send_response(302)
            self.send_header("Location", params["return_url"])
            self.end_headers()
        else:
            self._answer(404, b"", "text/plain")

    def _answer(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_alipay():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAlipay)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/gateway.do"
    server.shutdown()
    server.server_close()


def test_customer_tops_up_by_alipay_in_chinese(
    page, screenshot, settings, live_server, fake_alipay
):
    fakes.configure(settings, wechat=False)
    settings.BILLING_PUBLIC_BASE_URL = live_server.url
    settings.ALIPAY_GATEWAY = fake_alipay
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    customer = CustomerFactory(name="Nimbus Cloud Ltd", external_id="nimbus")
    link = CustomerUserFactory(customer=customer, user__username="lin")
    link.user.set_password(PASSWORD)
    link.user.save()

    page.goto("/")
    page.fill("input[name=username]", "lin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]:has-text('Log in')")
    page.wait_for_url("**/invoices/")
    page.click("button[name=language][value=zh-hans]")
    page.wait_for_load_state()
    page.click("nav.tabs a[href='/balance/']")
    page.wait_for_url("**/balance/")
    assert page.locator("#balance-now").inner_text() == "¥0.00"

    page.fill("#top-up-amount", "1288.00")
    page.check("input[name=method][value=alipay]")
    assert page.locator("input[name=method][value=wechat_pay]").count() == 0
    screenshot("portal-top-up-zh")
    page.click("#top-up-submit")
    page.wait_for_url(f"{fake_alipay}?**")
    assert page.locator("#amount").inner_text() == "1288.00"

    page.click("#pay")
    order = TopUp.objects.get(customer=customer)
    page.wait_for_url(f"**/balance/top-up/{order.number}/")
    assert page.locator("#top-up-state h2").inner_text() == "已收到付款"
    assert page.locator("#top-up-balance").inner_text() == "¥1,288.00"
    screenshot("portal-top-up-paid-zh")

    page.click("a:has-text('返回余额页')")
    page.wait_for_url("**/balance/")
    assert page.locator("#balance-now").inner_text() == "¥1,288.00"
    assert page.locator("#ledger").inner_text().count("2026120122001400009999999999") == 1
    [entry] = LedgerEntry.objects.filter(customer=customer)
    assert (entry.method, entry.reference, str(entry.amount.amount)) == (
        "alipay",
        "2026120122001400009999999999",
        "1288.00",
    )
