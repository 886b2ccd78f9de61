"""Endpoints, envelopes, every filter, pagination and its links, sort orders, over real HTTP."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from urllib.parse import parse_qsl, urlsplit

import pytest

from instamojo_sandbox.timeutil import iso, parse_instant, to_us

PAYMENT_FIELDS = ["id", "title", "payment_type", "status", "link", "product", "seller", "currency", "amount",
                  "name", "email", "phone", "payout", "fees", "total_taxes", "cases", "instrument_type",
                  "billing_instrument", "failure", "created_at", "updated_at", "tax_invoice_id", "resource_uri"]
PAYOUT_FIELDS = ["id", "recipient", "status", "paid_out_at", "currency", "paid_amount", "sales_amount", "fee_amount",
                 "total_tax_amount", "held_amount", "reversed_amount", "refunded_amount",
                 "affiliate_commission_amount", "partner_commission_amount", "payout_type", "resource_uri",
                 "shipping_fee"]
PRODUCT_FIELDS = ["title", "description", "status", "user", "slug", "shorturl", "currency", "base_price",
                  "min_price", "max_price", "pay_what_you_want", "limit_quantity", "purchased_quantity",
                  "discount_public", "requires_shipping", "ships_within_days", "start_date", "end_date", "venue",
                  "timezone", "redirect_url", "redirect_time", "webhook_url", "custom_note_success",
                  "is_signing_mandatory", "created_at", "resource_uri"]
ORDER_FIELDS = ["id", "title", "currency", "created_at", "buyer_email", "buyer_name", "buyer_phone", "buyer_address",
                "buyer_city", "buyer_state", "buyer_zip", "buyer_country", "amount", "order_status", "payments_uri",
                "payments", "items"]


def ids(records, key="id"):
    return [r[key] for r in records]


def test_user_endpoints_with_and_without_trailing_slash(client, sandbox):
    for path in ("/v2/user-info/", "/v2/user-info"):
        body = client.get(path).json()
        assert list(body) == ["full_name", "signup_date", "username", "city", "website"]
        assert body["username"] == client.merchant
    contact = client.get("/v2/user-contact").json()
    assert list(contact) == ["full_name", "email", "phone", "username", "account_id"]
    assert contact == sandbox.truth(client.merchant, "user_contact")
    assert len(contact["account_id"]) == 32


@pytest.mark.parametrize("endpoint,fields", [
    ("payments", PAYMENT_FIELDS), ("payouts", PAYOUT_FIELDS), ("products", PRODUCT_FIELDS), ("orders", ORDER_FIELDS),
])
def test_list_envelopes_and_fields(client, endpoint, fields):
    resp = client.get(f"/v2/{endpoint}")
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    expected = ["count", "num_pages", "next", "previous", "success", endpoint] if endpoint == "orders" else [
        "count", "next", "previous", "success", endpoint]
    assert list(body) == expected
    assert body["success"] is True
    assert body[endpoint], "the small profile has records on every list endpoint"
    for record in body[endpoint]:
        assert list(record) == fields


def test_every_record_once_across_pages_and_links_are_absolute(client, sandbox):
    truth = sandbox.truth(client.merchant, "payments")
    first = client.get("/v2/payments/").json()
    assert first["count"] == len(truth)
    assert first["previous"] is None
    assert first["next"] == f"{sandbox.base_url}/v2/payments/?page=2"
    served = client.all("/v2/payments", "payments")
    assert sorted(ids(served)) == sorted(ids(truth))
    assert len(set(ids(served))) == len(served)
    last_page = -(-len(truth) // 25)
    last = client.get("/v2/payments/", page=last_page).json()
    assert last["next"] is None
    assert last["previous"] == f"{sandbox.base_url}/v2/payments/?page={last_page - 1}"
    second = client.get("/v2/payments/", page=2).json()
    assert second["previous"] == f"{sandbox.base_url}/v2/payments/"  # page 1 has no page parameter


def test_links_carry_every_filter(client, sandbox):
    payouts = sandbox.truth(client.merchant, "payouts")
    biggest = max(payouts, key=lambda p: Decimal(p["sales_amount"]))
    body = client.get("/v2/payments/", payout=biggest["id"], seller=client.merchant).json()
    assert body["count"] > 25, "a busy payout of the small profile spans pages"
    query = dict(parse_qsl(urlsplit(body["next"]).query))
    assert query == {"payout": biggest["id"], "seller": client.merchant, "page": "2"}
    page2 = client.get(body["next"]).json()
    assert dict(parse_qsl(urlsplit(page2["previous"]).query)) == {"payout": biggest["id"], "seller": client.merchant}


def test_orders_num_pages(client, sandbox):
    n = len(sandbox.truth(client.merchant, "orders"))
    body = client.get("/v2/orders/").json()
    assert body["count"] == n and body["num_pages"] == -(-n // 25)


def test_page_out_of_range_or_invalid_is_404(client):
    body = client.get("/v2/payments/").json()
    pages = -(-body["count"] // 25)
    for page in (pages + 1, 0, -1, "abc"):
        resp = client.get("/v2/payments/", page=page)
        assert resp.status_code == 404 and resp.json() == {"detail": "Invalid page."}
    empty = client.get("/v2/payments/", id="NOPE")
    assert empty.status_code == 200 and empty.json() == {"count": 0, "next": None, "previous": None, "success": True,
                                                         "payments": []}


def test_payment_filters(client, sandbox):
    truth = sandbox.truth(client.merchant, "payments")
    sample = next(p for p in truth if p["payout"] and p["product"])
    assert ids(client.all("/v2/payments/", "payments", id=sample["id"])) == [sample["id"]]

    payout_id = sample["payout"].rstrip("/").split("/")[-1]
    expected = {p["id"] for p in truth if p["payout"] == sample["payout"]}
    assert set(ids(client.all("/v2/payments/", "payments", payout=payout_id))) == expected

    slug = sample["product"].rstrip("/").split("/")[-1]
    expected = {p["id"] for p in truth if p["product"] == sample["product"]}
    assert set(ids(client.all("/v2/payments/", "payments", product=slug))) == expected

    orders = sandbox.truth(client.merchant, "orders")
    order = next(o for o in orders if len(o["payments"]) > 1) if any(len(o["payments"]) > 1 for o in orders) else orders[0]
    served = client.all("/v2/payments/", "payments", order_id=order["id"])
    assert set(ids(served)) == {p["payment_id"] for p in order["payments"]}
    assert client.get(order["payments_uri"]).json()["count"] == len(order["payments"])

    account = sandbox.truth(client.merchant, "user_contact")["account_id"]
    for seller in (client.merchant, account):
        assert client.get("/v2/payments/", seller=seller).json()["count"] == len(truth)
    assert client.get("/v2/payments/", seller=sandbox.merchants[1]).json()["count"] == 0
    # combined filters intersect
    assert ids(client.all("/v2/payments/", "payments", id=sample["id"], payout=payout_id)) == [sample["id"]]
    assert client.get("/v2/payments/", id=sample["id"], payout="MOJO-OTHER").json()["count"] == 0


def test_buyer_filter_by_username_or_account_id(client, sandbox):
    state = sandbox.store.state(client.merchant)
    index = state.colls["payments"].indexes["buyer"]
    username = next(v for v in index if not all(c in "0123456789abcdef" for c in v) or len(v) != 32)
    by_name = client.all("/v2/payments/", "payments", buyer=username)
    assert by_name and {p["id"] for p in by_name} == {r.id for r in index[username]}
    account_ids = [v for v in index if index[v] == index[username] and v != username]
    assert account_ids
    assert set(ids(client.all("/v2/payments/", "payments", buyer=account_ids[0]))) == set(ids(by_name))
    assert client.get("/v2/payments/", buyer="nobody").json()["count"] == 0


def test_payout_time_filters_are_inclusive(client, sandbox):
    payouts = sandbox.truth(client.merchant, "payouts")
    middle = payouts[len(payouts) // 2]
    after = client.all("/v2/payouts/", "payouts", start_time=middle["paid_out_at"])
    assert set(ids(after)) == {p["id"] for p in payouts if p["paid_out_at"] >= middle["paid_out_at"]}
    before = client.all("/v2/payouts/", "payouts", end_time=middle["paid_out_at"])
    assert set(ids(before)) == {p["id"] for p in payouts if p["paid_out_at"] <= middle["paid_out_at"]}
    both = client.all("/v2/payouts/", "payouts", start_time=middle["paid_out_at"], end_time=middle["paid_out_at"])
    assert ids(both) == [middle["id"]]
    assert ids(client.all("/v2/payouts/", "payouts", id=middle["id"])) == [middle["id"]]
    # offsets are understood
    moment = parse_instant(middle["paid_out_at"]).astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    assert ids(client.all("/v2/payouts/", "payouts", start_time=moment.isoformat(),
                          end_time=moment.isoformat())) == [middle["id"]]


@pytest.mark.parametrize("endpoint", ["products", "orders"])
def test_created_filters_are_strict(client, sandbox, endpoint):
    truth = sandbox.truth(client.merchant, endpoint)
    pivot = truth[len(truth) // 2]["created_at"]
    after = client.all(f"/v2/{endpoint}/", endpoint, created_after=pivot)
    key = "slug" if endpoint == "products" else "id"
    assert {r[key] for r in after} == {r[key] for r in truth if r["created_at"] > pivot}
    before = client.all(f"/v2/{endpoint}/", endpoint, created_before=pivot)
    assert {r[key] for r in before} == {r[key] for r in truth if r["created_at"] < pivot}
    assert client.all(f"/v2/{endpoint}/", endpoint, created_after=pivot, created_before=pivot) == []


def test_product_status_filter(client, sandbox_factory, make_client):
    sb = sandbox_factory(days=30)
    c = make_client(sb)
    truth = sb.truth(c.merchant, "products")
    labels = {20: "Live", 30: "Archived", 33: "Pending Moderation"}
    seen = set()
    for code, label in labels.items():
        served = c.all("/v2/products/", "products", status=code)
        assert {p["slug"] for p in served} == {p["slug"] for p in truth if p["status"] == label}
        seen |= {p["status"] for p in served}
    assert "Live" in seen
    resp = c.get("/v2/products/", status=99)
    assert resp.status_code == 400 and "status" in resp.json()


def test_orders_pending_filter(client, sandbox):
    truth = sandbox.truth(client.merchant, "orders")
    pending = {o["id"] for o in truth if not any(p["status"] == "Success" for p in o["payments"])}
    assert pending and pending != {o["id"] for o in truth}
    for value in ("True", "true", "1"):
        assert set(ids(client.all("/v2/orders/", "orders", pending=value))) == pending
    for value in ("False", "0"):
        assert set(ids(client.all("/v2/orders/", "orders", pending=value))) == {o["id"] for o in truth} - pending
    assert client.get("/v2/orders/", pending="maybe").status_code == 400


def test_bad_filter_values_are_400_and_empty_or_unknown_ones_ignored(client, sandbox):
    resp = client.get("/v2/orders/", created_after="yesterday")
    assert resp.status_code == 400 and resp.json() == {"created_after": ["Enter a valid date/time."]}
    resp = client.get("/v2/payouts/", start_time="2024-13-45T00:00:00Z")
    assert resp.status_code == 400 and "start_time" in resp.json()
    n = len(sandbox.truth(client.merchant, "payments"))
    assert client.get("/v2/payments/", id="", colour="blue").json()["count"] == n


def test_detail_endpoints_and_resource_uris(client, sandbox):
    payment = sandbox.truth(client.merchant, "payments")[0]
    assert client.get(payment["resource_uri"]).json() == payment
    payout = sandbox.truth(client.merchant, "payouts")[0]
    assert client.get(payout["resource_uri"]).json() == payout
    product = sandbox.truth(client.merchant, "products")[0]
    assert client.get(product["resource_uri"]).json() == product
    order = sandbox.truth(client.merchant, "orders")[0]
    assert client.get(f"/v2/orders/{order['id']}").json() == order
    assert client.get("/v2/payments/MOJO0000/").status_code == 404
    # another merchant's record is not found
    other = sandbox.truth(sandbox.merchants[1], "payments")[0]
    assert client.get(f"/v2/payments/{other['id']}/").status_code == 404


def test_product_covers(client, sandbox):
    covers = sandbox.truth(client.merchant, "product_covers")
    slug = next(s for s, c in covers.items() if c)
    body = client.get(f"/v2/products/{slug}/covers").json()
    assert list(body) == ["count", "next", "previous", "success", "covers"]
    assert body["covers"] == covers[slug]
    assert [c["position"] for c in body["covers"]] == list(range(len(covers[slug])))
    assert set(body["covers"][0]) == {"id", "image", "thumbnail", "position"}
    empty = next((s for s, c in covers.items() if not c), None)
    if empty:
        assert client.get(f"/v2/products/{empty}/covers/").json()["count"] == 0
    assert client.get("/v2/products/no-such-product/covers/").status_code == 404


def test_unknown_paths_and_methods(client, sandbox):
    assert client.get("/v2/refunds/").status_code == 404
    assert client.http.post(sandbox.url("/v2/payments/"), timeout=30).status_code == 405


def test_each_merchant_sees_only_its_own_data(sandbox, make_client):
    for merchant in sandbox.merchants:
        c = make_client(sandbox, merchant)
        served = c.all("/v2/payments/", "payments")
        assert sorted(ids(served)) == sorted(ids(sandbox.truth(merchant, "payments")))
        seller = sandbox.truth(merchant, "user_contact")["account_id"]
        assert all(p["seller"].endswith(f"/v2/users/{seller}/") for p in served)
    a, b = (set(ids(sandbox.truth(m, "payments"))) for m in sandbox.merchants)
    assert not a & b


@pytest.mark.parametrize("order", ["newest_first", "oldest_first", "unordered"])
def test_sort_orders(sandbox_factory, make_client, order):
    sb = sandbox_factory(sort_order=order, page_size=40)
    c = make_client(sb)
    for endpoint, key in (("payments", "created_at"), ("payouts", "paid_out_at"), ("orders", "created_at")):
        served = c.all(f"/v2/{endpoint}/", endpoint)
        keys = [r[key] for r in served]
        assert sorted(ids(served)) == sorted(ids(sb.truth(c.merchant, endpoint)))
        if order == "newest_first":
            assert keys == sorted(keys, reverse=True)
        elif order == "oldest_first":
            assert keys == sorted(keys)
        else:
            assert keys not in (sorted(keys), sorted(keys, reverse=True))
            assert ids(c.all(f"/v2/{endpoint}/", endpoint)) == ids(served)  # a fixed shuffle


def test_page_size_and_sort_order_change_at_run_time(client, sandbox):
    sandbox.configure(page_size=7, sort_order="oldest_first")
    body = client.get("/v2/payments/").json()
    assert len(body["payments"]) == 7
    assert body["payments"][0]["id"] == sandbox.truth(client.merchant, "payments")[0]["id"]


def test_timestamps_and_money_formats(client, sandbox):
    for p in sandbox.truth(client.merchant, "payments")[:50]:
        for field in ("created_at", "updated_at"):
            assert len(p[field]) == 27 and p[field].endswith("Z")
            assert iso(to_us(parse_instant(p[field]))) == p[field]
        for field in ("amount", "fees", "total_taxes"):
            assert Decimal(p[field]).as_tuple().exponent == -2
