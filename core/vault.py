"""The code vault: AES-256-GCM per code, keyed HMAC fingerprints, keys from config or a 0600 key file.

Plain text exists only in memory on its way into the vault and on its way to the buyer.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import VaultError
from core.models import StoredCode
from core.ports import UnitOfWorkFactory

log = logging.getLogger(__name__)
CANARY = b"card-store vault canary v1"


def _aad(code_id: int) -> bytes:
    return code_id.to_bytes(8, "big", signed=False)


@dataclass
class KeyRing:
    keys: dict[str, bytes]
    current: str
    fingerprint_key: bytes

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise VaultError(f"vault: current key {self.current!r} is not among the keys")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise VaultError(f"vault: key {kid!r} is not 32 bytes")
        if len(self.fingerprint_key) != 32:
            raise VaultError("vault: the fingerprint key is not 32 bytes")

    @staticmethod
    def generate(key_id: str = "k1") -> KeyRing:
        return KeyRing({key_id: AESGCM.generate_key(256)}, key_id, secrets.token_bytes(32))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": 1,
                "current": self.current,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
                "fingerprint_key": base64.b64encode(self.fingerprint_key).decode(),
            },
            indent=2,
        )

    @staticmethod
    def from_json(text: str, source: str) -> KeyRing:
        try:
            data = json.loads(text)
            keys = {str(k): base64.b64decode(v, validate=True) for k, v in data["keys"].items()}
            return KeyRing(keys, str(data["current"]), base64.b64decode(data["fingerprint_key"], validate=True))
        except VaultError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse problem means an unusable key file
            raise VaultError(f"vault: the key file {source} is not a valid key file ({type(exc).__name__})") from None

    def with_new_key(self) -> KeyRing:
        n = 1
        while f"k{n}" in self.keys:
            n += 1
        kid = f"k{n}"
        return KeyRing({**self.keys, kid: AESGCM.generate_key(256)}, kid, self.fingerprint_key)


def write_key_file(path: Path, ring: KeyRing, *, replace: bool = False) -> None:
    """Write the key file with 0600 permissions (a new directory 0700); never silently overwrite."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not replace:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(ring.to_json())
            fh.flush()
            os.fsync(fh.fileno())
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover could carry looser permissions; O_EXCL makes a fresh 0600 file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(ring.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_key_file(path: Path) -> KeyRing:
    try:
        text = path.read_text()
    except OSError as exc:
        raise VaultError(f"vault: cannot read the key file {path} ({exc.strerror})") from None
    return KeyRing.from_json(text, str(path))


def _opens(vault: Vault, code: StoredCode, fingerprint: bytes) -> bool:
    try:
        plain = vault.decrypt(code.id, code.key_id, code.nonce, code.ciphertext)
    except Exception:  # noqa: BLE001 - any failure to open means "not this key"
        return False
    return hmac.compare_digest(vault.fingerprint(code.product_id, plain), fingerprint)


class Vault:
    """Encrypts, decrypts and fingerprints codes with a key ring."""

    def __init__(self, ring: KeyRing, reload: Callable[[], KeyRing] | None = None) -> None:
        self.ring = ring
        self._aes = {kid: AESGCM(key) for kid, key in ring.keys.items()}
        self._reload = reload

    def _pick_up_new_keys(self) -> None:
        """`codes rekey --new-key` may run beside the store: take keys added to the key file since start.
        Keys are only ever added; a file whose known keys changed is ignored (and logged)."""
        if self._reload is None:
            return
        try:
            ring = self._reload()
        except VaultError as exc:
            log.error("vault: cannot reload the keys: %s", exc)
            return
        same = ring.fingerprint_key == self.ring.fingerprint_key and all(
            ring.keys.get(kid) == key for kid, key in self.ring.keys.items())
        if not same:
            log.error("vault: the key file changed its existing keys; keeping the keys loaded at start")
            return
        self.ring = ring
        self._aes = {kid: AESGCM(key) for kid, key in ring.keys.items()}

    @property
    def current_key(self) -> str:
        return self.ring.current

    def encrypt(self, code_id: int, plain: str, key_id: str | None = None) -> tuple[str, bytes, bytes]:
        kid = key_id or self.ring.current
        nonce = os.urandom(12)
        return kid, nonce, self._aes[kid].encrypt(nonce, plain.encode(), _aad(code_id))

    def decrypt(self, code_id: int, key_id: str, nonce: bytes, ciphertext: bytes) -> str:
        aes = self._aes.get(key_id)
        if aes is None:
            self._pick_up_new_keys()
            aes = self._aes.get(key_id)
        if aes is None:
            raise VaultError(f"vault: code {code_id} is under key {key_id!r}, which is not loaded")
        try:
            return aes.decrypt(nonce, ciphertext, _aad(code_id)).decode()
        except InvalidTag:
            raise VaultError(f"vault: code {code_id} does not decrypt (wrong key or tampered row)") from None

    def fingerprint(self, product_id: int, plain: str) -> bytes:
        """Keyed HMAC-SHA256 per product: duplicates are found without plain text."""
        msg = product_id.to_bytes(8, "big") + plain.encode()
        return hmac.new(self.ring.fingerprint_key, msg, hashlib.sha256).digest()[:20]

    def fingerprinter(self, product_id: int) -> Callable[[str], bytes]:
        """A fast fingerprint function for one product (used by bulk import)."""
        base = hmac.new(self.ring.fingerprint_key, product_id.to_bytes(8, "big"), hashlib.sha256)

        def fp(plain: str) -> bytes:
            h = base.copy()
            h.update(plain.encode())
            return h.digest()[:20]

        return fp

    # Canaries let the store check at start that its keys fit the database.
    def canary(self, key_id: str) -> str:
        nonce = os.urandom(12)
        ct = self._aes[key_id].encrypt(nonce, CANARY, b"canary:" + key_id.encode())
        return base64.b64encode(nonce + ct).decode()

    def check_canary(self, key_id: str, value: str) -> bool:
        raw = base64.b64decode(value)
        try:
            return self._aes[key_id].decrypt(raw[:12], raw[12:], b"canary:" + key_id.encode()) == CANARY
        except InvalidTag:
            return False

    def fingerprint_canary(self) -> str:
        return hmac.new(self.ring.fingerprint_key, CANARY, hashlib.sha256).hexdigest()


async def open_vault(uow_factory: UnitOfWorkFactory, config_ring: KeyRing | None, key_file: Path) -> Vault:
    """Load the keys, check them against the database, and refuse to start on any mismatch.

    Nothing is overwritten: a missing key file is only created for a database that holds no codes yet.
    """
    async with uow_factory(write=True) as uow:
        meta = await uow.meta.with_prefix("vault.")
        key_ids_in_use = await uow.codes.key_ids()
        source = "vault.keys in the config"
        reload = None
        if config_ring is not None:
            ring = config_ring
        elif key_file.exists():
            ring = read_key_file(key_file)
            source = f"the key file {key_file}"
            reload = partial(read_key_file, key_file)
        elif meta or key_ids_in_use:
            canaries = {k.removeprefix("vault.canary.") for k in meta if k.startswith("vault.canary.")}
            raise VaultError(
                f"vault: the key file {key_file} is missing, but this database holds codes encrypted with "
                f"keys {sorted(canaries | key_ids_in_use)}; "
                "restore the key file (or set vault.keys); nothing was changed"
            )
        else:
            ring = KeyRing.generate()
            write_key_file(key_file, ring)
            source = f"the new key file {key_file}"
        vault = Vault(ring, reload)
        fp = meta.get("vault.fingerprint")
        if fp is not None and not hmac.compare_digest(fp, vault.fingerprint_canary()):
            raise VaultError(
                f"vault: the fingerprint key from {source} is not the one this database was written with; "
                "nothing was changed"
            )
        for kid in ring.keys:
            stored = meta.get(f"vault.canary.{kid}")
            if stored is not None and not vault.check_canary(kid, stored):
                raise VaultError(
                    f"vault: key {kid!r} from {source} does not match the database (wrong key file or key?); "
                    "nothing was changed"
                )
        missing = key_ids_in_use - set(ring.keys)
        if missing:
            raise VaultError(
                f"vault: the database holds codes under keys {sorted(missing)} that {source} lacks; nothing was changed"
            )
        # Codes under a key whose canary is gone (the meta rows were lost or wiped): before new canaries are
        # written, one of those codes must decrypt and match its stored fingerprint, or this is the wrong key.
        for kid in sorted(key_ids_in_use):
            if f"vault.canary.{kid}" in meta and fp is not None:
                continue
            sample = await uow.codes.sample_under_key(kid)
            if sample is not None and not _opens(vault, *sample):
                raise VaultError(
                    f"vault: key {kid!r} from {source} does not open the codes stored under it (wrong key file or "
                    "key?); nothing was changed"
                )
        if fp is None:
            await uow.meta.set("vault.fingerprint", vault.fingerprint_canary())
        for kid in ring.keys:
            if f"vault.canary.{kid}" not in meta:
                await uow.meta.set(f"vault.canary.{kid}", vault.canary(kid))
        await uow.commit()
    return vault
