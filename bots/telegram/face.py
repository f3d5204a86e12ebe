"""The bot's own face in Telegram: the "/" command menu, the profile's description and the empty chat's short
description, per language. Set at every start (in the background: a refusal is a warning, the store runs on) and
by `run.py telegram setup` (once; a refusal is its exit status).

    face = await bot_face(settings, shop, i18n)   # what to set, from the config and the catalogue
    await apply_face(port, face)                  # setMyCommands / setMyDescription / setMyShortDescription

Per language of `store.languages` Telegram gets the texts under its two-letter `language_code` (`zh_CN` -> `zh`),
and those of `store.default_language` also with no language_code (every other app language). Buyers get the
buyer commands; each merchant (`telegram.admins`) gets, in their own chat (BotCommandScopeChat), the merchant
commands and the buyer ones.

With the Mini App on (`telegram.webapp.enabled` and an https `server.public_url`), the bot's menu button (every
chat) becomes a web_app button "Shop" (in `store.default_language`: setChatMenuButton has no language_code)
opening `<public_url>/app/`; with it off, a menu button opening a `/app/` page (the store's, set before) is
reset to Telegram's default.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from bots.telegram.common import bot_id
from core.models import localized
from core.shop import Shop
from handlers.admin import COMMANDS as ADMIN_COMMANDS
from handlers.console_link import COMMAND as CONSOLE_COMMAND
from locales import Translator

log = logging.getLogger(__name__)

DESCRIPTION_LIMIT = 512  # setMyDescription
SHORT_DESCRIPTION_LIMIT = 120  # setMyShortDescription
COMMAND_DESCRIPTION_LIMIT = 256  # BotCommand.description
BUYER_COMMANDS = ("start", "orders", "help", "language", "paysupport", "terms", "mydata")
# The merchant menu's order (the most used first); a merchant command missing here follows, alphabetically.
MERCHANT_ORDER = ("admin", "console", "stock", "orders", "order", "refund", "tickets", "reissue", "reject", "report",
                  "export", "product", "import", "audit", "review", "risk", "ban", "unban", "bans", "reseller",
                  "wallet", "payout", "linkgroup", "unlinkgroup", "broadcast", "coupons", "coupon_off")
CATEGORIES_SHOWN = 12
FACE_SECONDS = 60  # several processes of one bot starting within this long set the face once
MINI_APP_PATH = "/app/"  # where the store serves the Mini App's page


class FacePort(Protocol):
    """The Bot API calls of the face (bots/telegram/common.py LibraryPort implements them for both libraries)."""

    async def set_commands(self, commands: list[tuple[str, str]], language: str = "",
                           chat_id: int | None = None) -> None: ...
    async def set_description(self, text: str, language: str = "") -> None: ...
    async def set_short_description(self, text: str, language: str = "") -> None: ...
    async def set_menu_button(self, text: str, url: str) -> None: ...
    async def menu_button_url(self) -> str | None: ...
    async def reset_menu_button(self) -> None: ...


@dataclass(slots=True)
class Words:
    """What one language_code ("" = every other language) gets."""

    language: str  # Telegram's language_code, "" for the default
    buyer: list[tuple[str, str]]
    merchant: list[tuple[str, str]]
    description: str
    short_description: str


@dataclass(slots=True)
class Face:
    words: list[Words]
    merchants: list[int] = field(default_factory=list)
    menu_button: tuple[str, str] | None = None  # (text, url) of the web_app menu button; None: left as it is


def webapp_url(settings: Any) -> str | None:
    """The Mini App's address (`<server.public_url>/app/`) when it is served and Telegram can open it: Telegram
    opens web_app buttons on https addresses only."""
    public = settings.server.public_url
    if not (settings.telegram.enabled and settings.telegram.webapp.enabled and public.startswith("https://")):
        return None
    return public.rstrip("/") + MINI_APP_PATH


def telegram_code(lang: str) -> str:
    """Telegram's language_code of a catalogue language: its two-letter (ISO 639-1) part."""
    return lang.replace("-", "_").split("_", 1)[0].lower()


def utf16_len(text: str) -> int:
    """Telegram counts text lengths in UTF-16 code units (an emoji may take two)."""
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """`text` within `limit` (UTF-16 units): cut at the last space or comma before the limit when there is one
    (Chinese has none: cut at a character), with "…" marking the cut; never a broken surrogate pair."""
    text = text.strip()
    if utf16_len(text) <= limit:
        return text
    cut = text
    while utf16_len(cut) > limit - 1:
        cut = cut[:-1]
    for sep in (" ", ",", "、", "，"):
        at = cut.rfind(sep)
        if at >= len(cut) // 2:
            cut = cut[:at]
            break
    return cut.rstrip(" ,、，;:—-") + "…"


def merchant_commands() -> list[str]:
    names = {c.lstrip("/") for c in ADMIN_COMMANDS | {CONSOLE_COMMAND}}
    return [c for c in MERCHANT_ORDER if c in names] + sorted(names - set(MERCHANT_ORDER))


def _list_within(i18n: Translator, lang: str, key: str, limit: int, names: list[str], **params: object) -> str:
    """The message `key` with as many of `names` as fit in `limit` ("…" when some were left out)."""
    joiner = "、" if lang.startswith("zh") else ", "
    for n in range(len(names), 0, -1):
        shown = joiner.join(names[:n]) + ("…" if n < len(names) else "")
        text = i18n.t(lang, key, categories=shown, **params)
        if utf16_len(text) <= limit:
            return text
    return fit(i18n.t(lang, key + "_none", **params), limit)


async def catalogue_names(shop: Shop, lang: str) -> list[str]:
    """The categories' names in `lang` (catalogue order), or the products' titles when there are none."""
    cats = [localized(p.category, lang, shop.default_language) for key, p in await shop.categories() if key]
    if not cats:
        cats = [localized(p.title, lang, shop.default_language) for p in await shop.products()]
    return [c for c in dict.fromkeys(c.strip() for c in cats) if c][:CATEGORIES_SHOWN]


async def bot_face(settings: Any, shop: Shop, i18n: Translator) -> Face:
    """The face from the config (store.name, store.languages, telegram.admins) and the catalogue's words."""
    store = settings.store
    words: list[Words] = []
    seen: set[str] = set()
    langs = [(store.default_language, "")] + [(lang, telegram_code(lang)) for lang in store.languages]
    for lang, code in langs:
        if code in seen:  # zh_CN and zh_TW would both be "zh": the first one wins
            continue
        seen.add(code)
        names = await catalogue_names(shop, lang)

        def described(prefix: str, commands: list[str], lang: str = lang) -> list[tuple[str, str]]:
            return [(c, fit(i18n.t(lang, f"{prefix}{c}"), COMMAND_DESCRIPTION_LIMIT)) for c in commands]

        admin = merchant_commands()
        merchant = described("face.admin.", admin) + described("face.buyer.",
                                                               [c for c in BUYER_COMMANDS if c not in admin])
        params = {"shop": store.name}
        description = _list_within(i18n, lang, "face.description", DESCRIPTION_LIMIT, names, **params) if names \
            else fit(i18n.t(lang, "face.description_none", **params), DESCRIPTION_LIMIT)
        short = _list_within(i18n, lang, "face.short", SHORT_DESCRIPTION_LIMIT, names, **params) if names \
            else fit(i18n.t(lang, "face.short_none", **params), SHORT_DESCRIPTION_LIMIT)
        words.append(Words(code, described("face.buyer.", list(BUYER_COMMANDS)), merchant, description, short))
    url = webapp_url(settings)
    menu = (i18n.t(store.default_language, "miniapp.menu_button"), url) if url else None
    return Face(words, list(settings.telegram.admins), menu)


async def apply_face(port: FacePort, face: Face) -> None:
    """Every call of the face, in turn; the first refusal is raised (the CLI reports it)."""
    for w in face.words:
        await port.set_commands(w.buyer, w.language)
        await port.set_description(w.description, w.language)
        await port.set_short_description(w.short_description, w.language)
    for chat_id in face.merchants:
        for w in face.words:
            await port.set_commands(w.merchant, w.language, chat_id)
    if face.menu_button is not None:
        await port.set_menu_button(*face.menu_button)
    else:  # the Mini App is off: a menu button the store set for it goes (one set by hand elsewhere stays)
        url = await port.menu_button_url()
        if url is not None and url.rstrip("/").endswith(MINI_APP_PATH.rstrip("/")):
            await port.reset_menu_button()


async def set_face_quietly(port: FacePort, settings: Any, shop: Shop, i18n: Translator) -> bool:
    """At start: the face, or a WARNING when Telegram (or the network) refuses it; the store runs on either way.
    Several processes of one bot (`redis.url`, docs/several-processes.md) starting together set it once: the first
    claims `tg:<bot id>:face` for FACE_SECONDS, the others leave it to that one (all read the same config). A failed
    attempt gives the claim back, so the next process to start tries again."""
    key, me = f"tg:{bot_id(settings)}:face", f"{os.getpid()}-{secrets.token_hex(4)}"
    if shop.shared.distributed and await shop.shared.claim(key, me, FACE_SECONDS) is not None:
        log.info("the bot's commands and description are being set by another process of this bot")
        return True
    try:
        await apply_face(port, await bot_face(settings, shop, i18n))
    except asyncio.CancelledError:
        await shop.shared.release(key, me)
        raise
    except Exception as exc:  # noqa: BLE001 - the face is cosmetic: never stops the store
        log.warning("the bot's commands and description were not set in Telegram: %s: %s",
                    type(exc).__name__, str(exc)[:200])
        await shop.shared.release(key, me)
        return False
    log.info("the bot's commands and description are set in Telegram")
    return True


class FaceTask:
    """The face set in the background at a runtime's start (the start does not wait for it); stopped with it."""

    def __init__(self) -> None:
        self.task: asyncio.Task[bool] | None = None

    def start(self, port: FacePort, settings: Any, shop: Shop, i18n: Translator) -> None:
        if self.task is None:
            self.task = asyncio.create_task(set_face_quietly(port, settings, shop, i18n), name="telegram-face")

    async def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = None
