"""The buyer's side of rules and risk: the in-chat challenge and phone binding.

A reserve the risk check challenges raises CHALLENGE_REQUIRED with a question and four options. The buyer sees
the question with one button per option (on numbered channels — WeChat, the console — the buyer types the answer:
the conversation waits for it, `Conversation.challenge`). Each option's action is
`challenge:TOKEN:ANSWER:PRODUCT:QTY` (handled with the purchase it continues: handlers/catalog.py `challenge`); the
right answer lets the buyer order without challenges for a while and the purchase goes on at once (the same
reserve again); a wrong one uses the token up and says so. Phone binding takes the user's own shared contact only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import ErrorCode, StoreError
from core.risk import PHONE_REQUIRED
from handlers import errors, home
from handlers.actions import Home, Shopping
from handlers.router import Ctx, Turn
from handlers.screen import Action, Screen
from handlers.state import ChallengeWait, Conversation

if TYPE_CHECKING:
    from handlers.customer import CustomerFlow


async def ask(turn: Turn, exc: StoreError, product_id: int, qty: int) -> Screen:
    """What a refused reserve asks of the buyer: the challenge's question, or their phone (Telegram) when a rule
    wants one. Any other refusal is raised again (the flow shows it with the menu)."""
    if exc.code is ErrorCode.CHALLENGE_REQUIRED:
        if turn.flow.numbered:  # the next number typed is the answer
            turn.state.challenge = ChallengeWait(str(exc.params.get("token", "")), product_id, qty)
            await turn.save()
        return challenge_screen(turn, exc.params, product_id, qty)
    if exc.code is ErrorCode.RULE_REFUSED and exc.params.get("rule") == PHONE_REQUIRED and turn.flow.ask_phone:
        screen = ask_phone(turn)
        screen.body = errors.text(turn.flow.i18n, turn.lang, exc) + "\n\n" + screen.body
        return screen
    raise exc


def challenge_screen(turn: Turn, params: dict[str, Any], product_id: int, qty: int) -> Screen:
    """Button channels: one button per option. Numbered channels (WeChat, the console) would number the options
    and the numbers would clash with the answers, so there the buyer types the answer itself."""
    token = str(params.get("token", ""))
    options = [str(o) for o in params.get("options", [])]
    if turn.flow.numbered:
        body = turn.t("risk.challenge.type", question=params.get("question", ""), minutes=params.get("minutes", ""),
                      options=" / ".join(options))
        return Screen(turn.t("risk.challenge.title"), body)
    rows = [[Action(Shopping.CHALLENGE.id(token, opt, product_id, qty), opt) for opt in options]]
    rows.append([Action(Shopping.PRODUCT.id(product_id), turn.t("nav.back")),
                 Action(Home.MENU.id(), turn.t("nav.menu"))])
    body = turn.t("risk.challenge.ask", question=params.get("question", ""), minutes=params.get("minutes", ""))
    return Screen(turn.t("risk.challenge.title"), body, actions=rows)


def typed_answer(state: Conversation, word: str) -> list[str] | None:
    """The arguments of the challenge action for an answer typed on a numbered channel; None when no answer is
    awaited or the message is no answer."""
    wait = state.challenge
    if wait is None or not (word.isascii() and word.isdigit()) or len(word) > 3:
        return None
    return [wait.token, word, str(wait.product_id), str(wait.qty)]


def failed(turn: Turn, product_screen: Screen) -> Screen:
    """A wrong answer: said, on the product's page."""
    product_screen.body = turn.t("risk.challenge.failed") + "\n\n" + product_screen.body
    product_screen.error = "challenge_failed"
    return product_screen


def ask_phone(turn: Turn) -> Screen:
    """The request-contact keyboard (Telegram); other channels say where to bind a phone."""
    return Screen(turn.t("risk.phone.title"), turn.t("risk.phone.ask"), ask_contact=turn.t("risk.phone.share"))


async def on_contact(flow: CustomerFlow, ctx: Ctx, phone: str, own: bool) -> list[Screen]:
    """A shared contact: only the sender's own contact binds a phone (Telegram sets contact.user_id to the
    sender's id only for their own contact, shared through the request-contact button)."""
    cust = await flow.shop.customer(ctx.buyer, ctx.language_hint)
    turn = Turn(flow, cust, ctx, cust.language or flow.shop.default_language)
    if not own:
        return _done(turn, turn.t("risk.phone.not_own"), "phone_not_own")
    bound = await flow.shop.risk.bind_phone(ctx.buyer, phone)
    if bound is None:
        return _done(turn, turn.t("risk.phone.invalid"), "phone_invalid")
    masked = bound[:4] + "•" * max(0, len(bound) - 7) + bound[-3:]
    return _done(turn, turn.t("risk.phone.bound", phone=masked), None)


def _done(turn: Turn, text: str, error: str | None) -> list[Screen]:
    """The answer takes the contact keyboard away (a message without inline buttons), then the menu."""
    return [Screen(text, error=error, remove_keyboard=True), home.menu_screen(turn)]
