"""API keys of the signed B2B API: made (the secret shown once, stored encrypted by the vault), revoked, looked up
from a short cache; and the nonces of signed requests, recorded once per key so that a replay is refused by every
process (group-committed: `NonceUse`)."""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from core.batching import Request
from core.models import AuditEntry
from core.ports import UnitOfWork, UnitOfWorkFactory
from core.resellers.errors import ResellerCode, ResellerError
from core.resellers.models import CHANNEL, ApiKey, Reseller

if TYPE_CHECKING:
    from core.batching import GroupCommitter
    from core.clock import Clock
    from core.vault import Vault

KEY_CACHE_SECONDS = 5.0  # API keys and their resellers read from memory this long (a change drops them at once)
API_KEY_AAD_BASE = 1 << 63  # vault associated data of an API secret: distinct from every code row id


@dataclass(frozen=True, slots=True)
class NonceUse(Request[bool]):
    """A signed request's nonce, recorded once per API key (a replay finds it taken)."""

    key_id: str
    nonce: str
    window_seconds: float


class ApiKeys:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock, vault: Vault, committer: GroupCommitter) -> None:
        self.uow = uow
        self.clock = clock
        self.vault = vault
        self.committer = committer
        self._cache: dict[str, tuple[float, ApiKey | None, Reseller | None]] = {}
        # A key or reseller changed: this process's cache drops it; the composition root points this at the
        # shop's CacheBus, so every process's does at once (core/coordination.py)
        self.changed: Callable[[str], None] = self.drop
        self._nonce_sweep = 0.0
        committer.register(NonceUse, self._nonce_batch)

    async def create_api_key(self, reseller_id: int, *, rate_per_second: int = 20) -> tuple[str, str]:
        """A new API key for a reseller: (key id, secret). The secret is shown once; it is stored encrypted
        by the vault (AES-256-GCM, like codes)."""
        if not 1 <= rate_per_second <= 10_000:
            raise ResellerError(ResellerCode.BAD_RATE, rate=rate_per_second)
        key_id = "rk_" + secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            if await uow.resellers.get(reseller_id) is None:
                raise ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=reseller_id)
            row = await uow.resellers.next_key_row()
            vk, nonce, ct = self.vault.encrypt(API_KEY_AAD_BASE + row, secret)
            await uow.resellers.add_key(ApiKey(key_id, reseller_id, "active", rate_per_second, now, row), vk,
                                        nonce, ct)
            await uow.audit.add_many([AuditEntry("reseller", "merchant", CHANNEL, now, detail={
                "reseller": reseller_id, "op": "api_key", "key_id": key_id})])
            await uow.commit()
        return key_id, secret

    async def revoke_api_key(self, key_id: str, *, reseller_id: int | None = None) -> bool:
        """The key stops working, in every process at once (CacheBus); False when there is no such key (of that
        reseller, when one is named)."""
        async with self.uow(write=True) as uow:
            if reseller_id is not None:
                found = await uow.resellers.key(key_id)
                if found is None or found[0].reseller_id != reseller_id:
                    return False
            done = await uow.resellers.set_key_status(key_id, "revoked")
            await uow.commit()
        self.changed(key_id)
        return done

    async def keys_of(self, reseller_id: int) -> list[ApiKey]:
        """A reseller's API keys, newest first, by key id and status: never a secret (it was shown once)."""
        async with self.uow() as uow:
            return await uow.resellers.keys(reseller_id)

    async def api_key(self, key_id: str) -> tuple[ApiKey, Reseller] | None:
        """An active key and its reseller (from a short cache), or None."""
        hit = self._cache.get(key_id)
        if hit is not None and time.monotonic() - hit[0] < KEY_CACHE_SECONDS:
            return (hit[1], hit[2]) if hit[1] is not None and hit[2] is not None else None
        async with self.uow() as uow:
            found = await uow.resellers.key(key_id)
            reseller = await uow.resellers.get(found[0].reseller_id) if found else None
        key: ApiKey | None = None
        if found is not None and found[0].status == "active" and reseller is not None:
            key, vk, nonce, ct = found
            key.secret = self.vault.decrypt(API_KEY_AAD_BASE + key.row_id, vk, nonce, ct)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key_id] = (time.monotonic(), key, reseller if key else None)
        return (key, reseller) if key is not None and reseller is not None else None

    def forget(self) -> None:
        """A reseller changed: every key is read again (a suspension counts at the next request, everywhere)."""
        self.changed("*")

    def drop(self, key_id: str) -> None:
        """Forget one key (`*`: all) in this process."""
        if key_id == "*":
            self._cache.clear()
        else:
            self._cache.pop(key_id, None)

    async def replayed(self, key_id: str, nonce: str, window_seconds: float) -> bool:
        """Records a request's nonce; True when this key used it before (a replay)."""
        return await self.committer.submit(NonceUse(key_id, nonce, window_seconds))

    async def _nonce_batch(self, uow: UnitOfWork, uses: Sequence[NonceUse]) -> list[bool]:
        now = self.clock.now()
        window = max(u.window_seconds for u in uses)
        sweep = time.monotonic() - self._nonce_sweep > 60
        if sweep:
            self._nonce_sweep = time.monotonic()
        pairs = [(u.key_id, u.nonce) for u in uses]
        forget = now - timedelta(seconds=2 * window) if sweep else None
        seen = await uow.resellers.seen_nonces(pairs, now, forget)
        out: list[bool] = []
        first: set[tuple[str, str]] = set()
        for p in pairs:
            out.append(p in seen or p in first)
            first.add(p)
        return out
