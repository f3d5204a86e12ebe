"""Who is asking: the app the shop page runs in (its *host*) and the buyer it vouches for.

One front-end, two hosts: the same page and the same `/app/api/` serve Telegram's Mini App and WeChat's H5 shop.
What differs is kept here, behind `Host`:

- **who the buyer is** — `identify(credentials)` checks the `Authorization: <scheme> <credentials>` header's
  credentials and answers a `Visitor` (raises `Unauthorized(reason)`): Telegram's signed `initData` (scheme
  `tma`, core/webapp_auth.py), WeChat's H5 session token after OAuth2 `snsapi_base` (scheme `wxh5`,
  bots/wechat/h5.py);
- **what prices the page shows** — `currency`: Telegram sells in Stars (`XTR`), WeChat in the store's currency;
- **how an order held by the one core pipeline is paid** — `pay(...)` answers the `"pay"` object of
  `POST /app/api/orders` (Telegram: an invoice link from `createInvoiceLink` that the page opens with
  `Telegram.WebApp.openInvoice`; WeChat: the signed `getBrandWCPayRequest` parameters of a JSAPI order). The
  payment itself always arrives through the channel's own payment entry (Telegram's `successful_payment`, WeChat
  Pay's notice) into `Shop.pay`: a host never records a payment.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bots.telegram.common import invoice_words
from core.clock import Clock
from core.models import Buyer, Order, Product, localized
from core.webapp_auth import InitDataRefused, check_init_data

if TYPE_CHECKING:
    from bots.telegram.common import TelegramPort
    from locales import Translator


@dataclass(frozen=True, slots=True)
class Visitor:
    """The buyer a host vouches for on one request."""

    host: str  # the Host's name: "telegram" | "wechat"
    buyer: Buyer
    chat_id: str  # where the chat reaches the buyer (Telegram: the user id, a private chat; WeChat: the openid)
    language_hint: str | None = None  # the app's language (Telegram's language_code); the buyer's choice wins


class Unauthorized(Exception):
    """The credentials are missing, forged, stale or for another bot/app: 401 and nothing done. `reason` is a
    stable word the page can act on (core/webapp_auth.py InitDataRefusal values, or the host's own)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Identity(Protocol):
    name: str  # "telegram" | "wechat": Visitor.host, and what the page is told it runs in
    scheme: str  # the Authorization scheme it answers: "tma" | "wxh5"
    currency: str  # the currency of the prices the page shows and the orders it places: "XTR" | "CNY" ...

    def identify(self, credentials: str) -> Visitor:
        """The visitor these credentials prove, or Unauthorized."""
        ...

    def unit_price(self, product: Product) -> int | None:
        """One unit's price in `currency` (minor units; Stars are whole), None when the product is not sold here."""
        ...


class Host(Identity, Protocol):

    async def pay(self, order: Order, product: Product, visitor: Visitor, client_ip: str) -> dict[str, Any]:
        """The `"pay"` object for a held order: how the page has the buyer pay it (never records a payment)."""
        ...


class TelegramIdentity:
    """Telegram's half of identify: `initData` checked as Telegram specifies (HMAC-SHA256 keyed by the bot's token
    through `WebAppData`, `auth_date` at most `max_age` old)."""

    name = "telegram"
    scheme = "tma"
    currency = "XTR"

    def __init__(self, bot_token: str, clock: Clock, max_age: timedelta) -> None:
        if not bot_token:
            raise ValueError("the Mini App needs the bot's token (telegram.token)")
        self._token = bot_token
        self.clock = clock
        self.max_age = max_age

    def identify(self, credentials: str) -> Visitor:
        try:
            init = check_init_data(credentials.strip(), self._token, self.clock.now(), self.max_age)
        except InitDataRefused as refused:
            raise Unauthorized(refused.reason.value) from None
        uid = str(init.user.id)
        return Visitor(self.name, Buyer("telegram", uid), uid, init.user.language_code)

    def unit_price(self, product: Product) -> int | None:
        return product.stars or None  # Telegram sells digital goods for Stars only


class TelegramHost(TelegramIdentity):
    """The Telegram Mini App: pays a held order with a Stars invoice link (`createInvoiceLink`, XTR, one price,
    payload = the order id) that the page opens with `Telegram.WebApp.openInvoice`. The invoice says what the
    chat's invoice says (bots/telegram/common.py invoice_words); paying it is the bot's own pre_checkout_query /
    successful_payment, into Shop.pay."""

    def __init__(self, bot_token: str, clock: Clock, max_age: timedelta, port: TelegramPort, i18n: Translator,
                 default_language: str) -> None:
        super().__init__(bot_token, clock, max_age)
        self.port = port
        self.i18n = i18n
        self.default_language = default_language

    async def pay(self, order: Order, product: Product, visitor: Visitor, client_ip: str) -> dict[str, Any]:
        lang = order.language or self.default_language
        title = localized(product.title, lang, self.default_language)
        minutes = max(1, round((order.expires_at - order.created_at).total_seconds() / 60))
        words = invoice_words(self.i18n, lang, order.id, title, order.qty, minutes)
        url = await self.port.create_invoice_link(words.title, words.description, order.id, words.label,
                                                  order.price_in(self.currency) or 0)
        return {"kind": "telegram_invoice", "url": url}
