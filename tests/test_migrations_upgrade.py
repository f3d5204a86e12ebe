"""Upgrading a released store. storage/migrations/RELEASES.md lists the releases and their schema revisions. A
database is migrated from empty to the newest release's revision and filled through SQL with what that release
wrote: products, codes sealed with the vault key, orders in each state, payments, the audit log, customers, and
outbox rows still waiting. It is then opened with today's App (whose start runs the migrations, as run.py's start
does). The merchant's stock counts, the buyers' orders, codes shown again and delivered from a hold, and the audit
trail must all come through. A downgrade to the release and a second upgrade must work too. A database newer than
the code is refused, and nothing is changed. Runs on SQLite and PostgreSQL, each on a database of its own."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from app import App
from core.models import Buyer
from core.orders import PaymentNotice
from storage.db import MIGRATIONS, Database
from storage.migrations import SchemaAheadError
from tests.helpers import (
    RecordingGateway,
    RecordingNotifier,
    import_lines,
    make_settings,
    run_cli,
    settle,
    write_config,
)
from tests.test_suppliers_migration import _alembic

RELEASES = MIGRATIONS / "RELEASES.md"
CATALOG: list[dict[str, Any]] = [
    {"sku": "CARD-10", "title": "Game card 10", "price": 1000, "stars": 70, "kind": "code", "max_qty": 5},
    {"sku": "GIFT-50", "title": "Gift card 50", "price": 5000, "kind": "code", "max_qty": 3},
]
ALICE, BOB, CAROL = Buyer("telegram", "1001"), Buyer("telegram", "1002"), Buyer("telegram", "1003")
WEI = Buyer("wechat", "o-wei-openid")
# Order ids as the store makes them: yymmdd + 8 Crockford base32 characters.
D1, D2, D3, HELD, LAPSED, GONE, REFUNDED = ("261201AAAAAAA1", "261202BBBBBBB2", "261202CCCCCCC3",
                                            "261205DDDDDDD4", "261204EEEEEEE5", "261203FFFFFFF6", "261130GGGGGGG7")


def releases() -> list[tuple[str, str]]:
    """(release, revision) rows of RELEASES.md, oldest first; the coming release's revision is `head`."""
    rows = []
    for line in RELEASES.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and re.fullmatch(r"\d{4}\.\d+\.\d+.*", cells[0]):
            rows.append((cells[0], cells[1]))
    return rows


def _script() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


# -- what a release wrote ---------------------------------------------------------------------------------------

@dataclass
class OldKeys:
    """The vault key file as every release so far wrote it: AES-256-GCM keys by id, an HMAC key for fingerprints."""

    key: bytes
    fp_key: bytes

    def key_file(self, path: Path) -> None:
        path.write_text(json.dumps({"version": 1, "current": "k1", "keys": {"k1": base64.b64encode(self.key).decode()},
                                    "fingerprint_key": base64.b64encode(self.fp_key).decode()}))
        path.chmod(0o600)

    def seal(self, code_id: int, plain: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(12)
        return nonce, AESGCM(self.key).encrypt(nonce, plain.encode(), code_id.to_bytes(8, "big"))

    def fingerprint(self, product_id: int, plain: str) -> bytes:
        return hmac.new(self.fp_key, product_id.to_bytes(8, "big") + plain.encode(), hashlib.sha256).digest()[:20]

    def meta(self) -> dict[str, str]:
        canary = b"card-store vault canary v1"
        nonce = os.urandom(12)
        sealed = AESGCM(self.key).encrypt(nonce, canary, b"canary:k1")
        return {"vault.fingerprint": hmac.new(self.fp_key, canary, hashlib.sha256).hexdigest(),
                "vault.canary.k1": base64.b64encode(nonce + sealed).decode()}


@dataclass
class Filled:
    codes: dict[int, str]  # code id -> its plain text (the test's own record; the database has only ciphertext)


class Writer:
    """INSERTs on one connection, with values as that database's driver takes them."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"

    def ts(self, at: datetime | None) -> Any:
        if at is None:
            return None  # SQLite: what SQLAlchemy's DateTime writes there, in UTC; PostgreSQL: timestamptz
        return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if self.sqlite else at

    async def row(self, table: str, **values: Any) -> None:
        cols = list(values)
        params = {k: (self.ts(v) if isinstance(v, datetime) else json.dumps(v) if isinstance(v, dict | list) else v)
                  for k, v in values.items()}
        quoted = ", ".join(f'"{c}"' for c in cols)
        await self.conn.execute(text(f'INSERT INTO {table} ({quoted}) VALUES ({", ".join(":" + c for c in cols)})'),
                                params)

    async def sequences_past(self, *tables: str) -> None:
        """Rows given their ids by hand: PostgreSQL's sequences continue after them, as they would have. (Code ids
        come from a sequence of their own, codes_id_seq, which imports draw from before inserting.)"""
        if not self.sqlite:
            for table in tables:
                seq = "'codes_id_seq'" if table == "codes" else f"pg_get_serial_sequence('{table}', 'id')"
                await self.conn.execute(text(f"SELECT setval({seq}, (SELECT max(id) FROM {table}))"))


async def fill_2026_12_0(conn: AsyncConnection, keys: OldKeys, now: datetime) -> Filled:
    """Release 2026.12.0 (schema 0018_broadcasts): what a store that sold for a week holds."""
    w = Writer(conn)
    week = now - timedelta(days=7)
    for pid, (sku, title, price, stars) in enumerate([("CARD-10", "Game card 10", 1000, 70),
                                                       ("GIFT-50", "Gift card 50", 5000, None)], start=1):
        await w.row("products", id=pid, sku=sku, kind="code", title={"en": title}, description={}, category={},
                    price=price, currency="CNY", stars=stars, min_qty=1, max_qty=5 if pid == 1 else 3,
                    hold_minutes=None, active=True, rules={}, position=pid - 1, source="config", created_at=week,
                    updated_at=week, image=None)
    # (code id, product, status, order, expires_at)
    layout = [(1, 1, "sold", D1, None), (2, 1, "sold", D1, None), (3, 1, "sold", D2, None), (4, 1, "held", HELD, None),
              (5, 1, "burned", REFUNDED, None), (6, 1, "available", None, None), (7, 1, "available", None, None),
              (8, 1, "available", None, now + timedelta(days=90)), (9, 1, "available", None, None),
              (10, 1, "available", None, now - timedelta(days=1)),  # past its own expiry: never sold
              (11, 2, "available", None, None), (12, 2, "available", None, None), (13, 2, "available", None, None),
              (14, 2, "sold", D3, None)]
    plain = {cid: f"OLD-{pid}-{cid:04d}-{os.urandom(4).hex().upper()}" for cid, pid, *_ in layout}
    for cid, pid, status, oid, expires in layout:
        nonce, sealed = keys.seal(cid, plain[cid])
        await w.row("codes", id=cid, product_id=pid, status=status, order_id=oid, key_id="k1", nonce=nonce,
                    ciphertext=sealed, fingerprint=keys.fingerprint(pid, plain[cid]), expires_at=expires)
    for key, value in keys.meta().items():
        await w.row("meta", key=key, value=value)
    await w.sequences_past("products", "codes")

    # (id, buyer, product, qty, status, created, paid, delivered, stars)
    orders = [(D1, ALICE, 1, 2, "delivered", week, week + timedelta(minutes=1), week + timedelta(minutes=1), None),
              (D2, BOB, 1, 1, "delivered", now - timedelta(minutes=5), now - timedelta(minutes=4),
               now - timedelta(minutes=4), 70),
              (D3, WEI, 2, 1, "delivered", week, week + timedelta(minutes=2), week + timedelta(minutes=2), None),
              (HELD, ALICE, 1, 1, "held", now - timedelta(minutes=2), None, None, None),
              (LAPSED, CAROL, 1, 1, "expired", now - timedelta(minutes=40), None, None, None),
              (GONE, BOB, 2, 1, "cancelled", now - timedelta(days=2), None, None, None),
              (REFUNDED, CAROL, 1, 1, "refunded", week, week + timedelta(minutes=1), week + timedelta(minutes=1), None)]
    for oid, who, pid, qty, status, created, paid, delivered, stars in orders:
        unit = 1000 if pid == 1 else 5000
        await w.row("orders", id=oid, buyer_channel=who.channel, buyer_id=who.external_id, chat_id=who.external_id,
                    product_id=pid, qty=qty, unit_price=unit, amount=unit * qty, currency="CNY",
                    stars=stars if stars is None else stars * qty, status=status,
                    language="zh_CN" if who == WEI else "en", created_at=created,
                    expires_at=created + timedelta(minutes=15), paid_at=paid, delivered_at=delivered,
                    reusable_code_id=None, note="", account="")
    for oid, provider, txn, amount, currency, payer, status in [
            (D1, "test", "tx-d1", 2000, "CNY", ALICE, "captured"),
            (D2, "telegram_stars", "stars-d2", 70, "XTR", BOB, "captured"),
            (D3, "wechat_pay", "wx-4200000001", 5000, "CNY", WEI, "captured"),
            (REFUNDED, "test", "tx-r", 1000, "CNY", CAROL, "refunded")]:
        await w.row("payments", order_id=oid, provider=provider, provider_txn_id=txn, amount=amount,
                    currency=currency, payer=payer.key, status=status, created_at=week)
    for action, actor, channel, at, oid, pid, cid, detail in [
            ("import", "telegram:1", "telegram", week - timedelta(hours=1), None, 1, None, {"imported": 10}),
            ("import", "telegram:1", "telegram", week - timedelta(hours=1), None, 2, None, {"imported": 4}),
            ("deliver", ALICE.key, "telegram", week + timedelta(minutes=1), D1, 1, 1, {}),
            ("deliver", ALICE.key, "telegram", week + timedelta(minutes=1), D1, 1, 2, {}),
            ("reveal", ALICE.key, "telegram", week + timedelta(hours=2), D1, 1, None, {"chat": "1001", "codes": 2}),
            ("deliver", BOB.key, "telegram", now - timedelta(minutes=4), D2, 1, 3, {}),
            ("deliver", WEI.key, "wechat", week + timedelta(minutes=2), D3, 2, 14, {}),
            ("refund", "telegram:1", "telegram", week + timedelta(days=1), REFUNDED, 1, 5, {"reason": "merchant"})]:
        await w.row("audit", at=at, action=action, actor=actor, channel=channel, order_id=oid, product_id=pid,
                    code_id=cid, detail=detail)
    for who, language, state in [(ALICE, "en", {"screen": "orders"}), (BOB, "en", {}), (CAROL, "en", {}),
                                 (WEI, "zh_CN", {"screen": "home"})]:
        await w.row("customers", channel=who.channel, external_id=who.external_id, language=language, state=state,
                    created_at=week, updated_at=week, phone=None, level=0, reseller=False, person=None,
                    link_set=None, linked_at=None, last_message_at=week if who == WEI else None)
    # D1's delivery went out long ago; D2's was still waiting when the store stopped for the upgrade, and so was
    # the notice that CAROL's hold lapsed.
    for kind, who, oid, payload, status, sent in [
            ("deliver", ALICE, D1, {}, "sent", week + timedelta(minutes=1)),
            ("deliver", BOB, D2, {}, "pending", None),
            ("notify", CAROL, LAPSED, {"key": "order.lapsed", "language": "en", "params": {"order": LAPSED}},
             "pending", None)]:
        await w.row("outbox", kind=kind, channel=who.channel, recipient=who.external_id, order_id=oid,
                    payload=payload, status=status, attempts=0, next_attempt_at=now - timedelta(minutes=4),
                    created_at=now - timedelta(minutes=4), sent_at=sent, last_error=None, lease=None, priority=0,
                    broadcast_id=None)
    return Filled(plain)


FILLERS: dict[str, Callable[[AsyncConnection, OldKeys, datetime], Awaitable[Filled]]] = {
    "0018_broadcasts": fill_2026_12_0,
}


# -- the releases' record -----------------------------------------------------------------------------------

def test_every_release_names_a_revision_of_the_chain_in_order_and_the_newest_has_a_filler() -> None:
    rows = releases()
    assert len(rows) >= 2, rows
    script = _script()
    assert rows[-1][1] == "head" and all(rev != "head" for _, rev in rows[:-1]), rows
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]  # oldest first
    released = [rev for _, rev in rows[:-1]]
    assert all(rev in chain for rev in released), released
    assert [chain.index(r) for r in released] == sorted(chain.index(r) for r in released)
    assert released[-1] in FILLERS, f"release {rows[-2][0]} ({released[-1]}) has no filler in FILLERS"


# -- the upgrade ------------------------------------------------------------------------------------------------

async def _stock(app: App) -> dict[str, tuple[int, int, int, int, int]]:
    return {s.sku: (s.available, s.held, s.sold, s.expired, s.burned) for s in await app.shop.stock()}


async def _open(url: str, tmp_path: Path) -> tuple[App, RecordingNotifier, RecordingGateway]:
    notifier, gateway = RecordingNotifier(), RecordingGateway()
    settings = make_settings(url, tmp_path, catalog=CATALOG, demo=False)
    app = await App.open(settings, notifiers={"telegram": notifier, "wechat": notifier}, gateways={"test": gateway})
    return app, notifier, gateway


@pytest.mark.parametrize("revision", sorted(FILLERS))
async def test_a_released_store_with_a_week_of_sales_upgrades_to_head_and_sells_on(
        blank_db_url: str, tmp_path: Path, revision: str) -> None:
    keys = OldKeys(AESGCM.generate_key(256), os.urandom(32))
    keys.key_file(tmp_path / "vault.key")
    now = datetime.now(UTC)
    db = Database(blank_db_url)
    try:
        await _alembic(db, revision)
        async with db.write_engine.begin() as conn:
            filled = await FILLERS[revision](conn, keys, now)
    finally:
        await db.dispose()
    codes = filled.codes
    before = {"CARD-10": (4, 1, 3, 1, 1), "GIFT-50": (3, 0, 1, 0, 0)}

    app, notifier, _ = await _open(blank_db_url, tmp_path)
    try:
        await app.shop.start()
        assert await app.db.current_revision() == _script().get_current_head()
        assert await _stock(app) == before
        # The buyers' orders: looked up, listed, their codes shown again.
        order, product = await app.shop.order_for(D1, ALICE)
        assert (order.status.value, order.qty, order.amount, order.discount, product.sku) == (
            "delivered", 2, 2000, 0, "CARD-10")
        assert [o.id for o in await app.shop.my_orders(ALICE)] == [HELD, D1]
        assert sorted((await app.shop.reveal(D1, ALICE))[2]) == sorted([codes[1], codes[2]])
        assert (await app.shop.reveal(D3, WEI))[2] == [codes[14]]
        async with app.db.uow() as uow:
            assert [p.provider_txn_id for p in await uow.payments.for_order(D3)] == ["wx-4200000001"]
            assert (await uow.orders.get(REFUNDED)).status.value == "refunded"
        # What was waiting in the outbox goes out: BOB's codes, CAROL's notice; D1's delivery is not sent again.
        await settle(app)
        assert [(r, d.order.id, d.codes) for r, d in notifier.deliveries] == [("1002", D2, [codes[3]])]
        assert [(n.recipient, n.key) for n in notifier.notices if n.key == "order.lapsed"] == [("1003", "order.lapsed")]
        # The held order is paid after the upgrade: its held code is delivered.
        result = await app.shop.pay(PaymentNotice(HELD, "test", "tx-held", 1000, "CNY", ALICE))
        assert result.outcome == "delivered"
        await settle(app)
        assert [d.codes for r, d in notifier.deliveries if d.order.id == HELD] == [[codes[4]]]
        # New codes take ids after the release's (PostgreSQL: its sequences carried on) and sell.
        assert (await import_lines(app, [b"NEW-GIFT-1\n", b"NEW-GIFT-2\n"], "GIFT-50")).imported == 2
        assert await _stock(app) == {"CARD-10": (4, 0, 4, 1, 1), "GIFT-50": (5, 0, 1, 0, 0)}
        # The audit trail: the release's entries, then today's reveal.
        trail = [(e.action, e.code_id) for e in await app.shop.audit_for(D1)]
        assert trail == [("deliver", 1), ("deliver", 2), ("reveal", None), ("reveal", None)]
        customer = await app.shop.customer(WEI)
        assert (customer.language, customer.state) == ("zh_CN", {"screen": "home"})
    finally:
        await app.close()

    # Back to the release (its code would run again) and up once more: nothing is lost either way.
    db = Database(blank_db_url)
    try:
        await _alembic(db, revision, down=True)
        assert await db.current_revision() == revision
        async with db.read_engine.connect() as conn:
            rows = await conn.execute(text("SELECT id, status FROM codes WHERE id IN (4, 14)"))
            statuses = dict(rows.tuples().all())
            n_orders = (await conn.execute(text("SELECT count(*) FROM orders"))).scalar()
        assert (statuses, n_orders) == ({4: "sold", 14: "sold"}, 7)
    finally:
        await db.dispose()
    app, notifier, _ = await _open(blank_db_url, tmp_path)
    try:
        await app.shop.start()
        assert await app.db.current_revision() == _script().get_current_head()
        assert await _stock(app) == {"CARD-10": (4, 0, 4, 1, 1), "GIFT-50": (5, 0, 1, 0, 0)}
        assert (await app.shop.reveal(HELD, ALICE))[2] == [codes[4]]
    finally:
        await app.close()


# -- a database newer than the code ---------------------------------------------------------------------------

FUTURE = "0099_from_a_newer_release"


async def _pretend_newer(url: str) -> None:
    db = Database(url)
    try:
        await db.upgrade()
        async with db.write_engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": FUTURE})
    finally:
        await db.dispose()


async def test_a_database_upgraded_by_a_newer_release_is_refused_at_start_and_left_alone(
        blank_db_url: str, tmp_path: Path) -> None:
    await _pretend_newer(blank_db_url)
    with pytest.raises(SchemaAheadError) as refused:
        await _open(blank_db_url, tmp_path)
    assert str(refused.value).startswith("database.url: ")
    assert FUTURE in str(refused.value) and _script().get_current_head() in str(refused.value)
    db = Database(blank_db_url)
    try:
        assert await db.current_revision() == FUTURE
        with pytest.raises(SchemaAheadError):  # a downgrade is no way round it either
            await _alembic(db, "0018_broadcasts", down=True)
        assert await db.current_revision() == FUTURE
    finally:
        await db.dispose()


async def test_run_py_db_upgrade_on_a_newer_database_exits_2_naming_the_revision(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await _pretend_newer(url)
    done = run_cli(write_config(tmp_path, url=url, catalog=CATALOG), "db", "upgrade")
    assert done.returncode == 2, done.stderr
    assert "database.url" in done.stderr and FUTURE in done.stderr and "Traceback" not in done.stderr
