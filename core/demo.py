"""The demo shop's sample codes, seeded once on first run in demo mode."""
from __future__ import annotations

import secrets

from core.clock import Clock
from core.models import Kind, Product
from core.ports import UnitOfWorkFactory
from core.supply import import_codes
from core.vault import Vault

DEMO_CODES_PER_PRODUCT = 50
SEEDED = "demo.seeded"


def _sample() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "DEMO-" + "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))


async def seed_demo_codes(uow_factory: UnitOfWorkFactory, vault: Vault, clock: Clock,
                          products: list[Product]) -> int:
    """Put sample codes into every code/reusable product, once per database."""
    async with uow_factory() as uow:
        if await uow.meta.get(SEEDED):
            return 0
    total = 0
    for p in products:
        if p.kind is Kind.CODE:
            lines = [(_sample() + "\n").encode() for _ in range(DEMO_CODES_PER_PRODUCT)]
        elif p.kind is Kind.REUSABLE:
            lines = [b"https://example.com/course/DEMO-SHARED-ACCESS\n"]
        else:
            continue
        report = await import_codes(uow_factory, vault, clock, p.sku, lines, actor="demo", channel="demo")
        total += report.imported
    async with uow_factory(write=True) as uow:
        await uow.meta.set(SEEDED, "1")
        await uow.commit()
    return total
