"""Product images: what a picture must be before the store keeps it, and where it is kept.

A picture comes from the catalogue (`catalog[].image`, a file checked at start) or from the console (an owner's
upload on a product's page). Either way it passes `check_image` before anything is stored:

1. at most `max_bytes` (refused before Pillow sees it);
2. PNG, JPEG, WebP or GIF, recognised by Pillow from its header with only those four decoders allowed (no other
   format's parser ever runs on an upload);
3. at most `max_side` pixels wide and high, read from the header BEFORE anything is decoded: a decompression bomb
   (a small file claiming 50000×50000) is refused without allocating its pixels. Pillow's own guard
   (`DecompressionBombError` past 2×`Image.MAX_IMAGE_PIXELS`, its warning past 1×) is a second one, caught the
   same way;
4. decoded whole once (a truncated or corrupt file is refused here);
5. re-encoded, and only the re-encoded bytes are kept: EXIF (GPS, camera, dates), XMP, comments and anything
   appended after the image's end are gone. A JPEG's EXIF orientation is applied first, so the picture stands
   as the phone showed it. The colour profile (ICC) is kept: it is not about the person and without it a
   wide-gamut photo's colours shift.

Output format: the input's own family — a JPEG stays a JPEG (quality 85: photos stay small), a PNG stays a PNG
(lossless: logos and screenshots stay sharp), a WebP stays a WebP (quality 85; every webview Telegram and WeChat
open pages in decodes it). A GIF becomes a PNG of its first frame (a still picture; PNG is lossless and smaller
than GIF). Animated PNG/WebP likewise keep their first frame only.

The kept picture is named by its content: the first 32 hex digits of the SHA-256 of the re-encoded bytes and the
extension (`3f2a….png`). A changed picture therefore gets a new name, so the URL that serves it
(`/app/img/NAME`, bots/miniapp/images.py) can be cached for a year as immutable. Pictures live in the database
(`product_images`, migration 0016), so every process of the store serves the same ones; a product row carries the
name of its current picture (`products.image`). A picture a product no longer uses is kept: a page loaded before
the change may still ask for it.
"""
from __future__ import annotations

import asyncio
import hashlib
import io
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError

from core.clock import Clock
from core.errors import Refused
from core.models import AuditEntry, Product
from core.ports import UnitOfWorkFactory

FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # the only decoders Pillow may try on an upload
OUTPUT = {"PNG": ("PNG", "png", "image/png"), "GIF": ("PNG", "png", "image/png"),
          "JPEG": ("JPEG", "jpg", "image/jpeg"), "WEBP": ("WEBP", "webp", "image/webp")}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
NAME = re.compile(r"^[0-9a-f]{32}\.(png|jpg|webp)$")
QUALITY = 85  # JPEG and WebP
CACHE_BYTES = 32 * 1024 * 1024  # pictures served from memory (they never change under their name)


class ImageCode(StrEnum):
    """Why a picture was refused (the message of each is `images.error.<value>`)."""

    TOO_LARGE = "too_large"  # params: size (bytes), max (bytes), max_kb
    NOT_AN_IMAGE = "not_an_image"  # not PNG/JPEG/WebP/GIF, or no picture at all
    TOO_MANY_PIXELS = "too_many_pixels"  # params: width, height, max (pixels a side); a decompression bomb
    BROKEN = "broken"  # recognised but cannot be decoded whole (truncated, corrupt)
    NO_SUCH_FILE = "no_such_file"  # the catalogue's file is missing or unreadable (params: path)
    UNKNOWN_SKU = "unknown_sku"  # params: sku


class ImageError(Refused):
    """A picture refused; nothing was stored."""

    codes = ImageCode
    code: ImageCode


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int = 1024 * 1024
    max_side: int = 4096


@dataclass(frozen=True, slots=True)
class StoredImage:
    """A picture as kept: its name (content hash + extension), type, re-encoded bytes and size in pixels."""

    name: str
    content_type: str
    data: bytes
    width: int
    height: int


def check_image(data: bytes, limits: ImageLimits) -> StoredImage:
    """The picture as the store keeps it (re-encoded, named by its content), or ImageError saying why not."""
    if len(data) > limits.max_bytes:
        raise ImageError(ImageCode.TOO_LARGE, size=len(data), max=limits.max_bytes,
                         max_kb=limits.max_bytes // 1024)
    claimed = _claimed_size(data)
    if claimed is not None and not _fits(claimed, limits):  # the first guard: a bomb's pixels are never allocated
        raise ImageError(ImageCode.TOO_MANY_PIXELS, width=claimed[0], height=claimed[1], max=limits.max_side)
    try:
        # Only the header is read here: the format and the size it claims. Pillow's bomb guard runs in open().
        im = Image.open(io.BytesIO(data), formats=FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(ImageCode.TOO_MANY_PIXELS, width="?", height="?", max=limits.max_side) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageError(ImageCode.NOT_AN_IMAGE) from None
    with im:
        width, height = im.size
        if not _fits((width, height), limits):
            raise ImageError(ImageCode.TOO_MANY_PIXELS, width=width, height=height, max=limits.max_side)
        family = im.format or ""
        if family not in OUTPUT:
            raise ImageError(ImageCode.NOT_AN_IMAGE)
        try:
            im.load()  # the whole first frame, decoded once
            upright = ImageOps.exif_transpose(im)  # a phone's rotation applied before its EXIF is dropped
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(ImageCode.TOO_MANY_PIXELS, width=width, height=height, max=limits.max_side) from None
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError):
            raise ImageError(ImageCode.BROKEN) from None
        return _encode(upright, family, im.info.get("icc_profile"))


def _fits(size: tuple[int, int], limits: ImageLimits) -> bool:
    return 1 <= size[0] <= limits.max_side and 1 <= size[1] <= limits.max_side


def _claimed_size(data: bytes) -> tuple[int, int] | None:
    """The size the header claims, read by the allowed formats' own header readers (Pillow's registry) without
    Pillow's bomb check, so the refusal can say what the file claims; None when none of them recognises it (then
    Image.open says what it is)."""
    Image.init()
    for fmt in FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and accept(data[:16]) is not True:
            continue
        try:
            with factory(io.BytesIO(data), "") as im:
                return (int(im.size[0]), int(im.size[1]))
        except Exception:  # noqa: BLE001 - any header a reader cannot make sense of: Image.open refuses it next
            return None
    return None


def _encode(im: Image.Image, family: str, icc: bytes | None) -> StoredImage:
    fmt, ext, content_type = OUTPUT[family]
    clean = im  # ours alone (opened from the upload's bytes, or exif_transpose's copy): changed in place
    transparency = clean.info.get("transparency") if clean.mode in ("P", "L", "RGB") else None
    if clean.mode in ("CMYK", "LAB"):
        icc = None  # converted to RGB below: a CMYK profile would describe other numbers
    clean.info = {}  # nothing of the original's metadata rides along (save() reads some from here)
    if fmt == "JPEG":
        if clean.mode not in ("L", "RGB"):
            clean = clean.convert("RGB")
        options: dict[str, object] = {"quality": QUALITY, "optimize": True}
    elif fmt == "WEBP":
        if clean.mode not in ("RGB", "RGBA"):
            clean = clean.convert("RGBA" if clean.has_transparency_data else "RGB")
        options = {"quality": QUALITY, "method": 4}
    else:
        if clean.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
            clean = clean.convert("RGBA")
        options = {"optimize": True}
        if transparency is not None and clean.mode in ("P", "L", "RGB"):
            options["transparency"] = transparency
    if icc:
        options["icc_profile"] = icc
    out = io.BytesIO()
    clean.save(out, format=fmt, **options)
    data = out.getvalue()
    name = f"{hashlib.sha256(data).hexdigest()[:32]}.{ext}"
    return StoredImage(name, content_type, data, clean.width, clean.height)


def image_url(name: str | None) -> str | None:
    """Where a product's picture is served (bots/miniapp/images.py), or None."""
    return f"/app/img/{name}" if name else None


class ImageRepo(Protocol):
    """Pictures and the products' current one (storage/images.py): `uow.images`."""

    async def save(self, image: StoredImage, at: datetime) -> None:
        """Keep a picture (a name already kept is left as it is: the same name is the same bytes)."""
    async def get(self, name: str) -> StoredImage | None: ...
    async def set_product_image(self, product_id: int, name: str | None) -> None: ...


class ImageDesk:
    """The product pictures' use cases: the catalogue's at start, an owner's upload, and serving by name."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock, limits: ImageLimits,
                 catalog_changed: Callable[[], None]) -> None:
        self.uow = uow_factory
        self.clock = clock
        self.limits = limits
        self.catalog_changed = catalog_changed
        self._cache: OrderedDict[str, StoredImage] = OrderedDict()
        self._cached_bytes = 0

    def check(self, data: bytes) -> StoredImage:
        return check_image(data, self.limits)

    async def apply_catalog(self, images: Mapping[str, StoredImage]) -> None:
        """The catalogue's pictures by SKU (checked already), set on their products in one transaction."""
        if not images:
            return
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            for sku, image in images.items():
                product = await uow.products.by_sku(sku)
                if product is None or product.image == image.name:
                    continue
                await uow.images.save(image, now)
                await uow.images.set_product_image(product.id, image.name)
            await uow.commit()
        self.catalog_changed()

    async def set_product_image(self, actor: str, channel: str, sku: str,
                                data: bytes | None) -> tuple[Product, StoredImage | None]:
        """An owner's new picture for a product (`data`), or none (None): checked before anything changes (in a
        worker thread: decoding a big picture takes a while), audited as a product change (`field: image`, the old
        and new names). Returns the product as it was and the picture as kept."""
        image = await asyncio.to_thread(check_image, data, self.limits) if data is not None else None
        now = self.clock.now()
        async with self.uow(write=True) as uow:
            before = await uow.products.by_sku(sku)
            if before is None:
                raise ImageError(ImageCode.UNKNOWN_SKU, sku=sku[:64])
            if image is not None:
                await uow.images.save(image, now)
            await uow.images.set_product_image(before.id, image.name if image else None)
            await uow.audit.add_many([AuditEntry("admin", actor, channel, now, product_id=before.id, detail={
                "command": "product", "sku": sku, "field": "image", "old": before.image or "",
                "new": image.name if image else "",
                **({"bytes": len(image.data), "width": image.width, "height": image.height} if image else {})})])
            await uow.commit()
        self.catalog_changed()
        return before, image

    async def get(self, name: str) -> StoredImage | None:
        """A kept picture by name (None for an unknown or malformed name), from memory when it was asked before."""
        if not NAME.match(name):
            return None
        hit = self._cache.get(name)
        if hit is not None:
            self._cache.move_to_end(name)
            return hit
        async with self.uow() as uow:
            image = await uow.images.get(name)
        if image is not None and len(image.data) <= CACHE_BYTES // 4:
            self._cache[name] = image
            self._cached_bytes += len(image.data)
            while self._cached_bytes > CACHE_BYTES:
                _, old = self._cache.popitem(last=False)
                self._cached_bytes -= len(old.data)
        return image
