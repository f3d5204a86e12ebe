"""`run.py reseller ...`: the merchant's reseller use cases from the terminal (core/resellers/, core/cardfaces.py):
accounts, wallet top-ups and statements, API keys, commissions, card faces."""
from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from PIL import Image, UnidentifiedImageError

from app import App
from cli.common import Voice
from config.settings import Settings
from core.cardfaces import CardFace, CardFaceCode, CardFaceError
from core.models import Buyer
from core.resellers import ResellerCode, ResellerError


def add_parser(sub: Any, say: Voice) -> None:
    h = say.t
    rs = sub.add_parser("reseller", help=h("cli.help.reseller")).add_subparsers(dest="reseller_command",
                                                                               required=True)
    add = rs.add_parser("add", help=h("cli.help.reseller.add"))
    add.add_argument("name")
    _tier_args(add, say)
    upd = rs.add_parser("update", help=h("cli.help.reseller.update"))
    upd.add_argument("id", type=int)
    _tier_args(upd, say)
    upd.add_argument("--status", choices=("active", "suspended"))
    show = rs.add_parser("show", help=h("cli.help.reseller.show"))
    show.add_argument("id", type=int)
    top = rs.add_parser("topup", help=h("cli.help.reseller.topup"))
    top.add_argument("id", type=int)
    top.add_argument("amount", type=int)
    top.add_argument("--ref", default="", help=h("cli.help.reseller.ref"))
    top.add_argument("--note", default="")
    st = rs.add_parser("statement", help=h("cli.help.reseller.statement"))
    st.add_argument("id", type=int)
    st.add_argument("--limit", type=int, default=50)
    key = rs.add_parser("key", help=h("cli.help.reseller.key"))
    key.add_argument("id", type=int)
    key.add_argument("--rate", type=int, default=None, help=h("cli.help.reseller.rate"))
    rv = rs.add_parser("revoke", help=h("cli.help.reseller.revoke"))
    rv.add_argument("key_id")
    ow = rs.add_parser("owner", help=h("cli.help.reseller.owner"))
    ow.add_argument("id", type=int)
    ow.add_argument("who", help=h("cli.help.reseller.who"))
    ow.add_argument("--remove", action="store_true", help=h("cli.help.reseller.remove"))
    rt = rs.add_parser("refund-topup", help=h("cli.help.reseller.refund_topup"))
    rt.add_argument("topup_id")
    po = rs.add_parser("payout", help=h("cli.help.reseller.payout"))
    po.add_argument("id", type=int)
    po.add_argument("amount", type=int)
    po.add_argument("--note", default="")
    cm = rs.add_parser("commissions", help=h("cli.help.reseller.commissions"))
    cm.add_argument("id", type=int)
    cm.add_argument("--limit", type=int, default=50)
    cf = rs.add_parser("cardface", help=h("cli.help.reseller.cardface"))
    cf.add_argument("id", type=int)
    cf.add_argument("--name", help=h("cli.help.reseller.name"))
    cf.add_argument("--background", help=h("cli.help.reseller.background"))
    cf.add_argument("--background-image", default=None, help=h("cli.help.reseller.background_image"))
    cf.add_argument("--logo", default=None, help=h("cli.help.reseller.logo"))
    cf.add_argument("--font", default=None, help=h("cli.help.reseller.font"))
    cf.add_argument("--clear", action="store_true", help=h("cli.help.reseller.clear"))
    bind = rs.add_parser("bind", help=h("cli.help.reseller.bind"))
    bind.add_argument("id", type=int)
    bind.add_argument("user", help=h("cli.help.reseller.user"))
    unbind = rs.add_parser("unbind", help=h("cli.help.reseller.unbind"))
    unbind.add_argument("user", help=h("cli.help.reseller.unbind_user"))


def _tier_args(p: argparse.ArgumentParser, say: Voice) -> None:
    p.add_argument("--discount", type=int, default=None, help=say.t("cli.help.reseller.discount"))
    p.add_argument("--credit", type=int, default=None, help=say.t("cli.help.reseller.credit"))
    p.add_argument("--price", action="append", default=None, metavar="SKU=PRICE",
                   help=say.t("cli.help.reseller.price"))


def _prices(items: list[str] | None) -> dict[str, int] | None:
    if items is None:
        return None
    out: dict[str, int] = {}
    for item in items:
        sku, _, price = item.partition("=")
        if not sku or not price.isdigit():
            raise ResellerError(ResellerCode.BAD_PRICE, sku=item)
        out[sku] = int(price)
    return out


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    async with await App.open(settings) as app:
        return await _run(app, args, say)


async def _run(app: App, args: argparse.Namespace, say: Voice) -> int:
    desk = app.resellers
    c = args.reseller_command
    try:
        if c == "add":
            r = await desk.create(args.name, discount_percent=args.discount or 0, prices=_prices(args.price),
                                  credit_limit=args.credit or 0)
            say.out("cli.reseller.added", id=r.id, name=r.name, discount=r.discount_percent, credit=r.credit_limit)
        elif c == "update":
            r = await desk.update(args.id, discount_percent=args.discount, prices=_prices(args.price),
                                  credit_limit=args.credit, status=args.status)
            say.out("cli.reseller.updated", id=r.id, name=r.name, status=r.status, discount=r.discount_percent,
                    credit=r.credit_limit, prices=r.prices)
        elif c == "show":
            r = await desk.get(args.id)
            say.out("cli.reseller.shown", id=r.id, name=r.name, status=r.status, discount=r.discount_percent,
                    prices=r.prices, credit=r.credit_limit, balance=r.balance, currency=r.currency,
                    ledger=await desk.ledger_sum(r.id))
        elif c == "topup":
            e = await desk.top_up(args.id, args.amount, actor="cli", ref=args.ref, note=args.note)
            say.out("cli.reseller.topped_up", id=args.id, amount=e.amount, balance=e.balance_after, ref=e.ref)
        elif c == "statement":
            say.out("cli.reseller.statement_header")
            for e in await desk.statement(args.id, limit=args.limit):
                print(f"{e.id}\t{e.kind}\t{e.amount}\t{e.balance_after}\t{e.order_id or '-'}\t"
                      f"{e.created_at:%Y-%m-%d %H:%M:%S}")
        elif c == "key":
            rate = args.rate or app.settings.server.api_rate_per_second
            key_id, secret = await desk.create_api_key(args.id, rate_per_second=rate)
            say.out("cli.reseller.key_created", key_id=key_id, secret=secret, rate=rate)
        elif c == "revoke":
            if not await desk.revoke_api_key(args.key_id):
                say.err("cli.reseller.no_key", key=repr(args.key_id))
                return 2
            say.out("cli.reseller.revoked", key=args.key_id)
        elif c == "owner":
            channel, _, ext = args.who.partition(":")
            if not channel or not ext:
                raise ResellerError(ResellerCode.BAD_IDENTITY, who=args.who)
            who = Buyer(channel, ext)
            await desk.bind_owner(args.id, None if args.remove else who, unbind=who if args.remove else None)
            say.out("cli.reseller.owner_removed" if args.remove else "cli.reseller.owner_added", id=args.id,
                    who=who.key)
        elif c == "refund-topup":
            e = await desk.refund_topup(args.topup_id, actor="cli")
            say.out("cli.reseller.topup_refunded", id=e.reseller_id, amount=e.amount, balance=e.balance_after)
        elif c == "payout":
            e = await desk.payout(args.id, args.amount, actor="cli", note=args.note)
            balance, _ = await desk.commissions(args.id, limit=1)
            say.out("cli.reseller.paid_out", id=args.id, amount=-e.amount, currency=e.currency, balance=balance)
        elif c == "commissions":
            balance, entries = await desk.commissions(args.id, limit=args.limit)
            say.out("cli.reseller.commission_balance", balance=balance)
            say.out("cli.reseller.commissions_header")
            for ce in entries:
                print(f"{ce.id}\t{ce.kind}\t{ce.amount}\t{ce.order_id or '-'}\t{ce.created_at:%Y-%m-%d %H:%M:%S}")
        elif c in ("cardface", "bind", "unbind"):
            return await _card_faces(app, args, say)
    except (ResellerError, CardFaceError) as exc:
        say.refused(exc)
        return 2
    return 0


async def _card_faces(app: App, args: argparse.Namespace, say: Voice) -> int:
    desk = app.card_faces
    c = args.reseller_command
    if c in ("bind", "unbind"):
        channel, _, external = args.user.partition(":")
        if not channel or not external:
            raise CardFaceError(CardFaceCode.BAD_USER, user=args.user)
        buyer = Buyer(channel, external)
        if c == "bind":
            await desk.bind(args.id, buyer, actor="cli")
            say.out("cli.reseller.bound", user=buyer.key, id=args.id)
        elif await desk.unbind(buyer, actor="cli"):
            say.out("cli.reseller.unbound", user=buyer.key)
        else:
            say.err("cli.reseller.not_bound", user=buyer.key)
            return 2
        return 0
    if args.clear:
        done = await desk.clear_face(args.id, actor="cli")
        say.out("cli.reseller.face_removed" if done else "cli.reseller.no_stored_face", id=args.id)
        return 0
    current = await desk.face(args.id)
    given = {"display_name": args.name, "background": args.background, "background_image": args.background_image,
             "logo": args.logo, "font": args.font}
    if all(v is None for v in given.values()):
        say.out("cli.reseller.face_line", id=args.id, face=_face_text(current, say))
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
    say.out("cli.reseller.face_line", id=args.id, face=_face_text(face, say))
    return 0


def _face_text(face: CardFace | None, say: Voice) -> str:
    if face is None:
        return say.t("cli.reseller.no_face")
    return (say.t("cli.reseller.face", name=repr(face.display_name), background=face.background)
            + "".join(f", {k} {getattr(face, k)}" for k in ("background_image", "logo", "font") if getattr(face, k)))


def _check_image(path: str, field: str) -> None:
    try:
        with Image.open(path) as img:
            img.verify()
    except (OSError, UnidentifiedImageError, ValueError):
        raise CardFaceError(CardFaceCode.NOT_AN_IMAGE, field=field, path=path) from None
