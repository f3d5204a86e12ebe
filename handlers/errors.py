"""Every refusal, in words: the one place a core refusal becomes a message (chat, group, merchant, command line) or
an answer of the B2B API.

A refusal is a `core.errors.Refused`: its `code` is a member of its area's enum and its `params` fill the message.
Each enum has its room of messages (ROOMS): a member's message is `<room>.<value>` (locales/*/errors.po holds them
all; tests check every member has one in every language). A refused product rule says which rule:
`rules.refused.<rule>`. Parameters are shown the way the reader's language writes them (money, order statuses,
ticket states). The B2B API answers with its own stable codes (API_CODES; bots/b2b_api.py words them).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.admin import AdminCode
from core.aftersales import AftersalesCode
from core.auditlog import AuditLogCode
from core.cardfaces import CardFaceCode
from core.console import ConsoleCode
from core.coupons import CouponCode
from core.errors import ErrorCode, Refused
from core.groups import GroupCode
from core.images import ImageCode
from core.order_search import SearchCode
from core.payments import Refusal
from core.privacy import PrivacyCode
from core.reports import ReportCode
from core.resellers import ResellerCode
from handlers.screen import Screen
from locales import Translator

ROOMS: dict[type[StrEnum], str] = {
    ErrorCode: "error",  # the shop (StoreError): buyers in the chat
    ResellerCode: "reseller.error",  # resellers' wallets: merchants, resellers' owners, the command line
    GroupCode: "groups.error",  # orders in a reseller's group chat
    AdminCode: "admin.error",  # merchant commands
    CardFaceCode: "cardface.error",  # card faces (the command line)
    ImageCode: "images.error",  # product pictures (the console's upload)
    AftersalesCode: "admin.error",  # tickets: only merchants answer them, in the words of their other commands
    ReportCode: "admin.error",  # reports: a merchant's /report period
    SearchCode: "admin.error",  # the console's order search
    AuditLogCode: "admin.error",  # the audit log's filters (the console)
    ConsoleCode: "console.login.refused",  # the web console's sign-in links
    CouponCode: "coupons.error",  # coupon campaigns: merchants (run.py coupons, /coupon_off)
    PrivacyCode: "privacy.error",  # run.py forget
    Refusal: "telegram.precheckout",  # why a payment may not be made: Telegram asks before the buyer pays
}
RULE_REFUSED = "rule_refused"  # in ErrorCode and GroupCode: the message is the rule's own
MONEY = ("amount", "available", "needed", "balance")  # amounts in minor units of `currency`, when it is given

# The refusals the B2B API answers with their own code (bots/b2b_api.py ERRORS gives each its HTTP status); any
# other refusal reaches an API caller as `bad_request`.
API_CODES: dict[type[StrEnum], frozenset[str]] = {
    ResellerCode: frozenset({ResellerCode.ACCOUNT_SUSPENDED, ResellerCode.BAD_REQUEST,
                             ResellerCode.IDEMPOTENCY_KEY_REUSED, ResellerCode.INSUFFICIENT_FUNDS}),
    ErrorCode: frozenset({ErrorCode.UNKNOWN_SKU, ErrorCode.NOT_FOUND, ErrorCode.BAD_QUANTITY,
                          ErrorCode.KIND_NOT_SUPPORTED, ErrorCode.PRODUCT_UNAVAILABLE, ErrorCode.SOLD_OUT,
                          ErrorCode.BAD_ACCOUNT, ErrorCode.RULE_REFUSED, ErrorCode.RISK_REFUSED,
                          ErrorCode.NOT_YET_DUE}),
}


@dataclass(frozen=True, slots=True)
class Message:
    """A message of the catalogue (locales/) and what fills it."""

    key: str
    params: dict[str, Any]


def message_of(exc: Refused) -> Message:
    """The locale key and parameters of a refusal's message."""
    return _message(exc.code, exc.params)


def _message(code: StrEnum, params: dict[str, Any]) -> Message:
    if code.value == RULE_REFUSED and params.get("rule"):
        return Message(f"rules.refused.{params['rule']}", dict(params))
    return Message(f"{ROOMS[type(code)]}.{code.value}", dict(params))


def text(i18n: Translator, lang: str, exc: Refused) -> str:
    """A refusal in the reader's language."""
    return words(i18n, lang, exc.code, **exc.params)


def words(i18n: Translator, lang: str, code: StrEnum, /, **params: Any) -> str:
    """The message of a refusal code that comes as a value, not raised (a payment's pre-checkout answer)."""
    message = _message(code, params)
    return i18n.t(lang, message.key, **shown(i18n, lang, message.params))


def screen(i18n: Translator, lang: str, exc: Refused) -> Screen:
    """A refusal as a chat answer (its code in `error` for the adapters and the tests)."""
    return Screen(text(i18n, lang, exc), error=exc.code.value)


def shown(i18n: Translator, lang: str, params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as the language writes them: amounts with their currency, an order's status, a ticket's state."""
    out = dict(params)
    currency = out.pop("currency", None)
    if currency:
        for name in MONEY:
            if isinstance(out.get(name), int) and not isinstance(out[name], bool):
                out[name] = i18n.money(out[name], str(currency), lang)
    if "status" in out and f"status.{out['status']}" in i18n.catalogs.get(i18n.default, {}):
        out["status"] = i18n.t(lang, f"status.{out['status']}")
    if "state" in out:
        out["state"] = i18n.t(lang, f"aftersales.ticket_status.{out['state']}") if out["state"] else "-"
    return out


def api_code(exc: Refused) -> str:
    """The B2B API's error code for a refusal."""
    return exc.code.value if exc.code in API_CODES.get(type(exc.code), frozenset()) else "bad_request"
