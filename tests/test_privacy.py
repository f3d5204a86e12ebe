"""`run.py forget` (core/privacy.py): a person's data erased across linked accounts in one transaction, the books
kept under an anonymous id (a day's report adds up the same), refused while an order is in flight, a second run
changes nothing, and no table keeps the old ids afterwards."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.links import shown
from core.models import Buyer
from core.privacy import ANONYMOUS_PREFIX, PrivacyCode, PrivacyError
from storage import tables as t
from tests.dbtemplate import from_template
from tests.helpers import CHANNEL, import_n, open_shop, pay, product_id, run_cli, sqlite_url_for, write_config

ALICE = Buyer(CHANNEL, "alice-7731")
ALICE_WECHAT = Buyer("wechat", "oAlice_wx_5512")
BOB = Buyer(CHANNEL, "bob-4410")
TRACES = ("alice-7731", "oAlice_wx_5512")


async def dump(app: Any) -> dict[str, list[str]]:
    """Every row of every table, as text (ordered)."""
    out: dict[str, list[str]] = {}
    async with app.db.uow() as uow:
        for table in t.metadata.sorted_tables:
            out[table.name] = sorted(repr(tuple(r)) for r in await uow.audit.c.execute(select(table)))
    return out


async def alice_and_bob(app: Any) -> dict[str, Any]:
    """Alice (two linked accounts: two paid orders, a stock alert, a news opt-out, a link code) and Bob (one)."""
    await import_n(app, 5)
    pid = await product_id(app)
    await app.shop.customer(ALICE_WECHAT, "zh_CN")
    await app.shop.customer(ALICE, "en")
    await app.shop.customer(BOB, "en")
    issued = await app.shop.links.issue(ALICE_WECHAT)
    await app.shop.links.redeem(ALICE, shown(issued.code))
    await app.shop.links.issue(ALICE)  # an unused code of hers
    orders = {}
    for who, name in ((ALICE, "a1"), (ALICE_WECHAT, "a2"), (BOB, "b1")):
        order = await app.shop.reserve(who, pid, 1, "en")
        assert (await pay(app, order)).order.status == "delivered"
        orders[name] = order
    now = app.shop.clock.now()
    async with app.db.uow(write=True) as uow:
        await uow.stock_alerts.subscribe(pid, ALICE, ALICE.external_id, "en", now)
        await uow.broadcasts.opt_out(ALICE_WECHAT.channel, ALICE_WECHAT.external_id, True, now)
        await uow.commit()
    return orders


async def test_forget_erases_across_linked_accounts_and_keeps_the_books(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        orders = await alice_and_bob(app)
        report = app.shop.reports
        before = await report.figures(report.period("today"))
        kept = await app.shop.privacy.kept(ALICE_WECHAT)
        assert (kept.accounts, kept.orders, kept.payments, kept.alerts, kept.news_optout) == (2, 2, 2, 1, True)

        done = await app.shop.privacy.forget(ALICE_WECHAT)

        assert done.anonymous.startswith(ANONYMOUS_PREFIX) and len(done.accounts) == 2
        assert done.changed["customers"] == 2 and done.changed["orders"] == 2 and done.changed["stock_alerts"] == 1
        after = await report.figures(report.period("today"))
        assert after == before  # revenue, orders, buyers: the same
        rows = await dump(app)
        for table, lines in rows.items():
            for line in lines:
                assert not any(trace in line for trace in TRACES), (table, line)
        async with app.db.uow() as uow:
            a1, a2, b1 = [await uow.orders.get(orders[n].id) for n in ("a1", "a2", "b1")]
            assert a1 and a2 and b1
            assert a1.buyer.external_id == a2.buyer.external_id == done.anonymous  # still one person in the books
            assert b1.buyer == BOB  # Bob untouched
            assert await uow.customers.get(BOB) is not None and await uow.customers.get(ALICE) is None
            forgets = await uow.audit.latest("forget")
        assert [(e.actor, e.detail["accounts"]) for e in forgets] == [(done.anonymous, 2)]
        with pytest.raises(Exception):  # noqa: B017,PT011 - her codes can be revealed by nobody now
            await app.shop.reveal(orders["a1"].id, ALICE)
        assert (await app.shop.reveal(orders["b1"].id, BOB))[2]  # Bob's still can

        rows = await dump(app)
        with pytest.raises(PrivacyError) as again:
            await app.shop.privacy.forget(ALICE)
        assert again.value.code is PrivacyCode.UNKNOWN
        assert await dump(app) == rows  # a second run changes nothing


async def test_forget_is_refused_while_an_order_is_in_flight(db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await alice_and_bob(app)
        held = await app.shop.reserve(ALICE_WECHAT, await product_id(app), 1, "en")
        rows = await dump(app)
        with pytest.raises(PrivacyError) as e:
            await app.shop.privacy.forget(ALICE)  # the held order is on her linked account
        assert e.value.code is PrivacyCode.IN_FLIGHT and e.value.params["n"] == 1
        assert await dump(app) == rows
        await app.shop.cancel(held.id, ALICE_WECHAT)
        assert (await app.shop.privacy.forget(ALICE)).changed["orders"] == 3


def test_forget_as_a_process(tmp_path: Path) -> None:
    url = from_template(sqlite_url_for(tmp_path))
    cfg = write_config(tmp_path, url=url)

    async def seed() -> None:
        async with open_shop(url, tmp_path) as (app, _, _):
            await alice_and_bob(app)

    import asyncio  # noqa: PLC0415
    asyncio.run(seed())
    unknown = run_cli(cfg, "forget", "telegram:nobody", "--yes")
    assert unknown.returncode == 2 and "Nothing is kept about telegram:nobody" in unknown.stderr
    bad = run_cli(cfg, "forget", "nobody", "--yes")
    assert bad.returncode == 2 and "is not an account" in bad.stderr
    asked = run_cli(cfg, "forget", ALICE.key)  # no terminal to confirm on: nothing done
    assert asked.returncode == 2 and "Nothing erased" in asked.stderr
    done = run_cli(cfg, "forget", ALICE.key, "--yes")
    assert done.returncode == 0, done.stderr
    assert f"{ALICE.key} forgotten (2 account(s))" in done.stdout and "  orders: 2 row(s)" in done.stdout
    again = run_cli(cfg, "forget", ALICE.key, "--yes")
    assert again.returncode == 2 and "Nothing is kept about" in again.stderr


def test_the_anonymous_id_replaces_whole_ids_and_keys_never_a_part_of_a_longer_one() -> None:
    from storage.privacy import _Swap  # noqa: PLC0415

    swap = _Swap([Buyer("telegram", "7")], "forgotten:x")
    assert swap.text("7", True) == "forgotten:x" and swap.text("77", True) == "77"
    assert swap.text("telegram:7", False) == "telegram:forgotten:x"
    assert swap.text("referral:telegram:7", False) == "referral:telegram:forgotten:x"
    assert swap.text("referral:telegram:77", False) == "referral:telegram:77"
    assert swap.json({"chat": "7", "n": 7, "who": ["telegram:7", "telegram:17"]}) == {
        "chat": "forgotten:x", "n": 7, "who": ["telegram:forgotten:x", "telegram:17"]}
