"""Products: every product (configured and merchant-made) with its prices, rules and stock by state; owners change
price, Stars price, title and on/off sale through the chat's `/product SKU ...` use case (core/admin.py
`edit_product`, audited with the merchant's identity). A refused value is shown in the chat's words and changes
nothing. Staff see the products but not the forms (a price is finance: the POST is owners-only).

A product's picture (core/images.py; shown in the Mini App): owners upload one (multipart, the CSRF token in the
form's URL, the file read in chunks and never past `store.images.max_bytes`) or remove it. A refused picture (too
big, not a picture, a decompression bomb, truncated) changes nothing and says why in the merchant's language; both
the change and a refusal are audited as product changes (`field: image`)."""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import BodyPartReader, web
from babel.numbers import get_currency_precision

from bots.web.kit import Pages, Req, see_other
from core.admin import AdminCode, AdminError, ProductChange, check_sku
from core.images import ImageCode, ImageError
from core.models import Kind, Product, StockLine, localized
from handlers import errors

pages = Pages()
POOL_KINDS = (Kind.CODE, Kind.REUSABLE)  # kinds with a stock of codes (the others are bought when sold)
STATES = ("available", "held", "sold", "expired", "withdrawn", "burned")
FIELDS = ("price", "stars", "title", "active")
RULE_TEXT = 60  # a rule's value is clipped to this many characters in the summary
SAVED = (*FIELDS, "image", "image_removed")
ENVELOPE = 16 * 1024  # multipart headers and boundaries around the picture, on top of its size limit
CHUNK = 1 << 16


@pages.get("/products")
async def products(req: Req) -> web.StreamResponse:
    """Every product with its stock by state; a product's row links to its page."""
    shop = req.web.shop
    stock = {s.product_id: s for s in await shop.stock()}
    rows = [_row(req, p, stock.get(p.id)) for p in await shop.products(include_inactive=True)]
    return req.render("products_list.html", rows=rows, states=STATES)


@pages.get("/products/{sku}")
async def product(req: Req) -> web.StreamResponse:
    """One product: its figures, titles, rules and stock; for owners, the forms that change it."""
    p = await _product(req)
    if p is None:
        return _unknown(req)
    saved = req.request.query.get("saved", "")
    return await _page(req, p, saved=saved if saved in SAVED else "")


@pages.get("/products/{sku}/image")
async def picture(req: Req) -> web.StreamResponse:
    """The product's current picture (the page shows it here even where the Mini App's /app/img/ is not served)."""
    p = await _product(req)
    image = await req.web.app.images.get(p.image) if p is not None and p.image else None
    if image is None:
        return web.Response(status=404, text="no picture")
    return web.Response(body=image.data, content_type=image.content_type)


@pages.post("/products/{sku}/image", owner=True)
async def upload_image(req: Req) -> web.StreamResponse:
    """A new picture for the product (multipart field `file`), checked before anything changes."""
    p = await _product(req)
    if p is None:
        return _unknown(req)
    desk = req.web.app.images
    cap = desk.limits.max_bytes
    try:
        length = req.request.content_length
        if length is not None and length > cap + ENVELOPE:  # said up front: nothing is read
            raise ImageError(ImageCode.TOO_LARGE, size=length, max=cap, max_kb=cap // 1024)
        data = await _picture(req, cap)
        if data is None:
            return await _page(req, p, status=400, refusal="no_file", message=req.t("images.console.no_file"))
        await desk.set_product_image(req.merchant.key, req.merchant.channel, p.sku, data)
    except ImageError as exc:
        await req.web.admin.record(req.merchant, "product", product_id=p.id, sku=p.sku, field="image",
                                   refused=exc.code.value)
        return await _page(req, p, status=413 if exc.code is ImageCode.TOO_LARGE else 400,
                           refusal=exc.code.value, message=errors.text(req.web.i18n, req.lang, exc))
    return see_other(req.url(f"/products/{p.sku}?saved=image"))


@pages.post("/products/{sku}/image/remove", owner=True)
async def remove_image(req: Req) -> web.StreamResponse:
    """The product shown without a picture (the picture itself stays under its name: pages may hold its URL)."""
    p = await _product(req)
    if p is None:
        return _unknown(req)
    await req.web.app.images.set_product_image(req.merchant.key, req.merchant.channel, p.sku, None)
    return see_other(req.url(f"/products/{p.sku}?saved=image_removed"))


async def _picture(req: Req, cap: int) -> bytes | None:
    """The form's `file` part, read in chunks: ImageError as soon as it passes `cap`; None without one."""
    if not req.request.content_type.startswith("multipart/"):
        return None
    try:
        reader = await req.request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader) or part.name != "file":
                continue
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                data += chunk
                if len(data) > cap:
                    raise ImageError(ImageCode.TOO_LARGE, size=len(data), max=cap, max_kb=cap // 1024)
            return bytes(data) if data else None
    except ValueError:  # a malformed multipart body
        return None
    return None


@pages.post("/products/{sku}", owner=True)
async def edit(req: Req) -> web.StreamResponse:
    """Change one field (price, Stars price, a title, on/off sale), as `/product SKU price|stars|title|on|off`."""
    p = await _product(req)
    if p is None:
        return _unknown(req)
    form = await req.request.post()
    field = str(form.get("field", ""))
    if field not in FIELDS or (field == "active" and form.get("value") not in ("on", "off")):
        return await _page(req, p, status=400, refusal="bad_field", message=req.t("console.products.bad_field"))
    try:
        change = _change(req, p, field, form)
        await req.web.admin.edit_product(req.merchant, p.sku, change)
    except AdminError as exc:  # audited as the chat audits a refused command; nothing changed
        await req.web.admin.record(req.merchant, "product", product_id=p.id, sku=p.sku, field=field,
                                   refused=exc.reason, **{k: str(v)[:64] for k, v in exc.params.items()})
        return await _page(req, p, status=400, refusal=exc.reason, message=errors.text(req.web.i18n, req.lang, exc),
                           form=form)
    return see_other(req.url(f"/products/{p.sku}?saved={field}"))


def _change(req: Req, p: Product, field: str, form: Any) -> ProductChange:
    """The form's value as the chat's ProductChange; a value the chat would refuse is refused in its words."""
    raw = str(form.get("value", "")).strip()
    if field == "price":
        return ProductChange(price=_minor(raw, p.currency))
    if field == "stars":
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 13:
            raise AdminError(AdminCode.BAD_STARS, stars=raw[:20] or "?")
        return ProductChange(stars=int(raw))
    if field == "title":
        lang = str(form.get("lang", ""))
        if lang != "*" and lang not in req.web.shop.languages:
            raise AdminError(AdminCode.BAD_LANGUAGE, language=lang[:16] or "?",
                             languages=", ".join(req.web.shop.languages))
        return ProductChange(title=(lang, str(form.get("value", ""))))
    return ProductChange(active=raw == "on")


def _minor(raw: str, currency: str) -> int:
    """A price typed in the currency's units ("12.50") as minor units (1250); anything else is a bad price."""
    digits = get_currency_precision(currency) if currency != "XTR" else 0
    try:
        value = Decimal(raw.replace(",", "."))
    except InvalidOperation:
        raise AdminError(AdminCode.BAD_PRICE, price=raw[:20] or "?") from None
    if not value.is_finite() or len(raw) > 20:
        raise AdminError(AdminCode.BAD_PRICE, price=raw[:20])
    minor = value.scaleb(digits)
    if minor != minor.to_integral_value():  # finer than the currency's smallest unit
        raise AdminError(AdminCode.BAD_PRICE, price=raw[:20])
    return int(minor)  # out of range (negative, too large): the use case refuses it (check_price)


async def _product(req: Req) -> Product | None:
    sku = req.request.match_info["sku"]
    try:
        check_sku(sku)
    except AdminError:
        return None
    return await req.web.shop.product_by_sku(sku)


def _unknown(req: Req) -> web.StreamResponse:
    sku = req.request.match_info["sku"][:64]
    message = errors.text(req.web.i18n, req.lang, AdminError(AdminCode.UNKNOWN_SKU, sku=sku))
    return req.render("products_unknown.html", status=404, refusal=AdminCode.UNKNOWN_SKU.value, message=message)


async def _page(req: Req, p: Product, *, status: int = 200, saved: str = "", refusal: str = "", message: str = "",
                form: Any = None) -> web.StreamResponse:
    line = next((s for s in await req.web.shop.stock() if s.product_id == p.id), None)
    typed = {k: str(v) for k, v in form.items()} if form is not None else {}
    return req.render("products_detail.html", status=status, p=p, row=_row(req, p, line), states=STATES,
                      saved=saved, refusal=refusal, message=message, typed=typed,
                      titles=[("*", p.title.get("*", ""))] + [(lang, p.title.get(lang, ""))
                                                              for lang in req.web.shop.languages],
                      price_input=_major(p.price, p.currency), step=_step(p.currency),
                      image_max_kb=req.web.app.images.limits.max_bytes // 1024,
                      image_max_side=req.web.app.images.limits.max_side)


def _row(req: Req, p: Product, line: StockLine | None) -> dict[str, Any]:
    pool = p.kind in POOL_KINDS
    stock = {s: getattr(line, s) if line else 0 for s in STATES} if pool else None
    return {"p": p, "title": localized(p.title, req.lang, req.web.shop.default_language),
            "price": req.money(p.price, p.currency), "stars": p.stars or 0, "stock": stock,
            "rules": _rules(req, p.rules)}


def _rules(req: Req, rules: dict[str, Any]) -> list[tuple[str, str]]:
    """The product's sale rules as (label, value) lines, read-only (they are set in config.yaml)."""
    out = []
    for key in sorted(rules):
        label = req.t(f"console.products.rule.{key}")
        value = rules[key]
        if isinstance(value, bool):
            shown = req.t("console.products.yes" if value else "console.products.no")
        elif isinstance(value, dict):
            shown = "; ".join(f"{req.t(f'console.products.rule.regions.{k}') if key == 'regions' else k}: "
                              f"{', '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items())
        elif isinstance(value, str | int | float):
            shown = str(value)
        else:
            shown = json.dumps(value, ensure_ascii=False)
        out.append((key if label == f"console.products.rule.{key}" else label, shown[:RULE_TEXT]))
    return out


def _major(amount: int, currency: str) -> str:
    digits = get_currency_precision(currency) if currency != "XTR" else 0
    return str(Decimal(amount).scaleb(-digits)) if digits else str(amount)


def _step(currency: str) -> str:
    digits = get_currency_precision(currency) if currency != "XTR" else 0
    return str(Decimal(1).scaleb(-digits)) if digits else "1"
