"""One code, one buyer, always: many buyers racing for a small pool through several store processes."""
from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from core.errors import ErrorCode, StoreError
from tests.helpers import buyer, import_n, open_shop, pay, pending_outbox, product_id, settle, stock_of

BUYERS = 500
POOL = 100

# max_batch of each of the three instances: group commit everywhere, none anywhere, and a mix.
BATCHING = {
    "batched": (256, 256, 256),
    "unbatched": (1, 1, 1),
    "mixed": (1, 256, 256),
}


@pytest.mark.parametrize("qty", [1, 3], ids=["qty1", "qty3"])
@pytest.mark.parametrize("batching", list(BATCHING), ids=list(BATCHING))
async def test_given_100_codes_when_500_buyers_race_through_3_instances_then_each_code_is_sold_exactly_once(
        db_url: str, tmp_path: Path, qty: int, batching: str) -> None:
    async with AsyncExitStack() as stack:
        # Three independent stores (own engine, own group committer, own outbox dispatcher) on one database.
        # They share the vault key file, as processes of one shop would.
        shops = [await stack.enter_async_context(open_shop(db_url, tmp_path, max_batch=mb))
                 for mb in BATCHING[batching]]
        apps = [s[0] for s in shops]
        imported = set(await import_n(apps[0], POOL))
        pid = await product_id(apps[0])
        for app in apps:  # deliveries go out while other buyers are still racing
            await app.shop.start()
        gate = asyncio.Event()
        rnd = random.Random(f"{batching}-{qty}")
        jitter = [rnd.uniform(0, 0.5) for _ in range(BUYERS)]

        async def shopper(i: int):
            app = apps[i % len(apps)]
            await gate.wait()
            # Buyers arrive over half a second, so every instance commits many batches that overlap with
            # the other instances' (instead of one instance's first batch taking the whole pool).
            await asyncio.sleep(jitter[i])
            try:
                order = await app.shop.reserve(buyer(i), pid, qty, "en")
            except StoreError as exc:
                return exc
            return order, await pay(app, order)

        tasks = [asyncio.create_task(shopper(i)) for i in range(BUYERS)]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*tasks)
        await settle(*apps)

        expected_orders = POOL // qty
        refused = [o for o in outcomes if isinstance(o, StoreError)]
        bought = [o for o in outcomes if not isinstance(o, StoreError)]
        assert {e.code for e in refused} == {ErrorCode.SOLD_OUT}
        assert len(bought) == expected_orders
        assert len(refused) == BUYERS - expected_orders
        assert all(result.outcome == "delivered" for _, result in bought)

        deliveries = [(r, d) for _, n, _ in shops for r, d in n.deliveries]
        assert len(deliveries) == expected_orders
        assert sorted(r for r, _ in deliveries) == sorted(order.chat_id for order, _ in bought)
        assert all(len(d.codes) == qty for _, d in deliveries), "never a partial order"
        delivered_codes = [c for _, d in deliveries for c in d.codes]
        assert len(delivered_codes) == expected_orders * qty
        assert len(set(delivered_codes)) == len(delivered_codes), "a code was sold twice"
        assert set(delivered_codes) <= imported

        # What the merchant sees: everything sold except what no whole order could use.
        assert await stock_of(apps[0]) == (POOL - expected_orders * qty, 0, expected_orders * qty)
        assert await pending_outbox(apps[0]) == 0
        # No money was taken without goods: nothing was refunded.
        assert not any(g.refunds for _, _, g in shops)
