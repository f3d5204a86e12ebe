"""The `/wechat` callback: what WeChat's servers send to the Official Account's server URL.

- GET (URL verification): `signature`, `timestamp`, `nonce` are checked with the token; the `echostr` is
  echoed. Wrong: 403.
- POST: `signature` always checked (wrong or missing: 403, nothing read further) and a timestamp more than 10
  minutes away from our clock is refused (403). The mode is the store's, never the request's: with
  `wechat.aes_key` set (safe mode, 安全模式) only an encrypted body with a valid `msg_signature` is taken (a
  plaintext POST, or one without `encrypt_type=aes`, is a 403 and nothing happens), and the reply is
  encrypted. Without it (plain mode) the `signature` covers the timestamp and nonce but no body, so whoever
  saw one genuine callback URL could send any message as anyone: plain mode answers buyers, but merchant
  commands and codes shown again need safe mode (admin.py, wiring.py). Signatures are compared in constant
  time (wechatpy's own checks use `!=`). Bodies over 64 KiB are refused (413); a DOCTYPE or ENTITY anywhere
  (XXE, billion laughs) is a 400 before any XML parser sees it.
- Replays: each (timestamp, nonce) pair is taken once while its timestamp is fresh, in every process (the
  memory lives in the database: replays.py). A pair used before gets `success` and nothing is done:
  WeChat's documentation does not say whether its re-sends keep the timestamp and nonce, and if one does, the
  message was handled by its first copy and `success` makes WeChat neither complain nor try again.
- De-duplication: WeChat re-sends a message 3 times when no answer came within 5 s. The key is the MsgId
  (events: FromUserName + CreateTime, with the event and its key). A re-send of a message still being handled
  waits for that one handling and gets its answer; a re-send of a handled message gets the answer again. The
  flow runs once. With several processes (`redis.url`), a balancer may give a re-send to another process:
  before handling, a process claims the message for the replay window (`Shared.claim`, `wx:msg:<hash of the
  key>`), and a process that finds it claimed by another answers `success` (WeChat takes it; the first
  process's slower results follow as customer-service messages; answers are not shared, as they may show codes).
  A handling that failed releases its claim and is not remembered, so a re-send is handled again, anywhere.
- The answer budget: the reply (a passive text reply) is what the flow produced within `budget` seconds
  (well under 5 s); whatever is slower goes to the user as customer-service messages (see frontend.py).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from core.coordination import Shared
from core.logcontext import log_context
from core.metrics import NO_METRICS, Metrics

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
REPLAY_WINDOW = 600  # seconds between WeChat's timestamp and our clock
SEEN = 10_000  # answered messages remembered per process (at most; each for REPLAY_WINDOW)
REPLY_KEPT = 60  # seconds a reply is kept for re-sends (WeChat re-sends within about 15 s)
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


@dataclass(slots=True)
class HttpAnswer:
    status: int
    body: bytes = b""
    content_type: str = "text/plain"


def _plain(status: int, text: str) -> HttpAnswer:
    return HttpAnswer(status, text.encode())


def dedupe_key(msg: Any) -> str:
    """MsgId for messages; FromUserName + CreateTime for events (they carry no MsgId), plus the event and its
    key, so two different menu clicks within one second are two events while WeChat's re-sends are not."""
    if getattr(msg, "type", "") != "event" and getattr(msg, "id", 0):
        return f"m:{msg.id}"
    return f"e:{msg.source}:{msg.time}:{getattr(msg, 'event', '')}:{getattr(msg, 'key', '')}"


def signature_matches(given: str, *parts: str) -> bool:
    """sha1 of the sorted parts (WeChat's scheme), compared in constant time: wechatpy compares with `!=`,
    which tells a guesser by its timing how much of a guess was right."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return hmac.compare_digest(signer.signature.encode(), given.encode("utf-8", "replace"))


def pair_key(timestamp: str, nonce: str) -> str:
    """The replay memory's key of one (timestamp, nonce) pair: fixed length, whatever the nonce's."""
    return hashlib.sha256(f"{timestamp}\n{nonce}".encode("utf-8", "replace")).hexdigest()


class ReplayMemory(Protocol):
    async def first_use(self, key: str, now: float, until: float) -> bool:
        """Records the pair `key` (forgettable once `until`, epoch seconds, has passed); True the first time."""
        ...


class MemoryReplay:
    """One process's replay memory (tests, a single process); the store uses the database's
    (replays.py), so that a pair one process took is refused by every other."""

    def __init__(self) -> None:
        self._until: OrderedDict[str, float] = OrderedDict()

    async def first_use(self, key: str, now: float, until: float) -> bool:
        while self._until and next(iter(self._until.values())) < now:  # roughly in order of arrival
            self._until.popitem(last=False)
        if key in self._until:
            return False
        self._until[key] = until
        return True


Handler = Callable[[Any], Awaitable[str | None]]


class WeChatCallback:
    """The protocol layer: checks, decryption, replays, de-duplication; `handler(msg)` returns the reply text or
    None."""

    def __init__(self, token: str, appid: str, handler: Handler, *, aes_key: str = "",
                 clock: Callable[[], float] = time.time, replays: ReplayMemory | None = None,
                 metrics: Metrics = NO_METRICS, shared: Shared | None = None) -> None:
        self.token = token
        self.shared = shared  # with other processes (Redis): one of them handles a message
        self.origin = secrets.token_hex(6)  # this callback's claims
        self.metrics = metrics  # messages handled (`updates`, core/metrics.py)
        self.appid = appid
        self.handler = handler
        self.crypto = WeChatCrypto(token, aes_key, appid) if aes_key else None
        self.clock = clock
        self.replays: ReplayMemory = replays if replays is not None else MemoryReplay()
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self._answered: OrderedDict[str, float] = OrderedDict()  # message key -> when it was answered
        self._replies: OrderedDict[str, tuple[float, str]] = OrderedDict()  # the answers, for re-sends
        self.handled = 0  # messages that reached the handler (tests and the benchmark read it)

    @property
    def safe_mode(self) -> bool:
        return self.crypto is not None

    def _signed(self, query: Mapping[str, str]) -> bool:
        return signature_matches(query.get("signature", ""), self.token, query.get("timestamp", ""),
                                 query.get("nonce", ""))

    def _fresh(self, query: Mapping[str, str]) -> bool:
        stamp = query.get("timestamp", "")
        return (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12
                and abs(int(stamp) - self.clock()) <= REPLAY_WINDOW)

    async def verify(self, query: Mapping[str, str]) -> HttpAnswer:
        """GET: WeChat checks that the server URL belongs to whoever knows the token."""
        if not self._signed(query):
            return _plain(403, "wrong signature")
        return _plain(200, query.get("echostr", ""))

    def refuse(self, query: Mapping[str, str]) -> HttpAnswer | None:
        """The answer to a POST whose query is not WeChat's (checked before the body is read), else None."""
        if not self._signed(query):
            return _plain(403, "wrong signature")
        if not self._fresh(query):
            return _plain(403, "stale timestamp")
        if self.safe_mode and (query.get("encrypt_type") != "aes" or not query.get("msg_signature")):
            # The signature covers no body: in safe mode only the encrypted body's msg_signature proves it.
            log.warning("wechat callback refused: a message without encryption, and the store is in safe mode")
            return _plain(403, "safe mode: only encrypted messages are accepted")
        return None

    def _decrypt(self, body: bytes, query: Mapping[str, str]) -> bytes | None:
        """The plaintext of a safe-mode body; None when its msg_signature is wrong. Raises on a malformed one."""
        assert self.crypto is not None
        encrypt = xmltodict.parse(body)["xml"]["Encrypt"]
        if not isinstance(encrypt, str) or not signature_matches(
                query.get("msg_signature", ""), self.token, query["timestamp"], query["nonce"], encrypt):
            return None
        xml = PrpCrypto(self.crypto.key).decrypt(encrypt, self.appid)  # InvalidAppIdException: not ours
        return xml.encode() if isinstance(xml, str) else bytes(xml)

    async def receive(self, query: Mapping[str, str], body: bytes) -> HttpAnswer:
        """POST: one message or event. Signature first; nothing is parsed before it is checked."""
        refused = self.refuse(query)
        if refused is not None:
            return refused
        if len(body) > MAX_BODY:
            return _plain(413, "too large")
        if _DTD.search(body):
            return _plain(400, "DTDs are not accepted")
        aes = query.get("encrypt_type", "raw") == "aes"
        if aes and not self.safe_mode:
            return _plain(400, "safe mode is not configured")
        try:
            xml = self._decrypt(body, query) if aes else body
            if xml is None:
                log.warning("wechat callback refused: wrong msg_signature")
                return _plain(403, "wrong message signature")
            if aes and _DTD.search(xml):
                return _plain(400, "DTDs are not accepted")
            msg = parse_message(xml)
        except InvalidAppIdException:
            log.warning("wechat callback refused: a message for another appid")
            return _plain(403, "wrong message signature")
        except Exception:  # noqa: BLE001 - malformed XML, bad padding, a missing field: the sender's problem
            return _plain(400, "not a WeChat message")
        if msg is None or not getattr(msg, "source", None):
            return _plain(400, "not a WeChat message")
        try:
            first = await self.replays.first_use(pair_key(query["timestamp"], query["nonce"]), self.clock(),
                                                 int(query["timestamp"]) + REPLAY_WINDOW)
        except Exception as exc:  # noqa: BLE001 - not known to be new: not handled; WeChat sends it again
            log.error("wechat callback: the replay memory failed: %s", type(exc).__name__)
            return _plain(503, "try again")
        if not first:
            log.warning("wechat callback: a timestamp and nonce used before; answered success, nothing done")
            return _plain(200, "success")
        reply = await self._once(dedupe_key(msg), msg)
        if not reply:
            return _plain(200, "success")
        xml_reply = TextReply(message=msg, content=reply).render()
        if aes and self.crypto is not None:
            xml_reply = self.crypto.encrypt_message(xml_reply, secrets.token_hex(8), query["timestamp"])
        return HttpAnswer(200, xml_reply.encode(), "application/xml")

    async def _once(self, key: str, msg: Any) -> str | None:
        if key in self._answered:  # a re-send of an answered message: the same answer while WeChat may ask
            kept = self._replies.get(key)
            return kept[1] if kept is not None else None
        running = self._inflight.get(key)
        if running is not None:  # WeChat's re-send while the first copy is still being handled
            return await asyncio.shield(running)
        fut: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        reply: str | None = None
        done = False  # handled here (not by another process, not failed): re-sends get this answer
        try:
            if not await self._claim(key):
                log.info("wechat: a message another process took; answered success")
                return None
            self.handled += 1
            self.metrics.count("updates", channel="wechat", via="callback")
            msg_id = getattr(msg, "id", None)  # MsgId (events have none): the log's update id, not a secret
            try:
                with log_context(channel="wechat", update_id=msg_id if isinstance(msg_id, int) else None,
                                 order_id=None):
                    reply = await self.handler(msg)
                done = True
            except asyncio.CancelledError:  # the store stopping mid-message: another process may take the re-send
                await self._unclaim(key)
                raise
            except Exception as exc:  # noqa: BLE001 - WeChat gets an empty answer; the log gets the type only
                log.error("wechat message handling failed: %s", type(exc).__name__)
                await self._unclaim(key)  # a re-send is handled again, by whichever process gets it
        finally:
            del self._inflight[key]
            if done:
                now = self.clock()
                self._forget_old(now)
                self._answered[key] = now
                if reply is not None:
                    self._replies[key] = (now, reply)
            fut.set_result(reply)
        return reply

    def _shared_key(self, key: str) -> str | None:
        if self.shared is None or not self.shared.distributed:
            return None  # one process: its own memory (`_inflight`, `_answered`) is the whole truth
        return "wx:msg:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:32]

    async def _claim(self, key: str) -> bool:
        """True when this process may handle the message: no other process has claimed it in the replay window.
        The shared state failing (beyond its own fallback to this process's memory) does not stop the message."""
        shared_key = self._shared_key(key)
        if shared_key is None:
            return True
        assert self.shared is not None
        try:
            return await self.shared.claim(shared_key, self.origin, REPLAY_WINDOW) is None
        except Exception as exc:  # noqa: BLE001 - handled here, de-duplicated in this process only
            log.warning("wechat callback: the shared message claim failed: %s", type(exc).__name__)
            return True

    async def _unclaim(self, key: str) -> None:
        shared_key = self._shared_key(key)
        if shared_key is None:
            return
        assert self.shared is not None
        try:
            await self.shared.release(shared_key, self.origin)
        except Exception as exc:  # noqa: BLE001 - the claim then lasts its window: re-sends get success
            log.warning("wechat callback: the shared message claim was not released: %s", type(exc).__name__)

    def _forget_old(self, now: float) -> None:
        """Keys are kept for the replay window (a re-send is never handled twice); reply texts only as long as
        WeChat re-sends (they may show codes again, which should not sit in memory longer than needed)."""
        while self._answered:
            key, at = next(iter(self._answered.items()))
            if len(self._answered) < SEEN and now - at <= REPLAY_WINDOW:
                break
            del self._answered[key]
        while self._replies:
            key, (at, _) = next(iter(self._replies.items()))
            if now - at <= REPLY_KEPT and key in self._answered:
                break
            del self._replies[key]
