"""The console's products page: every product with its stock by state; the owner changes price, Stars price, title
and sale through the chat's `/product` use case (audited with the merchant's identity); bad values are refused in the
chat's words and change nothing; staff see the products but may not change them."""
from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.models import AuditEntry
from locales import Translator
from tests.console_kit import OWNER, STAFF, ConsoleKit, open_console
from tests.fake_supplier import FakeSupplier
from tests.helpers import SKU, buyer, import_n, pay, product_id, settle

CATALOG: list[dict[str, Any]] = [
    {"sku": SKU, "title": {"en": "Game card 10", "zh_CN": "游戏点卡 10"}, "price": 1000, "stars": 70, "kind": "code",
     "max_qty": 5, "rules": {"per_day": 2, "sale_end": "2099-01-01"}},
]
TOPUP = [  # bought from the supplier when sold: no pool of codes
    {"sku": "PHONE-30", "title": "Phone credit 30", "price": 3000, "kind": "topup", "supplier": "up",
     "supplier_sku": "SUP-CM-30", "account_pattern": "^1\\d{10}$"},
]


@pytest.fixture
async def supplier() -> AsyncIterator[FakeSupplier]:
    server = await FakeSupplier().start()
    yield server
    await server.stop()


def row(html: str, sku: str) -> str:
    found = re.search(rf'<tr data-sku="{re.escape(sku)}".*?</tr>', html, re.S)
    assert found, f"no row for {sku}"
    return found.group(0)


def figure(html: str, attr: str, name: str) -> str:
    found = re.search(rf'data-{attr}="{re.escape(name)}"[^>]*>([^<]*)<', html)
    assert found, f"no data-{attr}={name}"
    return found.group(1).strip()


async def product_audit(kit: ConsoleKit, actor: str) -> list[AuditEntry]:
    async with kit.app.shop.uow() as uow:
        return [e for e in await uow.audit.latest("admin", actor) if e.detail.get("command") == "product"]


async def test_products_show_prices_rules_and_stock_by_state(db_url: str, tmp_path: Path,
                                                            supplier: FakeSupplier) -> None:
    extra = {"suppliers": {"up": supplier.config()}}
    async with open_console(db_url, tmp_path, catalog=CATALOG + TOPUP, extra=extra) as kit:
        app = kit.app
        pid = await product_id(app)
        await import_n(app, 6)
        await app.shop.reserve(buyer(1), pid, 1, "en")  # held
        for n in (2, 3):  # sold, then one refunded: its code is burned
            await pay(app, await app.shop.reserve(buyer(n), pid, 1, "en"))
        await settle(app)
        refunded = (await kit.web.admin.orders(OWNER)).orders[0]
        await kit.web.admin.refund(OWNER, refunded.id)
        async with kit.client(OWNER) as http:
            status, html = await kit.get(http, "/products")
            assert status == 200
            card = row(html, SKU)
            stock = {s: int(figure(card, "stock", s)) for s in ("available", "held", "sold", "burned")}
            assert stock == {"available": 3, "held": 1, "sold": 1, "burned": 1}
            assert 'data-price="1000"' in card and 'data-stars="70"' in card and "Game card 10" in card
            assert "per person a day: 2" in card and "on sale until: 2099-01-01" in card
            topup = row(html, "PHONE-30")
            assert 'data-stock="available">—' in topup  # no pool: bought when sold
            status, html = await kit.get(http, "/products?lang=zh_CN")
            assert "游戏点卡 10" in row(html, SKU) and "可售" in html
            status, html = await kit.get(http, f"/products/{SKU}")
            assert status == 200 and figure(html, "stock", "held") == "1" and 'data-field="price"' in html


async def test_the_owner_changes_price_stars_title_and_sale_and_each_change_is_audited(db_url: str,
                                                                                       tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        async with kit.client(OWNER) as http:
            await kit.get(http, f"/products/{SKU}")
            status, html = await kit.post(http, f"/products/{SKU}", {"field": "price", "value": "12.50"})
            assert status == 200 and 'data-saved="price"' in html and figure(html, "price", "1250")
            status, html = await kit.post(http, f"/products/{SKU}", {"field": "stars", "value": "0"})
            assert 'data-saved="stars"' in html and 'data-stars="0"' in html
            status, html = await kit.post(http, f"/products/{SKU}",
                                          {"field": "title", "lang": "zh_CN", "value": "新点卡"})
            assert 'data-saved="title"' in html
            status, html = await kit.post(http, f"/products/{SKU}", {"field": "active", "value": "off"})
            assert 'data-saved="active"' in html and 'data-active="off"' in html
        p = await kit.app.shop.product_by_sku(SKU)
        assert p is not None
        assert (p.price, p.stars, p.title["zh_CN"], p.title["en"], p.active) == (1250, None, "新点卡", "Game card 10",
                                                                                 False)
        audit = await product_audit(kit, OWNER.key)
        changes = {e.detail["field"]: (e.detail["old"], e.detail["new"]) for e in audit}
        assert changes == {"price": (1000, 1250), "stars": (70, 0), "title": ("游戏点卡 10", "新点卡"),
                           "active": (True, False)}
        assert {e.channel for e in audit} == {OWNER.channel}


async def test_bad_values_are_refused_in_the_chats_words_and_change_nothing(db_url: str, tmp_path: Path) -> None:
    i18n = Translator()
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        async with kit.client(OWNER) as http:
            await kit.get(http, f"/products/{SKU}")
            abc = i18n.t("en", "admin.error.bad_price", price="abc")  # the chat's words
            cases = [({"field": "price", "value": "abc"}, "bad_price", abc),
                     ({"field": "price", "value": "-5"}, "bad_price", None),
                     ({"field": "price", "value": "12.345"}, "bad_price", None),  # finer than a cent
                     ({"field": "price", "value": "NaN"}, "bad_price", None),
                     ({"field": "price", "value": "99999999999999"}, "bad_price", None),  # over the most a price may be
                     ({"field": "stars", "value": "1.5"}, "bad_stars", None),
                     ({"field": "stars", "value": "2000000"}, "bad_stars", None),
                     ({"field": "title", "lang": "en", "value": "   "}, "bad_title", None),
                     ({"field": "title", "lang": "fr", "value": "Carte"}, "bad_language", None),
                     ({"field": "active", "value": "maybe"}, "bad_field", None),
                     ({"field": "cost", "value": "1"}, "bad_field", None)]
            for form, reason, words in cases:
                status, html = await kit.post(http, f"/products/{SKU}", form)
                assert status == 400, form
                assert f'data-refusal="{reason}"' in html, (form, html[-2000:])
                if words:
                    assert words in html
                assert 'data-price="1000"' in html  # the page still shows the unchanged product
            status, html = await kit.post(http, "/products/NOPE-1", {"field": "price", "value": "1"})
            assert status == 404 and 'data-refusal="unknown_sku"' in html
            status, html = await kit.post(http, f"/products/{SKU}", {"field": "price", "value": "1"}, csrf=False)
            assert status == 403 and 'data-refusal="csrf"' in html
            status, html = await kit.get(http, "/products/NOPE-1")
            assert status == 404
        p = await kit.app.shop.product_by_sku(SKU)
        assert p is not None and (p.price, p.stars, p.title, p.active) == (
            1000, 70, {"en": "Game card 10", "zh_CN": "游戏点卡 10"}, True)
        audit = await product_audit(kit, OWNER.key)
        assert audit and all("refused" in e.detail for e in audit)  # refusals audited as the chat audits them


async def test_staff_see_products_but_may_not_change_them(db_url: str, tmp_path: Path) -> None:
    async with open_console(db_url, tmp_path, catalog=CATALOG) as kit:
        async with kit.client(STAFF) as http:
            status, html = await kit.get(http, "/products")
            assert status == 200 and 'data-price="1000"' in row(html, SKU)
            status, html = await kit.get(http, f"/products/{SKU}")
            assert status == 200 and "data-readonly" in html and 'data-field="price"' not in html
            status, html = await kit.post(http, f"/products/{SKU}", {"field": "price", "value": "1"})
            assert status == 403 and 'data-refusal="owner_only"' in html
        p = await kit.app.shop.product_by_sku(SKU)
        assert p is not None and p.price == 1000
        async with kit.app.shop.uow() as uow:
            denied = await uow.audit.latest("admin_denied", STAFF.key)
        assert [e.detail["command"] for e in denied] == ["console /products/{sku}"]
