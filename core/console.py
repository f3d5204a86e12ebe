"""The merchant's web console: who may open it, one-time login links, sessions, and the CSRF token of a session.

Framework-free: the web adapter (bots/web/) asks this desk and renders; the pages' use cases are the merchant's
own (core/admin.py and the desks), called with the session's merchant, so the console audits exactly what the chat
commands audit.

- **Who**: a merchant of the config (`telegram.admins`, `wechat.admins`) is an *owner*; `console.staff` names
  *staff* ("telegram:ID" / "wechat:OPENID"), who may open the console but not its finance, export or key pages.
  The role is read again on every request: a merchant taken out of the config loses the console at once.
- **Links**: `/console` in the chat issues a random token (32 bytes) valid for `console.link_minutes`; only its
  SHA-256 is stored. Redeeming marks it used in the same statement that checks it, so a link opens one session
  however many tabs race for it.
- **Sessions**: another random token, kept in an HttpOnly SameSite=Strict cookie; only its hash is stored. A
  session ends at `console.session_hours` after login, after `console.idle_minutes` without a request, on logout, or
  when revoked (`run.py console sessions --revoke`). A process takes a session it read as valid for SEEN_FOR
  (2) seconds: a revocation made in another process holds there that late at most (in its own, at once).
- **CSRF**: the token of a session is an HMAC of its cookie token, so it needs no storage; every state change
  must carry it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from core.clock import Clock
from core.errors import Refused
from core.models import AuditEntry, Buyer
from core.ports import UnitOfWorkFactory

LINK_BYTES = 32
SEEN_FOR = 2.0  # seconds a session read from the database is taken as read: a revocation by another process
                # (run.py console sessions --revoke, another store process) holds there this late at most
TOUCH_EVERY = timedelta(minutes=1)  # a session's last_seen is written at most this often


class Role(StrEnum):
    OWNER = "owner"  # everything
    STAFF = "staff"  # no finances, exports or keys


class ConsoleCode(StrEnum):
    NOT_MERCHANT = "not_merchant"
    LINK_UNKNOWN = "link_unknown"
    LINK_USED = "link_used"
    LINK_EXPIRED = "link_expired"


class ConsoleError(Refused):
    codes = ConsoleCode
    code: ConsoleCode


@dataclass(frozen=True, slots=True)
class LinkRow:
    merchant: Buyer
    role: Role
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class Session:
    id: int
    merchant: Buyer
    role: Role
    created_at: datetime
    expires_at: datetime
    last_seen: datetime
    ended_at: datetime | None = None
    agent: str = ""

    @property
    def owner(self) -> bool:
        return self.role is Role.OWNER


class ConsoleRepo(Protocol):
    async def add_link(self, token_hash: str, merchant: Buyer, role: str, at: datetime, expires: datetime) -> None: ...
    async def use_link(self, token_hash: str, at: datetime) -> LinkRow | None:
        """Marks an unused, unexpired link used and returns it; None when it is not (then `link` tells why)."""
        ...
    async def link(self, token_hash: str) -> LinkRow | None: ...
    async def add_session(self, token_hash: str, merchant: Buyer, role: str, at: datetime, expires: datetime,
                          agent: str) -> int: ...
    async def session(self, token_hash: str) -> Session | None: ...
    async def touch(self, session_id: int, at: datetime) -> None: ...
    async def end(self, session_ids: list[int], at: datetime) -> list[int]:
        """Ends the sessions among these that are still open; returns those it ended."""
        ...
    async def sessions(self, open_at: datetime | None, limit: int) -> list[Session]:
        """Newest first; only those open at `open_at` when given."""
        ...


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ConsoleDesk:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, *, owners: set[Buyer], staff: set[Buyer],
                 link_minutes: int = 10, session_hours: int = 12, idle_minutes: int = 120,
                 base_url: str = "") -> None:
        self.uow = uow
        self.clock = clock
        self.owners = owners
        self.staff = staff - owners
        self.link_ttl = timedelta(minutes=link_minutes)
        self.session_ttl = timedelta(hours=session_hours)
        self.idle = timedelta(minutes=idle_minutes)
        self.link_minutes = link_minutes
        self._seen: dict[str, tuple[float, Session]] = {}  # token hash -> (monotonic, the session as read)
        self.base_url = base_url  # the store's public address (`server.public_url`)

    def login_url(self, token: str) -> str:
        return f"{self.base_url}/console/login?t={token}"

    def role_of(self, who: Buyer) -> Role | None:
        if who in self.owners:
            return Role.OWNER
        if who in self.staff:
            return Role.STAFF
        return None

    async def _audit(self, who: Buyer, action: str, **detail: object) -> None:
        async with self.uow(write=True) as uow:
            await uow.audit.add_many([AuditEntry(action, who.key, who.channel, self.clock.now(), detail=detail)])
            await uow.commit()

    # -- links ----------------------------------------------------------------------------------------------
    async def issue_link(self, who: Buyer) -> str:
        """A one-time login token for a merchant or staff member (refused, and audited, for anyone else)."""
        role = self.role_of(who)
        if role is None:
            await self._audit(who, "admin_denied", command="console")
            raise ConsoleError(ConsoleCode.NOT_MERCHANT)
        token = secrets.token_urlsafe(LINK_BYTES)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            await uow.console.add_link(digest(token), who, role.value, now, now + self.link_ttl)
            await uow.audit.add_many([AuditEntry("console_link", who.key, who.channel, now,
                                                 detail={"role": role.value})])
            await uow.commit()
        return token

    async def redeem(self, token: str, agent: str = "") -> tuple[str, Session]:
        """Opens a session with a login token: (the session's cookie token, the session). A token is good once,
        for its few minutes, and only while its merchant still has a role."""
        if not token or len(token) > 128:
            raise ConsoleError(ConsoleCode.LINK_UNKNOWN)
        h = digest(token)
        now = self.clock.now()
        session_token = secrets.token_urlsafe(LINK_BYTES)
        async with self.uow(write=True) as uow:
            row = await uow.console.use_link(h, now)
            if row is None:
                seen = await uow.console.link(h)
                code = (ConsoleCode.LINK_UNKNOWN if seen is None else
                        ConsoleCode.LINK_USED if seen.used_at is not None else ConsoleCode.LINK_EXPIRED)
                raise ConsoleError(code)
            role = self.role_of(row.merchant)
            if role is None:  # taken out of the config since the link was sent
                raise ConsoleError(ConsoleCode.NOT_MERCHANT)
            agent = agent[:200]
            sid = await uow.console.add_session(digest(session_token), row.merchant, role.value, now,
                                                now + self.session_ttl, agent)
            await uow.audit.add_many([AuditEntry("console_login", row.merchant.key, row.merchant.channel, now,
                                                 detail={"session": sid, "role": role.value})])
            await uow.commit()
        return session_token, Session(sid, row.merchant, role, now, now + self.session_ttl, now, None, agent)

    # -- sessions -------------------------------------------------------------------------------------------
    async def session(self, token: str | None) -> Session | None:
        """The open session of a cookie token, its role as the config says now; None when there is none."""
        if not token or len(token) > 128:
            return None
        h = digest(token)
        hit = self._seen.get(h)
        if hit is not None and time.monotonic() - hit[0] < SEEN_FOR:
            s: Session | None = hit[1]
        else:
            async with self.uow() as uow:
                s = await uow.console.session(h)
            if s is not None:
                self._seen[h] = (time.monotonic(), s)
                while len(self._seen) > 10_000:
                    self._seen.pop(next(iter(self._seen)))
        now = self.clock.now()
        if s is None or s.ended_at is not None or s.expires_at <= now or s.last_seen + self.idle <= now:
            return None
        role = self.role_of(s.merchant)
        if role is None:
            return None
        if now - s.last_seen >= TOUCH_EVERY:
            async with self.uow(write=True) as uow:
                await uow.console.touch(s.id, now)
                await uow.commit()
            self._seen[h] = (time.monotonic(), replace(s, last_seen=now))
        return Session(s.id, s.merchant, role, s.created_at, s.expires_at, now, None, s.agent)

    async def logout(self, s: Session) -> None:
        await self._end(s.merchant, [s.id], "console_logout")

    async def revoke(self, session_ids: list[int], by: Buyer) -> list[int]:
        return await self._end(by, session_ids, "console_revoke")

    async def _end(self, who: Buyer, ids: list[int], action: str) -> list[int]:
        now = self.clock.now()
        gone = set(ids)  # this process forgets them at once; another one within SEEN_FOR seconds
        self._seen = {h: v for h, v in self._seen.items() if v[1].id not in gone}
        async with self.uow(write=True) as uow:
            ended = await uow.console.end(sorted(set(ids)), now)
            if ended:
                await uow.audit.add_many([AuditEntry(action, who.key, who.channel, now,
                                                     detail={"sessions": ended})])
            await uow.commit()
        return ended

    async def sessions(self, *, open_only: bool = True, limit: int = 100) -> list[Session]:
        now = self.clock.now()
        async with self.uow() as uow:
            rows = await uow.console.sessions(now if open_only else None, limit)
        if open_only:
            rows = [s for s in rows if s.last_seen + self.idle > now]
        return rows

    # -- CSRF -----------------------------------------------------------------------------------------------
    @staticmethod
    def csrf_token(session_token: str) -> str:
        return hmac.new(session_token.encode(), b"console-csrf", hashlib.sha256).hexdigest()[:40]

    @classmethod
    def csrf_ok(cls, session_token: str, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(cls.csrf_token(session_token), given or "")
