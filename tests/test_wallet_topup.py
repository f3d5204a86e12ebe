"""Wallet top-ups paid by the reseller itself: a Telegram Stars invoice through the real aiogram / PTB
against the fake Bot API, credited exactly once however often Telegram repeats the payment; a refund of the
top-up debits the wallet back and refunds the Stars; strangers and garbage get a clear refusal and pay nothing."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.models import Buyer
from core.resellers import ResellerDesk, ResellerError
from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront, buttons, data_of

WALLET = {"resellers": {"topup_choices": [{"amount": 10_000, "stars": 700}, {"amount": 50_000, "stars": 3500},
                                          {"amount": 20_000}]}}  # the last: WeChat Pay only


async def reseller_with_owner(shop: Shopfront, user_id: int) -> tuple[ResellerDesk, int]:
    desk: ResellerDesk = shop.app.shop.resellers
    r = await desk.create("Acme Cards", credit_limit=0)
    await desk.bind_owner(r.id, Buyer("telegram", str(user_id)))
    return desk, r.id


async def wallet_of(desk: ResellerDesk, rid: int) -> tuple[int, list[tuple[str, int]]]:
    r = await desk.get(rid)
    assert await desk.ledger_sum(rid) == r.balance  # the balance is always the sum of the ledger
    return r.balance, [(e.kind, e.amount) for e in await desk.statement(rid)]


async def open_wallet(shop: Shopfront, api: FakeBotAPI, user: dict) -> object:
    await shop.send(api.message_update(user, "/start"))
    menu = api.calls("sendMessage")[-1]
    mark = api.mark()
    await shop.send(api.callback_update(user, data_of(menu, "💼 Wallet"), api.last_message(user["id"])))
    return await api.wait_for("sendMessage", since=mark)


async def test_a_reseller_tops_up_with_stars_and_a_repeated_payment_credits_once(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=WALLET) as shop:
        ann = api.user(601, "Ann", "en")
        desk, rid = await reseller_with_owner(shop, 601)
        # given Ann acts for the reseller: her menu has a Wallet entry showing the Stars amounts only
        wallet = await open_wallet(shop, api, ann)
        assert "Acme Cards: balance" in wallet.params["text"]
        labels = [b["text"] for b in buttons(wallet)]
        assert "Top up CN¥100.00 for 700 ⭐" in labels[0] and "for 3500 ⭐" in labels[1]
        assert not any("200.00" in label for label in labels)  # no Stars price: not offered on Telegram

        # when she picks 100.00, a Stars invoice for 700 comes, its payload a top-up id
        mark = api.mark()
        await shop.send(api.callback_update(ann, buttons(wallet)[0]["callback_data"], api.last_message(601)))
        invoice = (await api.wait_for("sendInvoice", since=mark)).params
        assert invoice["currency"] == "XTR" and [p["amount"] for p in invoice["prices"]] == [700]
        payload = invoice["payload"]
        assert payload.startswith("W")
        mark = api.mark()
        await shop.send(api.pre_checkout_update(ann, payload, 700))
        assert (await api.wait_for("answerPreCheckoutQuery", since=mark)).params["ok"] is True

        # then paying credits the wallet once, and Telegram repeating the update changes nothing
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, payload, 700, "charge-w1"))
        told = await api.wait_for("sendMessage", since=mark)
        assert "Top-up received" in told.params["text"] and "100.00" in told.params["text"]
        for _ in range(3):
            await shop.send(api.successful_payment_update(ann, payload, 700, "charge-w1"))
        assert await wallet_of(desk, rid) == (10_000, [("topup", 10_000)])
        # the same notice arriving five times at once (several processes) credits once too
        outcomes = await asyncio.gather(*[desk.topup_wallet(payload, "telegram_stars", "charge-w1", 700, "XTR",
                                                            Buyer("telegram", "601")) for _ in range(5)])
        assert {o.outcome for o in outcomes} == {"duplicate"}
        assert await wallet_of(desk, rid) == (10_000, [("topup", 10_000)])
        await shop.app.shop.dispatcher.drain()
        assert api.calls("refundStarPayment") == []

        # a second, different payment of the same (already paid) top-up is refunded, not credited
        mark = api.mark()
        await shop.send(api.successful_payment_update(ann, payload, 700, "charge-w2"))
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params == {"user_id": 601, "telegram_payment_charge_id": "charge-w2"}
        assert await wallet_of(desk, rid) == (10_000, [("topup", 10_000)])


async def test_refunding_a_top_up_debits_the_wallet_and_refunds_the_stars_once(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=WALLET) as shop:
        ann = api.user(602, "Ann", "en")
        desk, rid = await reseller_with_owner(shop, 602)
        reseller = await desk.get(rid)
        first = await desk.start_topup(reseller, Buyer("telegram", "602"), 10_000, "telegram_stars", 700)
        second = await desk.start_topup(reseller, Buyer("telegram", "602"), 50_000, "telegram_stars", 3500)
        await shop.send(api.successful_payment_update(ann, first.id, 700, "charge-a"))
        await shop.send(api.successful_payment_update(ann, second.id, 3500, "charge-b"))
        assert (await wallet_of(desk, rid))[0] == 60_000
        # when the merchant gives the first top-up back
        mark = api.mark()
        entry = await desk.refund_topup(first.id, actor="cli")
        refund = await api.wait_for("refundStarPayment", since=mark)
        # then the wallet is debited by it in one ledger row and the Stars go back to Ann
        assert refund.params == {"user_id": 602, "telegram_payment_charge_id": "charge-a"}
        assert entry.amount == -10_000
        assert await wallet_of(desk, rid) == (50_000, [("topup_back", -10_000), ("topup", 50_000),
                                                       ("topup", 10_000)])
        # and refunding it again is refused, changing nothing
        with pytest.raises(ResellerError) as again:
            await desk.refund_topup(first.id, actor="cli")
        assert again.value.code == "topup_not_paid"
        await shop.app.shop.dispatcher.drain()
        assert len(api.calls("refundStarPayment")) == 1
        assert (await wallet_of(desk, rid))[0] == 50_000
        # a top-up the reseller has spent already cannot be given back below the credit limit
        await shop.stock(3)
        await desk.update(rid, prices={"GAME": 16_000})
        await desk.order(await desk.get(rid), "GAME", 3, "spend")
        with pytest.raises(ResellerError) as spent:
            await desk.refund_topup(second.id, actor="cli")
        assert spent.value.code == "insufficient_funds"
        assert (await wallet_of(desk, rid))[0] == 2_000
        await shop.app.shop.dispatcher.drain()
        assert len(api.calls("refundStarPayment")) == 1


async def test_strangers_cannot_open_or_pay_a_resellers_wallet_and_garbage_is_refused(
        api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library, extra=WALLET) as shop:
        ann, bob = api.user(603, "Ann", "en"), api.user(604, "Bob", "en")
        desk, rid = await reseller_with_owner(shop, 603)
        # Bob acts for no reseller: no Wallet in his menu, and typed-in actions are refused with a reason
        await shop.send(api.message_update(bob, "/start"))
        assert "💼 Wallet" not in [b["text"] for b in buttons(api.calls("sendMessage")[-1])]
        for data in ("wl", "wt:0", "wc"):
            mark = api.mark()
            await shop.send(api.callback_update(bob, data, api.last_message(604)))
            msg = await api.wait_for("sendMessage", since=mark)
            assert "not a reseller" in msg.params["text"]
        assert api.calls("sendInvoice") == []
        # Ann's garbage amounts get "did not understand" and the menu, never an invoice
        await shop.send(api.message_update(ann, "/start"))
        for data in ("wt:9", "wt:x", "wt:", "wt:2"):  # wt:2 has no Stars price
            mark = api.mark()
            await shop.send(api.callback_update(ann, data, api.last_message(603)))
            await api.wait_for("sendMessage", since=mark)
        assert api.calls("sendInvoice") == []
        # Bob paying Ann's top-up invoice: refused at pre-checkout; a payment anyway is refunded, not credited
        topup = await desk.start_topup(await desk.get(rid), Buyer("telegram", "603"), 10_000, "telegram_stars", 700)
        mark = api.mark()
        await shop.send(api.pre_checkout_update(bob, topup.id, 700))
        answer = await api.wait_for("answerPreCheckoutQuery", since=mark)
        assert answer.params["ok"] is False
        await shop.send(api.pre_checkout_update(ann, topup.id, 699))  # wrong amount
        assert api.calls("answerPreCheckoutQuery")[-1].params["ok"] is False
        mark = api.mark()
        await shop.send(api.successful_payment_update(bob, topup.id, 700, "charge-bob"))
        refund = await api.wait_for("refundStarPayment", since=mark)
        assert refund.params == {"user_id": 604, "telegram_payment_charge_id": "charge-bob"}
        assert await wallet_of(desk, rid) == (0, [])
        # and Ann can still pay her own top-up
        await shop.send(api.successful_payment_update(ann, topup.id, 700, "charge-ann"))
        assert await wallet_of(desk, rid) == (10_000, [("topup", 10_000)])
