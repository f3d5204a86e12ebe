"""`run.py coupons generate|create|list|disable|enable`: coupon campaigns (core/coupons.py).

    coupons generate N --name NAME --off 10%|5.00 [terms] --out FILE   N single-use codes, written once to FILE (0600)
    coupons create NAME --code CODE --off 10%|5.00 [terms]              one shared code (typed by many)
    coupons list                                                        campaigns: terms and uses (never codes)
    coupons disable NAME | enable NAME

Terms: --min-spend AMOUNT, --sku SKU and --category NAME (repeatable: the scope; none: the whole shop),
--from / --until (ISO date or date-time, the store's zone `jobs.timezone`), --limit N (total uses), --per-buyer N.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from tqdm import tqdm

from app import App
from cli.common import Voice
from config.settings import Settings
from core.coupons import AMOUNT, Coupon, CouponCode, CouponError, Terms, parse_money, parse_off


def add_parser(sub: Any, say: Voice) -> None:
    cp = sub.add_parser("coupons", help=say.t("cli.help.coupons")).add_subparsers(dest="coupons_command",
                                                                                   required=True)
    gen = cp.add_parser("generate", help=say.t("cli.help.coupons.generate"))
    gen.add_argument("n", type=int)
    gen.add_argument("--name", required=True)
    gen.add_argument("--out", required=True, help=say.t("cli.help.coupons.out"))
    _terms(gen, say)
    make = cp.add_parser("create", help=say.t("cli.help.coupons.create"))
    make.add_argument("name")
    make.add_argument("--code", required=True, help=say.t("cli.help.coupons.code"))
    _terms(make, say)
    make.add_argument("--limit", type=int, help=say.t("cli.help.coupons.limit"))
    cp.add_parser("list", help=say.t("cli.help.coupons.list"))
    for verb in ("disable", "enable"):
        cp.add_parser(verb, help=say.t(f"cli.help.coupons.{verb}")).add_argument("name")


def _terms(p: argparse.ArgumentParser, say: Voice) -> None:
    p.add_argument("--off", required=True, help=say.t("cli.help.coupons.off"))
    p.add_argument("--min-spend", default="0", help=say.t("cli.help.coupons.min_spend"))
    p.add_argument("--sku", action="append", default=[], help=say.t("cli.help.coupons.sku"))
    p.add_argument("--category", action="append", default=[], help=say.t("cli.help.coupons.category"))
    p.add_argument("--from", dest="starts", help=say.t("cli.help.coupons.from"))
    p.add_argument("--until", dest="ends", help=say.t("cli.help.coupons.until"))
    p.add_argument("--per-buyer", type=int, help=say.t("cli.help.coupons.per_buyer"))


def _when(text: str | None, zone: str) -> datetime | None:
    if not text:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise CouponError(CouponCode.BAD_WINDOW) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=ZoneInfo(zone))


def terms_of(args: argparse.Namespace, settings: Settings) -> Terms:
    kind, value = parse_off(args.off)
    min_spend = parse_money(args.min_spend) if args.min_spend not in ("", "0") else 0
    return Terms(kind, value, settings.store.currency, min_spend, tuple(args.sku), tuple(args.category),
                 _when(args.starts, settings.jobs.timezone), _when(args.ends, settings.jobs.timezone),
                 getattr(args, "limit", None), args.per_buyer)


def _open_new(path: Path) -> IO[str]:
    """The codes file: made new (never over another file), readable by its owner only."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8")


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    try:
        if args.coupons_command == "generate":
            return await _generate(settings, args, say)
        async with await App.open(settings) as app:
            desk = app.shop.coupons
            if desk is None:
                say.err("cli.coupons.off")
                return 2
            if args.coupons_command == "create":
                c = await desk.create(args.name, args.code, terms_of(args, settings))
                say.out("cli.coupons.created", name=c.name, id=c.id)
            elif args.coupons_command == "list":
                listed = await desk.all()
                if not listed:
                    say.out("cli.coupons.none")
                for c in listed:
                    print(line(say, c))
            else:
                c = await desk.set_active(args.name, args.coupons_command == "enable")
                say.out("cli.coupons.enabled" if c.active else "cli.coupons.disabled", name=c.name)
    except CouponError as exc:
        say.refused(exc)
        return 2
    return 0


async def _generate(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    terms = terms_of(args, settings)  # refused before any file is made
    path = Path(args.out)
    try:
        fh = _open_new(path)
    except OSError as exc:
        say.err("cli.coupons.out_failed", file=str(path), error=exc.strerror or exc)
        return 2
    with fh:
        async with await App.open(settings) as app:
            desk = app.shop.coupons
            if desk is None:
                say.err("cli.coupons.off")
                fh.close()
                path.unlink()
                return 2
            with tqdm(total=max(args.n, 0), unit=say.t("cli.coupons.unit"), file=sys.stderr, mininterval=0.5,
                      desc=say.t("cli.coupons.progress", name=args.name.upper()), dynamic_ncols=True) as bar:
                def step(done: int, total: int) -> None:
                    bar.update(done - bar.n)
                try:
                    codes = await desk.generate(args.name, args.n, terms, progress=step)
                except CouponError:
                    bar.close()
                    fh.close()
                    path.unlink()
                    raise
        fh.writelines(code + "\n" for code in codes)
    say.out("cli.coupons.generated", n=len(codes), name=args.name.upper(), file=str(path))
    return 0


def line(say: Voice, c: Coupon) -> str:
    """A campaign in the list: name, id, terms and counts (never a code)."""
    t = c.terms
    off = f"{t.value}%" if t.kind != AMOUNT else f"{t.value / 100:.2f} {t.currency}"
    scope = ", ".join([*t.skus, *t.categories]) or say.t("cli.coupons.everything")
    return say.t("cli.coupons.line", id=c.id, name=c.name, off=off, scope=scope,
                 codes=c.codes if c.single_use else say.t("cli.coupons.shared"), used=c.used,
                 limit=t.total_limit if t.total_limit is not None else "-",
                 per_buyer=t.per_buyer if t.per_buyer is not None else "-",
                 window=f"{t.starts_at:%Y-%m-%d %H:%M}" if t.starts_at else "-",
                 until=f"{t.ends_at:%Y-%m-%d %H:%M}" if t.ends_at else "-",
                 state=say.t("cli.coupons.on" if c.active else "cli.coupons.off_state"))
