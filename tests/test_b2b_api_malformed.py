"""Malformed B2B API requests, sent byte for byte over a raw socket (what a broken or hostile client sends, not
what a well-behaved HTTP library would): every one is answered 4xx with the API's JSON error, documented in the
OpenAPI document, with no ERROR log line and no traceback; nothing is bought or debited."""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from core.signing import signed_headers
from tests.helpers import SKU, stock_of
from tests.test_b2b_api import api_store, check_against_document

BIG = str(2**63).encode()  # one past the largest 64-bit integer the database can hold


async def raw_request(port: int, method: str, target: bytes, headers: dict[str, bytes], body: bytes = b""
                      ) -> tuple[int, Any]:
    """One HTTP/1.1 request exactly as given (header values are raw bytes); (status, JSON body or the text)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = b"%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: %d\r\n" % (
            method.encode(), target, len(body))
        head += b"".join(k.encode() + b": " + v + b"\r\n" for k, v in headers.items())
        writer.write(head + b"\r\n" + body)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    try:
        return int(status_line.split()[1]), json.loads(payload)
    except ValueError:
        return int(status_line.split()[1]), payload.decode("utf-8", "replace")


def signed(api: Any, method: str, target: bytes, body: bytes = b"", idempotency_key: bytes | None = None,
           **raw: bytes) -> dict[str, bytes]:
    """Headers of a correctly signed request; `raw` replaces headers (X_Timestamp=b"...") after signing."""
    path = target.decode("latin-1")  # a non-ASCII target (or key) cannot be signed right anyway
    key = idempotency_key.decode("latin-1") if idempotency_key is not None else None
    h = {k: v.encode("latin-1") for k, v in signed_headers(api.key_id, api.secret, method, path, body,
                                                           idempotency_key=key).items()}
    if body:
        h["Content-Type"] = b"application/json"
    h.update({k.replace("_", "-"): v for k, v in raw.items()})
    return h


def order(body: bytes, key: bytes = b"po-malformed") -> tuple[str, bytes, bytes, dict[str, bytes]]:
    return "POST", b"/api/v1/orders", body, {"Idempotency-Key": key}


# (what is wrong, (method, target, body, extra headers), replaced headers after signing, (status, error code))
CASES: list[tuple[str, tuple[str, bytes, bytes, dict[str, bytes]], dict[str, bytes], tuple[int, str]]] = [
    # unauthenticated: refused before the key is looked up
    ("timestamp of superscript digits", ("GET", b"/api/v1/balance", b"", {}), {"X_Timestamp": "²²²".encode()},
     (401, "bad_timestamp")),
    ("timestamp of full-width digits", ("GET", b"/api/v1/balance", b"", {}),
     {"X_Timestamp": "１７６７２２５６００".encode()}, (401, "bad_timestamp")),
    ("timestamp not UTF-8", ("GET", b"/api/v1/balance", b"", {}), {"X_Timestamp": b"\xff\xfe"},
     (401, "bad_timestamp")),
    ("negative timestamp", ("GET", b"/api/v1/balance", b"", {}), {"X_Timestamp": b"-1"}, (401, "bad_timestamp")),
    ("API key not UTF-8", ("GET", b"/api/v1/balance", b"", {}), {"X_Api_Key": b"rk_\xff\xfe"},
     (401, "unknown_key")),
    ("API key not ASCII", ("GET", b"/api/v1/balance", b"", {}), {"X_Api_Key": "rk_密钥".encode()},
     (401, "unknown_key")),
    ("nonce not ASCII", ("GET", b"/api/v1/balance", b"", {}), {"X_Nonce": "nonce-密钥-0001".encode()},
     (400, "bad_request")),
    # a real key, a signature that cannot be one
    ("signature not ASCII", ("GET", b"/api/v1/balance", b"", {}), {"X_Signature": "é".encode() * 32},
     (401, "bad_signature")),
    ("signature not UTF-8", ("GET", b"/api/v1/balance", b"", {}), {"X_Signature": b"\xff" * 64},
     (401, "bad_signature")),
    ("signature far too long", ("GET", b"/api/v1/balance", b"", {}), {"X_Signature": b"a" * 4000},
     (401, "bad_signature")),
    # signed right, malformed inside
    ("statement before = a 23-digit number", ("GET", b"/api/v1/statement?before=99999999999999999999999", b"", {}),
     {}, (400, "bad_request")),
    ("statement before = 2**63", ("GET", b"/api/v1/statement?before=" + BIG, b"", {}), {}, (400, "bad_request")),
    ("statement before = 2**63 negated", ("GET", b"/api/v1/statement?before=-" + BIG, b"", {}), {},
     (400, "bad_request")),
    ("statement before of superscript digits", ("GET", b"/api/v1/statement?before=%C2%B2", b"", {}), {},
     (400, "bad_request")),
    ("statement limit of full-width digits", ("GET", b"/api/v1/statement?limit=%EF%BC%91%EF%BC%90", b"", {}), {},
     (400, "bad_request")),
    ("statement before not UTF-8", ("GET", b"/api/v1/statement?before=%ff", b"", {}), {}, (400, "bad_request")),
    ("statement before with underscores", ("GET", b"/api/v1/statement?before=1_000", b"", {}), {},
     (400, "bad_request")),
    ("statement before with a space", ("GET", b"/api/v1/statement?before=%201", b"", {}), {}, (400, "bad_request")),
    ("statement before empty", ("GET", b"/api/v1/statement?before=", b"", {}), {}, (400, "bad_request")),
    ("statement limit = 2**63", ("GET", b"/api/v1/statement?limit=" + BIG, b"", {}), {}, (400, "bad_request")),
    ("idempotency_key query not UTF-8", ("GET", b"/api/v1/orders?idempotency_key=%ff%fe", b"", {}), {},
     (400, "bad_request")),
    ("idempotency_key query with NUL", ("GET", b"/api/v1/orders?idempotency_key=a%00b", b"", {}), {},
     (400, "bad_request")),
    ("idempotency_key query ending in a newline", ("GET", b"/api/v1/orders?idempotency_key=po-1%0A", b"", {}), {},
     (400, "bad_request")),
    ("order id not UTF-8", ("GET", b"/api/v1/orders/%ff%fe", b"", {}), {}, (404, "not_found")),
    ("order id far too long", ("GET", b"/api/v1/orders/" + b"A" * 3000, b"", {}), {}, (404, "not_found")),
    ("deeply nested JSON list", order(b"[" * 30000 + b"]" * 30000), {}, (400, "bad_request")),
    ("deeply nested JSON object", order(b'{"sku":' * 8000 + b'"x"' + b"}" * 8000), {}, (400, "bad_request")),
    ("body not UTF-8", order(b'{"sku": "\xff\xfe"}'), {}, (400, "bad_request")),
    ("qty of 5000 digits", order(b'{"sku": "CARD-10", "qty": ' + b"9" * 5000 + b"}"), {}, (400, "bad_request")),
    ("qty past 64 bits", order(b'{"sku": "CARD-10", "qty": ' + BIG + b"}"), {}, (400, "bad_quantity")),
    ("qty of 1e400", order(b'{"sku": "CARD-10", "qty": 1e400}'), {}, (400, "bad_request")),
    ("qty NaN", order(b'{"sku": "CARD-10", "qty": NaN}'), {}, (400, "bad_request")),
    ("sku a lone surrogate", order(b'{"sku": "\\ud800"}'), {}, (400, "bad_request")),
    ("sku with NUL", order(b'{"sku": "CARD-10\\u0000"}'), {}, (400, "bad_request")),
    ("sku with a bidi override", order(b'{"sku": "\\u202eCARD-10"}'), {}, (400, "bad_request")),
    ("account a lone surrogate", order(b'{"sku": "CARD-10", "account": "\\udcff"}'), {}, (400, "bad_request")),
    ("Idempotency-Key not ASCII", order(b'{"sku": "CARD-10"}', "po-密钥".encode()), {},
     (400, "idempotency_key_required")),
    ("Idempotency-Key not UTF-8", order(b'{"sku": "CARD-10"}', b"po-\xff"), {}, (400, "idempotency_key_required")),
    ("Idempotency-Key of 129 characters", order(b'{"sku": "CARD-10"}', b"k" * 129), {},
     (400, "idempotency_key_required")),
]


async def test_given_malformed_requests_each_gets_a_documented_4xx_json_error_and_no_error_log(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with api_store(db_url, tmp_path, rate=1000) as (app, desk, api):
        async with api.http.get(api.base + "/api/v1/openapi.json") as resp:
            doc = await resp.json()
        wrong: list[str] = []
        for what, (method, target, body, extra), raw, expected in CASES:
            caplog.clear()
            # when the request is sent exactly as a broken client would
            headers = signed(api, method, target, body, extra.get("Idempotency-Key"), **raw)
            status, answer = await raw_request(api.server.port, method, target, headers, body)
            # then it gets the documented error, and nobody logs an error or a traceback
            code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            if (status, code) != expected or errors:
                wrong.append(f"{what}: {status} {str(answer)[:120]}"
                             + "".join(f" / logged {r.levelname}: {r.getMessage()[:80]}" for r in errors))
                continue
            check_against_document(doc, method, target.decode("latin-1").split("?")[0], status, answer)
        assert wrong == [], "\n".join(wrong)
        # and nothing was bought or debited by any of it
        assert await stock_of(app, SKU) == (50, 0, 0)
        assert (await desk.get(1)).balance == 10_000


async def send_bytes(port: int, data: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def test_given_bytes_that_are_no_valid_http_the_answer_is_400_and_the_log_a_warning_without_traceback(
        sqlite_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with api_store(sqlite_url, tmp_path) as (app, desk, api):
        port = api.server.port
        target = b"/api/v1/orders"
        h = signed(api, "POST", target, b'{"sku": "CARD-10"}')
        head = b"".join(k.encode() + b": " + v + b"\r\n" for k, v in h.items())  # no Idempotency-Key: signed
        # with none, so the cases below only differ in what breaks
        cases = {
            "raw byte in the query": b"GET /api/v1/statement?limit=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
            "broken chunked framing": b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      b"Transfer-Encoding: chunked\r\n"
                                      + head + b"\r\n5\r\n{\"sku\r\nZZ\r\n",
            "gzip that is not": b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
                                b"Content-Length: 18\r\n" + head + b"\r\n" + b'{"sku": "CARD-10"}',
        }
        for what, data in cases.items():
            caplog.clear()
            # when a client sends them
            status, body = await send_bytes(port, data)
            # then it gets 400 (the JSON error when the API itself read the body) and the log has one warning
            assert status == 400, what
            if what.startswith("gzip"):
                assert json.loads(body)["error"]["code"] == "bad_request"
            assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == [], what
            assert any(r.levelno == logging.WARNING for r in caplog.records), what
        # a client that goes away halfway through its body (the store is left reading it)
        caplog.clear()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + head
                     + b"\r\n" + b'{"sku": ')
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()
        await asyncio.sleep(0.3)
        assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
        assert await stock_of(app, SKU) == (50, 0, 0)
