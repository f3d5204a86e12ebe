"""Draws a reseller's card face (定制卡面) for one code with Pillow: the reseller's background and logo, its display
name, the product title, the code in text and as a QR code (so it can be scanned), and the order id.

The PNG is made in memory (BytesIO) and returned as bytes: never written to disk, never logged. A background,
logo or font file that cannot be read is left out (logged by path only) rather than holding up the delivery.
"""
from __future__ import annotations

import io
import logging
import textwrap
from functools import lru_cache
from typing import Any

import qrcode
from PIL import Image, ImageDraw, ImageFont

from core.cardfaces import CardFace

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 800, 480
MARGIN = 32
QR_SIZE = 232
LOGO_MAX = 88


def paint_card(face: CardFace, *, title: str, code: str, order_id: str) -> bytes:
    """One code's card as PNG bytes."""
    card = Image.new("RGB", (WIDTH, HEIGHT), face.background)
    if face.background_image:
        bg = _image(face.background_image)
        if bg is not None:
            card.paste(_cover(bg.convert("RGB"), WIDTH, HEIGHT))
    ink, soft = _inks(card)
    draw = ImageDraw.Draw(card)
    x = MARGIN
    if face.logo:
        logo = _image(face.logo)
        if logo is not None:
            logo = logo.convert("RGBA")
            logo.thumbnail((LOGO_MAX, LOGO_MAX))
            card.paste(logo, (MARGIN, MARGIN), logo)
            x = MARGIN + logo.width + 20
    draw.text((x, MARGIN + 8), face.display_name, fill=ink, font=_font(face.font, 44))
    draw.text((MARGIN, MARGIN + LOGO_MAX + 28), _fit(title, 30), fill=ink, font=_font(face.font, 30))

    # The code: text on the left (wrapped), the QR code on the right on a white tile (scanners want contrast).
    qr = _qr(code, QR_SIZE)
    qx, qy = WIDTH - MARGIN - QR_SIZE, HEIGHT - MARGIN - QR_SIZE
    draw.rectangle((qx - 8, qy - 8, qx + QR_SIZE + 8, qy + QR_SIZE + 8), fill="white")
    card.paste(qr, (qx, qy))
    lines = textwrap.wrap(code, 22, break_long_words=True, break_on_hyphens=False)[:4] or [code[:22]]
    y = MARGIN + LOGO_MAX + 90
    mono = _font("", 30, mono=True)
    for line in lines:
        draw.text((MARGIN, y), line, fill=ink, font=mono)
        y += 40
    draw.text((MARGIN, HEIGHT - MARGIN - 22), f"#{order_id}", fill=soft, font=_font("", 22))

    out = io.BytesIO()
    card.save(out, "PNG")
    return out.getvalue()


def _qr(text: str, size: int) -> Image.Image:
    q = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    q.add_data(text)
    q.make(fit=True)
    matrix = q.get_matrix()
    n = len(matrix)
    img = Image.new("L", (n, n), 255)
    img.putdata([0 if dark else 255 for row in matrix for dark in row])
    return img.resize((size, size), Image.Resampling.NEAREST).convert("RGB")


def _inks(card: Image.Image) -> tuple[str, str]:
    """Text colours that read on the card: white on dark backgrounds, near-black on light ones."""
    r, g, b = card.resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))  # type: ignore[misc]
    light = 0.299 * r + 0.587 * g + 0.114 * b > 150
    return ("#111111", "#444444") if light else ("#FFFFFF", "#D0D0D0")


def _cover(img: Image.Image, w: int, h: int) -> Image.Image:
    scale = max(w / img.width, h / img.height)
    img = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))))
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _image(path: str) -> Image.Image | None:
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError) as exc:
        log.warning("card face: cannot read the image %s (%s); left out", path, type(exc).__name__)
        return None


@lru_cache(maxsize=32)
def _font(path: str, size: int, mono: bool = False) -> Any:
    if path:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            log.warning("card face: cannot read the font %s; the built-in one is used", path)
    if mono:
        for candidate in ("DejaVuSansMono-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"):
            try:
                return ImageFont.truetype(candidate, size)
            except OSError:
                continue
    return ImageFont.load_default(size)
