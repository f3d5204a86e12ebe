"""A store process for the crash test (tests/test_crash.py); the test SIGKILLs it mid-delivery.

    crash_worker.py CONFIG pay     import codes, buy, pay; then hang inside the delivery until killed
    crash_worker.py CONFIG resume OUT   start the store again; append every delivered code to OUT
"""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import App  # noqa: E402
from config.settings import load_settings  # noqa: E402
from core.models import Buyer  # noqa: E402
from core.orders import PaymentNotice  # noqa: E402
from core.supply import import_codes  # noqa: E402

BUYER = Buyer("test", "crash-buyer")


def say(*words: object) -> None:
    """One line to the test, which reads this process's stdout."""
    sys.stdout.write(" ".join(map(str, words)) + "\n")
    sys.stdout.flush()


class HangingNotifier:
    """The network to the buyer is slow: the process dies while the message is still on its way."""

    async def deliver(self, recipient, delivery):  # noqa: ANN001, ANN201
        say("SENDING", delivery.order.id)
        await asyncio.Event().wait()

    async def notify(self, *a):  # noqa: ANN002, ANN201
        await asyncio.Event().wait()


class FileNotifier:
    def __init__(self, out: Path) -> None:
        self.out = out

    async def deliver(self, recipient, delivery):  # noqa: ANN001, ANN201
        with self.out.open("a") as fh:
            for code in delivery.codes:
                fh.write(f"{delivery.order.id} {recipient} {code}\n")

    async def notify(self, *a):  # noqa: ANN002, ANN201
        pass


async def pay(cfg: str) -> None:
    settings = load_settings(cfg)
    app = await App.open(settings, notifiers={"test": HangingNotifier()})
    lines = [f"CRASH-CODE-{i}\n".encode() for i in range(5)]
    await import_codes(app.db.uow, app.vault, app.clock, settings.catalog[0].sku, lines)
    await app.shop.start()
    product = await app.shop.product_by_sku(settings.catalog[0].sku)
    order = await app.shop.reserve(BUYER, product.id, 2, "en", "chat-1")
    result = await app.shop.pay(PaymentNotice(order.id, "demo", "txn-crash-1", order.amount, order.currency, BUYER))
    say("PAID", order.id, result.outcome)
    await asyncio.Event().wait()


async def resume(cfg: str, out: str) -> None:
    settings = load_settings(cfg)
    app = await App.open(settings, notifiers={"test": FileNotifier(Path(out))})
    await app.shop.start()
    await app.shop.dispatcher.drain()
    async with app.db.uow() as uow:
        pending = await uow.outbox.pending_count()
    say("PENDING", pending)
    await app.close()


if __name__ == "__main__":
    if sys.argv[2] == "pay":
        asyncio.run(pay(sys.argv[1]))
    else:
        asyncio.run(resume(sys.argv[1], sys.argv[3]))
