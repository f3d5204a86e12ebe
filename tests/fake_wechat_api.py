"""A local fake of the WeChat Official Account API (api.weixin.qq.com) for end-to-end tests, plus the other
side of the callback: WeChat's servers posting signed (or AES-encrypted) XML to the store.

    async with FakeWeChatAPI(appid="wx123", secret="s3cret") as api:
        settings: wechat.api_base = api.base
        api.messages("openid")                 # customer-service messages the store sent, in order
        api.fail_next("message/custom/send", 45015)
        wx = WeChatServer(store_url + "/wechat", token="tok", appid="wx123", aes_key=None)
        reply = await wx.text("openid", "1")   # the passive reply's text ("" for "success")

Served (as the real API: JSON answers with errcode/errmsg, HTTP 200 even for errors):
- GET  /cgi-bin/token?grant_type=client_credential&appid=&secret=  -> a new access_token. Like WeChat, every
  fetch invalidates the previous token (calls with it get errcode 40001), so a second refresher shows.
- POST /cgi-bin/message/custom/send?access_token=   JSON {touser, msgtype, text|image}
- POST /cgi-bin/message/template/send?access_token=   JSON {touser, template_id, url, data: {field: {value}}}
  (no 48-hour window; `unsubscribed` followers get 43004)
- POST /cgi-bin/media/upload?access_token=&type=image   multipart field "media" -> media_id
- POST /cgi-bin/menu/create?access_token=   JSON {button: [...]}
- POST /cgi-bin/webhook/send?key=   a WeCom group robot (send-only), JSON {msgtype: text, text: {content}}
- GET  /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=&state=   WeChat's OAuth2 page
  (open.weixin.qq.com; point `wechat.h5.oauth_base` at `base`): the buyer agrees at once and is sent back, 302 to
  `redirect_uri?code=CODE&state=STATE`, as the openid the test chose (`oauth_openid`).
- GET  /sns/oauth2/access_token?appid=&secret=&code=&grant_type=authorization_code   -> {access_token, openid,
  scope, ...}. As WeChat: a code works once and for 5 minutes (`age_codes(seconds)` makes them older), otherwise
  errcode 40029 (invalid code); a wrong secret is 40125.

Faults on demand: `fail_next(path, errcode, times)` (`after=n, to=openid`: the customer-service message after
the next n to that user), `close_window(openid)` (45015 for that user until
`open_window`), `delay` (seconds every API call waits, to show calls do not block the event loop).
wechatpy's client is synchronous and runs in threads; this server runs on the test's event loop.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import urlencode

import aiohttp
import xmltodict
from aiohttp import web
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import WeChatSigner

CODE_TTL = 300  # an OAuth2 code is good for 5 minutes, once
ERRMSG = {40029: "invalid code", 40125: "invalid appsecret",
          40001: "invalid credential, access_token is invalid or not latest",
          40013: "invalid appid", 45015: "response out of time limit or subscription is canceled",
          45047: "out of response count limit", 43004: "require subscribe", 40007: "invalid media_id"}


@dataclass
class Call:
    path: str
    query: dict[str, str]
    body: Any
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    errcode: int = 0
    at: float = 0.0


class FakeWeChatAPI:
    def __init__(self, appid: str = "wx_test_appid", secret: str = "test_secret") -> None:
        self.appid = appid
        self.secret = secret
        self.base = ""
        self.token = ""
        self.token_fetches = 0
        self.calls: list[Call] = []
        self.media: dict[str, bytes] = {}
        self.menus: list[dict] = []
        self.qrcodes: dict[str, dict] = {}  # ticket -> the qrcode/create request (its scene)
        self.delay = 0.0
        self.oauth_openid = "o-h5-buyer"  # who agrees on the OAuth2 page
        self._codes: dict[str, tuple[str, float]] = {}  # code -> (openid, when issued)
        self.authorized: list[dict[str, str]] = []  # the OAuth2 page's requests (query), in order
        self._faults: dict[str, list[int]] = {}
        self._aimed: list[list[Any]] = []  # [openid, errcode, calls to let through first, times]
        self._closed: set[str] = set()
        self.unsubscribed: set[str] = set()  # followers who left: template messages to them get 43004
        self._ids = itertools.count(1)
        self._waiters: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/message/template/send", self._template_send)
        app.router.add_post("/cgi-bin/media/upload", self._media_upload)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        app.router.add_post("/cgi-bin/qrcode/create", self._qrcode_create)
        app.router.add_post("/cgi-bin/webhook/send", self._robot)
        app.router.add_get("/connect/oauth2/authorize", self._authorize)
        app.router.add_get("/sns/oauth2/access_token", self._oauth_token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- faults --------------------------------------------------------------------------------
    def fail_next(self, path: str, errcode: int, times: int = 1, *, after: int = 0, to: str | None = None) -> None:
        """The next `times` calls of `path` ("message/custom/send", "media/upload", ...) answer errcode. With
        `to` (customer-service messages only): the next ones to that openid, after letting `after` through."""
        if to is not None:
            self._aimed.append([to, errcode, after, times])
            return
        self._faults.setdefault(path.strip("/"), []).extend([errcode] * times)

    def _aimed_fault(self, openid: str) -> int:
        for fault in self._aimed:
            if fault[0] == openid and fault[3] > 0:
                if fault[2] > 0:
                    fault[2] -= 1
                    return 0
                fault[3] -= 1
                return int(fault[1])
        return 0

    def close_window(self, openid: str) -> None:
        """Customer-service messages to openid get 45015 until open_window (the user wrote again)."""
        self._closed.add(openid)

    def open_window(self, openid: str) -> None:
        self._closed.discard(openid)

    # -- what happened ------------------------------------------------------------------------------
    def sends(self, openid: str | None = None) -> list[Call]:
        """Customer-service messages taken (errcode 0), optionally to one user."""
        return [c for c in self.calls if c.path == "message/custom/send" and c.errcode == 0
                and (openid is None or c.body.get("touser") == openid)]

    def texts(self, openid: str) -> list[str]:
        return [c.body["text"]["content"] for c in self.sends(openid) if c.body.get("msgtype") == "text"]

    def images(self, openid: str) -> list[bytes]:
        return [self.media[c.body["image"]["media_id"]] for c in self.sends(openid)
                if c.body.get("msgtype") == "image"]

    def robot_texts(self) -> list[str]:
        return [c.body["text"]["content"] for c in self.calls if c.path == "webhook/send"]

    def refused(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path and c.errcode]

    async def wait_for(self, check: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Wait until check() is truthy (re-checked after every API call)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (found := check()):
            if loop.time() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; calls: "
                                   f"{[(c.path, c.errcode) for c in self.calls]}")
            fut = loop.create_future()
            self._waiters.add(fut)
            try:
                await asyncio.wait_for(fut, max(0.01, deadline - loop.time()))
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(fut)
        return found

    def _record(self, call: Call) -> None:
        call.at = time.monotonic()
        self.calls.append(call)
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    # -- the API ----------------------------------------------------------------------------------
    def _check(self, request: web.Request, path: str) -> int:
        if request.query.get("access_token") != self.token or not self.token:
            return 40001
        faults = self._faults.get(path)
        if faults:
            return faults.pop(0)
        return 0

    @staticmethod
    def _answer(errcode: int, **result: Any) -> web.Response:
        if errcode:
            return web.json_response({"errcode": errcode, "errmsg": ERRMSG.get(errcode, "injected error")})
        return web.json_response({"errcode": 0, "errmsg": "ok", **result})

    async def _token(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("appid") != self.appid or q.get("secret") != self.secret:
            return web.json_response({"errcode": 40013, "errmsg": ERRMSG[40013]})
        self.token_fetches += 1
        self.token = f"TOKEN-{self.token_fetches}-{secrets.token_hex(4)}"  # the previous one is now invalid
        self._record(Call("token", dict(q), None))
        return web.json_response({"access_token": self.token, "expires_in": 7200})

    async def _custom_send(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        body = json.loads(await request.read())
        errcode = self._check(request, "message/custom/send") or self._aimed_fault(str(body.get("touser")))
        if not errcode and body.get("touser") in self._closed:
            errcode = 45015
        if not errcode and body.get("msgtype") == "image" and body["image"]["media_id"] not in self.media:
            errcode = 40007
        self._record(Call("message/custom/send", dict(request.query), body, errcode=errcode))
        return self._answer(errcode)

    async def _template_send(self, request: web.Request) -> web.Response:
        """A template message: no 48-hour window; a follower who unsubscribed gets 43004 (require subscribe)."""
        body = json.loads(await request.read())
        errcode = self._check(request, "message/template/send") or self._aimed_fault(str(body.get("touser")))
        if not errcode and (not body.get("template_id") or not isinstance(body.get("data"), dict)):
            errcode = 40037  # invalid template_id
        if not errcode and body.get("touser") in self.unsubscribed:
            errcode = 43004
        self._record(Call("message/template/send", dict(request.query), body, errcode=errcode))
        if errcode:
            return self._answer(errcode)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": next(self._ids)})

    def templates(self, openid: str) -> list[dict[str, Any]]:
        """The template messages sent to a follower: {template_id, url, data}."""
        return [c.body for c in self.calls if c.path == "message/template/send" and not c.errcode
                and c.body.get("touser") == openid]

    async def _media_upload(self, request: web.Request) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        files: dict[str, tuple[str, bytes]] = {}
        for key, value in (await request.post()).items():
            if isinstance(value, web.FileField):
                files[key] = (value.filename, value.file.read())
                value.file.close()
        errcode = self._check(request, "media/upload")
        if not errcode and (request.query.get("type") != "image" or "media" not in files):
            errcode = 40004
        media_id = ""
        if not errcode:
            media_id = f"MEDIA_{next(self._ids)}"
            self.media[media_id] = files["media"][1]
        self._record(Call("media/upload", dict(request.query), None, files, errcode))
        return self._answer(errcode, type="image", media_id=media_id, created_at=int(time.time()))

    async def _menu_create(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        errcode = self._check(request, "menu/create")
        if not errcode:
            self.menus.append(body)
        self._record(Call("menu/create", dict(request.query), body, errcode=errcode))
        return self._answer(errcode)

    async def _qrcode_create(self, request: web.Request) -> web.Response:
        """A parametric QR code: a ticket for the scene (QR_STR_SCENE / QR_LIMIT_STR_SCENE, scene_str at most 64)."""
        body = json.loads(await request.read())
        errcode = self._check(request, "qrcode/create")
        scene = str(((body.get("action_info") or {}).get("scene") or {}).get("scene_str", ""))
        if not errcode and (body.get("action_name") not in ("QR_STR_SCENE", "QR_LIMIT_STR_SCENE")
                            or not 1 <= len(scene) <= 64):
            errcode = 45157  # invalid scene
        ticket = ""
        if not errcode:
            ticket = f"gQ{next(self._ids)}{secrets.token_hex(8)}=="
            self.qrcodes[ticket] = body
        self._record(Call("qrcode/create", dict(request.query), body, errcode=errcode))
        return self._answer(errcode, ticket=ticket, expire_seconds=body.get("expire_seconds", 0),
                            url=f"http://weixin.qq.com/q/{ticket[:12]}")

    async def _robot(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self._record(Call("webhook/send", dict(request.query), body))
        return web.json_response({"errcode": 0, "errmsg": "ok"})


    # -- OAuth2 (web pages) ---------------------------------------------------------------------------
    def age_codes(self, seconds: float) -> None:
        """Every OAuth2 code issued so far is `seconds` older (past 300: expired)."""
        self._codes = {c: (o, at - seconds) for c, (o, at) in self._codes.items()}

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        self.authorized.append(dict(q))
        if q.get("appid") != self.appid:
            return web.Response(status=400, text="appid invalid (10003)")  # WeChat shows an error page
        if q.get("response_type") != "code" or q.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            return web.Response(status=400, text="scope or response_type invalid (10005)")
        redirect = q.get("redirect_uri", "")
        if not redirect.startswith(("http://", "https://")):
            return web.Response(status=400, text="redirect_uri invalid (10003)")
        code = secrets.token_hex(16)
        self._codes[code] = (self.oauth_openid, time.monotonic())
        sep = "&" if "?" in redirect else "?"
        raise web.HTTPFound(f"{redirect}{sep}{urlencode({'code': code, 'state': q.get('state', '')})}")

    async def _oauth_token(self, request: web.Request) -> web.Response:
        q = request.query
        self._record(Call("sns/oauth2/access_token", {k: v for k, v in q.items() if k != "secret"}, None))
        if q.get("appid") != self.appid:
            return self._answer(40013)
        if q.get("secret") != self.secret:
            return self._answer(40125)
        if q.get("grant_type") != "authorization_code":
            return self._answer(40029)
        issued = self._codes.pop(q.get("code", ""), None)  # once, used or not
        if issued is None or time.monotonic() - issued[1] > CODE_TTL:
            return self._answer(40029)
        return web.json_response({"access_token": f"SNS-{secrets.token_hex(8)}", "expires_in": 7200,
                                  "refresh_token": f"SNSR-{secrets.token_hex(8)}", "openid": issued[0],
                                  "scope": "snsapi_base"})


class WeChatServer:
    """WeChat's side of the callback: posts messages the way WeChat does, signed with wechatpy's own signer
    (and encrypted with wechatpy's WeChatCrypto in safe mode), and reads the passive reply."""

    def __init__(self, url: str, token: str, appid: str, aes_key: str | None = None,
                 account: str = "gh_test_account") -> None:
        self.url = url
        self.token = token
        self.appid = appid
        self.account = account
        self.crypto = WeChatCrypto(token, aes_key, appid) if aes_key else None
        self._msg_ids = itertools.count(int(time.time()) * 1000)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def signed_query(self, timestamp: int | None = None, nonce: str | None = None, token: str | None = None
                     ) -> dict[str, str]:
        timestamp_s = str(timestamp if timestamp is not None else int(time.time()))
        nonce = nonce or secrets.token_hex(5)
        signer = WeChatSigner()
        signer.add_data(token or self.token, timestamp_s, nonce)
        return {"signature": signer.signature, "timestamp": timestamp_s, "nonce": nonce}

    def text_xml(self, openid: str, content: str, msg_id: int | None = None, create_time: int | None = None) -> str:
        msg_id = msg_id if msg_id is not None else next(self._msg_ids)
        return xmltodict.unparse({"xml": {
            "ToUserName": self.account, "FromUserName": openid, "CreateTime": create_time or int(time.time()),
            "MsgType": "text", "Content": content, "MsgId": msg_id}})

    def event_xml(self, openid: str, event: str, key: str | None = None, create_time: int | None = None) -> str:
        data: dict[str, Any] = {"ToUserName": self.account, "FromUserName": openid,
                                "CreateTime": create_time or int(time.time()), "MsgType": "event", "Event": event}
        if key is not None:
            data["EventKey"] = key
        return xmltodict.unparse({"xml": data})

    async def post_raw(self, body: bytes | str, query: dict[str, str] | None = None) -> tuple[int, bytes]:
        assert self._session is not None
        data = body.encode() if isinstance(body, str) else body
        async with self._session.post(self.url, params=query if query is not None else self.signed_query(),
                                      data=data, headers={"Content-Type": "text/xml"}) as resp:
            return resp.status, await resp.read()

    async def post(self, xml: str) -> tuple[int, str]:
        """Post one message as WeChat would (AES when the store is in safe mode); (status, reply text)."""
        query = self.signed_query()
        body = xml
        if self.crypto is not None:
            body = self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
            encrypted = xmltodict.parse(body)["xml"]
            query.update(encrypt_type="aes", msg_signature=encrypted["MsgSignature"])
        status, raw = await self.post_raw(body, query)
        if status != 200 or raw in (b"", b"success"):
            return status, ""
        if self.crypto is not None:
            reply = xmltodict.parse(raw)["xml"]
            raw = self.crypto.decrypt_message(raw, reply["MsgSignature"], reply["TimeStamp"], reply["Nonce"]).encode()
        parsed = xmltodict.parse(raw)["xml"]
        assert parsed["MsgType"] == "text", parsed
        return status, parsed["Content"]

    async def text(self, openid: str, content: str, msg_id: int | None = None) -> str:
        status, reply = await self.post(self.text_xml(openid, content, msg_id))
        assert status == 200, status
        return reply

    async def click(self, openid: str, key: str) -> str:
        status, reply = await self.post(self.event_xml(openid, "CLICK", key))
        assert status == 200, status
        return reply

    async def subscribe(self, openid: str, scene: str | None = None) -> str:
        status, reply = await self.post(self.event_xml(openid, "subscribe", f"qrscene_{scene}" if scene else None))
        assert status == 200, status
        return reply

    async def verify(self, echostr: str, query: dict[str, str] | None = None) -> tuple[int, str]:
        assert self._session is not None
        q = dict(query if query is not None else self.signed_query())
        q["echostr"] = echostr
        async with self._session.get(self.url, params=q) as resp:
            return resp.status, await resp.text()
