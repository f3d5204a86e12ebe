"""Storage for rules and risk (core/risk/ports.py RiskRepo). Every read is one set-based statement on an index:
the reserve batch calls these for all its buyers at once."""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from core.links import Identity
from core.models import Buyer, OrderStatus
from core.risk import Activity, Ban, BuyerFacts, Challenge, Counts, OrderRisk
from storage import tables as t
from storage.base import SqlRepo, json_insert, json_rows, lock_key

_LIVE = [OrderStatus.HELD.value, OrderStatus.PENDING.value, OrderStatus.DELIVERED.value]  # count against quotas
_REFUNDED = [OrderStatus.REFUNDING.value, OrderStatus.REFUNDED.value]


# The hot reads below are plain SQL over a set of buyers passed as ONE parameter (a JSON array on SQLite, two
# arrays on PostgreSQL) and joined to the table's index: SQLAlchemy's expanding `(a, b) IN (...)` spent ~5 ms of
# Python per statement on a batch of 256 buyers, more than the database did.
_LIVE_SQL = "(" + ", ".join(f"'{x}'" for x in _LIVE) + ")"
_REFUNDED_SQL = "(" + ", ".join(f"'{x}'" for x in _REFUNDED) + ")"
# The audit's part of a buyer's activity: problems reported and reissues (counted with refunds, over history_days)
# and wrong coupon codes (core/coupons.py, over the last 24 h).
_AUDIT_ACTIONS = "('report', 'reissue', 'coupon_miss')"
_AUDIT_REFUNDS = "sum(CASE WHEN a.action <> 'coupon_miss' AND a.at >= :history THEN 1 ELSE 0 END)"
_AUDIT_GUESSES = "sum(CASE WHEN a.action = 'coupon_miss' AND a.at >= :day THEN 1 ELSE 0 END)"


def _plus(a: Activity, b: Activity) -> Activity:
    return Activity(a.recent + b.recent, a.abandoned + b.abandoned, a.refunds + b.refunds,
                    a.open_holds + b.open_holds, a.guesses + b.guesses)


def _pairs(buyers: Sequence[Buyer]) -> list[tuple[str, str]]:
    return sorted({(b.channel, b.external_id) for b in buyers})


def _pairs_sql(pg: bool) -> tuple[str, str]:
    """(a FROM item listing the buyers as rows (ch, id), the join keyword that keeps it the outer loop)."""
    if pg:
        return "unnest(CAST(:chs AS text[]), CAST(:ids AS text[])) AS v(ch, id)", "JOIN"
    # CROSS JOIN: SQLite keeps the left table as the outer loop, so each buyer is an index lookup.
    return ("(SELECT json_extract(j.value, '$[0]') AS ch, json_extract(j.value, '$[1]') AS id "
            "FROM json_each(:pairs) AS j) AS v"), "CROSS JOIN"


def _pairs_params(pg: bool, buyers: Sequence[Buyer]) -> dict[str, Any]:
    pairs = _pairs(buyers)
    if pg:
        return {"chs": [a for a, _ in pairs], "ids": [b for _, b in pairs]}
    return {"pairs": json.dumps(pairs)}


def _values_sql(pg: bool, param: str) -> str:
    """A set of strings passed as one parameter, for `x IN <this>`."""
    return f"(SELECT unnest(CAST(:{param} AS text[])))" if pg else f"(SELECT value FROM json_each(:{param}))"


def _values(pg: bool, values: Sequence[Any]) -> Any:
    return list(values) if pg else json.dumps(list(values))


_NAME = re.compile(r"(?<!:):(\w+)")


def _stamp(dt: datetime) -> str:
    """A time as SQLAlchemy's SQLite DATETIME writes it (UTCDateTime stores UTC without a zone): the reads below
    compare these strings, so they must be written the same way."""
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _read_stamp(value: Any) -> datetime | None:
    """A time read by plain SQL: a datetime, SQLite's text, or (PostgreSQL, as text) seconds since 1970."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError:
        return datetime.fromtimestamp(float(value), UTC)


class _Driver:
    """A statement sent straight to the driver (no SQLAlchemy compilation or per-row processing): named
    parameters rewritten to the driver's style (`?` on SQLite, `$n` on PostgreSQL); times as SQLite text."""

    __slots__ = ("sql", "names", "pg")

    def __init__(self, sql: str, pg: bool) -> None:
        self.pg = pg
        self.names: list[str] = []
        if pg:
            order: dict[str, int] = {}

            def num(m: re.Match[str]) -> str:
                return f"${order.setdefault(m.group(1), len(order) + 1)}"

            self.sql = _NAME.sub(num, sql)
            self.names = list(order)
        else:
            def qmark(m: re.Match[str]) -> str:
                self.names.append(m.group(1))
                return "?"

            self.sql = _NAME.sub(qmark, sql)

    async def run(self, conn: Any, params: dict[str, Any]) -> list[Any]:
        values = tuple(params[n] if self.pg or not isinstance(params[n], datetime) else _stamp(params[n])
                       for n in self.names)
        return list(await conn.exec_driver_sql(self.sql, values))


class _Statements:
    """The hot statements, built once per dialect."""

    def __init__(self, pg: bool) -> None:
        src, join = _pairs_sql(pg)

        def q(sql: str) -> _Driver:
            return _Driver(sql, pg)

        self.facts = q(f"SELECT c.channel, c.external_id, c.phone, c.level, c.reseller, c.created_at, c.person, "
                       f"c.link_set FROM {src} {join} customers AS c ON c.channel = v.ch AND c.external_id = v.id")
        # Orders in the windows (ix_orders_buyer), then reissues in the audit (ix_audit_actor): one statement.
        self.activity = q(
            f"SELECT o.buyer_channel || ':' || o.buyer_id, "
            f"sum(CASE WHEN o.created_at >= :window THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN o.created_at >= :day AND o.status = 'expired' THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN o.created_at >= :history AND o.status IN {_REFUNDED_SQL} THEN 1 ELSE 0 END), "
            f"sum(CASE WHEN o.status = 'held' AND o.expires_at > :now THEN 1 ELSE 0 END), 0 "
            f"FROM {src} {join} orders AS o ON o.buyer_channel = v.ch AND o.buyer_id = v.id "
            f"WHERE o.created_at >= :since GROUP BY o.buyer_channel, o.buyer_id "
            f"UNION ALL "
            f"SELECT a.actor, 0, 0, {_AUDIT_REFUNDS}, 0, {_AUDIT_GUESSES} FROM {src} {join} audit AS a "
            f"ON a.action IN {_AUDIT_ACTIONS} AND a.actor = v.ch || ':' || v.id WHERE a.at >= :since_audit "
            f"GROUP BY a.actor")
        self.product_counts = q(
            f"SELECT o.buyer_channel, o.buyer_id, o.product_id, "
            f"sum(CASE WHEN o.status IN {_LIVE_SQL} AND o.created_at >= :day_start THEN o.qty ELSE 0 END), "
            f"sum(CASE WHEN o.status IN {_LIVE_SQL} THEN o.qty ELSE 0 END), "
            f"sum(CASE WHEN o.status = 'held' AND o.expires_at > :now THEN 1 ELSE 0 END) "
            f"FROM {src} {join} orders AS o ON o.buyer_channel = v.ch AND o.buyer_id = v.id "
            f"WHERE o.product_id IN {_values_sql(pg, 'pids').replace('text[]', 'int[]')} "
            f"GROUP BY o.buyer_channel, o.buyer_id, o.product_id")
        self.blacklisted = q(f"SELECT kind, value FROM blacklist WHERE value IN {_values_sql(pg, 'vals')}")
        # The reserve batch's one read (RiskRepo.snapshot): the buyers' facts, their activity and their bans in a
        # single statement (one round trip, one turn of the event loop on PostgreSQL). Every column is text so the
        # parts can be one UNION; the first column says which part a row belongs to.
        def txt(x: str) -> str:
            return f"CAST({x} AS text)"

        created = "extract(epoch FROM c.created_at)" if pg else "c.created_at"  # PostgreSQL: seconds since 1970
        reseller = "CAST(c.reseller AS int)" if pg else "c.reseller"
        key = txt("c.channel || ':' || c.external_id")
        recent = txt("sum(CASE WHEN o.created_at >= :window THEN 1 ELSE 0 END)")
        lapsed = txt("sum(CASE WHEN o.created_at >= :day AND o.status = 'expired' THEN 1 ELSE 0 END)")
        refunded = txt(f"sum(CASE WHEN o.created_at >= :history AND o.status IN {_REFUNDED_SQL} THEN 1 ELSE 0 END)")
        holding = txt("sum(CASE WHEN o.status = 'held' AND o.expires_at > :now THEN 1 ELSE 0 END)")
        # The seventh column: a buyer's link (core/links.py) as "person link_set", from its customers row.
        link = "c.person || ' ' || COALESCE(c.link_set, '')"
        # SQLite reads the buyers' JSON once for the five parts (a CTE used more than once is materialized); a
        # parameter in each part would be five copies to bind and parse. PostgreSQL numbers its one parameter.
        cte, one = ("", src) if pg else (f"WITH v AS (SELECT * FROM {src}) ", "v")
        self.snapshot = q(
            f"{cte}SELECT 'f', {key}, c.phone, {txt('c.level')}, {txt(reseller)}, {txt(created)}, {link} "
            f"FROM {one} {join} customers AS c ON c.channel = v.ch AND c.external_id = v.id "
            f"UNION ALL "
            f"SELECT 'a', o.buyer_channel || ':' || o.buyer_id, {recent}, {lapsed}, {refunded}, {holding}, NULL "
            f"FROM {one} {join} orders AS o ON o.buyer_channel = v.ch AND o.buyer_id = v.id "
            f"WHERE o.created_at >= :since GROUP BY o.buyer_channel, o.buyer_id "
            f"UNION ALL "
            f"SELECT 'a', a.actor, '0', '0', {txt(_AUDIT_REFUNDS)}, '0', {txt(_AUDIT_GUESSES)} FROM {one} {join} "
            f"audit AS a ON a.action IN {_AUDIT_ACTIONS} AND a.actor = v.ch || ':' || v.id "
            f"WHERE a.at >= :since_audit GROUP BY a.actor "
            f"UNION ALL "
            f"SELECT 'b', b.kind, b.value, NULL, NULL, NULL, NULL FROM {one} {join} blacklist AS b "
            f"ON b.kind IN ('user', 'payer') AND b.value = v.ch || ':' || v.id "
            f"UNION ALL "
            f"SELECT 'b', b.kind, b.value, NULL, NULL, NULL, NULL FROM {one} {join} customers AS c "
            f"ON c.channel = v.ch AND c.external_id = v.id {join} blacklist AS b "
            f"ON b.kind = 'phone' AND b.value = c.phone")
        self.passes = q(f"SELECT DISTINCT r.buyer_channel, r.buyer_id FROM {src} {join} risk_challenges AS r "
                        f"ON r.buyer_channel = v.ch AND r.buyer_id = v.id WHERE r.valid_until > :now")
        self.chats = q(f"SELECT chat_id, count(*) FROM orders WHERE chat_id IN {_values_sql(pg, 'chats')} "
                       f"AND created_at >= :since GROUP BY chat_id")


_STATEMENTS: dict[bool, _Statements] = {}
_INSERT_RISK = json_insert(t.order_risk, ["order_id", "buyer_channel", "buyer_id", "decision", "score", "reasons",
                                          "review", "created_at", "decided_by"])


def _sql(pg: bool) -> _Statements:
    s = _STATEMENTS.get(pg)
    if s is None:
        s = _STATEMENTS[pg] = _Statements(pg)
    return s


def _risk(r: Any) -> OrderRisk:
    return OrderRisk(r.order_id, Buyer(r.buyer_channel, r.buyer_id), r.decision, r.score, r.reasons or [], r.review,
                     r.created_at, r.decided_at, r.decided_by)


class RiskRepo(SqlRepo):
    async def lock_buyers(self, keys: Sequence[str]) -> None:
        if not self.pg or not keys:
            return
        # The same keys as OrderRepo.open_holds (holds:<buyer key>), so rules counts and the hold cap are one lock.
        locks = sorted({lock_key(f"holds:{k}") for k in keys})  # in key order: no deadlock between batches
        await self.c.execute(text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
                             {"keys": locks})

    async def snapshot(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> tuple[dict[str, BuyerFacts], dict[str, Activity], set[tuple[str, str]]]:
        """buyer_facts, activity and the blacklist hits (user, payer and bound phone) of the buyers, in one read."""
        if not buyers:
            return {}, {}, set()
        rows = await _sql(self.pg).snapshot.run(self.c, {**_pairs_params(self.pg, buyers), "window": window, "day": day,
                                                         "history": history, "now": now,
                                                         "since": min(window, day, history),
                                               "since_audit": min(day, history)})
        facts: dict[str, BuyerFacts] = {}
        activity: dict[str, Activity] = {}
        banned: set[tuple[str, str]] = set()
        for part, key, a, b, c, d, link in rows:
            if part == "f":
                person, _, link_set = (link or "").partition(" ")
                facts[key] = BuyerFacts(a or "", int(b or 0), c not in (None, "0", "false"), _read_stamp(d), person,
                                        link_set)
            elif part == "a":
                act = Activity(int(a or 0), int(b or 0), int(c or 0), int(d or 0), int(link or 0))
                prev = activity.get(key)
                activity[key] = act if prev is None else _plus(prev, act)
            else:
                banned.add((key, a))
        return facts, activity, banned

    async def buyer_facts(self, buyers: Sequence[Buyer]) -> dict[str, BuyerFacts]:
        if not buyers:
            return {}
        rows = await _sql(self.pg).facts.run(self.c, _pairs_params(self.pg, buyers))
        return {f"{ch}:{bid}": BuyerFacts(phone or "", level or 0, bool(reseller), _read_stamp(created), person or "",
                                          link_set or "")
                for ch, bid, phone, level, reseller, created, person, link_set in rows}

    # -- linked accounts (core/links.py) -------------------------------------------------------------------
    async def identities(self, phones: Sequence[str], persons: Sequence[str]) -> list[Identity]:
        c = t.customers.c
        conds = ([c.phone.in_(sorted(set(phones)))] if phones else []) + (
            [c.person.in_(sorted(set(persons)))] if persons else [])
        if not conds:
            return []
        rows = await self.c.execute(select(c.channel, c.external_id, c.phone, c.person, c.link_set)
                                    .where(or_(*conds)))
        return [Identity(Buyer(ch, bid), phone or "", person or "", link_set or "")
                for ch, bid, phone, person, link_set in rows]

    async def links_of(self, buyers: Sequence[Buyer]) -> dict[str, Identity]:
        if not buyers:
            return {}
        c = t.customers.c
        rows = await self.c.execute(select(c.channel, c.external_id, c.person, c.link_set).where(
            c.person.is_not(None), or_(*[and_(c.channel == b.channel, c.external_id == b.external_id)
                                         for b in buyers])))
        return {f"{r.channel}:{r.external_id}": Identity(Buyer(r.channel, r.external_id), "", r.person,
                                                        r.link_set or "") for r in rows}

    async def set_links(self, buyers: Sequence[Buyer], person: str, link_set: str, now: datetime) -> None:
        for b in buyers:
            await self._upsert_customer(b, now, {"person": person, "link_set": link_set, "linked_at": now})

    async def move_link_set(self, old: str, new: str) -> None:
        await self.c.execute(update(t.customers).where(t.customers.c.link_set == old).values(link_set=new))

    async def leave_link(self, buyer: Buyer) -> bool:
        c = t.customers.c
        res = await self.c.execute(update(t.customers).where(
            c.channel == buyer.channel, c.external_id == buyer.external_id, c.link_set.is_not(None))
            .values(link_set=None))
        return res.rowcount == 1

    async def link_set(self, buyer: Buyer) -> list[Buyer]:
        c = t.customers.c
        mine = select(c.link_set).where(c.channel == buyer.channel, c.external_id == buyer.external_id)
        rows = await self.c.execute(select(c.channel, c.external_id).where(
            c.link_set.is_not(None), c.link_set == mine.scalar_subquery()).order_by(c.channel, c.external_id))
        out = [Buyer(r.channel, r.external_id) for r in rows]
        return out if buyer in out else [buyer, *out]

    async def add_link_code(self, digest: str, buyer: Buyer, now: datetime, expires_at: datetime) -> None:
        lc = t.link_codes.c
        # The account's earlier unused code stops working; long-gone codes of anyone are swept on the way.
        await self.c.execute(delete(t.link_codes).where(or_(
            and_(lc.channel == buyer.channel, lc.external_id == buyer.external_id, lc.used_at.is_(None)),
            lc.expires_at < now - timedelta(days=1))))
        await self.c.execute(t.link_codes.insert().values(digest=digest, channel=buyer.channel,
                                                          external_id=buyer.external_id, created_at=now,
                                                          expires_at=expires_at, used_at=None, used_by=""))

    async def link_code(self, digest: str) -> tuple[Buyer, datetime, datetime | None] | None:
        lc = t.link_codes.c
        r = (await self.c.execute(select(lc.channel, lc.external_id, lc.expires_at, lc.used_at)
                                  .where(lc.digest == digest))).first()
        return (Buyer(r.channel, r.external_id), r.expires_at, r.used_at) if r else None

    async def use_link_code(self, digest: str, by: Buyer, now: datetime) -> bool:
        lc = t.link_codes.c
        res = await self.c.execute(update(t.link_codes).where(lc.digest == digest, lc.used_at.is_(None),
                                                              lc.expires_at > now)
                                   .values(used_at=now, used_by=by.key))
        return res.rowcount == 1

    async def activity(self, buyers: Sequence[Buyer], now: datetime, window: datetime, day: datetime,
                       history: datetime) -> dict[str, Activity]:
        if not buyers:
            return {}
        sql = _sql(self.pg)
        rows = await sql.activity.run(self.c, {**_pairs_params(self.pg, buyers), "window": window, "day": day,
                                               "history": history, "now": now, "since": min(window, day, history),
                                               "since_audit": min(day, history)})
        out: dict[str, Activity] = {}
        for key, a, b, r, h, g in rows:
            prev = out.get(key)
            act = Activity(int(a or 0), int(b or 0), int(r or 0), int(h or 0), int(g or 0))
            out[key] = act if prev is None else _plus(prev, act)
        return out

    async def product_counts(self, buyers: Sequence[Buyer], product_ids: Sequence[int], day_start: datetime,
                             now: datetime) -> dict[tuple[str, int], Counts]:
        if not buyers or not product_ids:
            return {}
        rows = await _sql(self.pg).product_counts.run(self.c, {
            **_pairs_params(self.pg, buyers), "pids": _values(self.pg, sorted(product_ids)), "day_start": day_start,
            "now": now})
        return {(f"{ch}:{bid}", int(pid)): Counts(int(d or 0), int(tot or 0), int(h or 0))
                for ch, bid, pid, d, tot, h in rows}

    async def chat_orders(self, chats: Sequence[str], since: datetime) -> dict[str, int]:
        if not chats:
            return {}
        rows = await _sql(self.pg).chats.run(self.c, {"chats": _values(self.pg, sorted(set(chats))), "since": since})
        return {chat: int(n) for chat, n in rows}

    async def blacklisted(self, entries: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        if not entries:
            return set()
        wanted = set(entries)
        rows = await _sql(self.pg).blacklisted.run(self.c, {"vals": _values(self.pg, sorted({v for _, v in wanted}))})
        return {(k, v) for k, v in rows if (k, v) in wanted}

    async def passes(self, buyers: Sequence[Buyer], now: datetime) -> set[str]:
        if not buyers:
            return set()
        rows = await _sql(self.pg).passes.run(self.c, {**_pairs_params(self.pg, buyers), "now": now})
        return {f"{ch}:{bid}" for ch, bid in rows}

    async def add_challenges(self, challenges: Sequence[Challenge], now: datetime) -> None:
        if not challenges:
            return
        await self.c.execute(t.risk_challenges.insert(), [
            {"token": ch.token, "buyer_channel": ch.buyer.channel, "buyer_id": ch.buyer.external_id,
             "answer": ch.answer, "status": "open", "created_at": now, "expires_at": ch.expires_at,
             "valid_until": None} for ch in challenges])

    async def answer_challenge(self, token: str, buyer: Buyer, answer: str, now: datetime,
                               valid_until: datetime) -> bool:
        c = t.risk_challenges.c
        mine = and_(c.token == token, c.buyer_channel == buyer.channel, c.buyer_id == buyer.external_id,
                    c.status == "open", c.expires_at > now)
        passed = await self.c.execute(update(t.risk_challenges).where(mine, c.answer == answer)
                                      .values(status="passed", valid_until=valid_until))
        if passed.rowcount == 1:
            return True
        await self.c.execute(update(t.risk_challenges).where(mine).values(status="failed"))
        return False

    async def record(self, rows: Sequence[OrderRisk]) -> None:
        if not rows:
            return
        # Straight to the driver: SQLAlchemy's per-row parameter processing was most of this batch's risk cost.
        if self.pg:  # one statement, one round trip, one JSON parameter whatever the number of rows
            await self.c.exec_driver_sql(_INSERT_RISK, json_rows([
                {"order_id": r.order_id, "buyer_channel": r.buyer.channel, "buyer_id": r.buyer.external_id,
                 "decision": r.decision, "score": r.score, "reasons": r.reasons, "review": r.review,
                 "created_at": r.created_at, "decided_by": ""} for r in rows]))
            return
        encode = json.JSONEncoder(separators=(",", ":")).encode
        done: dict[tuple[int, ...], str] = {}  # the guard shares one dict per distinct reason: encode each list once

        def dumps(reasons: list[dict[str, Any]]) -> str:
            key = tuple(map(id, reasons))
            out = done.get(key)
            if out is None:
                out = done[key] = encode(reasons)
            return out

        # The text SQLAlchemy's SQLite DATETIME writes (UTCDateTime stores UTC without a zone).
        stamps: dict[datetime, str] = {}
        for r in rows:
            if r.created_at not in stamps:
                stamps[r.created_at] = _stamp(r.created_at)
        await self.c.exec_driver_sql(
            "INSERT INTO order_risk (order_id, buyer_channel, buyer_id, decision, score, reasons, review, "
            "created_at, decided_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '')",
            [(r.order_id, r.buyer.channel, r.buyer.external_id, r.decision, r.score, dumps(r.reasons), r.review,
              stamps[r.created_at]) for r in rows])

    async def get_many(self, order_ids: Sequence[str]) -> dict[str, OrderRisk]:
        if not order_ids:
            return {}
        rows = await self.c.execute(select(t.order_risk).where(t.order_risk.c.order_id.in_(sorted(set(order_ids)))))
        return {r.order_id: _risk(r) for r in rows}

    async def for_buyer(self, buyer: Buyer, limit: int) -> list[OrderRisk]:
        c, o = t.order_risk.c, t.orders.c
        rows = await self.c.execute(select(t.order_risk).join(t.orders, o.id == c.order_id)
                                    .where(o.buyer_channel == buyer.channel, o.buyer_id == buyer.external_id)
                                    .order_by(o.created_at.desc(), o.id.desc()).limit(limit))
        return [_risk(r) for r in rows]

    async def review_queue(self, limit: int) -> list[OrderRisk]:
        c = t.order_risk.c
        rows = await self.c.execute(select(t.order_risk).where(c.review == "pending")
                                    .order_by(c.created_at, c.order_id).limit(limit))
        return [_risk(r) for r in rows]

    async def decide_review(self, order_id: str, review: str, actor: str, at: datetime) -> bool:
        c = t.order_risk.c
        res = await self.c.execute(update(t.order_risk).where(c.order_id == order_id, c.review == "pending")
                                   .values(review=review, decided_at=at, decided_by=actor))
        return res.rowcount == 1

    async def set_expiry(self, order_ids: Sequence[str], expires_at: datetime) -> None:
        if order_ids:
            await self.c.execute(update(t.orders).where(t.orders.c.id.in_(sorted(order_ids)),
                                                        t.orders.c.status == OrderStatus.HELD.value)
                                 .values(expires_at=expires_at))

    async def ban(self, ban: Ban) -> None:
        row = {"kind": ban.kind, "value": ban.value, "reason": ban.reason, "actor": ban.actor, "created_at": ban.at}
        ins = (pg_insert if self.pg else sqlite_insert)(t.blacklist).values(**row)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["kind", "value"], set_={
            "reason": ban.reason, "actor": ban.actor, "created_at": ban.at}))

    async def unban(self, kind: str, value: str) -> bool:
        b = t.blacklist.c
        res = await self.c.execute(delete(t.blacklist).where(b.kind == kind, b.value == value))
        return res.rowcount == 1

    async def bans(self, limit: int) -> list[Ban]:
        b = t.blacklist.c
        rows = await self.c.execute(select(t.blacklist).order_by(b.created_at.desc()).limit(limit))
        return [Ban(r.kind, r.value, r.reason, r.actor, r.created_at) for r in rows]

    async def _upsert_customer(self, buyer: Buyer, now: datetime, values: dict[str, Any]) -> None:
        row = {"channel": buyer.channel, "external_id": buyer.external_id, "language": None, "state": {},
               "created_at": now, "updated_at": now, **values}
        ins = (pg_insert if self.pg else sqlite_insert)(t.customers).values(**row)
        await self.c.execute(ins.on_conflict_do_update(index_elements=["channel", "external_id"],
                                                       set_={**values, "updated_at": now}))

    async def set_phone(self, buyer: Buyer, phone: str, now: datetime) -> None:
        await self._upsert_customer(buyer, now, {"phone": phone})

    async def set_level(self, buyer: Buyer, level: int, reseller: bool, now: datetime) -> None:
        await self._upsert_customer(buyer, now, {"level": level, "reseller": reseller})
