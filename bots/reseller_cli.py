"""`run.py reseller ...`: the merchant's reseller use cases from the terminal (core/resellers.py)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from core.resellers import ResellerError


def add_parser(sub: Any) -> None:
    rs = sub.add_parser("reseller", help="reseller accounts, wallets and API keys").add_subparsers(
        dest="reseller_command", required=True)
    add = rs.add_parser("add", help="a new reseller (empty wallet)")
    add.add_argument("name")
    _tier_args(add)
    upd = rs.add_parser("update", help="change a reseller's tier, credit limit or status")
    upd.add_argument("id", type=int)
    _tier_args(upd)
    upd.add_argument("--status", choices=("active", "suspended"))
    show = rs.add_parser("show", help="a reseller's tier and wallet")
    show.add_argument("id", type=int)
    top = rs.add_parser("topup", help="credit money received to a wallet (minor units)")
    top.add_argument("id", type=int)
    top.add_argument("amount", type=int)
    top.add_argument("--ref", default="", help="the payment's reference: the same ref never credits twice")
    top.add_argument("--note", default="")
    st = rs.add_parser("statement", help="a wallet's movements, newest first")
    st.add_argument("id", type=int)
    st.add_argument("--limit", type=int, default=50)
    key = rs.add_parser("key", help="a new API key (the secret is printed once)")
    key.add_argument("id", type=int)
    key.add_argument("--rate", type=int, default=None, help="requests a second (default server.api_rate_per_second)")
    rv = rs.add_parser("revoke", help="revoke an API key")
    rv.add_argument("key_id")


def _tier_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--discount", type=int, default=None, help="percent off the list price")
    p.add_argument("--credit", type=int, default=None, help="credit limit (minor units)")
    p.add_argument("--price", action="append", default=None, metavar="SKU=PRICE",
                   help="tier price of one SKU (minor units); repeat for more")


def _prices(items: list[str] | None) -> dict[str, int] | None:
    if items is None:
        return None
    out: dict[str, int] = {}
    for item in items:
        sku, _, price = item.partition("=")
        if not sku or not price.isdigit():
            raise ResellerError("bad_price", sku=item)
        out[sku] = int(price)
    return out


async def run(app: Any, args: argparse.Namespace) -> int:
    desk = app.shop.resellers
    c = args.reseller_command
    try:
        if c == "add":
            r = await desk.create(args.name, discount_percent=args.discount or 0, prices=_prices(args.price),
                                  credit_limit=args.credit or 0)
            print(f"reseller {r.id} {r.name}: discount {r.discount_percent}%, credit limit {r.credit_limit}")
        elif c == "update":
            r = await desk.update(args.id, discount_percent=args.discount, prices=_prices(args.price),
                                  credit_limit=args.credit, status=args.status)
            print(f"reseller {r.id} {r.name}: {r.status}, discount {r.discount_percent}%, "
                  f"credit limit {r.credit_limit}, prices {r.prices}")
        elif c == "show":
            r = await desk.get(args.id)
            print(f"reseller {r.id} {r.name}: {r.status}, discount {r.discount_percent}%, prices {r.prices}, "
                  f"credit limit {r.credit_limit}, balance {r.balance} {r.currency}, "
                  f"ledger sum {await desk.ledger_sum(r.id)}")
        elif c == "topup":
            e = await desk.top_up(args.id, args.amount, actor="cli", ref=args.ref, note=args.note)
            print(f"reseller {args.id}: +{e.amount}, balance {e.balance_after} ({e.ref})")
        elif c == "statement":
            print("id\tkind\tamount\tbalance\torder\tat")
            for e in await desk.statement(args.id, limit=args.limit):
                print(f"{e.id}\t{e.kind}\t{e.amount}\t{e.balance_after}\t{e.order_id or '-'}\t"
                      f"{e.created_at:%Y-%m-%d %H:%M:%S}")
        elif c == "key":
            rate = args.rate or app.settings.server.api_rate_per_second
            key_id, secret = await desk.create_api_key(args.id, rate_per_second=rate)
            print(f"key id: {key_id}\nsecret: {secret}\n(the secret is shown only now; {rate} requests a second)")
        elif c == "revoke":
            if not await desk.revoke_api_key(args.key_id):
                print(f"error: no API key {args.key_id!r}", file=sys.stderr)
                return 2
            print(f"revoked {args.key_id}")
    except ResellerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
