"""`run.py reseller ...`: the merchant's reseller use cases from the terminal (core/resellers.py, core/cardfaces.py):
accounts, wallet top-ups and statements, API keys, commissions, card faces."""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from app import App
from core.cardfaces import CardFace, CardFaceError
from core.models import Buyer
from core.resellers import ResellerError
from core.settings import Settings


def add_parser(sub: Any) -> None:
    rs = sub.add_parser("reseller", help="reseller accounts, wallets, API keys and card faces").add_subparsers(
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
    ow = rs.add_parser("owner", help="let a chat identity act for a reseller (its wallet and commissions)")
    ow.add_argument("id", type=int)
    ow.add_argument("who", help="channel:id, e.g. telegram:12345 or wechat:OPENID")
    ow.add_argument("--remove", action="store_true", help="take that away again")
    rt = rs.add_parser("refund-topup", help="give a paid wallet top-up back (debits the wallet, refunds the payer)")
    rt.add_argument("topup_id")
    po = rs.add_parser("payout", help="record a commission paid out to a reseller (minor units)")
    po.add_argument("id", type=int)
    po.add_argument("amount", type=int)
    po.add_argument("--note", default="")
    cm = rs.add_parser("commissions", help="a reseller's commission balance and entries, newest first")
    cm.add_argument("id", type=int)
    cm.add_argument("--limit", type=int, default=50)
    cf = rs.add_parser("cardface", help="a reseller's custom card face (定制卡面): show, set or --clear it")
    cf.add_argument("id", type=int)
    cf.add_argument("--name", help="the name on the card (at most 32 characters)")
    cf.add_argument("--background", help='background colour "#RRGGBB"')
    cf.add_argument("--background-image", default=None, help="an image file covering the card")
    cf.add_argument("--logo", default=None, help="a PNG drawn top left")
    cf.add_argument("--font", default=None, help="a TTF/OTF font (a CJK font for Chinese names)")
    cf.add_argument("--clear", action="store_true", help="remove the stored card face")
    bind = rs.add_parser("bind", help="deliveries to a chat user carry this reseller's card face")
    bind.add_argument("id", type=int)
    bind.add_argument("user", help="CHANNEL:ID, e.g. telegram:123456789")
    unbind = rs.add_parser("unbind", help="a chat user no longer gets a reseller's card face")
    unbind.add_argument("user", help="CHANNEL:ID")


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


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    async with await App.open(settings) as app:
        return await _run(app, args)


async def _run(app: App, args: argparse.Namespace) -> int:
    desk = app.resellers
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
        elif c == "owner":
            channel, _, ext = args.who.partition(":")
            if not channel or not ext:
                raise ResellerError("bad_identity", who=args.who)
            who = Buyer(channel, ext)
            await desk.bind_owner(args.id, None if args.remove else who, unbind=who if args.remove else None)
            print(f"reseller {args.id}: {who.key} {'removed' if args.remove else 'acts for it'}")
        elif c == "refund-topup":
            e = await desk.refund_topup(args.topup_id, actor="cli")
            print(f"reseller {e.reseller_id}: {e.amount}, balance {e.balance_after}; the payment is refunded next")
        elif c == "payout":
            e = await desk.payout(args.id, args.amount, actor="cli", note=args.note)
            balance, _ = await desk.commissions(args.id, limit=1)
            print(f"reseller {args.id}: paid out {-e.amount} {e.currency}, commission balance {balance}")
        elif c == "commissions":
            balance, entries = await desk.commissions(args.id, limit=args.limit)
            print(f"commission balance {balance}\nid\tkind\tamount\torder\tat")
            for ce in entries:
                print(f"{ce.id}\t{ce.kind}\t{ce.amount}\t{ce.order_id or '-'}\t{ce.created_at:%Y-%m-%d %H:%M:%S}")
        elif c in ("cardface", "bind", "unbind"):
            return await _card_faces(app, args)
    except (ResellerError, CardFaceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


async def _card_faces(app: App, args: argparse.Namespace) -> int:
    desk = app.card_faces
    c = args.reseller_command
    if c in ("bind", "unbind"):
        channel, _, external = args.user.partition(":")
        if not channel or not external:
            raise CardFaceError("bad_user", user=args.user)
        buyer = Buyer(channel, external)
        if c == "bind":
            await desk.bind(args.id, buyer, actor="cli")
            print(f"{buyer.key} is bound to reseller {args.id}")
        elif await desk.unbind(buyer, actor="cli"):
            print(f"{buyer.key} is no longer bound")
        else:
            print(f"error: {buyer.key} was not bound", file=sys.stderr)
            return 2
        return 0
    if args.clear:
        done = await desk.clear_face(args.id, actor="cli")
        print(f"reseller {args.id}: card face removed" if done else f"reseller {args.id}: no stored card face")
        return 0
    current = await desk.face(args.id)
    given = {"display_name": args.name, "background": args.background, "background_image": args.background_image,
             "logo": args.logo, "font": args.font}
    if all(v is None for v in given.values()):
        print(f"reseller {args.id}: {_face_text(current)}")
        return 0
    base = current or CardFace(args.name or "")
    paths = {k: str(app.settings.resolve_path(v)) if v else "" for k, v in given.items()
             if k in ("background_image", "logo", "font") and v is not None}
    face = replace(base, **{k: v for k, v in given.items() if v is not None and k not in paths}, **paths)
    for key in ("background_image", "logo"):  # an image Pillow cannot open is refused now, not at delivery
        path = getattr(face, key)
        if path and key in paths:
            _check_image(path, key)
    face = await desk.set_face(args.id, face, actor="cli")
    print(f"reseller {args.id}: {_face_text(face)}")
    return 0


def _face_text(face: CardFace | None) -> str:
    if face is None:
        return "no card face"
    return (f"card face {face.display_name!r}, background {face.background}"
            + "".join(f", {k} {getattr(face, k)}" for k in ("background_image", "logo", "font") if getattr(face, k)))


def _check_image(path: str, field: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.verify()
    except (OSError, UnidentifiedImageError, ValueError):
        raise CardFaceError("not_an_image", field=field, path=path) from None
