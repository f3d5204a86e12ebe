"""A buyer's conversation state (`customers.state`): every key, its type, and the one way to read and write it.

The row holds a JSON object; each field of `Conversation` is one key of it. `Shop.save_customer` writes only the
keys that changed since the customer was read, so two updates of one buyer that change different fields both land
(a language switch and a delivery remembering its screen; two processes). The keys and their JSON shapes are those
of the rows stored before this module existed, so an old row reads as it always did; a value of another shape
reads as absent (nothing awaited), never as an error.

    state = Conversation(customer)
    state.topup = TopupWait(product_id=3)      # customer.state["topup"] == {"p": 3}
    await shop.save_customer(customer)         # writes that key only
    state.topup = None                         # forgotten (the key is removed at the next save)
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, overload

from core.models import Customer

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TopupWait:
    """A top-up's account is asked for (the next message typed is the account), then shown back to confirm."""

    product_id: int
    account: str = ""  # the typed account once it fit the product's pattern


@dataclass(frozen=True, slots=True)
class ChallengeWait:
    """Numbered channels (WeChat, the console): the answer to a risk challenge is typed next."""

    token: str
    product_id: int
    qty: int


@dataclass(frozen=True, slots=True)
class NoteWait:
    """The description of an "other" problem with this order is typed next."""

    order_id: str


@dataclass(frozen=True, slots=True)
class CouponWait:
    """A coupon on a product screen (core/coupons.py): asked for (the next message typed is the code; `sealed` is
    empty), then applied (`sealed`: the code encrypted by the vault, CouponDesk.seal) until the buyer buys or leaves
    the product."""

    product_id: int
    qty: int
    sealed: str = ""


@dataclass(frozen=True, slots=True)
class LinkWait:
    """A link code is typed next ("I have a code"). The code itself is never stored."""


class Field(Generic[T]):
    """One key of the state: its name in the row, how its JSON reads (None: absent or of another shape), and how a
    value is written. Assigning None removes the key."""

    def __init__(self, key: str, load: Callable[[Any], T | None], dump: Callable[[T], Any]) -> None:
        self.key = key
        self.load = load
        self.dump = dump

    @overload
    def __get__(self, obj: None, owner: type) -> Field[T]: ...

    @overload
    def __get__(self, obj: Conversation, owner: type) -> T | None: ...

    def __get__(self, obj: Conversation | None, owner: type) -> Field[T] | T | None:
        if obj is None:
            return self
        raw = obj.customer.state.get(self.key)
        return None if raw is None else self.load(raw)

    def __set__(self, obj: Conversation, value: T | None) -> None:
        if value is None:
            obj.customer.state.pop(self.key, None)
        else:
            obj.customer.state[self.key] = self.dump(value)


def _int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError(raw)
    return int(raw)


def _shape(read: Callable[[dict[str, Any]], T]) -> Callable[[Any], T | None]:
    """A reader of a JSON object that answers None for anything else (a row written by hand, a bug long fixed)."""

    def load(raw: Any) -> T | None:
        if not isinstance(raw, dict):
            return None
        try:
            return read(raw)
        except (KeyError, TypeError, ValueError):
            return None

    return load


def _strings(raw: Any) -> list[str] | None:
    return [str(a) for a in raw] if isinstance(raw, list) else None


def _text(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None


def _entries(raw: Any) -> list[dict[str, Any]] | None:
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else None


def _topup(value: TopupWait) -> dict[str, Any]:
    return {"p": value.product_id, **({"a": value.account} if value.account else {})}


class Conversation:
    """The typed view of one customer's state. Reading and writing change `customer.state` (the row's JSON) and
    nothing else; `Shop.save_customer(customer)` stores what changed."""

    __slots__ = ("customer",)

    # The actions of the last screen sent (numbered channels: "2" picks the second), as action ids.
    actions: Field[list[str]] = Field("actions", _strings, list)
    # What a flow waits for next (WAITS): forgotten when the buyer goes elsewhere (Route.keeps says who continues).
    topup: Field[TopupWait] = Field("topup", _shape(lambda d: TopupWait(_int(d["p"]), str(d.get("a") or ""))),
                                    _topup)
    challenge: Field[ChallengeWait] = Field(
        "challenge", _shape(lambda d: ChallengeWait(str(d["t"]), _int(d["p"]), _int(d["q"]))),
        lambda v: {"t": v.token, "p": v.product_id, "q": v.qty})
    report_note: Field[NoteWait] = Field("rp_note", _shape(lambda d: NoteWait(str(d["o"]))),
                                         lambda v: {"o": v.order_id})
    link: Field[LinkWait] = Field("link", _shape(lambda d: LinkWait()), lambda v: {"w": 1})
    coupon: Field[CouponWait] = Field(
        "coupon", _shape(lambda d: CouponWait(_int(d["p"]), _int(d["q"]), str(d.get("s") or ""))),
        lambda v: {"p": v.product_id, "q": v.qty, **({"s": v.sealed} if v.sealed else {})})
    # WeChat: deliveries held back while the 48-hour window was closed (bots/wechat/frontend.py Pending).
    wechat_pending: Field[list[dict[str, Any]]] = Field("wechat_pending", _entries, list)
    # The payload of the first deep link the buyer came by (`/start ref_12`): read for referrals by
    # storage/resellers.py straight from the row's JSON, so the key must stay "start_payload".
    start_payload: Field[str] = Field("start_payload", _text, str)

    WAITS = ("topup", "challenge", "report_note", "link", "coupon")

    def __init__(self, customer: Customer) -> None:
        self.customer = customer

    def forget(self, keep: Iterable[str] = ()) -> bool:
        """Drop every wait but those in `keep`; True when something was dropped (the customer needs a save)."""
        kept = set(keep)
        dropped = False
        for name in self.WAITS:
            field: Field[Any] = getattr(type(self), name)
            if name not in kept and field.key in self.customer.state:
                setattr(self, name, None)
                dropped = True
        return dropped
