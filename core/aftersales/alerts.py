"""Merchant alerts from a process without the chat channels (the CLI): each becomes an outbox notice that the running
store sends, so a merchant hears of a recall run from the terminal."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from core.models import Buyer, OutboxItem
from core.ports import UnitOfWorkFactory


class OutboxAlerts:
    """AdminAlerts for a process without the chat channels (the CLI): each merchant's alert is an outbox
    notice, sent by the running store (so a merchant hears of a recall run from the terminal)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, admins: Sequence[tuple[str, str]],
                 wake: Callable[[], None] | None = None) -> None:
        self.uow = uow_factory
        self.admins = list(admins)  # (channel, chat id)
        self.wake = wake

    async def alert(self, key: str, params: dict[str, Any], commands: Sequence[tuple[str, str]] = ()) -> None:
        """Offered commands ride in the notice's params as `_commands` (label key, command): the chat renders
        them as buttons or as lines to type (handlers/aftersales.py alert_screen)."""
        if not self.admins:
            return
        values = dict(params)
        if commands:
            values["_commands"] = [[label, command] for label, command in commands]
        async with self.uow(write=True) as uow:
            items = []
            for ch, chat in self.admins:  # in the merchant's own language, where the shop knows it
                known = await uow.customers.get(Buyer(ch, chat))
                items.append(OutboxItem(None, "notify", ch, chat, None, {
                    "key": key, "language": known.language if known and known.language else "",
                    "params": dict(values)}))
            await uow.outbox.add_many(items)
            await uow.commit()
        if self.wake is not None:
            self.wake()

