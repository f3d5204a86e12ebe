"""The B2B API's request signature, defined once for both ends: bots/b2b_api.py checks it on every request, and
the `store` supplier (suppliers/store.py), the tests and the bench sign with it. Plain functions of the request's
parts; no framework, so a client needs nothing of the server to sign.

    X-Signature = hex(HMAC-SHA256(secret, METHOD \\n PATH?QUERY \\n TIMESTAMP \\n NONCE \\n hex(SHA-256(body))
                                          \\n IDEMPOTENCY-KEY))
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time

PREFIX = "/api/v1"  # where the API is mounted on the store's server


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def string_to_sign(method: str, path_qs: str, timestamp: str, nonce: str, body: bytes,
                   idempotency_key: str = "") -> str:
    return "\n".join((method.upper(), path_qs, timestamp, nonce, body_hash(body), idempotency_key))


def sign(secret: str, method: str, path_qs: str, timestamp: str, nonce: str, body: bytes,
         idempotency_key: str = "") -> str:
    """The X-Signature of a request (what a client computes; the `store` supplier uses this)."""
    text = string_to_sign(method, path_qs, timestamp, nonce, body, idempotency_key)
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def signed_headers(key_id: str, secret: str, method: str, path_qs: str, body: bytes = b"", *,
                   idempotency_key: str | None = None, timestamp: int | None = None,
                   nonce: str | None = None) -> dict[str, str]:
    """The auth headers of a request, and its Idempotency-Key header when one is given (a client helper:
    tests, the bench, the `store` supplier): the key is signed, so it must be sent exactly as given here."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_urlsafe(16)
    headers = {"X-Api-Key": key_id, "X-Timestamp": ts, "X-Nonce": nonce,
               "X-Signature": sign(secret, method, path_qs, ts, nonce, body, idempotency_key or "")}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    return headers
