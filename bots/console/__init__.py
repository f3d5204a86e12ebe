"""The terminal demo: the customer flow as a numbered-option chat in the terminal."""
from __future__ import annotations

import asyncio
import sys
from typing import Any, TextIO

from core.models import Buyer
from core.ports import Delivery
from handlers.customer import Ctx, CustomerFlow
from handlers.screen import Screen
from locales import Translator

BUYER = Buyer("console", "demo")


def render(screen: Screen, i18n: Translator, lang: str, tty: bool) -> str:
    bold = ("\033[1m", "\033[0m") if tty else ("", "")
    lines = ["", f"{bold[0]}{screen.title}{bold[1]}"]
    if screen.body:
        lines.append(screen.body)
    if screen.secrets:
        lines.append(i18n.t(lang, "console.secret"))
        width = max(len(s) for s in screen.secrets)
        lines.append("┌" + "─" * (width + 2) + "┐")
        lines.extend(f"│ {s:<{width}} │" for s in screen.secrets)
        lines.append("└" + "─" * (width + 2) + "┘")
    if screen.footer:
        lines.append(screen.footer)
    actions = screen.flat_actions()
    if actions:
        lines.append(i18n.t(lang, "prompt.choose"))
        lines.extend(f"  {n}. {a.label}" for n, a in enumerate(actions, start=1))
    return "\n".join(lines)


class ConsoleNotifier:
    """Deliveries and notices for the terminal buyer: printed as soon as the outbox sends them."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.flow: CustomerFlow | None = None
        self.busy = False  # while the buyer's own reply is being made, messages wait so they print after it
        self._waiting: list[tuple[Screen, str]] = []

    async def deliver(self, recipient: str, delivery: Delivery) -> None:
        assert self.flow is not None
        lang = (await self.flow.shop.customer(BUYER)).language or delivery.order.language
        screen = self.flow.render_delivery(delivery, lang)
        await self.flow.remember(BUYER, screen)
        self._print(screen, lang)

    async def notify(self, recipient: str, language: str, key: str, params: dict[str, Any]) -> None:
        assert self.flow is not None
        screen = self.flow.render_notice(language, key, params)
        await self.flow.remember(BUYER, screen)
        self._print(screen, language)

    def _print(self, screen: Screen, lang: str) -> None:
        assert self.flow is not None
        if self.busy:
            self._waiting.append((screen, lang))
            return
        # It arrives while the buyer may sit at the prompt: print it, then the prompt again.
        self.out.write(render(screen, self.flow.i18n, lang, self.out.isatty()) + "\n> ")
        self.out.flush()

    def release(self) -> None:
        self.busy = False
        waiting, self._waiting = self._waiting, []
        for screen, lang in waiting:
            self._print(screen, lang)


async def run_console(flow: CustomerFlow, notifier: ConsoleNotifier, i18n: Translator,
                      stdin: TextIO | None = None) -> None:
    """Read lines until EOF or `q`; every line goes through the same handlers the chat bots use."""
    stdin = stdin or sys.stdin
    out = notifier.out
    ctx = Ctx(BUYER, "demo", None)
    loop = asyncio.get_running_loop()

    async def show(screens: list[Screen]) -> None:
        lang = (await flow.shop.customer(BUYER)).language or flow.shop.default_language
        for s in screens:
            out.write(render(s, i18n, lang, out.isatty()) + "\n")
        out.write(i18n.t(lang, "console.hint") + "\n> ")
        out.flush()

    await show(await flow.on_text(ctx, "/start"))
    while True:
        line = await loop.run_in_executor(None, stdin.readline)
        if not line or line.strip().lower() in ("q", "quit", "exit"):
            out.write("\n")
            return
        notifier.busy = True
        try:
            await show(await flow.on_text(ctx, line))
        finally:
            notifier.release()
