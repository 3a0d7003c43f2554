"""Online top-ups: a customer pays by Alipay or WeChat Pay and the money reaches the ledger
exactly once (issue 15, part A).

- `providers.py`: what every provider answers (`ProviderPayment`), the registry of methods and
  the balance page's list of top-up options (the hook where bank transfer plugs in);
- `alipay.py`, `wechat.py`: the provider SDKs (python-alipay-sdk, wechatpayv3) behind it;
- `services.py`: ordering, settling (the one place a payment becomes a deposit), the sweep;
- `reconciliation.py`: the daily provider-vs-ledger report per method; `tasks.py`: the beat task.
Above this domain: the providers' notification endpoints (`accounts.api.payments`), finance's
orders and reconciliation (`accounts.admin.payments`), the portal pages (`invoices.portal.topup`).
"""
