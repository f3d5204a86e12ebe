"""Routers: each feature declares its actions next to their handlers; CustomerFlow includes the feature routers.

    router = Router("orders")

    @router.action(Orders.REVEAL)
    async def reveal(turn: Turn, order_id: str) -> Screen:
        order, product, codes = await turn.shop.reveal(order_id, turn.buyer, turn.ctx.chat_id)
        return delivery_screen(turn.flow, Delivery(order, product, codes, again=True), turn.lang)

A handler takes the `Turn` (who, in which language, their conversation state, the shop) and the action's arguments;
its parameters say what they are: `int` (a non-negative number of at most 9 digits) or `str`, with defaults for the
optional ones. Anything else in the data (an unknown name, a missing or extra argument, a letter where a number
goes) is ValueError, which the flow answers with "did not understand" and the menu.
"""
from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from core.models import Buyer, Customer, Product, localized
from handlers.actions import Home
from handlers.screen import Action, Screen
from handlers.state import Conversation

if TYPE_CHECKING:
    from core.shop import Shop
    from handlers.customer import CustomerFlow

Handler = Callable[..., Awaitable[Screen | list[Screen]]]
H = TypeVar("H", bound=Handler)
KINDS: dict[str, type] = {"int": int, "str": str, "int | None": int, "str | None": str}


def number(text: str) -> int:
    """A non-negative number from button data; anything else is garbage (ValueError)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise ValueError("not a number")
    return int(text)


@dataclass(slots=True)
class Ctx:
    """Who is talking, where, and the language their app reports (used on first contact)."""

    buyer: Buyer
    chat_id: str
    language_hint: str | None = None


@dataclass(slots=True)
class Turn:
    """One step of a buyer's conversation, as a handler sees it."""

    flow: CustomerFlow
    customer: Customer
    ctx: Ctx
    lang: str
    state: Conversation = field(init=False)  # the customer's conversation state, typed (handlers/state.py)

    def __post_init__(self) -> None:
        self.state = Conversation(self.customer)

    @property
    def shop(self) -> Shop:
        return self.flow.shop

    @property
    def buyer(self) -> Buyer:
        return self.ctx.buyer

    def t(self, key: str, /, **params: object) -> str:
        return self.flow.i18n.t(self.lang, key, **params)

    def money(self, amount: int, currency: str) -> str:
        return self.flow.i18n.money(amount, currency, self.lang)

    def title(self, product: Product) -> str:
        return localized(product.title, self.lang, self.shop.default_language)

    def home(self) -> list[list[Action]]:
        """The row that leads back to the menu."""
        return [[Action(Home.MENU.id(), self.t("nav.menu"))]]

    async def save(self) -> None:
        """Store what changed of the customer (field by field: Shop.save_customer)."""
        await self.shop.save_customer(self.customer)


@dataclass(frozen=True, slots=True)
class Route:
    """An action name, its handler, the kinds of its arguments, and the waits (Conversation.WAITS) it continues."""

    name: str
    handler: Handler
    kinds: tuple[type, ...]
    required: int
    keeps: frozenset[str]

    def parse(self, args: Sequence[str]) -> list[int | str]:
        if not self.required <= len(args) <= len(self.kinds):
            raise ValueError(f"{self.name}: {len(args)} arguments")
        return [number(a) if kind is int else a for kind, a in zip(self.kinds, args, strict=False)]

    async def __call__(self, turn: Turn, args: Sequence[str]) -> list[Screen]:
        out = await self.handler(turn, *self.parse(args))
        return out if isinstance(out, list) else [out]


class Router:
    """Action name -> Route. A feature module owns one (`router = Router("orders")`); CustomerFlow includes them all
    into its own, which also knows the old names buttons already sent still carry (`aliases`)."""

    def __init__(self, name: str, aliases: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.routes: dict[str, Route] = {}
        self.aliases = dict(aliases or {})

    def action(self, name: str, *, keeps: Iterable[str] = ()) -> Callable[[H], H]:
        """Register the decorated coroutine as the handler of `name`; `keeps`: the waits it continues (every other
        wait of the conversation is forgotten before it runs)."""
        unknown = set(keeps) - set(Conversation.WAITS)
        if unknown:
            raise ValueError(f"{name}: unknown waits {sorted(unknown)}")

        def register(handler: H) -> H:
            params = list(inspect.signature(handler).parameters.values())[1:]  # after the turn
            kinds = []
            for p in params:
                annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
                kind = KINDS.get(annotation)
                if kind is None or p.kind is not p.POSITIONAL_OR_KEYWORD:
                    raise TypeError(f"{handler.__qualname__}: parameter {p.name} must be an int or a str")
                kinds.append(kind)
            required = sum(p.default is p.empty for p in params)
            self._add(Route(str(name), handler, tuple(kinds), required, frozenset(keeps)))
            return handler

        return register

    def include(self, *routers: Router) -> Router:
        for router in routers:
            for route in router.routes.values():
                self._add(route)
        return self

    def _add(self, route: Route) -> None:
        if route.name in self.routes:
            raise ValueError(f"action {route.name!r} has two handlers")
        self.routes[route.name] = route

    def find(self, name: str) -> Route | None:
        """The route of a name, or of the old name it replaced; None for an unknown name."""
        return self.routes.get(self.aliases.get(name, name))
