"""Unit tests of the source's building blocks (no HTTP): token store, conversion, order proof,
redaction, the sync lock."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from pipelines.lock import AlreadyRunning, SyncLock
from sources.instamojo.convert import ArrowConverter
from sources.instamojo.errors import (
    RecordError,
    RedactingFilter,
    redact,
    register_secret,
)
from sources.instamojo.resources.payments import NewestFirstProof
from sources.instamojo.schema import PAYMENTS, PAYOUTS
from sources.instamojo.token_store import (
    TokenStore,
    TokenStoreError,
    choose_refresh_token,
    fingerprint,
)

SYNCED = datetime(2026, 1, 1, tzinfo=UTC)


def payment(**overrides):
    record = {
        "id": "MOJO1", "title": "t", "status": True, "link": None,
        "product": "https://x/v2/products/shoe/", "seller": "https://x/v2/users/u1/", "currency": "INR",
        "amount": "1000.00", "name": "b", "email": "b@example.com", "phone": "+91", "payout": None,
        "fees": "23.00", "total_taxes": "4.14", "cases": [], "instrument_type": "CARD",
        "billing_instrument": "Domestic", "failure": None, "created_at": "2026-01-02T03:04:05.123456Z",
        "updated_at": "2026-01-02T03:04:06Z", "tax_invoice_id": "1", "resource_uri": "https://x/v2/payments/MOJO1/",
    }
    record.update(overrides)
    return record


def converter(table=PAYMENTS):
    return ArrowConverter(table, merchant="acme", endpoint="/v2/payments/", synced_at=SYNCED)


class TestTokenStore:
    def test_put_is_atomic_0600_and_never_in_repr(self, tmp_path):
        store = TokenStore(tmp_path / "tokens")
        entry = store.put("acme", "refresh-secret-123", ["payments:read"])
        assert stat.S_IMODE(os.stat(store.file_of("acme")).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o700
        assert "refresh-secret-123" not in repr(entry) and "refresh-secret-123" not in repr(store.merchants())
        assert store.get("acme").refresh_token == "refresh-secret-123"
        assert store.get("acme").scopes == ("payments:read",)
        # no temp files left behind: one file per merchant (and the lock folder)
        assert sorted(p.name for p in store.path.iterdir()) == [".locks", "acme.json"]

    def test_an_earlier_single_file_store_is_moved_into_the_folder(self, tmp_path):
        import json

        legacy = tmp_path / "instamojo.tokens.json"
        legacy.write_text(json.dumps({"version": 1, "merchants": {
            "acme": {"refresh_token": "old-acme-token", "scopes": ["payments:read"], "updated_at": "x",
                     "config_fingerprint": None},
            "globex": {"refresh_token": "old-globex-token", "scopes": [], "updated_at": "y"},
        }}))
        store = TokenStore(tmp_path / "tokens")
        assert {m: e.refresh_token for m, e in store.merchants().items()} == {
            "acme": "old-acme-token", "globex": "old-globex-token"}
        assert not legacy.exists()
        assert stat.S_IMODE(os.stat(store.file_of("globex")).st_mode) == 0o600

    def test_a_path_ending_in_json_means_the_folder_beside_it(self, tmp_path):
        store = TokenStore(tmp_path / "t.json")
        store.put("acme", "r1")
        assert store.path == tmp_path / "t" and store.file_of("acme").exists()

    def test_unusable_merchant_names_are_refused(self, tmp_path):
        store = TokenStore(tmp_path / "tokens")
        for bad in ("../../etc/passwd", "a b", "$(touch x)", "Robert'); DROP TABLE x;--", "", ".hidden"):
            with pytest.raises(TokenStoreError, match="not usable"):
                store.put(bad, "r1")
        assert not (tmp_path / "etc").exists()

    def test_write_probe_names_a_read_only_folder(self, tmp_path, read_only_folder):
        store = TokenStore(tmp_path / "tokens")
        store.check_writable()  # writable: fine, and nothing left behind
        assert [p.name for p in store.path.iterdir()] == []
        folder = read_only_folder(tmp_path / "ro", contents={"tokens/acme.json": "{}"})
        with pytest.raises(TokenStoreError, match=f"{folder / 'tokens'} is not writable.*Read-only file system"):
            TokenStore(folder / "tokens").check_writable()

    def test_put_keeps_scopes_when_not_given_and_remove(self, tmp_path):
        store = TokenStore(tmp_path / "t.json")
        store.put("acme", "r1", ["a", "b"])
        store.put("acme", "r2")
        assert store.get("acme").scopes == ("a", "b") and store.get("acme").refresh_token == "r2"
        assert store.remove("acme") is True and store.get("acme") is None and store.remove("acme") is False

    def test_malformed_file_names_itself(self, tmp_path):
        store = TokenStore(tmp_path / "tokens")
        store.path.mkdir()
        path = store.file_of("acme")
        path.write_text("{not json")
        with pytest.raises(TokenStoreError, match=str(path)):
            store.get("acme")
        with pytest.raises(TokenStoreError, match=str(path)):
            store.merchants()

    def test_choose_refresh_token_precedence(self, tmp_path):
        store = TokenStore(tmp_path / "t.json")
        assert choose_refresh_token("acme", None, store) is None
        # only configured: use it, remember its fingerprint
        assert choose_refresh_token("acme", "cfg-1", store) == ("cfg-1", fingerprint("cfg-1"))
        # stored token (e.g. rotated) supersedes the same configured token
        store.put("acme", "rotated-2", config_fingerprint=fingerprint("cfg-1"))
        assert choose_refresh_token("acme", "cfg-1", store) == ("rotated-2", None)
        # a newly configured token wins over the stored one
        assert choose_refresh_token("acme", "cfg-3", store) == ("cfg-3", fingerprint("cfg-3"))
        # no configured token: the stored one
        assert choose_refresh_token("acme", None, store) == ("rotated-2", None)


class TestConversion:
    def test_money_is_exact_decimal_and_ids_come_from_urls(self):
        table = converter().convert([payment(payout="https://x/v2/payouts/MOJO9/"), payment(id="MOJO2", payout="BARE7")])
        assert table.schema.field("amount").type == pa.decimal128(18, 2)
        assert table.column("amount").to_pylist() == [Decimal("1000.00")] * 2
        assert table.column("total_taxes").to_pylist() == [Decimal("4.14")] * 2
        assert table.column("payout_id").to_pylist() == ["MOJO9", "BARE7"]
        assert table.column("seller_id").to_pylist() == ["u1", "u1"]
        assert table.column("product_slug").to_pylist() == ["shoe", "shoe"]
        assert table.column("created_at").to_pylist()[0] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
        assert table.column("merchant").to_pylist() == ["acme", "acme"]

    def test_json_number_amounts_do_not_pass_through_binary_float_error(self):
        table = converter().convert([payment(amount=0.1), payment(id="M2", amount=1234567.89)])
        assert table.column("amount").to_pylist() == [Decimal("0.10"), Decimal("1234567.89")]

    def test_status_stays_tri_state(self):
        table = converter().convert([payment(status=True), payment(id="2", status=False), payment(id="3", status=None)])
        assert table.column("status").to_pylist() == [True, False, None]

    def test_non_numeric_amount_loads_null_with_its_text_kept(self, caplog):
        conv = converter()
        with caplog.at_level(logging.WARNING):
            table = conv.convert([payment(), payment(id="MOJO-BAD", amount="N/A"), payment(id="M3", fees="1.234")])
        assert table.column("amount").to_pylist() == [Decimal("1000.00"), None, Decimal("1000.00")]
        assert table.column("amount__v_text").to_pylist() == [None, "N/A", None]
        assert table.column("fees__v_text").to_pylist() == [None, None, "1.234"]
        assert ("MOJO-BAD", "amount", "N/A") in conv.notes.non_numeric_money
        assert "MOJO-BAD" in caplog.text and "'amount'" in caplog.text and "acme" in caplog.text

    def test_unknown_field_is_kept_and_reported(self):
        conv = converter()
        table = conv.convert([payment(), payment(id="2", emi_tenure=3)])
        assert table.column("emi_tenure").to_pylist() == [None, "3"]
        assert conv.notes.unknown_fields == {"emi_tenure"}

    def test_bad_timestamp_names_record_and_field(self):
        with pytest.raises(RecordError) as err:
            converter().convert([payment(), payment(id="MOJO-T", created_at="yesterday")])
        message = str(err.value)
        assert "MOJO-T" in message and "created_at" in message and "acme" in message and "/v2/payments/" in message

    def test_payout_figures_are_decimals(self):
        payout = {"id": "P1", "paid_out_at": "2026-01-05T06:30:00Z", "paid_amount": "972.86", "sales_amount": "1000.00",
                  "fee_amount": "23.00", "total_tax_amount": "4.14", "payout_type": 0}
        table = ArrowConverter(PAYOUTS, merchant="acme", endpoint="/v2/payouts/", synced_at=SYNCED).convert([payout])
        assert table.column("paid_amount").to_pylist() == [Decimal("972.86")]
        assert table.column("held_amount").to_pylist() == [None]
        assert table.column("payout_type").type == pa.int64()


class TestNewestFirstProof:
    def pages(self, *stamps):
        return [[{"created_at": f"2026-01-{d:02d}T00:00:00Z"} for d in page] for page in stamps]

    def test_sorted_newest_first_holds(self):
        proof = NewestFirstProof("created_at")
        for page in self.pages([9, 8, 8], [7, 5], [5, 1]):
            holds, newest = proof.observe(page)
        assert holds and newest == datetime(2026, 1, 5, tzinfo=UTC)
        assert proof.page_oldest == datetime(2026, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize("pages", [([9, 8], [9, 1]), ([1, 2], [3, 4]), ([5, 9], [1])])
    def test_any_disorder_disproves_for_good(self, pages):
        proof = NewestFirstProof("created_at")
        results = [proof.observe(p)[0] for p in self.pages(*pages)]
        assert results[-1] is False
        assert proof.observe(self.pages([1])[0])[0] is False


class TestRedaction:
    def test_registered_secrets_and_token_shapes_are_hidden(self):
        register_secret("sup3r-s3cret-value")
        text = redact("client_secret=sup3r-s3cret-value&refresh_token=abcdefgh Authorization: Bearer xyz123456 ok")
        assert "sup3r-s3cret-value" not in text and "abcdefgh" not in text and "xyz123456" not in text
        assert text.endswith("ok")

    def test_logging_filter_redacts(self, caplog):
        register_secret("another-secret-999")
        logger = logging.getLogger("test.redaction")
        logger.addFilter(RedactingFilter())
        with caplog.at_level(logging.INFO):
            logger.info("token is %s", "another-secret-999")
        assert "another-secret-999" not in caplog.text and "***" in caplog.text


class TestSyncLock:
    def test_second_holder_is_refused_at_once_and_lock_dies_with_its_process(self, tmp_path):
        path = tmp_path / "sync.lock"
        holder = subprocess.Popen(
            [sys.executable, "-c",
             "import sys,time; sys.path.insert(0, '.');"
             "from pipelines.lock import SyncLock;"
             f"l = SyncLock('{path}').__enter__(); print('held', flush=True); time.sleep(60)"],
            stdout=subprocess.PIPE, text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"):
                with SyncLock(path):
                    pass
        finally:
            holder.kill()
            holder.wait()
        with SyncLock(path):  # the kernel released the dead holder's lock
            pass


class TestFastAndRobustParsersAgree:
    """Pages parsed by Arrow's JSON reader and records parsed into dicts give the same table."""

    @staticmethod
    def pages(records, size=2):
        import orjson

        return [orjson.dumps({"count": len(records), "next": None, "payments": records[i:i + size]})
                for i in range(0, len(records), size)]

    def test_same_table_from_pages_and_from_dicts(self):
        records = [
            payment(),
            payment(id="M2", status=None, payout="https://x/v2/payouts/P9/", cases=["https://x/v2/cases/1/"]),
            payment(id="M3", status=False, failure={"reason": "AUTHENTICATION_FAILED", "message": "3DS failed"}),
            payment(id="M4", amount="N/A"),
            payment(id="M5", emi_tenure=6),
        ]
        fast_conv, robust_conv = converter(), converter()
        fast = fast_conv.convert_pages(self.pages(records), "payments")
        robust = robust_conv.convert(records)
        assert fast_conv.notes.fallback_batches == 0
        assert fast.drop_columns(["_synced_at"]).to_pylist() == robust.drop_columns(["_synced_at"]).to_pylist()
        assert fast.column("failure_reason").to_pylist()[2] == "AUTHENTICATION_FAILED"
        assert fast.column("cases").to_pylist()[:2] == ["[]", '["https://x/v2/cases/1/"]']
        assert fast.column("emi_tenure").to_pylist() == [None] * 4 + ["6"]

    def test_unexpected_json_types_fall_back_to_the_robust_parser(self):
        records = [payment(), payment(id="M2", amount=12.5, failure="GATEWAY_TIMEOUT", title=7)]
        conv = converter()
        table = conv.convert_pages(self.pages(records), "payments")
        assert conv.notes.fallback_batches == 1
        assert table.column("amount").to_pylist() == [Decimal("1000.00"), Decimal("12.50")]
        assert table.column("failure_reason").to_pylist() == [None, "GATEWAY_TIMEOUT"]
        assert table.column("title").to_pylist() == ["t", "7"]


def test_orders_split_into_child_tables_with_positions():
    from types import SimpleNamespace

    import orjson

    from sources.instamojo.resources.orders import OrderTables

    def conv(table, endpoint, **kw):
        return ArrowConverter(table, merchant="acme", endpoint=endpoint, synced_at=SYNCED, **kw)

    tables = OrderTables(SimpleNamespace(converter=conv))
    order = {
        "id": "o1", "created_at": "2026-01-01T00:00:00Z", "amount": "700.00", "order_status": "Fully Paid",
        "payments": [{"payment_id": "p1", "amount": "500.00", "status": "Success"},
                     {"payment_id": "p2", "amount": "200.00", "status": "Success"}],
        "items": [{"unit_price": "100.00", "quantity": 2, "amount": "200.00", "product": "https://x/v2/products/a/",
                   "variants": []},
                  {"unit_price": "500.00", "quantity": 1, "amount": "500.00", "product": "https://x/v2/products/b/",
                   "variants": [{"name": "Size", "value": "M"}, {"name": "Colour", "value": "Red"}]}],
    }
    empty = {"id": "o2", "created_at": "2026-01-02T00:00:00Z", "amount": "0.00", "payments": [], "items": None}
    body = orjson.dumps({"count": 2, "next": None, "orders": [order, empty]})
    out = {table.name: data for table, data in tables.split(tables.orders.convert_pages([body], "orders"))}
    assert out["orders"].column("id").to_pylist() == ["o1", "o2"] and "items" not in out["orders"].column_names
    assert out["order_payments"].select(["order_id", "payment_id", "amount"]).to_pylist() == [
        {"order_id": "o1", "payment_id": "p1", "amount": Decimal("500.00")},
        {"order_id": "o1", "payment_id": "p2", "amount": Decimal("200.00")},
    ]
    assert out["order_items"].select(["order_id", "item_index", "product_slug"]).to_pylist() == [
        {"order_id": "o1", "item_index": 0, "product_slug": "a"},
        {"order_id": "o1", "item_index": 1, "product_slug": "b"},
    ]
    assert out["order_item_variants"].select(["order_id", "item_index", "variant_index", "name", "value"]).to_pylist() == [
        {"order_id": "o1", "item_index": 1, "variant_index": 0, "name": "Size", "value": "M"},
        {"order_id": "o1", "item_index": 1, "variant_index": 1, "name": "Colour", "value": "Red"},
    ]
