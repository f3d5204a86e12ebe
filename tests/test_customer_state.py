"""A buyer's language and conversation state are written field by field: two updates of the same buyer that
read the customer at the same time (a language switch and a delivery remembering its screen, or two processes)
each keep what they changed. Real SQLite and PostgreSQL."""
from __future__ import annotations

from pathlib import Path

from core.models import Customer
from handlers.state import ChallengeWait, Conversation, LinkWait, NoteWait, TopupWait
from tests.helpers import buyer, open_shop


async def test_given_a_language_switch_and_a_delivery_racing_then_neither_change_is_lost(db_url: str,
                                                                                            tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        ann = buyer("ann")
        first = await app.shop.customer(ann, "en")
        first.state["actions"] = ["p:1"]
        await app.shop.save_customer(first)

        # Both read the customer before either writes (fresh: as another process would).
        switch = await app.shop.customer(ann, fresh=True)
        delivery = await app.shop.customer(ann, fresh=True)
        switch.language = "zh_CN"
        delivery.state["actions"] = ["o:261204ABCDEFGH"]
        delivery.state["challenge"] = {"token": "t1"}
        await app.shop.save_customer(switch)
        await app.shop.save_customer(delivery)

        stored = await app.shop.customer(ann, fresh=True)
        assert stored.language == "zh_CN"
        assert stored.state == {"actions": ["o:261204ABCDEFGH"], "challenge": {"token": "t1"}}

        # A key one update removes is removed; a key the other update never touched stays.
        a = await app.shop.customer(ann, fresh=True)
        b = await app.shop.customer(ann, fresh=True)
        del a.state["challenge"]
        b.state["pending"] = "report"
        await app.shop.save_customer(a)
        await app.shop.save_customer(b)
        stored = await app.shop.customer(ann, fresh=True)
        assert stored.state == {"actions": ["o:261204ABCDEFGH"], "pending": "report"}
        assert stored.language == "zh_CN"


async def test_given_two_updates_through_the_typed_state_then_each_keeps_its_own_field(db_url: str,
                                                                                   tmp_path: Path) -> None:
    """The same race through the typed view (handlers/state.py) every handler uses: a top-up waiting for its
    account, and a delivery remembering its screen, both read before either writes."""
    async with open_shop(db_url, tmp_path) as (app, _, _):
        ann = buyer("ann")
        first = await app.shop.customer(ann, "en")
        Conversation(first).report_note = NoteWait("261204ABCDEFGH")
        await app.shop.save_customer(first)

        topup = await app.shop.customer(ann, fresh=True)
        delivery = await app.shop.customer(ann, fresh=True)
        Conversation(topup).topup = TopupWait(3, "13800138000")
        Conversation(topup).report_note = None  # the buyer went to the top-up instead of describing the problem
        Conversation(delivery).actions = ["order:261204ABCDEFGH", "menu"]
        await app.shop.save_customer(topup)
        await app.shop.save_customer(delivery)

        stored = Conversation(await app.shop.customer(ann, fresh=True))
        assert stored.topup == TopupWait(3, "13800138000") and stored.report_note is None
        assert stored.actions == ["order:261204ABCDEFGH", "menu"]
        assert stored.customer.state == {"topup": {"p": 3, "a": "13800138000"},
                                         "actions": ["order:261204ABCDEFGH", "menu"]}


async def test_given_a_row_stored_before_the_typed_state_then_every_field_reads_as_it_was_written(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        ann = buyer("ann")
        old = await app.shop.customer(ann, "en")
        old.state.update({  # the keys and shapes the flows wrote before handlers/state.py
            "actions": ["p:1", "os:0", "menu"], "topup": {"p": 4}, "challenge": {"t": "tok", "p": 2, "q": 1},
            "rp_note": {"o": "261204ABCDEFGH"}, "link": {"w": 1}, "start_payload": "ref_7",
            "wechat_pending": [{"order": "261204ABCDEFGH"}]})
        await app.shop.save_customer(old)

        state = Conversation(await app.shop.customer(ann, fresh=True))
        assert state.actions == ["p:1", "os:0", "menu"]
        assert state.topup == TopupWait(4) and state.challenge == ChallengeWait("tok", 2, 1)
        assert state.report_note == NoteWait("261204ABCDEFGH") and state.link == LinkWait()
        assert state.start_payload == "ref_7" and state.wechat_pending == [{"order": "261204ABCDEFGH"}]

        # A value of another shape (a row edited by hand) reads as "nothing awaited", never as an error.
        odd = Conversation(Customer(ann, "en", {"topup": "3", "challenge": {"t": "x"}, "actions": "menu",
                                                "link": None}, old.created_at))
        assert (odd.topup, odd.challenge, odd.actions, odd.link) == (None, None, None, None)
        assert odd.forget() is True and odd.customer.state == {"actions": "menu"}  # the waits are gone
