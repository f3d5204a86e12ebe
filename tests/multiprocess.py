"""Several store processes on one PostgreSQL database and one Redis, behind Telegram webhooks (the harness of
tests/test_multiprocess.py and bench/scale.py).

    async with Cluster(tmp_path, processes=3, codes=100, overall_per_second=20) as cluster:
        figures = await cluster.race(buyers=500)      # every buyer taps Buy; the winners pay in Stars
        cluster.stores[0].kill()                      # SIGKILL, as a crash
        await cluster.redis.restart()                 # the private redis-server goes away and comes back

The parts:
- `PrivateRedis`: a redis-server of this run's own on a free port (no persistence), so a test may kill and
  restart it; killed at the end.
- `fresh_database`: CREATE DATABASE mp_<random> on the server of STORE_TEST_POSTGRES_URL, dropped at the end.
- `StoreProcess`: `run.py --config FILE` (webhook mode, its own server.port, the same database, Redis URL and
  prefix, bot token and vault keys as the others), ready when its /healthz answers; its log in a file.
- `Shoppers`: the fake Bot API (tests/fake_bot_api/) delivering updates by POST to the processes' webhook URLs in
  turn (a load balancer), re-sending what was not answered 200, routing each answer of the bot to the chat's inbox.
- `Cluster.race`: buyers tap Buy at once on one product; those who get an invoice pay (pre_checkout_query,
  successful_payment) and wait for their code. Refused buyers may tap again later (`retry_until_sold`): holds
  left by a killed process lapse, and their stock is sold again.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
import yaml
from sqlalchemy.engine import make_url

from storage.scratch import scratch_database
from tests.fake_bot_api import Call, FakeBotAPI
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
TOKEN = "777:MULTI"
SECRET = "mp-Secret_token-1"
PUBLIC_HOOK = "https://shop.example.com/tg/hook"  # what setWebhook is told; the fake posts to each process
SKU = "CARD"
STARS = 5
WELCOME = "<b>Welcome to"  # the menu shown under a refusal
SPOILER = re.compile(r"<tg-spoiler><code>([^<]+)</code></tg-spoiler>")


def missing() -> str | None:
    """Why these tests cannot run here (None: they can)."""
    if not os.environ.get("STORE_TEST_POSTGRES_URL"):
        return "several store processes need PostgreSQL: set STORE_TEST_POSTGRES_URL (.ci/run does)"
    if not Path(REDIS_SERVER).exists():
        return f"several store processes need Redis: no redis-server at {REDIS_SERVER}"
    return None


# -- Redis ------------------------------------------------------------------------------------------------------

class PrivateRedis:
    """redis-server on a free port of its own, without persistence: `kill` and `start` again on the same port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not await self.answers():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            await asyncio.sleep(0.05)

    async def answers(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 1.0)
        except (TimeoutError, OSError):
            return False
        try:
            writer.write(b"PING\r\n")
            return (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG")
        except (TimeoutError, OSError):
            return False
        finally:
            writer.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    async def keys(self, pattern: str) -> list[str]:
        client = aioredis.Redis(port=self.port, decode_responses=True)
        try:
            return sorted(await client.keys(pattern))
        finally:
            await client.aclose()

    async def restart(self, down_seconds: float = 2.0) -> None:
        self.kill()
        await asyncio.sleep(down_seconds)
        await self.start()


# -- PostgreSQL -------------------------------------------------------------------------------------------------

def fresh_database(admin_url: str) -> contextlib.AbstractAsyncContextManager[str]:
    """A new database on the server of `admin_url` (a postgresql+asyncpg:// URL), dropped at the end."""
    return scratch_database(admin_url, "mp_")


async def query(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def proc_cpu(pid: int) -> float:
    """User and system CPU seconds of process `pid` (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the store processes ----------------------------------------------------------------------------------------

def vault_keys() -> dict[str, Any]:
    """The vault keys every process shares (as `vault.keys` in each config)."""
    return {"keys": {"k1": base64.b64encode(os.urandom(32)).decode()},
            "fingerprint_key": base64.b64encode(os.urandom(32)).decode()}


def store_config(*, db_url: str, redis_url: str, prefix: str, api_base: str, port: int, vault: dict[str, Any],
                 overall_per_second: float, log_level: str = "WARNING", library: str = "ptb") -> dict[str, Any]:
    return {
        "store": {"name": "Multi Shop", "demo": False, "languages": ["en"], "default_language": "en",
                  "hold_minutes": 1, "max_open_holds": 3},
        "database": {"url": db_url, "pool_size": 5},
        "vault": vault,
        "server": {"host": "127.0.0.1", "port": port},
        # A Redis call with no answer after timeout_seconds is slow: a send-limit turn or a claim waits up to 4 times
        # it for Redis's answer, other calls fall back to the process's own memory; on a loaded 2-core machine an
        # event loop busy with hundreds of buyers reads a quick answer late, and 2 s (the default) keeps slowness
        # rare.
        "redis": {"url": redis_url, "prefix": prefix, "timeout_seconds": 2.0},
        "telegram": {"token": TOKEN, "api_base": api_base, "library": library, "mode": "webhook",
                     "webhook": {"url": PUBLIC_HOOK, "secret": SECRET},
                     "limits": {"overall_per_second": overall_per_second, "per_chat_burst": 3}},
        # Small lease and intervals: a killed process's scheduler lease passes on, lapsed holds are released and
        # the outbox swept within seconds.
        "jobs": {"lease_seconds": 5, "expire_holds_seconds": 2, "dispatch_outbox_seconds": 2,
                 "daily_summary_at": ""},
        "logging": {"level": log_level},
        "catalog": [{"sku": SKU, "title": "Card", "price": 100, "stars": STARS, "max_qty": 1}],
    }


class StoreProcess:
    """`run.py --config FILE` as a merchant starts it; stdout and stderr go to `log`."""

    def __init__(self, name: str, config: Path, port: int) -> None:
        self.name = name
        self.config = config
        self.port = port
        self.log = config.with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def hook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tg/hook"

    async def start(self, timeout: float = 180.0) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "run.py", "--config", str(self.config)], cwd=ROOT,
                                         stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    async with http.get(f"http://127.0.0.1:{self.port}/healthz") as r:
                        if r.status == 200:
                            return
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"store {self.name} did not become healthy:\n{self.log_text()[-3000:]}")
                await asyncio.sleep(0.1)

    def cpu_seconds(self) -> float:
        """User and system CPU this process used so far (0 once it has ended)."""
        return proc_cpu(self.proc.pid) if self.alive and self.proc is not None else 0.0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: nothing of the process's own runs after it."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    async def stop(self) -> int | None:
        """SIGTERM, as systemd stops it; the exit status (None: it had to be killed)."""
        if not self.alive:
            return self.proc.returncode if self.proc is not None else None
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def metric(self, name: str) -> float:
        """The sum of one counter's samples on /metrics (0 when none yet)."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                http.get(f"http://127.0.0.1:{self.port}/metrics") as r:
            text = await r.text()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith((name + "{", name + " ")))


# -- the Telegram side ------------------------------------------------------------------------------------------

class Shoppers(FakeBotAPI):
    """The fake Bot API, routing every answer of the bot to the chat (buyer) it was for."""

    ROUTED = ("sendMessage", "sendInvoice", "answerPreCheckoutQuery")

    def __init__(self) -> None:
        super().__init__(token=TOKEN)
        self.inbox: defaultdict[int, asyncio.Queue[Call]] = defaultdict(asyncio.Queue)
        self.query_chat: dict[str, int] = {}

    def _answered(self, call: Call) -> None:
        if call.status != 200 or call.method not in self.ROUTED:
            return
        chat = call.params.get("chat_id")
        if call.method == "answerPreCheckoutQuery":
            chat = self.query_chat.get(call.params.get("pre_checkout_query_id"))
        if isinstance(chat, int):
            self.inbox[chat].put_nowait(call)

    def code_messages(self, since: int = 0) -> Counter[tuple[int, str]]:
        """(chat, code) -> how many messages carried that code to that chat."""
        out: Counter[tuple[int, str]] = Counter()
        for c in self._calls[since:]:
            if c.method == "sendMessage" and c.status == 200:
                for code in SPOILER.findall(str(c.params.get("text", ""))):
                    out[(c.params["chat_id"], code)] += 1
        return out

    def handled_counts(self, since: int = 0) -> dict[str, Counter[str]]:
        """How many times the bot answered each callback query and each pre-checkout query (one handling of an
        update answers it once)."""
        taps: Counter[str] = Counter()
        checks: Counter[str] = Counter()
        for c in self._calls[since:]:
            if c.method == "answerCallbackQuery":
                taps[str(c.params.get("callback_query_id"))] += 1
            elif c.method == "answerPreCheckoutQuery":
                checks[str(c.params.get("pre_checkout_query_id"))] += 1
        return {"callback_query": taps, "pre_checkout_query": checks}


@dataclass
class RaceResult:
    buyers: int
    seconds: float
    invoices: int = 0
    paid: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    delivered: dict[int, list[str]] = field(default_factory=dict)  # chat -> codes received (every message)
    declined: int = 0  # pre-checkout answered no (the hold had lapsed)
    errors: Counter[str] = field(default_factory=Counter)
    taps: list[str] = field(default_factory=list)  # callback query ids of every Buy tap
    checks: list[str] = field(default_factory=list)  # pre-checkout query ids sent

    def codes(self) -> Counter[str]:
        return Counter(c for cs in self.delivered.values() for c in cs)

    def figures(self) -> dict[str, Any]:
        codes = self.codes()
        holders: defaultdict[str, set[int]] = defaultdict(set)
        for chat, cs in self.delivered.items():
            for c in cs:
                holders[c].add(chat)
        return {"buyers": self.buyers, "seconds": round(self.seconds, 2), "invoices": self.invoices,
                "paid": self.paid, "delivered_codes": len(codes),
                "purchases_per_s": round(len(codes) / self.seconds, 1) if self.seconds else 0.0,
                "codes_to_two_buyers": sum(1 for h in holders.values() if len(h) > 1),
                "repeated_code_messages": sum(n - 1 for n in codes.values() if n > 1),
                "paid_not_delivered": self.paid - len([c for c, cs in self.delivered.items() if cs]),
                "declined": self.declined, "refused": dict(self.refused), "errors": dict(self.errors)}


async def _answer(api: Shoppers, chat: int, methods: tuple[str, ...], timeout: float) -> Call:
    while True:
        call = await asyncio.wait_for(api.inbox[chat].get(), timeout)
        if call.method in methods:
            return call


async def buy_one(api: Shoppers, result: RaceResult, user: dict, product_id: int, *,
                  code_timeout: float = 150.0) -> bool:
    """One buyer: taps Buy; with an invoice pays it in Stars and waits for the code. False: refused."""
    uid = user["id"]
    chat = {"id": uid, "type": "private"}
    tap = api.callback_update(user, f"buy:{product_id}:1", {"message_id": 1, "chat": chat, "date": 0})
    result.taps.append(tap["callback_query"]["id"])
    inbox = api.inbox[uid]
    while not inbox.empty():  # what came after an earlier tap's answer (the menu under a refusal) is no answer
        inbox.get_nowait()
    api.push_update(tap)
    while True:
        answer = await _answer(api, uid, ("sendInvoice", "sendMessage"), 90.0)
        if not str(answer.params.get("text", "")).startswith(WELCOME):
            break
    if answer.method != "sendInvoice":
        text = str(answer.params.get("text", ""))
        result.refused["sold_out" if re.search(r"sold out|not enough stock", text, re.I) else text[:60]] += 1
        return False
    result.invoices += 1
    payload, amount = answer.params["payload"], answer.params["prices"][0]["amount"]
    check = api.pre_checkout_update(user, payload, amount)
    query_id = check["pre_checkout_query"]["id"]
    api.query_chat[query_id] = uid
    result.checks.append(query_id)
    api.push_update(check)
    while True:
        ok = await _answer(api, uid, ("answerPreCheckoutQuery",), 90.0)
        if ok.params.get("pre_checkout_query_id") == query_id:
            break
    if ok.params.get("ok") is not True:
        result.declined += 1
        return True
    api.push_update(api.successful_payment_update(user, payload, amount, f"charge-{uid}-{payload}"))
    result.paid += 1
    while True:
        message = await _answer(api, uid, ("sendMessage",), code_timeout)
        codes = SPOILER.findall(str(message.params.get("text", "")))
        if codes:
            result.delivered.setdefault(uid, []).extend(codes)
            return True


# -- the cluster ------------------------------------------------------------------------------------------------

class Cluster:
    """N store processes, a private Redis and a fresh database behind the fake Bot API; see the module docstring.
    `library`: the processes' Telegram library (PTB by default: importing aiogram costs a process about 5 s of CPU
    at start, PTB 0.3 s). `codes`: imported before the processes start (`prepare=False`: none, the processes start
    together on a blank database); `copies_every`, `delivery_timeout`: see tests/fake_bot_api/delivery.py."""

    def __init__(self, directory: Path, *, processes: int, codes: int, overall_per_second: float,
                 admin_url: str | None = None, copies_every: int = 0, delivery_timeout: float = 10.0,
                 log_level: str = "WARNING", prepare: bool = True, library: str = "ptb") -> None:
        self.directory = directory
        self.library = library
        self.prepare = prepare
        self.n = processes
        self.n_codes = codes
        self.overall_per_second = overall_per_second
        self.admin_url = admin_url or os.environ["STORE_TEST_POSTGRES_URL"]
        self.copies_every = copies_every
        self.delivery_timeout = delivery_timeout
        self.log_level = log_level
        self.prefix = f"mp{secrets.token_hex(3)}:"
        self.secret = SECRET
        self.stores: list[StoreProcess] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Cluster:
        try:
            await self._open()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.redis = PrivateRedis(self.directory)
        await self.redis.start()
        self._stack.callback(self.redis.kill)
        self.db_url = await self._stack.enter_async_context(fresh_database(self.admin_url))
        self.api = Shoppers()
        await self.api.start()
        self._stack.push_async_callback(self.api.stop)
        vault = vault_keys()
        for i in range(self.n):
            port = free_port()
            cfg = self.directory / f"store{i}.yaml"
            cfg.write_text(yaml.safe_dump(store_config(
                db_url=self.db_url, redis_url=self.redis.url, prefix=self.prefix, api_base=self.api.base, port=port,
                vault=vault, overall_per_second=self.overall_per_second, log_level=self.log_level,
                library=self.library)))
            self.stores.append(StoreProcess(f"store{i}", cfg, port))
        self._stack.push_async_callback(self._stop_stores)
        if self.prepare:
            await self._import_codes()
        started = await asyncio.gather(*(s.start() for s in self.stores), return_exceptions=True)
        failed = [e for e in started if isinstance(e, BaseException)]
        if failed:
            raise failed[0]
        self.product_id = (await query(self.db_url, "SELECT id FROM products WHERE sku = $1", SKU))[0]["id"]
        self.api.deliver_to([s.hook_url for s in self.stores], SECRET, timeout=self.delivery_timeout,
                            retry_seconds=0.5, copies_every=self.copies_every)

    async def _import_codes(self) -> None:
        """Before any store starts: the new database migrated, the catalogue synced and the pool filled (the stores
        then start on a database that is ready, as after `run.py codes import`)."""
        await self.restock(self.n_codes)

    async def restock(self, n: int) -> None:
        """`n` new codes in the pool, imported as `run.py codes import` does (while the stores run, too)."""
        from app import App  # noqa: PLC0415 - the store's modules load only when a cluster starts
        from config.settings import parse_settings  # noqa: PLC0415
        from core.supply import import_codes  # noqa: PLC0415

        settings = parse_settings(yaml.safe_load(self.stores[0].config.read_text()), self.directory, env={})
        app = await App.open(settings)
        try:
            report = await import_codes(app.db.uow, app.vault, app.clock, SKU,
                                        [f"MP-{secrets.token_hex(6).upper()}\n".encode() for _ in range(n)])
        finally:
            await app.close()
        if report.imported != n:
            raise RuntimeError(f"imported {report.imported} of {n} codes: {report}")

    async def _stop_stores(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.stores))

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    # -- driving it --------------------------------------------------------------------------------------------

    def users(self, n: int, first: int = 500_000) -> list[dict]:
        return [self.api.user(first + i, f"B{i}", "en") for i in range(n)]

    async def race(self, buyers: int, codes: int, *, first: int = 500_000, during: Any = None,
                   retry_until_sold: float = 0.0, code_timeout: float = 150.0) -> RaceResult:
        """`buyers` buyers (user ids from `first`) tap Buy at once for `codes` codes; the winners pay and wait for
        their code. `during(result)`: a coroutine run alongside (a kill, a Redis restart). `retry_until_sold`
        seconds: after the rush, refused buyers tap again, two a second, until `codes` codes were delivered."""
        users = self.users(buyers, first)
        result = RaceResult(buyers, 0.0)
        refused: list[dict] = []

        async def one(user: dict) -> None:
            try:
                if not await buy_one(self.api, result, user, self.product_id, code_timeout=code_timeout):
                    refused.append(user)
            except Exception as exc:  # noqa: BLE001 - counted in the figures
                result.errors[type(exc).__name__] += 1

        t0 = time.perf_counter()
        side = asyncio.create_task(during(result)) if during is not None else None
        await asyncio.gather(*(one(u) for u in users))
        deadline = time.monotonic() + retry_until_sold
        late: list[asyncio.Task[None]] = []
        while len(result.codes()) < codes and refused and time.monotonic() < deadline:
            late.append(asyncio.create_task(one(refused.pop(0))))
            await asyncio.sleep(0.5)
        await asyncio.gather(*late)
        if side is not None:
            await side
        result.seconds = time.perf_counter() - t0
        return result

    async def orders(self) -> Counter[str]:
        rows = await query(self.db_url, "SELECT status, count(*) AS n FROM orders GROUP BY status")
        return Counter({r["status"]: r["n"] for r in rows})

    async def paid_undelivered(self) -> int:
        """Orders with a payment recorded that are not delivered."""
        rows = await query(self.db_url, "SELECT count(*) AS n FROM orders o WHERE EXISTS (SELECT 1 FROM payments p "
                                        "WHERE p.order_id = o.id) AND o.status <> 'delivered'")
        return int(rows[0]["n"])

    async def unsent(self) -> int:
        rows = await query(self.db_url, "SELECT count(*) AS n FROM outbox WHERE status <> 'sent'")
        return int(rows[0]["n"])

    async def codes_left(self) -> Counter[str]:
        rows = await query(self.db_url, "SELECT status, count(*) AS n FROM codes GROUP BY status")
        return Counter({r["status"]: r["n"] for r in rows})

    async def handled_updates(self) -> float:
        """Updates handled, summed over the live processes' /metrics."""
        counts = await asyncio.gather(*(s.metric("store_updates_total") for s in self.stores if s.alive))
        return sum(counts)

    def logs(self) -> str:
        """The processes' logs (the ends), without apscheduler's notes of a tick skipped on a busy machine."""
        def kept(text: str) -> str:
            return "\n".join(line for line in text.splitlines() if "maximum number of running instances" not in line)
        return "\n".join(f"--- {s.name}\n{kept(s.log_text())[-4000:]}" for s in self.stores)
