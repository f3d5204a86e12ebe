"""Supplier adapters (货源对接): implementations of core.ports.Supplier, built from the `suppliers:` config.

    suppliers = build_suppliers(settings)     # {name: Supplier}; suppliers.offers: {store SKU: Offer}
    shop.attach_suppliers(suppliers)          # App.open (app/bootstrap.py) does this

`http` (suppliers/http.py) is a configurable signed JSON/form API. `store` (suppliers/store.py) is another
instance of this store, bought from through its signed B2B API (/api/v1).
"""
from __future__ import annotations

import logging
from typing import Any

from config.settings import Settings
from core.errors import SupplierError
from core.models import Offer
from core.ports import Supplier
from core.shop import Shop
from suppliers.http import HttpSupplier
from suppliers.store import StoreSupplier

log = logging.getLogger(__name__)


class SupplierSet(dict[str, Supplier]):
    """The configured suppliers by name, and which store products come from which (`offers`)."""

    def __init__(self, suppliers: dict[str, Supplier], offers: dict[str, Offer]) -> None:
        super().__init__(suppliers)
        self.offers = offers


def build_suppliers(settings: Settings) -> SupplierSet:
    """One client per configured supplier (no connection is made until the first call)."""
    suppliers: dict[str, Supplier] = {}
    for name, conf in settings.suppliers.items():
        if conf.type == "http":
            suppliers[name] = HttpSupplier(name, conf, currency_digits=2)
        elif conf.type == "store":
            suppliers[name] = StoreSupplier(name, conf)
    offers = {p.sku: Offer(p.supplier, p.supplier_sku or p.sku, p.cost, p.account_pattern)
              for p in settings.catalog if p.supplier}
    return SupplierSet(suppliers, offers)


async def handle_callback(shop: Shop, name: str, body: bytes, content_type: str) -> tuple[int, str]:
    """A supplier posted a top-up result (bots/http.py add_supplier_callback): (HTTP status, answer).

    Unknown supplier: 404. A missing or wrong signature (checked with the secret of the supplier named in the
    path), or a timestamp further than `callback_max_skew` from the store's clock: 403; a body that is no flat
    form/JSON: 400; nothing changes. A good one finishes the top-up (done: delivered and the buyer told;
    failed: refunded), once, and only a request the store sent to this supplier: another supplier's request is
    answered like an unknown one (`success`, nothing changes, a WARNING in the log). Repeats are answered
    `success` too, so the supplier stops sending."""
    supplier = shop.suppliers.get(name)
    parse = getattr(supplier, "parse_callback", None)
    if parse is None:
        return 404, "unknown supplier"
    try:
        result = parse(body, content_type, now=shop.supply.clock.now().timestamp())
    except SupplierError as exc:
        log.warning("supplier %s: callback refused: %s", name, exc)
        return (403 if exc.code in ("bad_signature", "stale_timestamp") else 400), "fail"
    outcome = await shop.supply.finish_topup(result, supplier=name)
    log.info("supplier %s: callback for %s: %s -> %s", name, result.request_id, result.status, outcome.status)
    return 200, "success"


def mount_callbacks(server: Any, shop: Shop, settings: Settings) -> bool:
    """Serve `POST /supplier/<name>/callback` on the store's HTTP server (bots/http.py HttpServer). Returns True
    when a supplier has a `callback_url`, i.e. the server must be started for the callbacks to arrive."""
    if not shop.suppliers:
        return False
    server.add_supplier_callback(lambda name, body, content_type: handle_callback(shop, name, body, content_type))
    return any(s.callback_url for s in settings.suppliers.values())
