"""The buyer's side of rules and risk: the in-chat challenge and phone binding.

A reserve the risk check challenges raises CHALLENGE_REQUIRED with a question and four options. The buyer sees
the question with one button per option (on numbered channels — WeChat, the console — the options are the
numbered lines: the text version). Each option's action is `ch:TOKEN:ANSWER:PRODUCT:QTY`; the right answer
lets the buyer order without challenges for a while and the purchase goes on at once (the same reserve again);
a wrong one uses the token up and says so. Phone binding takes the user's own shared contact only.
"""
from __future__ import annotations

from typing import Any

from handlers.screen import Action, Screen

CHALLENGE = "ch"
STATE = "challenge"  # numbered channels: {"t": token, "p": product id, "q": qty} while an answer is awaited


def challenge_screen(flow: Any, lang: str, params: dict[str, Any], product_id: int, qty: int) -> Screen:
    """Button channels: one button per option. Numbered channels (WeChat, the console) would number the options
    and the numbers would clash with the answers, so there the buyer types the answer itself (see STATE)."""
    t = flow.i18n.t
    token = str(params.get("token", ""))
    options = [str(o) for o in params.get("options", [])]
    if flow.numbered:
        body = t(lang, "risk.challenge.type", question=params.get("question", ""), minutes=params.get("minutes", ""),
                 options=" / ".join(options))
        return Screen(t(lang, "risk.challenge.title"), body)
    rows = [[Action(f"{CHALLENGE}:{token}:{opt}:{product_id}:{qty}", opt) for opt in options]]
    rows.append([Action(f"p:{product_id}", t(lang, "nav.back")), Action("menu", t(lang, "nav.menu"))])
    body = t(lang, "risk.challenge.ask", question=params.get("question", ""), minutes=params.get("minutes", ""))
    return Screen(t(lang, "risk.challenge.title"), body, actions=rows)


def typed_answer(state: dict[str, Any], word: str) -> str | None:
    """The challenge action for an answer typed on a numbered channel, or None when none is awaited."""
    ch = state.get(STATE)
    if not isinstance(ch, dict) or not (word.isascii() and word.isdigit()) or len(word) > 3:
        return None
    return f"{CHALLENGE}:{ch.get('t', '')}:{word}:{int(ch.get('p', 0))}:{int(ch.get('q', 1))}"


async def answer_challenge(flow: Any, ctx: Any, lang: str, args: list[str], cust: Any = None) -> list[Screen]:
    """The buyer picked an option: right -> the purchase goes on; wrong -> told, back to the product."""
    token, answer, product_id, qty = args[0], args[1], int(args[2]), int(args[3])
    if not token or len(answer) > 3:
        raise ValueError("garbage challenge")
    t = flow.i18n.t
    if not await flow.shop.pass_challenge(ctx.buyer, token, answer):
        screen = await flow._product(lang, product_id, qty)
        screen.body = t(lang, "risk.challenge.failed") + "\n\n" + screen.body
        screen.error = "challenge_failed"
        return [screen]
    return [await flow._buy(ctx, lang, product_id, qty, cust)]


def ask_phone(flow: Any, lang: str) -> Screen:
    """The request-contact keyboard (Telegram); other channels say where to bind a phone."""
    t = flow.i18n.t
    return Screen(t(lang, "risk.phone.title"), t(lang, "risk.phone.ask"), ask_contact=t(lang, "risk.phone.share"))


async def on_contact(flow: Any, ctx: Any, phone: str, own: bool) -> list[Screen]:
    """A shared contact: only the sender's own contact binds a phone (Telegram sets contact.user_id to the
    sender's id only for their own contact, shared through the request-contact button)."""
    cust = await flow.shop.customer(ctx.buyer, ctx.language_hint)
    lang = cust.language or flow.shop.default_language
    t = flow.i18n.t
    if not own:
        return await _done(flow, lang, t(lang, "risk.phone.not_own"), "phone_not_own")
    bound = await flow.shop.risk.bind_phone(ctx.buyer, phone)
    if bound is None:
        return await _done(flow, lang, t(lang, "risk.phone.invalid"), "phone_invalid")
    masked = bound[:4] + "•" * max(0, len(bound) - 7) + bound[-3:]
    return await _done(flow, lang, t(lang, "risk.phone.bound", phone=masked), None)


async def _done(flow: Any, lang: str, text: str, error: str | None) -> list[Screen]:
    """The answer takes the contact keyboard away (a message without inline buttons), then the menu."""
    return [Screen(text, error=error, remove_keyboard=True), await flow._menu(lang)]
