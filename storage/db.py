"""Engines, the unit of work, and migrations.

SQLite: WAL, FULL sync (payments are money), busy timeout, foreign keys; writers begin with BEGIN IMMEDIATE
through a one-connection write engine, so writers queue in Python instead of failing with "database is
locked"; readers use their own pool and never block writers (WAL). PostgreSQL: one asyncpg pool.

SQLite connections are aiosqlite's, each with its own thread, but statements do not go there. SQLAlchemy's
aiosqlite adapter made four trips to that thread per statement (cursor, execute, fetch, close); under load each
trip waited for a turn of the busy event loop, and the thread then waited for the GIL again for every row (SQLite
releases it around each step): a group commit took 100-400 ms, and every buyer waiting on it felt that.
`OneTripConnection` runs a statement right where it is awaited instead: in WAL mode a reader never waits for a
lock, and a writer's statements run inside BEGIN IMMEDIATE, when the lock is already held, so none of them waits
on other connections; what they cost is SQLite's own work on small, indexed statements (microseconds).
What can wait goes to aiosqlite's thread as before: BEGIN (it may wait for another process's write lock), COMMIT
(the fsync, and WAL checkpoints), bulk executemany (over BULK_ROWS rows: imports, rekey) and statements marked
with `OFF_LOOP` (scans of the whole codes table: stock, rekey; the reports' aggregates over a period's orders; the
console's search of the audit log, which may walk far).
"""
from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiosqlite
from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from core.clock import SystemClock
from storage.aftersales import SqlRecallRepo, SqlTicketRepo
from storage.base import OFF_LOOP, Now
from storage.broadcasts import BroadcastRepo
from storage.cardfaces import CardFaceRepo
from storage.catalog import CodeRepo, ProductRepo
from storage.console import ConsoleRepo
from storage.coupons import CouponRepo
from storage.flash_sales import FlashSaleRepo
from storage.group_buy import GroupBuyRepo
from storage.groups import GroupRepo
from storage.images import ImageRepo
from storage.member_coupons import MemberCouponRepo
from storage.members import MemberRepo
from storage.meta import MetaRepo
from storage.orders import OrderRepo, OutboxRepo, PaymentRepo
from storage.people import AuditRepo, CustomerRepo
from storage.privacy import PrivacyRepo
from storage.reports import SqlReportRepo
from storage.reseller_repo import SqlResellerRepo
from storage.risk import RiskRepo
from storage.stock_alerts import StockAlertRepo
from storage.supplies import SupplyRepo
from storage.wechat import NoncePairRepo

if TYPE_CHECKING:
    from core import (
        aftersales,
        broadcast,
        cardfaces,
        console,
        coupons,
        flash_sales,
        group_buy,
        groups,
        images,
        members,
        ports,
        privacy,
        reports,
        resellers,
        risk,
        stock_alerts,
    )
    from core.members.coupons import MemberCouponRepo as MemberCouponPort

MIGRATIONS = Path(__file__).with_name("migrations")


BULK_ROWS = 256  # executemany with more rows than this runs in aiosqlite's thread
PING_IDLE = 10.0  # seconds a PostgreSQL connection may sit idle in the pool before it is pinged at checkout
# asyncpg learns each array type by a query of its own on every connection, the first time a statement uses it (the
# array parameters of storage/base.py): one query for them all when a connection is made, instead of one each later.
_PG_ARRAY_TYPES = ("SELECT CAST($1 AS bigint[]), CAST($2 AS integer[]), CAST($3 AS varchar[]), CAST($4 AS text[]), "
                   "CAST($5 AS timestamptz[]), CAST($6 AS json[])")
WARM_WRITERS = 3  # PostgreSQL write connections opened by `upgrade`: one per group-commit lane (core/shop.py)


class _OneTripCursor:
    """The cursor SQLAlchemy's aiosqlite adapter asks for: each execute runs whole (execute, fetch, close), on
    the event loop or in aiosqlite's thread (see the module docstring), and keeps the rows."""

    __slots__ = ("_conn", "description", "rowcount", "lastrowid", "_rows")

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[Any] = []

    def _run(self, sql: str, params: Any, many: bool) -> tuple[Any, list[Any], int, int | None]:
        cur = self._conn._conn.cursor()  # noqa: SLF001 - runs in aiosqlite's own thread
        try:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else []
            return cur.description, rows, cur.rowcount, cur.lastrowid
        finally:
            cur.close()

    async def execute(self, sql: str, parameters: Any = ()) -> _OneTripCursor:
        if sql.startswith("BEGIN") or OFF_LOOP in sql:
            result = await self._conn._execute(self._run, sql, parameters, False)  # noqa: SLF001
        else:
            result = self._run(sql, parameters, False)
        self.description, self._rows, self.rowcount, self.lastrowid = result
        return self

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> _OneTripCursor:
        if len(parameters) > BULK_ROWS or OFF_LOOP in sql:
            result = await self._conn._execute(self._run, sql, parameters, True)  # noqa: SLF001
        else:
            result = self._run(sql, parameters, True)
        self.description, self._rows, self.rowcount, self.lastrowid = result
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def close(self) -> None:
        self._rows = []


class OneTripConnection:
    """An aiosqlite connection whose statements and rollbacks run where they are awaited (see the module
    docstring). Everything else (begin, commit, close, the thread) is aiosqlite's own."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._inner = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def cursor(self) -> _OneTripCursor:
        return _OneTripCursor(self._inner)

    async def rollback(self) -> None:
        """Discarding a transaction (or nothing, on a reader) waits for no lock and writes nothing to disk."""
        self._inner._conn.rollback()  # noqa: SLF001

    @classmethod
    def creator(cls, database: str) -> Callable[[], Awaitable[OneTripConnection]]:
        """`async_creator` for create_async_engine: opens `database` like SQLAlchemy's dialect would."""
        async def connect() -> OneTripConnection:
            conn = aiosqlite.connect(database, uri=database.startswith("file:"), check_same_thread=False)
            conn._thread.daemon = True  # noqa: SLF001 - as SQLAlchemy's dialect does: never blocks exit
            return cls(await conn)

        return connect


class SqlUnitOfWork:
    """One transaction on one connection, every repository bound to it: core/ports.py `UnitOfWork` (each
    repository is declared as the port it implements, so mypy checks each against it)."""

    products: ports.ProductRepo
    codes: ports.CodeRepo
    orders: ports.OrderRepo
    payments: ports.PaymentRepo
    outbox: ports.OutboxRepo
    audit: ports.AuditRepo
    customers: ports.CustomerRepo
    meta: ports.MetaRepo
    supplies: ports.SupplyRepo
    risk: risk.RiskRepo
    resellers: resellers.ResellerRepo
    groups: groups.GroupRepo
    card_faces: cardfaces.CardFaceRepo
    wechat: ports.NoncePairRepo
    tickets: aftersales.TicketRepo
    recalls: aftersales.RecallRepo
    reports: reports.ReportRepo
    console: console.ConsoleRepo
    images: images.ImageRepo
    stock_alerts: stock_alerts.StockAlertRepo
    broadcasts: broadcast.BroadcastRepo
    coupons: coupons.CouponRepo
    members: members.MemberRepo
    member_coupons: MemberCouponPort
    group_buys: group_buy.GroupBuyRepo
    flash_sales: flash_sales.FlashSaleRepo
    privacy: privacy.PrivacyRepo

    def __init__(self, engine: AsyncEngine, dialect: str, now_fn: Now, *, write: bool = True) -> None:
        self._engine = engine
        self._dialect = dialect
        self._now = now_fn
        self._conn: AsyncConnection | None = None
        self._committed = False
        # A reader commits nothing: on PostgreSQL its connection autocommits each statement (no transaction, so no
        # row locks held and no all-or-nothing), on SQLite a write there fights the writer's lock ("database is
        # locked"). A use case that writes asks for uow(write=True); one that commits here is a bug, said at once.
        self._write = write

    async def __aenter__(self) -> SqlUnitOfWork:
        conn = await self._engine.connect()
        try:
            await conn.begin()
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        args = (conn, self._dialect, self._now)
        self.products = ProductRepo(*args)
        self.codes = CodeRepo(*args)
        self.orders = OrderRepo(*args)
        self.payments = PaymentRepo(*args)
        self.outbox = OutboxRepo(*args)
        self.audit = AuditRepo(*args)
        self.customers = CustomerRepo(*args)
        self.meta = MetaRepo(*args)
        self.supplies = SupplyRepo(*args)
        self.risk = RiskRepo(*args)  # rules and risk
        self.resellers = SqlResellerRepo(*args)  # accounts, wallets, API keys, top-ups, commissions, waiting orders
        self.groups = GroupRepo(*args)  # reseller group chats
        self.card_faces = CardFaceRepo(*args)  # resellers' card faces, bound users
        self.wechat = NoncePairRepo(*args)  # the WeChat callback's (timestamp, nonce) pairs
        self.tickets = SqlTicketRepo(*args)  # after-sales tickets and a buyer's history
        self.recalls = SqlRecallRepo(*args)  # codes by fingerprint: recalls, the audit export
        self.reports = SqlReportRepo(*args)  # a period's sales aggregates
        self.console = ConsoleRepo(*args)  # the web console's login links and sessions
        self.images = ImageRepo(*args)  # product pictures (core/images.py)
        self.stock_alerts = StockAlertRepo(*args)  # buyers waiting for a product (core/stock_alerts.py)
        self.broadcasts = BroadcastRepo(*args)  # announcements and opt-outs (core/broadcast.py)
        self.coupons = CouponRepo(*args)  # coupon campaigns, code fingerprints, uses (core/coupons.py)
        self.members = MemberRepo(*args)  # points, spend for levels, referral codes (core/members/)
        self.member_coupons = MemberCouponRepo(*args)  # coupons issued as rewards (core/members/coupons.py)
        self.group_buys = GroupBuyRepo(*args)  # group-buy groups and members (core/group_buy.py)
        self.flash_sales = FlashSaleRepo(*args)  # flash sales and their uses (core/flash_sales.py)
        self.privacy = PrivacyRepo(*args)  # a person's data: /mydata, run.py forget (core/privacy.py)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._conn is not None
        try:
            if not self._committed:
                await self._conn.rollback()
        finally:
            await self._conn.close()
            self._conn = None

    async def commit(self) -> None:
        assert self._conn is not None
        if not self._write:
            raise RuntimeError("commit on a read unit of work: a use case that writes opens uow(write=True)")
        await self._conn.commit()
        self._committed = True


def private_sqlite_file(path: Path) -> None:
    """Create a new database file 0600 (and its directory 0700) before SQLite opens it: SQLite would make it
    0644, readable by every user of the machine, and it gives the -wal and -shm files the database file's
    permissions. Existing files and directories are left as the merchant set them."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # an empty file is an empty database


class Database:
    def __init__(self, url: str, *, echo: bool = False, sqlite_synchronous: str = "FULL", pool_size: int = 5,
                 now_fn: Now | None = None) -> None:
        self.url = make_url(url)
        self.dialect = self.url.get_backend_name()
        self._now = now_fn or SystemClock().now
        if self.dialect == "sqlite":
            db = self.url.database or ""
            if db and db != ":memory:" and not db.startswith("file:"):
                private_sqlite_file(Path(db))
            # One write connection: writers wait their turn in the pool, never on SQLite's lock.
            creator = OneTripConnection.creator(db or ":memory:")
            self.write_engine = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=300,
                                                    async_creator=creator)
            # A fixed set of reader connections: each aiosqlite connection is a thread and a file open, so
            # overflow connections made and dropped under load cost more than waiting for a pooled one.
            self.read_engine = create_async_engine(url, echo=echo, pool_size=pool_size * 2, max_overflow=0,
                                                   pool_timeout=60, async_creator=creator)
            self._sqlite_setup(self.write_engine, "BEGIN IMMEDIATE", sqlite_synchronous)
            # Readers run without BEGIN: each statement reads its own WAL snapshot, which is all a screen or a
            # check needs, and saves a round trip to the driver's thread per read.
            self._sqlite_setup(self.read_engine, None, sqlite_synchronous)
        elif self.dialect == "postgresql":
            # Two fixed sets of connections, made as needed and kept: a connection made and dropped under load costs
            # its connect and authentication, and every statement it prepares again (asyncpg's cache is per
            # connection). Writers (the group commit first of all) have their own, so a burst of reads never
            # makes a payment wait for a connection. No pre-ping at every checkout (with asyncpg: BEGIN, a ping,
            # ROLLBACK, three round trips before each transaction); a connection idle for PING_IDLE seconds is.
            # Last in, first out: the group commit's batches (one at a time) keep reusing the connection that has
            # their statements prepared, instead of going round every connection preparing them again.
            self.write_engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=0,
                                                    pool_use_lifo=True)
            # Readers run without BEGIN and ROLLBACK (autocommit): under READ COMMITTED each statement reads its
            # own snapshot anyway, so a read is one round trip a statement, as SQLite's readers are.
            self.read_engine = create_async_engine(url, echo=echo, pool_size=pool_size * 2, max_overflow=0,
                                                   isolation_level="AUTOCOMMIT")
            self._ping_idle(self.write_engine)
            self._ping_idle(self.read_engine)
            self._pg_setup(self.write_engine)  # the group commit's (readers learn the types they use as they go)
        else:
            raise ValueError(f"unsupported database {self.dialect!r}")

    @staticmethod
    def _ping_idle(engine: AsyncEngine) -> None:
        """Ping a connection at checkout when it has been idle for PING_IDLE seconds (the server may have restarted
        or a firewall dropped it meanwhile); one that fails is replaced (the pool tries another). A connection lost
        while busy fails its statement, and SQLAlchemy then drops every connection as old as it."""
        @event.listens_for(engine.sync_engine, "checkin")
        def _checkin(_dbapi_conn: Any, record: Any) -> None:
            record.info["idle_since"] = time.monotonic()

        @event.listens_for(engine.sync_engine, "checkout")
        def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
            if time.monotonic() - record.info.get("idle_since", time.monotonic()) < PING_IDLE:
                return
            try:
                engine.dialect.do_ping(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - gone: the pool replaces it
                raise DisconnectionError(str(exc)) from exc

    @staticmethod
    def _pg_setup(engine: AsyncEngine) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(_PG_ARRAY_TYPES, (None,) * 6)
            cur.close()

    @staticmethod
    def _sqlite_setup(engine: AsyncEngine, begin: str | None, synchronous: str) -> None:
        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            for pragma in ("journal_mode=WAL", f"synchronous={synchronous}", "busy_timeout=30000",
                           "foreign_keys=ON", "temp_store=MEMORY", "cache_size=-16000"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        if begin is None:
            return

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql(begin)

    def uow(self, write: bool = False) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.write_engine if write else self.read_engine, self.dialect, self._now, write=write)

    async def upgrade(self) -> None:
        """Apply Alembic migrations up to head; on PostgreSQL then open the write connections the lanes use."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))

        def run(sync_conn: Any) -> None:
            cfg.attributes["connection"] = sync_conn
            command.upgrade(cfg, "head")

        async with self.write_engine.begin() as conn:
            await conn.run_sync(run)
        if self.dialect == "postgresql":
            # The write connections the group commit's lanes use, made now (connect, authentication, types) rather
            # than by the first buyers.
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(min(WARM_WRITERS, self.write_engine.pool.size())):  # type: ignore[attr-defined]
                    await stack.enter_async_context(self.write_engine.connect())

    async def current_revision(self) -> str | None:
        async with self.read_engine.connect() as conn:
            return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())

    async def dispose(self) -> None:
        await self.write_engine.dispose()
        await self.read_engine.dispose()


if TYPE_CHECKING:
    _SQL_UNIT_OF_WORK: type[ports.UnitOfWork] = SqlUnitOfWork  # mypy checks that it is the one core asks for
