"""Commissions (分销): a reseller's referral link (/start ref_<id>) binds a customer; each paid order of that
customer writes one commission entry (rate per reseller in config, basis points, rounded down to the minor unit);
a refund reverses it once; a merchant records payouts (/payout, never more than the balance). Exact when payments
and payouts race. On SQLite and PostgreSQL."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config.settings import ConfigError, Resellers, parse_settings
from core.admin import AdminService
from core.models import Buyer
from core.orders import PaymentNotice
from core.resellers import ResellerDesk, ResellerError
from handlers.admin import AdminCtx, AdminFlow
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.helpers import PROVIDER, SKU, import_n, open_shop, settle

BOSS = Buyer("test", "boss")
I18N = Translator(("en", "zh_CN"))


async def referred_buyer(app, name: str, payload: str) -> Buyer:  # noqa: ANN001
    """A new customer who opened the bot through a deep link (the real customer flow keeps its payload)."""
    flow = CustomerFlow(app.shop, I18N, shop_name="Test Shop")
    buyer = Buyer("test", name)
    await flow.on_text(Ctx(buyer, name, "en"), f"/start {payload}")
    return buyer


async def buy_and_pay(app, buyer: Buyer, qty: int, txn: str) -> str:  # noqa: ANN001
    order = await app.shop.reserve(buyer, (await app.shop.product_by_sku(SKU)).id, qty, "en")
    result = await app.shop.pay(PaymentNotice(order.id, PROVIDER, txn, order.amount, order.currency, buyer))
    assert result.outcome == "delivered"
    return order.id


async def commission(desk: ResellerDesk, rid: int) -> tuple[int, list[tuple[str, int, str | None]]]:
    balance, entries = await desk.commissions(rid, limit=100)
    assert balance == sum(e.amount for e in entries)
    return balance, [(e.kind, e.amount, e.order_id) for e in entries]


async def test_a_referred_customers_paid_orders_earn_commission_once_and_a_refund_reverses_it(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk: ResellerDesk = app.shop.resellers
        big, small = await desk.create("Big"), await desk.create("Small")
        desk.configure(Resellers(commission_bp=1000, commissions={"Big": 1550}))
        await import_n(app, 20)
        ann = await referred_buyer(app, "ann", f"ref_{big.id}")
        bob = await referred_buyer(app, "bob", f"ref_{small.id}")
        nobody = await referred_buyer(app, "cy", "ref_999")  # no such reseller
        plain = Buyer("test", "dee")  # came without a link
        # when each pays for orders
        a1 = await buy_and_pay(app, ann, 3, "t-a1")  # 30.00 at 15.5% -> 4.65
        b1 = await buy_and_pay(app, bob, 1, "t-b1")  # 10.00 at 10% -> 1.00
        await buy_and_pay(app, nobody, 1, "t-c1")
        await buy_and_pay(app, plain, 1, "t-d1")
        # a repeated payment notice is a duplicate: no second commission
        order = await app.shop.order_for(a1, ann)
        again = await app.shop.pay(PaymentNotice(a1, PROVIDER, "t-a1", order[0].amount, "CNY", ann))
        assert again.outcome == "duplicate"
        assert await commission(desk, big.id) == (465, [("accrual", 465, a1)])
        assert await commission(desk, small.id) == (100, [("accrual", 100, b1)])
        # a second link opened later does not move Ann to another reseller
        await referred_buyer(app, "ann", f"ref_{small.id}")
        a2 = await buy_and_pay(app, ann, 1, "t-a2")
        assert (await commission(desk, big.id))[0] == 465 + 155
        # when the merchant refunds Ann's first order, its commission is reversed, once
        await AdminService(app.shop).refund(BOSS, a1)
        await settle(app)
        assert await commission(desk, big.id) == (155, [("reversal", -465, a1), ("accrual", 155, a2),
                                                        ("accrual", 465, a1)])
        await settle(app)
        assert (await commission(desk, big.id))[0] == 155


async def test_a_resellers_own_identity_earns_nothing_on_its_own_orders(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk: ResellerDesk = app.shop.resellers
        r = await desk.create("Self")
        desk.configure(Resellers(commission_bp=1000))
        await import_n(app, 5)
        me = await referred_buyer(app, "owner", f"ref_{r.id}")
        await desk.bind_owner(r.id, me)
        await buy_and_pay(app, me, 2, "t-self")
        assert await commission(desk, r.id) == (0, [])


async def test_concurrent_payments_accrue_exactly_and_racing_payouts_never_exceed_the_balance(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk: ResellerDesk = app.shop.resellers
        r = await desk.create("Busy")
        desk.configure(Resellers(commission_bp=250))  # 2.5%: 25 per 10.00 code
        await import_n(app, 60)
        buyers = [await referred_buyer(app, f"b{i}", f"ref_{r.id}") for i in range(30)]
        await asyncio.gather(*[buy_and_pay(app, b, 2, f"tx-{b.external_id}") for b in buyers])
        balance, entries = await commission(desk, r.id)
        assert balance == 30 * 50 and len(entries) == 30
        assert len({e[2] for e in entries}) == 30  # one entry per order
        # when five payouts of 400 race against 1500, exactly three are recorded
        results = await asyncio.gather(*[desk.payout(r.id, 400, actor="test:boss") for _ in range(5)],
                                       return_exceptions=True)
        done = [x for x in results if not isinstance(x, Exception)]
        refused = [x for x in results if isinstance(x, ResellerError)]
        assert len(done) == 3 and len(refused) == 2
        assert all(x.code == "insufficient_commission" for x in refused)
        assert (await commission(desk, r.id))[0] == 300


async def test_the_payout_command_records_a_payout_and_refuses_bad_input(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        desk: ResellerDesk = app.shop.resellers
        r = await desk.create("Cmd")
        desk.configure(Resellers(commission_bp=1000))
        await import_n(app, 5)
        buyer = await referred_buyer(app, "zoe", f"ref_{r.id}")
        await buy_and_pay(app, buyer, 5, "t-z")  # 50.00 -> 5.00 commission
        flow = AdminFlow(app.shop, I18N)

        async def cmd(text: str, lang: str = "en") -> str:
            (screen,) = await flow.on_command(AdminCtx(BOSS, lang), text)
            return screen.title + " " + screen.body

        assert "/payout RESELLER AMOUNT" in await cmd("/admin")  # listed with the other commands
        assert "/payout RESELLER AMOUNT" in await cmd("/payout")
        assert "/payout RESELLER AMOUNT" in await cmd("/payout x 1")
        assert "There is no reseller 99" in await cmd("/payout 99 100")
        assert "less than" in await cmd(f"/payout {r.id} 501")
        assert "must be more than 0" in await cmd(f"/payout {r.id} 0")
        assert (await commission(desk, r.id))[0] == 500  # nothing changed
        out = await cmd(f"/payout {r.id} 200", "zh_CN")
        assert "已向代理" in out and "¥2.00" in out and "¥3.00" in out
        assert await commission(desk, r.id) == (300, [("payout", -200, None), ("accrual", 500, (await commission(
            desk, r.id))[1][1][2])])
        # the reseller sees the balance and entries in the chat
        flow_c = CustomerFlow(app.shop, I18N, shop_name="Test Shop")
        await desk.bind_owner(r.id, Buyer("test", "cmd-owner"))
        (screen,) = await flow_c.on_action(Ctx(Buyer("test", "cmd-owner"), "cmd-owner", "en"), "wc")
        assert "Commission balance: CN¥3.00" in screen.body and f"ref_{r.id}" in screen.body
        assert "-CN¥2.00 paid out" in screen.body and "+CN¥5.00 order" in screen.body


def test_wrong_reseller_settings_and_partial_rules_are_refused_naming_the_key(tmp_path: Path) -> None:
    base = {"vault": {"key_file": str(tmp_path / "k")}}
    for section, key in (({"commissions": {"Acme": 10_001}}, "resellers.commissions.Acme"),
                         ({"commission_bp": -1}, "resellers.commission_bp"),
                         ({"topup_choices": [{"amount": 0}]}, "resellers.topup_choices[0].amount"),
                         ({"wait_hours": 0}, "resellers.wait_hours")):
        with pytest.raises(ConfigError) as info:
            parse_settings({**base, "resellers": section}, tmp_path, env={})
        assert key in str(info.value)
    with pytest.raises(ConfigError) as bad_rule:
        parse_settings({**base, "catalog": [{"sku": "A", "title": "A", "price": 1, "rules": {"partial": "maybe"}}]},
                       tmp_path, env={})
    assert "partial" in str(bad_rule.value) and "refuse, partial, wait" in str(bad_rule.value)
