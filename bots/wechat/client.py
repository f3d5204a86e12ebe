"""wechatpy's Official Account client, made fit for the store.

- **Configurable API base** (`wechat.api_base`): wechatpy's `API_BASE_URL` is a class attribute, and
  `fetch_access_token` (and a few `customservice`/`media` calls) use absolute https://api.weixin.qq.com URLs.
  `StoreWeChatClient` sets the base per instance and rewrites every absolute URL of the official host.
- **One token refresher**: each fetch of an access token invalidates the previous one, so two threads (or two
  store processes) refreshing at once would break each other's calls. Fetches are serialised, and whoever waited
  for another's fetch uses that token instead of fetching again. A 40001/40014/42001 answer refreshes only while
  the stored token is still the one that failed (else the stored one is used), and the call is retried once.
  With `redis.url` set (`SharedTokens`) the token lives in Redis (`<redis.prefix>wx:token:<appid>`, expiring with
  it) and fetches are serialised across processes by a Redis lock that expires by itself (a fetcher that died
  holds it 15 s at most). Redis unreachable: one WARNING, and this process keeps and fetches
  its own token until Redis answers again (tried every few seconds).
- **Off the event loop**: wechatpy is synchronous (requests). `WeChatApi` runs every call in a small thread
  pool of its own, so a slow WeChat API never blocks other users' messages, and turns errcodes into typed
  errors (45015/45047: `WindowClosed`; unsubscribed or unknown openid: `RecipientUnreachable`). Few threads:
  requests' Python work holds the GIL, and many busy threads slow the event loop's replies more than they
  speed up the sends (bench/wechat.py).

Customer-service messages and uploads are logged by errcode only: message text may carry codes.

`H5OAuth` is the web-page login of the H5 shop (OAuth2 `snsapi_base`) on wechatpy's `WeChatOAuth`, aimed at the
configured API base and authorize page, with a timeout, off the event loop.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import aiohttp
import redis
import requests
from redis.exceptions import RedisError
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.oauth import WeChatOAuth

from core.coordination import LocalShared
from core.errors import RecipientUnreachable
from storage.coordination import redacted

log = logging.getLogger(__name__)
# urllib3 logs every request line at DEBUG, and the Official Account API takes the access token in the query
# string: keep the token out of log files.
logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)

OFFICIAL = "https://api.weixin.qq.com"
T = TypeVar("T")

# errcodes of customer-service sends (developers.weixin.qq.com, 全局返回码)
WINDOW_CLOSED = 45015   # the user has not written within 48 hours
QUOTA_USED = 45047      # too many customer-service messages since the user last wrote
UNREACHABLE = {43004, 40003, 43019}  # unsubscribed, invalid openid, blocked the account
TOKEN_ERRORS = {40001, 40014, 42001}
TOKEN_MARGIN = 60.0  # seconds before its expiry a token is fetched anew (wechatpy's margin)
REDIS_RETRY = 5.0    # seconds this process keeps its own token after Redis failed, before Redis is tried again


class WindowClosed(Exception):
    """WeChat will not take a customer-service message for this user until they write again."""

    def __init__(self, errcode: int) -> None:
        super().__init__(f"customer-service window closed (errcode {errcode})")
        self.errcode = errcode


class WeChatApiError(Exception):
    """Any other failure of the WeChat API (the outbox retries)."""

    def __init__(self, errcode: int | None, what: str) -> None:
        super().__init__(f"{what} failed (errcode {errcode})")
        self.errcode = errcode


class SharedTokens:
    """The access token every process of one appid uses, in Redis (a sync client: wechatpy runs in threads), and
    the lock that lets one of them fetch at a time. The token's key expires with the token (Redis's clock)."""

    def __init__(self, url: str, prefix: str, appid: str, *, timeout: float = 0.5, lock_seconds: float = 15.0
                 ) -> None:
        self.url = url
        self.client: Any = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                                decode_responses=True)
        self.key = f"{prefix}wx:token:{appid}"
        self.lock_key = f"{prefix}wx:token-lock:{appid}"
        self.lock_seconds = lock_seconds

    def read(self) -> tuple[str, float] | None:
        """(the token, seconds it still lives), or None when there is none."""
        pipe = self.client.pipeline(transaction=False)
        pipe.get(self.key)
        pipe.pttl(self.key)
        token, pttl = pipe.execute()
        if not token or pttl is None or int(pttl) < 0:
            return None
        return str(token), int(pttl) / 1000

    def write(self, token: str, expires_in: float) -> None:
        self.client.set(self.key, token, px=max(1, int(expires_in * 1000)))

    def lock(self) -> Any:
        """redis-py's Lock: expires after `lock_seconds` (a dead holder frees it), waited for a little longer."""
        return self.client.lock(self.lock_key, timeout=self.lock_seconds, blocking_timeout=self.lock_seconds + 5,
                                raise_on_release_error=False)

    def close(self) -> None:
        self.client.close()


class StoreWeChatClient(WeChatClient):
    """WeChatClient against a configurable API base, with one token refresher (across processes with `shared`)."""

    def __init__(self, appid: str, secret: str, api_base: str = OFFICIAL, timeout: float = 10.0, *,
                 shared: SharedTokens | None = None) -> None:
        super().__init__(appid, secret, timeout=timeout)
        self.api_base = api_base.rstrip("/")
        self.API_BASE_URL = self.api_base + "/cgi-bin/"  # shadows the class attribute for this client
        self.shared = shared
        self._token_lock = threading.Lock()
        self._token: tuple[str, float] | None = None  # this process's copy: (token, monotonic time it expires)
        self._retrying = threading.local()
        self._down_until = 0.0
        self._down = False
        self.token_fetches = 0  # fetches this client made (tests read it)

    def _rebase(self, url: str) -> str:
        if url.startswith(OFFICIAL + "/"):
            return self.api_base + url[len(OFFICIAL):]
        return url

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        if not url_or_endpoint.startswith(("http://", "https://")):
            base = kwargs.pop("api_base_url", self.API_BASE_URL)
            url_or_endpoint = base + url_or_endpoint
        return super()._request(method, self._rebase(url_or_endpoint), **kwargs)

    # -- the token -----------------------------------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        known = self._current()
        if known is not None and known[1] > TOKEN_MARGIN:
            return known[0]
        return self._refresh(known[0] if known is not None else None)

    def fetch_access_token(self) -> dict[str, Any]:
        """A new token, unless another thread or process fetched one while this one waited for its turn."""
        known = self._current()
        return {"access_token": self._refresh(known[0] if known is not None else None)}

    def _redis(self) -> SharedTokens | None:
        """The shared store, unless there is none or it failed a moment ago."""
        if self.shared is None or (self._down and time.monotonic() < self._down_until):
            return None
        return self.shared

    def _went_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + REDIS_RETRY
        if not self._down:
            self._down = True
            assert self.shared is not None
            log.warning("wechat: redis unreachable at %s (%s): this process keeps and fetches its own access token "
                        "until it answers", redacted(self.shared.url), type(exc).__name__)

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            log.info("wechat: redis answers again: the access token is shared again")

    def _current(self) -> tuple[str, float] | None:
        """(the token to use, seconds it still lives): Redis's when it has one, else this process's own copy."""
        shared = self._redis()
        if shared is not None:
            try:
                found = shared.read()
            except (RedisError, OSError) as exc:
                self._went_down(exc)
            else:
                self._came_back()
                if found is not None:
                    self._token = (found[0], time.monotonic() + found[1])
                    return found
        own = self._token
        if own is None:
            return None
        return own[0], own[1] - time.monotonic()

    def _refresh(self, seen: str | None) -> str:
        """The token to use after `seen` failed or is about to expire: a fresh one fetched meanwhile by another
        thread or process, else a new one fetched now, by one fetcher at a time."""
        def newer() -> str | None:
            known = self._current()
            if known is not None and known[0] != seen and known[1] > TOKEN_MARGIN:
                return known[0]
            return None

        with self._token_lock:  # this process's threads queue here; one of them at a time asks Redis's lock
            if (token := newer()) is not None:
                return token
            shared = self._redis()
            if shared is None:
                return self._fetch(None)
            lock = shared.lock()
            try:
                held = bool(lock.acquire())
            except (RedisError, OSError) as exc:
                self._went_down(exc)
                return self._fetch(None)
            try:
                if held:
                    if (token := newer()) is not None:  # another process fetched while we waited
                        return token
                else:
                    log.warning("wechat: waited %.0f s for another process's access token fetch; fetching",
                                shared.lock_seconds + 5)
                return self._fetch(shared)
            finally:
                if held:
                    with contextlib.suppress(RedisError, OSError):
                        lock.release()

    def _fetch(self, shared: SharedTokens | None) -> str:
        """cgi-bin/token (with a timeout, which wechatpy's own fetch lacks); the token is kept here and in Redis."""
        res = self._http.get(self.api_base + "/cgi-bin/token", timeout=self.timeout, params={
            "grant_type": "client_credential", "appid": self.appid, "secret": self.secret})
        try:
            res.raise_for_status()
        except requests.RequestException as exc:
            raise WeChatClientException(None, None, client=self, request=exc.request, response=exc.response) from None
        result = res.json()
        if int(result.get("errcode", 0) or 0):
            raise WeChatClientException(result["errcode"], result.get("errmsg"), client=self, request=res.request,
                                        response=res)
        token, expires_in = str(result["access_token"]), float(result.get("expires_in", 7200))
        self.token_fetches += 1
        self._token = (token, time.monotonic() + expires_in)
        self.expires_at = int(time.time() + expires_in)
        if shared is not None:
            try:
                shared.write(token, expires_in)
            except (RedisError, OSError) as exc:
                self._went_down(exc)
        return token

    def _handle_result(self, res: Any, method: Any = None, url: Any = None, result_processor: Any = None,
                       **kwargs: Any) -> Any:
        """wechatpy's, but a token error refreshes only while the failed token is still the stored one, and the
        call is retried once (wechatpy fetches a new token every time, and retries without end)."""
        result = res if isinstance(res, dict) else self._decode_result(res)
        errcode = result.get("errcode") if isinstance(result, dict) else None
        params = kwargs.get("params")
        if errcode is None or int(errcode) not in TOKEN_ERRORS or not isinstance(params, dict):
            return super()._handle_result(res, method, url, result_processor, **kwargs)
        failed = params.get("access_token")
        if not self.auto_retry or not failed or getattr(self._retrying, "on", False):
            raise WeChatClientException(int(errcode), result.get("errmsg", errcode), client=self,
                                        request=getattr(res, "request", None), response=res)
        log.info("wechat: the access token was refused (WeChat error %s); using a newer one", errcode)
        params["access_token"] = self._refresh(str(failed))
        self._retrying.on = True
        try:
            return self._request(method=method, url_or_endpoint=url, result_processor=result_processor, **kwargs)
        finally:
            self._retrying.on = False

    def close(self) -> None:
        self._http.close()
        if self.shared is not None:
            with contextlib.suppress(Exception):
                self.shared.close()


class WeChatApi:
    """The Official Account calls the store makes, as coroutines (each runs in a worker thread)."""

    def __init__(self, client: StoreWeChatClient, *, workers: int = 4) -> None:
        self.client = client
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wechat-api")

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, fn, *args)
        except WeChatClientException as exc:
            errcode = exc.errcode  # WeChat's error number, never a message's content
            log.warning("wechat %s failed: errcode %s", what, errcode)
            if errcode in (WINDOW_CLOSED, QUOTA_USED):
                raise WindowClosed(errcode) from None
            if errcode in UNREACHABLE:
                raise RecipientUnreachable(f"wechat {what}: errcode {errcode}") from None
            raise WeChatApiError(errcode, what) from None

    async def send_text(self, openid: str, text: str) -> None:
        await self._call("message/custom/send", self.client.message.send_text, openid, text)

    async def send_template(self, openid: str, template_id: str, data: dict[str, Any], url: str = "") -> None:
        """A template message (模板消息): reaches a follower outside the 48-hour customer-service window."""
        await self._call("message/template/send", self.client.message.send_template, openid, template_id, data,
                         url or None)

    async def send_image(self, openid: str, media_id: str) -> None:
        await self._call("message/custom/send", self.client.message.send_image, openid, media_id)

    async def upload_image(self, png: bytes, name: str = "pay.png") -> str:
        """A temporary image (3 days); returns its media_id."""
        def upload() -> dict[str, Any]:
            f = io.BytesIO(png)
            f.name = name  # requests names the multipart part after it
            return self.client.media.upload("image", f)
        result = await self._call("media/upload", upload)
        return str(result["media_id"])

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self._call("menu/create", self.client.menu.create, menu)

    async def scene_qr(self, scene: str, seconds: int) -> str:
        """A temporary parametric QR code (qrcode/create, QR_STR_SCENE) carrying `scene`: scanning it follows the
        account with the scene as the subscribe event's key (the /start payload). Returns its picture's address."""
        data = {"expire_seconds": seconds, "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": scene}}}
        result = await self._call("qrcode/create", self.client.qrcode.create, data)
        return str(self.client.qrcode.get_url(result["ticket"]))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


class SceneCodes:
    """Buyers' referral QR codes (core/members/): one temporary parametric code per start payload, made when first
    asked for and reused until a day before it expires (WeChat keeps a temporary code 30 days at most)."""

    LIFE = 30 * 86400  # seconds

    def __init__(self, api: WeChatApi) -> None:
        self.api = api
        self._made: dict[str, tuple[str, float]] = {}  # payload -> (picture address, monotonic time to renew)

    async def link(self, payload: str) -> str:
        known = self._made.get(payload)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        url = await self.api.scene_qr(payload, self.LIFE)
        self._made[payload] = (url, time.monotonic() + self.LIFE - 86400)
        return url


class CodeRefused(Exception):
    """WeChat would not exchange an OAuth2 code (40029: invalid, used or expired; 40163: used)."""

    def __init__(self, errcode: int | None) -> None:
        super().__init__(f"oauth2 code refused (errcode {errcode})")
        self.errcode = errcode


class _OAuth(WeChatOAuth):  # type: ignore[misc]
    """wechatpy's WeChatOAuth against a configurable API base and authorize page, with a timeout."""

    def __init__(self, appid: str, secret: str, redirect_uri: str, api_base: str, oauth_base: str,
                 timeout: float) -> None:
        super().__init__(appid, secret, redirect_uri, scope="snsapi_base")
        self.API_BASE_URL = api_base.rstrip("/") + "/"
        self.OAUTH_BASE_URL = oauth_base.rstrip("/") + "/connect/"
        self.timeout = timeout

    def _request(self, method: str, url_or_endpoint: str, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        return super()._request(method, url_or_endpoint, **kwargs)


class H5OAuth:
    """OAuth2 `snsapi_base` for the H5 shop: where to send the buyer, and the openid a returned code proves.

    The code exchange (`sns/oauth2/access_token`, with the AppSecret in its query) runs in a worker thread; each
    thread has its own WeChatOAuth (it keeps the last answer on itself). The AppSecret and codes are never
    logged: failures are logged by errcode."""

    def __init__(self, appid: str, secret: str, redirect_uri: str, *, api_base: str = OFFICIAL,
                 oauth_base: str = "https://open.weixin.qq.com", timeout: float = 10.0) -> None:
        self._args = (appid, secret, redirect_uri, api_base, oauth_base, timeout)
        self._url = _OAuth(appid, "", redirect_uri, api_base, oauth_base, timeout)  # builds URLs, never calls
        self._local = threading.local()
        self._clients: list[_OAuth] = [self._url]

    def authorize_url(self, state: str) -> str:
        """`<oauth_base>/connect/oauth2/authorize?appid=..&redirect_uri=..&response_type=code&scope=snsapi_base
        &state=..#wechat_redirect`."""
        self._url.state = state  # on the event loop only: no other caller in between
        return str(self._url.authorize_url)

    def _client(self) -> _OAuth:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = _OAuth(*self._args)
            self._clients.append(client)
        return client

    async def openid(self, code: str) -> str:
        """The openid of the buyer who came back with `code`; CodeRefused when WeChat will not take the code,
        WeChatApiError when it cannot be asked."""
        def exchange() -> dict[str, Any]:
            return dict(self._client().fetch_access_token(code))
        try:
            answer = await asyncio.to_thread(exchange)
        except WeChatClientException as exc:
            log.warning("wechat sns/oauth2/access_token refused: WeChat error %s", exc.errcode)
            if exc.errcode in (40029, 40163):
                raise CodeRefused(exc.errcode) from None
            raise WeChatApiError(exc.errcode, "sns/oauth2/access_token") from None
        except Exception as exc:  # noqa: BLE001 - network errors, timeouts, unreadable answers
            log.warning("wechat sns/oauth2/access_token failed: %s", type(exc).__name__)
            raise WeChatApiError(None, "sns/oauth2/access_token") from None
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid:
            raise WeChatApiError(None, "sns/oauth2/access_token (no openid)")
        return openid

    def close(self) -> None:
        for client in self._clients:
            client._http.close()  # noqa: SLF001 - wechatpy keeps its requests.Session there


class WeComRobot:
    """A WeCom (企业微信) group robot: send-only webhook, at most 20 messages a minute (a burst of 20, then one
    every 3 s: core/coordination.py's buckets)."""

    def __init__(self, url: str, *, per_minute: int = 20) -> None:
        self.url = url
        self.per_minute = per_minute
        self._bucket = LocalShared()
        self._session: aiohttp.ClientSession | None = None

    async def send(self, text: str) -> None:
        wait = await self._bucket.reserve("wecom-robot", self.per_minute / 60.0, self.per_minute)
        if wait:
            await asyncio.sleep(wait)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self._session.post(self.url, json={"msgtype": "text", "text": {"content": text}}) as resp:
            data = await resp.json(content_type=None)
        if resp.status != 200 or int(data.get("errcode", 0)) != 0:
            raise WeChatApiError(data.get("errcode"), "wecom robot send")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
