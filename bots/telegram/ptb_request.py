"""python-telegram-bot's HTTP transport on aiohttp instead of httpx.

PTB sends every Bot API call through a `BaseRequest`; its default, `HTTPXRequest`, cost the store about 26-30 ms of
CPU per purchase under load (a purchase is six or seven calls): httpx/httpcore's connection-pool bookkeeping and
per-request objects, measured with cProfile in `bench/telegram_e2e.py --library ptb` (docs/telegram.md, "Two
libraries, one speed"). aiohttp is already the store's HTTP client and server (and aiogram's), and its keep-alive
pool is cheap per request, so PTB rides on it: one `ClientSession` per request object, opened by PTB's
`initialize` and closed by its `shutdown`, with the same timeouts and errors PTB's own transport has
(`TimedOut`, `NetworkError`).
"""
from __future__ import annotations

from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    """A `BaseRequest` over one aiohttp `ClientSession` (keep-alive pool of `pool_size` connections)."""

    __slots__ = ("_connect", "_pool", "_pool_size", "_read", "_session")

    def __init__(self, pool_size: int = 256, *, read_timeout: float | None = 5.0, connect_timeout: float | None = 5.0,
                 pool_timeout: float | None = 1.0) -> None:
        self._pool_size = pool_size
        self._read, self._connect, self._pool = read_timeout, connect_timeout, pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            # PTB answers "TimedOut" after pool_timeout when every connection is busy, as httpx's pool does.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size),
                headers={"User-Agent": self.USER_AGENT})

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
                         write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
                         connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
                         pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        fields = request_data.json_parameters if request_data else None
        read = self._read if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect if isinstance(connect_timeout, DefaultValue) else connect_timeout
        pool = self._pool if isinstance(pool_timeout, DefaultValue) else pool_timeout
        # aiohttp times the wait for each read of the answer (sock_read); sending the body has no timer of its own, so
        # PTB's write timeouts (and its longer one for uploads) have nothing to bound here.
        waits = [t for t in (pool, connect) if t is not None]  # aiohttp's `connect`: a free connection or a new one
        timeout = aiohttp.ClientTimeout(total=None, connect=sum(waits) if waits else None, sock_connect=connect,
                                        sock_read=read)
        body: Any = fields
        if files:
            form = aiohttp.FormData()
            for name, value in (fields or {}).items():
                form.add_field(name, value)
            for name, (filename, content, mimetype) in files.items():
                form.add_field(name, content, filename=filename, content_type=mimetype)
            body = form
        try:
            async with session.request(method, url, data=body, timeout=timeout) as res:
                return res.status, await res.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as err:
            raise TimedOut from err
        except aiohttp.ClientError as err:  # the base of aiohttp's errors: last
            raise NetworkError(f"aiohttp.{err.__class__.__name__}: {err}") from err
