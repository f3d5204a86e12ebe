"""The `http` supplier client against a local fake supplier over real HTTP: signatures, retries with the same
request id, lost answers, refusals, callbacks."""
from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path
from urllib.parse import urlencode as enc

import pytest

from config.settings import ConfigError, parse_settings
from core.errors import SupplierError
from suppliers import build_suppliers
from suppliers.http import HttpSupplier, make_sign
from tests.fake_supplier import FakeSupplier


@pytest.fixture
async def fake():
    server = await FakeSupplier().start()
    yield server
    await server.stop()


def client_for(fake: FakeSupplier, tmp_path: Path, **over) -> HttpSupplier:  # noqa: ANN003
    settings = parse_settings({"suppliers": {"up": fake.config(**over)}}, tmp_path, env={})
    return build_suppliers(settings)["up"]  # type: ignore[return-value]


async def test_the_sign_is_md5_over_sorted_non_empty_parameters_plus_the_key():
    params = {"b": "2", "a": "1", "empty": "", "sign": "ignored"}
    expected = hashlib.md5(b"a=1&b=2&key=k").hexdigest().upper()
    assert make_sign(params, "k") == expected
    assert make_sign(params, "k", "hmac-sha256", case="lower") == hmac.new(b"k", b"a=1&b=2", "sha256").hexdigest()


@pytest.mark.parametrize("sign,body", [("md5", "form"), ("hmac-sha256", "json")])
async def test_given_a_signed_api_when_the_shop_asks_then_balance_products_and_a_purchase_come_back(
        tmp_path, sign, body):
    fake = await FakeSupplier(sign=sign, body=body).start()
    client = client_for(fake, tmp_path)
    try:
        assert await client.balance() == 100_000
        products = {p.sku: p for p in await client.products()}
        assert products["SUP-GAME-10"].price == 850 and products["SUP-GAME-10"].stock == 1000
        assert products["SUP-CM-30"].stock is None
        codes = await client.buy("SUP-GAME-10", 3, "R-1")
        assert len(codes) == 3 and fake.purchases == {"R-1": 1}
        assert await client.check_code("SUP-GAME-10", codes[0]) == "valid"
        fake.used_codes.add(codes[0])
        assert await client.check_code("SUP-GAME-10", codes[0]) == "used"
        assert await client.check_code("SUP-GAME-10", "NOPE") == "invalid"
        assert fake.bad_signatures == 0
    finally:
        await client.aclose()
        await fake.stop()


async def test_a_wrong_secret_is_refused_by_the_supplier_and_not_retried(fake, tmp_path):
    client = client_for(fake, tmp_path, secret="wrong")
    with pytest.raises(SupplierError) as err:
        await client.buy("SUP-GAME-10", 1, "R-1")
    await client.aclose()
    assert not err.value.retryable and err.value.code == "40001"
    assert fake.bad_signatures == 1 and fake.purchases == {}


async def test_given_500s_and_a_slow_answer_the_client_retries_with_the_same_request_id_and_buys_once(fake, tmp_path):
    client = client_for(fake, tmp_path)
    fake.faults["/api/buy"] = ["500", "slow"]
    codes = await client.buy("SUP-GAME-10", 2, "R-2")
    await client.aclose()
    assert len(codes) == 2
    buys = [p for path, p in fake.requests if path == "/api/buy"]
    assert len(buys) == 2 and {p["request_id"] for p in buys} == {"R-2"}
    assert fake.purchases == {"R-2": 1}


async def test_given_a_purchase_whose_answer_is_lost_the_retry_gets_the_same_codes_and_it_is_bought_once(
        fake, tmp_path):
    client = client_for(fake, tmp_path)
    fake.faults["/api/buy"] = ["lose"]
    codes = await client.buy("SUP-GAME-10", 2, "R-3")
    await client.aclose()
    assert codes == fake.orders["R-3"].codes
    assert fake.purchases == {"R-3": 1} and len([1 for path, _ in fake.requests if path == "/api/buy"]) == 2


async def test_a_supplier_that_refuses_a_used_request_id_is_asked_for_that_order_instead(fake, tmp_path):
    client = client_for(fake, tmp_path)
    fake.duplicate_error = True
    fake.faults["/api/buy"] = ["lose"]
    codes = await client.buy("SUP-GAME-10", 1, "R-4")
    await client.aclose()
    assert codes == fake.orders["R-4"].codes and fake.purchases == {"R-4": 1}
    assert [path for path, _ in fake.requests] == ["/api/buy", "/api/buy", "/api/query"]


async def test_timeouts_on_every_attempt_end_in_a_retryable_error(fake, tmp_path):
    client = client_for(fake, tmp_path, retries=1)
    fake.faults["/api/buy"] = ["timeout", "timeout"]
    with pytest.raises(SupplierError) as err:
        await client.buy("SUP-GAME-10", 1, "R-5")
    await client.aclose()
    assert err.value.retryable and "Timeout" in str(err.value)


async def test_business_refusals_are_final_unless_configured_as_retryable(fake, tmp_path):
    client = client_for(fake, tmp_path, answer={"retry": ["50002"], "duplicate": ["30001"]})
    fake.refuse["/api/buy"] = ["50001", "50002"]
    with pytest.raises(SupplierError) as final:
        await client.buy("SUP-GAME-10", 1, "R-6")
    with pytest.raises(SupplierError) as busy:
        await client.buy("SUP-GAME-10", 1, "R-6")
    await client.aclose()
    assert not final.value.retryable and busy.value.retryable
    other = client_for(fake, tmp_path)
    with pytest.raises(SupplierError):
        await other.buy("NOT-THERE", 1, "R-7")
    await other.aclose()


async def test_a_topup_is_pending_then_done_by_query_and_callbacks_are_verified(fake, tmp_path):
    client = client_for(fake, tmp_path, callback_url="http://127.0.0.1:1/supplier/up/callback")
    result = await client.topup("SUP-CM-30", "13800138000", "T-1")
    assert result.status == "pending" and result.upstream_id.startswith("UP")
    assert fake.orders["T-1"].account == "13800138000" and fake.orders["T-1"].notify_url.endswith("/callback")
    fake.finish("T-1", "success")
    assert (await client.topup_status("T-1")).status == "done"
    again = await client.topup("SUP-CM-30", "13800138000", "T-1")  # a retry: the same top-up, not a second
    assert again.status == "done" and fake.purchases == {"T-1": 1}
    body = urlencode(fake.callback_body("T-1"))
    assert client.parse_callback(body, "application/x-www-form-urlencoded").status == "done"
    with pytest.raises(SupplierError):
        client.parse_callback(urlencode(fake.callback_body("T-1", wrong_sign=True)), "")
    with pytest.raises(SupplierError):
        client.parse_callback(b'{"request_id": "T-1", "status": "success"}', "application/json")
    await client.aclose()


def urlencode(d: dict) -> bytes:
    return enc(d).encode()


async def test_codes_never_reach_the_log(fake, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    client = client_for(fake, tmp_path)
    fake.faults["/api/buy"] = ["500", "lose"]
    codes = await client.buy("SUP-GAME-10", 2, "R-8")
    await client.aclose()
    assert codes and not any(c in caplog.text for c in codes)


def test_supplier_settings_are_checked_with_messages_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": {"up": {"base_url": "ftp://x", "timeout": 30, "retries": 3},
                                      "bad name": {}}}, tmp_path, env={})
    text = str(err.value)
    assert "suppliers.bad name" in text
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": {"up": {"base_url": "ftp://x", "timeout": 30, "retries": 3}}}, tmp_path, env={})
    text = str(err.value)
    assert "suppliers.up.base_url" in text and "suppliers.up.secret" in text and "suppliers.up.timeout" in text
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": {"up": {"type": "store", "base_url": "http://b.example", "secret": "s"}}},
                       tmp_path, env={})
    assert "suppliers.up.key_id: required for type store" in str(err.value)
    store = parse_settings({"suppliers": {"up": {"type": "store", "base_url": "https://b.example",
                                                 "key_id": "rk_0123", "secret": "s"}}}, tmp_path, env={})
    assert store.suppliers["up"].type == "store"
    ok = {"up": {"base_url": "https://s.example", "secret": "${SUP_SECRET}"}}
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": ok, "catalog": [{"sku": "T", "title": "t", "price": 1, "kind": "topup",
                                                      "supplier": "other", "supplier_sku": "X"}]},
                       tmp_path, env={"SUP_SECRET": "x"})
    assert "catalog[0].supplier: unknown supplier 'other'" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": ok, "catalog": [{"sku": "T", "title": "t", "price": 1, "kind": "topup",
                                                      "supplier": "up", "account_pattern": "(["}]},
                       tmp_path, env={"SUP_SECRET": "x"})
    assert "catalog[0].account_pattern: is not a valid regular expression" in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_settings({"suppliers": ok, "catalog": [{"sku": "T", "title": "t", "price": 1, "kind": "supplier",
                                                      "supplier": "up"}]}, tmp_path, env={"SUP_SECRET": "x"})
    assert "catalog[0].supplier_sku: required for kind supplier" in str(err.value)
    s = parse_settings({"suppliers": ok}, tmp_path, env={"SUP_SECRET": "x"})
    assert "x" not in repr(s.suppliers["up"].secret)
