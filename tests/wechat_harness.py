"""Shared harness for the WeChat end-to-end tests: a real store (App, HTTP server, the WeChat storefront)
whose WeChat API is tests/fake_wechat_api.py and whose callback gets XML from `WeChatServer` (WeChat's side,
signed with wechatpy's own signer / WeChatCrypto).

    async with FakeWeChatAPI(APPID, SECRET) as api, WeChatShop(api, tmp_path) as shop:
        reply = await shop.wx.text("o-ann", "1")
        await shop.idle()                       # QR images, held codes, alerts: all sent
        api.texts("o-ann")

The store runs in safe mode (安全模式, `wechat.aes_key` set), as a shop should: merchant commands and codes shown
again need it. `WeChatShop(..., wechat={"aes_key": ""})` is plain mode.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import xmltodict

from app import App
from bots.http import HttpServer
from config.settings import Settings, parse_settings
from core.clock import Clock
from core.models import Buyer
from core.supply import import_codes
from tests.dbtemplate import from_template
from tests.fake_wechat_api import FakeWeChatAPI, WeChatServer
from tests.fake_wechat_pay import FakeWeChatPay, make_cert

APPID = "wx_test_appid"
SECRET = "test_secret"
TOKEN = "callback_token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters
MCH_ID = "1900000109"
PAY_KEY = "192006250b4c09247ec02edce69f6a2d"
ADMIN = "o-merchant"
CATALOG = [
    {"sku": "GAME", "title": {"en": "Game card", "zh_CN": "游戏点卡"}, "price": 1000, "max_qty": 3},
    {"sku": "VIP", "title": {"en": "Video VIP", "zh_CN": "视频会员"}, "price": 1500},
]


def store_settings(api: FakeWeChatAPI, tmp_path: Path, *, wechat: dict[str, Any] | None = None,
                   store: dict[str, Any] | None = None, extra: dict[str, Any] | None = None,
                   database: str | None = None) -> Settings:
    """`extra` adds config sections (e.g. `risk`); `database` another database URL than a SQLite file in tmp_path."""
    return parse_settings({
        "store": {"name": "WX Shop", "support": "客服微信 shop-help", **(store or {})},
        "database": {"url": database or f"sqlite+aiosqlite:///{tmp_path / 'wx.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "wechat": {"appid": APPID, "token": TOKEN, "secret": SECRET, "api_base": api.base, "admins": [ADMIN],
                   **(wechat or {})},
        "catalog": CATALOG, **(extra or {})}, tmp_path, env={})


class WeChatShop:
    """The store process serving /wechat on a free port, and WeChat's side posting to it (`wx`)."""

    def __init__(self, api: FakeWeChatAPI, tmp_path: Path, *, clock: Clock | None = None,
                 wechat: dict[str, Any] | None = None, store: dict[str, Any] | None = None,
                 budget: float | None = None, pay: FakeWeChatPay | None = None,
                 extra: dict[str, Any] | None = None, database: str | None = None) -> None:
        self.api = api
        self.pay = pay
        wechat = {"aes_key": AES_KEY, **(wechat or {})}
        if pay is not None:
            cert, key = make_cert(tmp_path, "merchant")
            wechat["pay"] = {"mch_id": MCH_ID, "api_key": PAY_KEY, "api_base": pay.api_base,
                             "notify_url": "https://shop.example.com/wechat/pay/notify",
                             "cert": str(cert), "key": str(key)}
        self.settings = store_settings(api, tmp_path, wechat=wechat, store=store, extra=extra, database=database)
        self.clock = clock
        self.budget = budget

    async def __aenter__(self) -> WeChatShop:
        from_template(self.settings.database_url_resolved())  # a new SQLite file starts migrated
        self.app = await App.open(self.settings, clock=self.clock)
        self.server = HttpServer("127.0.0.1", 0)
        self.runtime = self.app.add_wechat(self.server, budget=self.budget)
        await self.app.shop.start()
        await self.runtime.start()
        await self.server.start()
        self.url = f"http://127.0.0.1:{self.server.port}"
        wx = self.settings.wechat
        self.wx = WeChatServer(self.url + "/wechat", TOKEN, APPID, wx.aes_key.get_secret_value() or None)
        await self.wx.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.wx.__aexit__()
            await self.server.stop()
            await self.runtime.stop()
        finally:
            await self.app.close()

    async def stock(self, n: int, sku: str = "GAME", prefix: str = "WX") -> list[str]:
        codes = [f"{prefix}-{sku}-{i:04d}" for i in range(n)]
        await import_codes(self.app.db.uow, self.app.vault, self.app.clock, sku, [(c + "\n").encode() for c in codes])
        return codes

    async def idle(self) -> None:
        """Follow-up messages, the outbox and alerts: everything due has gone out."""
        for _ in range(5):
            await self.runtime.idle()
            await self.app.shop.dispatcher.drain()
            await self.runtime.idle()

    async def pay_notice(self, order_id: str, openid: str) -> tuple[int, bytes]:
        """WeChat Pay tells the store the order was paid: the signed notice POSTed to /wechat/pay/notify."""
        assert self.pay is not None
        self.pay.mark_paid(order_id, openid)
        body = self.pay.notify_xml(order_id)
        assert self.wx._session is not None
        async with self.wx._session.post(self.url + "/wechat/pay/notify", data=body,
                                         headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.read()

    async def order_ids(self, openid: str) -> list[str]:
        return [o.id for o in await self.app.shop.my_orders(Buyer("wechat", openid), limit=50)]


def option(reply: str, label_part: str) -> str:
    """The number offered for the option whose line contains label_part ("回复 3 ⬅ 返回" -> "3")."""
    for line in reply.splitlines():
        if label_part in line:
            for word in line.replace(":", " ").split():
                if word.isdigit():
                    return word
    raise AssertionError(f"no option {label_part!r} in:\n{reply}")


def sealed(wx: WeChatServer, xml: str, query: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """One message as WeChat sends it, (body, query): encrypted with its msg_signature in safe mode. Posting the
    same two again is a replay; `query` from another message is a captured callback URL used again."""
    query = dict(query if query is not None else wx.signed_query())
    if wx.crypto is None:
        return xml, query
    body = wx.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
    query.update(encrypt_type="aes", msg_signature=xmltodict.parse(body)["xml"]["MsgSignature"])
    return body, query


def opened(wx: WeChatServer, raw: bytes) -> str:
    """The text of a passive reply as the user sees it ("" for `success`), decrypted in safe mode."""
    if raw in (b"", b"success"):
        return ""
    if wx.crypto is not None:
        outer = xmltodict.parse(raw)["xml"]
        raw = wx.crypto.decrypt_message(raw, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"]).encode()
    return str(xmltodict.parse(raw)["xml"]["Content"])


async def price(shop: WeChatShop, sku: str) -> int:
    [product] = [p for p in await shop.app.shop.products(include_inactive=True) if p.sku == sku]
    return product.price
