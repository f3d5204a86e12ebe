"""The composition root: the one place that builds the store's services from one Settings object and wires them
together (the database, the vault, the shop and its desks, the features, the channels, the scheduler's jobs).
Nothing else composes core; the adapters (bots/), repositories (storage/) and suppliers are handed what they need
here, and what they provide (notifiers, gateways, alerts, hooks) is registered here through the shop's typed calls.

    app = await App.open(settings)         # the store, migrated and synced with the catalogue
    runtime = app.add_telegram()           # a channel, plugged in (app.add_wechat(server) likewise)
    runner = app.job_runner()              # the scheduler's jobs under the lease (start_scheduler does both)
    await app.close()
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bots.metrics import PromMetrics
from bots.telegram.runtime import TelegramRuntime, build_telegram
from config.settings import ConfigError, Settings
from config.settings import Product as ProductSettings
from core.aftersales import OutboxAlerts, ProblemDesk, RecallDesk, ReissuePolicy
from core.alerts import AdminAlerts, FanoutAlerts, LogAlerts
from core.cardfaces import CardFace, CardFaceDesk
from core.clock import Clock, SystemClock
from core.console import ConsoleDesk
from core.coordination import LocalShared, Shared
from core.coupons import CouponDesk, Coupons
from core.flash_sales import FlashDesk, FlashError, FlashSales, SaleSpec
from core.group_buy import GroupBuyDesk, GroupBuyPromotion, GroupOffer
from core.groups import GroupDesk
from core.images import ImageCode, ImageDesk, ImageError, ImageLimits, StoredImage, check_image
from core.members import Level, LevelPromotion, MallItem, MemberDesk, MemberPolicy, PointsGateway, PointsPromotion
from core.models import BundlePart, Buyer, Kind, ProductSpec
from core.orders import OrderPolicy
from core.payments import DemoGateway, StarLedger
from core.ports import ChannelParts, Notifier, PaymentGateway, PaymentReconciler
from core.resellers import CHANNEL as RESELLER_CHANNEL
from core.resellers import ResellerDesk
from core.risk import policy_from as risk_policy_from
from core.shop import Shop
from core.summary import DailySummary
from core.supply import RestockDesk, RestockRule, RestockSupplier, StockWatch, SupplierHealth
from core.vault import KeyRing, Vault, open_vault
from jobs.lease import JobRunner
from jobs.scheduler import build_scheduler
from jobs.store import StoreJobs
from storage.coordination import RedisShared, RedisUnavailable
from storage.db import Database
from storage.jobs import SqlJobStore
from storage.startup import startup_lock
from suppliers import build_suppliers

if TYPE_CHECKING:
    from bots.wechat.wiring import WeChatRuntime


def product_specs(settings: Settings) -> list[ProductSpec]:
    return [
        ProductSpec(sku=p.sku, kind=Kind(p.kind), title=dict(p.title), description=dict(p.description),
                    category=dict(p.category), price=p.price, currency=settings.store.currency, stars=p.stars,
                    min_qty=p.min_qty, max_qty=p.max_qty, hold_minutes=p.hold_minutes, active=p.active,
                    rules=dict(p.rules), position=i, parts=[BundlePart(b.sku, b.qty) for b in p.bundle])
        for i, p in enumerate(settings.catalog)
    ]


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(settings.store.images.max_bytes, settings.store.images.max_side)


_IMAGE_PROBLEMS = {
    ImageCode.TOO_LARGE: "is {size} bytes; the most is {max} (store.images.max_bytes)",
    ImageCode.NOT_AN_IMAGE: "is not a PNG, JPEG, WebP or GIF picture",
    ImageCode.TOO_MANY_PIXELS: "claims {width}x{height} pixels; the most is {max} a side (store.images.max_side)",
    ImageCode.BROKEN: "is a picture that cannot be decoded whole (truncated or corrupt)",
}


def catalog_images(settings: Settings) -> dict[str, StoredImage]:
    """The catalogue's pictures (`catalog[].image`) by SKU, each checked as an upload is (core/images.py); any
    that is missing, too big, not a picture or a decompression bomb: ConfigError naming the product and why."""
    limits = image_limits(settings)
    out: dict[str, StoredImage] = {}
    problems: list[tuple[str, str]] = []
    for i, p in enumerate(settings.catalog):
        if not p.image:
            continue
        path = settings.resolve_path(p.image)
        try:
            with path.open("rb") as fh:
                data = fh.read(limits.max_bytes + 1)  # never more than the limit and one byte
            if len(data) > limits.max_bytes:
                raise ImageError(ImageCode.TOO_LARGE, size=path.stat().st_size, max=limits.max_bytes)
            out[p.sku] = check_image(data, limits)
        except OSError as exc:
            problems.append((f"catalog[{i}].image", f"product {p.sku}: cannot read {path} "
                                                    f"({exc.strerror or type(exc).__name__})"))
        except ImageError as exc:
            problems.append((f"catalog[{i}].image", f"product {p.sku}: {path} "
                                                    + _IMAGE_PROBLEMS[exc.code].format(**exc.params)))
    if problems:
        raise ConfigError(problems)
    return out


def config_ring(settings: Settings) -> KeyRing | None:
    keys = settings.vault.decoded_keys()
    if not keys:
        return None
    fp = settings.vault.fingerprint_key_bytes()
    assert fp is not None  # validated by settings
    return KeyRing(keys, settings.vault.current_key or list(keys)[-1], fp)


class App:
    """Everything the store runs on, opened from one Settings object: the services, each declared here.

    Features are always built (their config sections have defaults); the shop holds the same desks as declared,
    optional attributes (core/shop.py) for the flows that reach them through it."""

    def __init__(self, settings: Settings, db: Database, vault: Vault, shop: Shop, clock: Clock, *,
                 resellers: ResellerDesk, groups: GroupDesk, problems: ProblemDesk, card_faces: CardFaceDesk,
                 alerts: FanoutAlerts, images: ImageDesk, metrics: PromMetrics) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.shop = shop
        self.clock = clock
        self.resellers = resellers  # reseller accounts, wallets, commissions, the B2B API's orders
        self.groups = groups  # reseller group chats: /buy in a linked group (Telegram)
        self.problems = problems  # buyers' problem reports, tickets, reissues
        self.card_faces = card_faces  # resellers' card faces (定制卡面)
        self.alerts = alerts  # merchant alerts: one fan-out, the log plus the channels plugged in
        self.images = images  # product pictures: the catalogue's, the console's uploads, /app/img/ (core/images.py)
        self.metrics = metrics  # what the shop counts, served at /metrics (bots/metrics.py, bots/ops.py)
        self.jobs: StoreJobs | None = None  # the scheduler's use cases, once job_runner built them
        self.runner: JobRunner | None = None  # ... and their schedule in this process (the console's jobs page)

    @classmethod
    async def open(cls, settings: Settings, *, clock: Clock | None = None,
                   notifiers: Mapping[str, Notifier] | None = None,
                   gateways: Mapping[str, PaymentGateway] | None = None, max_batch: int = 256) -> App:
        clock = clock or SystemClock()
        pictures = catalog_images(settings)  # a bad picture stops the start before anything is opened
        shared = shared_state(settings)  # Redis when `redis.url` is set: several processes share limits and caches
        db = Database(settings.database_url_resolved(), echo=settings.database.echo,
                      sqlite_synchronous=settings.database.sqlite_synchronous,
                      pool_size=settings.database.pool_size, now_fn=clock.now)
        try:
            async with startup_lock(db):  # processes starting together take turns (storage/startup.py)
                await db.upgrade()
                vault = await open_vault(db.uow, config_ring(settings), settings.resolve_path(settings.vault.key_file))
                gw: dict[str, PaymentGateway] = dict(gateways or {})
                if settings.demo_mode():
                    gw.setdefault("demo", DemoGateway())
                shop = Shop(db.uow, vault, clock, policy=OrderPolicy(settings.store.hold_minutes,
                                                                       settings.store.max_open_holds),
                            languages=settings.store.languages, default_language=settings.store.default_language,
                            low_stock=settings.store.low_stock_threshold, demo=settings.demo_mode(), gateways=gw,
                            notifiers=notifiers, single_process=db.dialect == "sqlite", max_batch=max_batch,
                            currency=settings.store.currency, shared=shared)
                if isinstance(shared, RedisShared):  # after the shop's caches listen: the listener subscribes them
                    try:
                        await shared.start(required=not settings.redis.start_without)
                    except RedisUnavailable as exc:
                        raise ConfigError([("redis.url", str(exc))]) from None
                shop.metrics = metrics = PromMetrics()  # this App's own registry (core/metrics.py is the port)
                shop.attach_suppliers(build_suppliers(settings))
                shop.resellers = resellers = reseller_desk(shop, settings)
                shop.card_faces = card_faces = card_face_desk(shop, settings)
                shop.groups = groups = group_desk(shop, resellers, settings)
                shop.problems = problems = problem_desk(shop, settings)
                shop.console = console_desk(shop, settings) if settings.console.enabled else None
                shop.guard.configure(risk_policy_from(settings.risk), settings.jobs.timezone)
                add_promotions(shop, settings)
                shop.reports.configure(  # whole days of the store's zone; costs from the catalogue or restock purchases
                    zone=settings.jobs.timezone, currency=settings.store.currency,
                    costs={p.sku: p.cost for p in settings.catalog if p.cost is not None},
                    restocks={r.sku: (r.supplier, r.supplier_sku) for r in restock_rules(settings.catalog)})
                shop.alerts = alerts = FanoutAlerts([LogAlerts()])  # the channels are plugged in (App.plug)
                await shop.sync_catalog(product_specs(settings))
                images = ImageDesk(shop.uow, clock, image_limits(settings), shop.catalog_changed)
                await images.apply_catalog(pictures)
                try:
                    await FlashDesk(shop.uow, clock.now).apply_config(flash_sale_specs(settings))
                except FlashError as exc:
                    raise ConfigError([("marketing.flash_sales.sales", f"{exc.code.value} {exc.params}")]) from None
        except BaseException:
            await shared.close()
            await db.dispose()
            raise
        return cls(settings, db, vault, shop, clock, resellers=resellers, groups=groups, problems=problems,
                   card_faces=card_faces, alerts=alerts, images=images, metrics=metrics)

    # -- the channels ---------------------------------------------------------------------------------------
    def plug(self, parts: ChannelParts) -> None:
        """Registers what a channel's adapter provides: its notifiers, payment gateways and merchant alerts."""
        for channel, notifier in parts.notifiers.items():
            self.shop.add_notifier(channel, notifier)
        for gateway in parts.gateways:
            self.shop.add_gateway(gateway)
        for channel_alerts in parts.alerts:
            self.alerts.add(channel_alerts)

    def add_telegram(self, *, concurrent_updates: bool = True) -> TelegramRuntime:
        """The Telegram storefront of `telegram:` (aiogram or python-telegram-bot), plugged in."""
        runtime = build_telegram(self.settings, self.shop, concurrent_updates=concurrent_updates)
        self.plug(runtime.frontend.parts)
        return runtime

    def add_wechat(self, server: Any | None = None, *, budget: float | None = None) -> WeChatRuntime:
        """The WeChat storefront of `wechat:`, plugged in; its callback (and WeChat Pay's notify) on `server`."""
        from bots.wechat.wiring import build_wechat  # noqa: PLC0415 - wechatpy loads only with a WeChat channel

        runtime = build_wechat(self.settings, self.shop, server, budget=budget)
        self.plug(runtime.parts)
        return runtime

    # -- the scheduler's jobs -----------------------------------------------------------------------------
    def job_runner(self, alerts: AdminAlerts | None = None, owner: str | None = None) -> JobRunner:
        """The scheduler's jobs on this App (jobs.lease.JobRunner under the lease in `meta`); alerts to
        self.alerts (the log, plus the channels added to it)."""
        js = self.settings.jobs
        store = SqlJobStore(self.db)
        if alerts is not None:
            self.alerts.channels = [alerts]
        runner = JobRunner(store, self.clock, owner=owner, lease=timedelta(seconds=js.lease_seconds),
                           zone=js.timezone)
        config = JobsConfig(expiry_margin=timedelta(minutes=js.expiry_margin_minutes),
                            low_stock=self.settings.store.low_stock_threshold, zone=js.timezone,
                            backoff_max=timedelta(minutes=js.supplier_backoff_max_minutes),
                            topup_stuck=timedelta(minutes=js.topup_stuck_minutes),
                            rules=restock_rules(self.settings.catalog))
        self.jobs = store_jobs(self.shop, store, self.alerts, config)
        at = time.fromisoformat(js.daily_summary_at) if js.daily_summary_at else None
        self.jobs.register(runner, job_intervals(self.settings), at)
        self.runner = runner
        return runner

    async def close(self) -> None:
        await self.shop.close()
        await self.shop.shared.close()
        await self.db.dispose()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- the features, each built with only what it needs ---------------------------------------------------------
def shared_state(settings: Settings) -> Shared:
    """What the processes share (core/coordination.py): Redis (storage/coordination.py) when `redis.url` is set,
    else this process's own memory."""
    url = settings.redis.url.get_secret_value()
    if not url:
        return LocalShared()
    return RedisShared(url, settings.redis.prefix, timeout=settings.redis.timeout_seconds)



def reseller_desk(shop: Shop, settings: Settings) -> ResellerDesk:
    """Reseller accounts, wallets and commissions (`resellers:`); the shop takes wallet payments and refunds
    (`wallet` gateway), sends nothing to the `api` channel (resellers read their orders), accrues commissions on
    paid orders, reverses them on refunds, and takes wallet top-ups through its one payment entry."""
    desk = ResellerDesk(shop.uow, shop.clock, shop.vault, committer=shop.committer, listing=shop,
                        guard=shop.guard, supply=shop.supply, wake=shop.dispatcher.wake,
                        currency=shop.currency).configure(settings.resellers)
    desk.api_keys.changed = lambda key: shop.caches.changed("api_keys", key)  # a revoked key, everywhere at once
    shop.caches.on("api_keys", desk.api_keys.drop)
    shop.add_gateway(desk.gateway)
    shop.add_notifier(RESELLER_CHANNEL, desk.notifier, replace=False)
    shop.book.on_paid(desk.commission_book.accrue)  # commissions, in the payment's own transaction
    shop.dispatcher.on_refunded(desk.commission_book.reverse)  # ... reversed in the refund's
    shop.payments.attach_topups(desk.topups)
    return desk


def group_desk(shop: Shop, resellers: ResellerDesk, settings: Settings) -> GroupDesk:
    """Reseller group chats on the Telegram channel (`telegram.groups`)."""
    g = settings.telegram.groups
    desk = GroupDesk(shop.uow, shop.clock, resellers=resellers, listing=shop,
                     wake=shop.dispatcher.wake, channel="telegram", confirm_minutes=g.confirm_minutes,
                     buys_per_member=g.buys_per_member_per_minute, buys_per_group=g.buys_per_group_per_minute)
    if shop.shared.distributed:  # /buy counted across processes with Redis
        desk.shared = shop.shared
    return desk


def card_face_desk(shop: Shop, settings: Settings) -> CardFaceDesk:
    """Resellers' card faces: from the config (`card_faces:`, paths resolved) and `run.py reseller cardface`."""
    configured = {name: CardFace(f.display_name, f.background,
                                 *(str(settings.resolve_path(p)) if p else "" for p in (f.background_image, f.logo,
                                                                                        f.font)))
                  for name, f in settings.card_faces.items()}
    desk = CardFaceDesk(shop.uow, shop.clock, configured)
    desk.changed = lambda key: shop.caches.changed("card_faces", key)  # every process's cache drops at once
    shop.caches.on("card_faces", desk.drop)
    return desk


def console_desk(shop: Shop, settings: Settings) -> ConsoleDesk:
    """Who may open the web console (owners: the merchants of the config; `console.staff`), its links, sessions."""
    c = settings.console
    owners = {Buyer("telegram", str(a)) for a in settings.telegram.admins} | {
        Buyer("wechat", str(a)) for a in settings.wechat.admins}
    staff = {Buyer(*s.split(":", 1)) for s in c.staff}
    return ConsoleDesk(shop.uow, shop.clock, owners=owners, staff=staff, link_minutes=c.link_minutes,
                       session_hours=c.session_hours, idle_minutes=c.idle_minutes,
                       base_url=settings.server.base_url())


def merchant_chats(settings: Settings) -> list[tuple[str, str]]:
    """(channel, chat id) of every merchant the config names: where the outbox sends merchants' notices."""
    return [("telegram", str(a)) for a in settings.telegram.admins] + [
        ("wechat", str(a)) for a in settings.wechat.admins]


def problem_desk(shop: Shop, settings: Settings) -> ProblemDesk:
    """After-sales reports (core/aftersales/): per-product reissue policies, the supplier's code check, tickets
    (`uow.tickets`); tickets and reissues are told to the merchants through outbox notices (and the log)."""
    policies = {p.sku: ReissuePolicy(**p.aftersales.model_dump()) for p in settings.catalog if p.aftersales}
    alerts = FanoutAlerts([LogAlerts(), OutboxAlerts(shop.uow, merchant_chats(settings), shop.dispatcher.wake)])
    return ProblemDesk(shop.uow, shop.clock, policies=policies, alerts=alerts, wake=shop.dispatcher.wake,
                       vault=shop.vault, supply=shop.supply)


def recall_desk(shop: Shop, settings: Settings) -> RecallDesk:
    """Codes a supplier recalled (`run.py codes burn`): the merchants hear of each reissue and refund through outbox
    notices (sent by the running store's dispatcher) and the log."""
    alerts = FanoutAlerts([LogAlerts(), OutboxAlerts(shop.uow, merchant_chats(settings))])
    return RecallDesk(shop.uow, shop.vault, shop.clock, alerts=alerts)


# -- the scheduler's jobs -------------------------------------------------------------------------------------
@dataclass(slots=True)
class JobsConfig:
    """What the store's jobs are told of the settings (`jobs:`, `store.low_stock_threshold`, the catalogue's
    `restock:`)."""

    expiry_margin: timedelta = timedelta(hours=1)
    low_stock: int = 5
    zone: str = "UTC"
    backoff_max: timedelta = timedelta(hours=1)
    rules: list[RestockRule] = field(default_factory=list)
    topup_stuck: timedelta = timedelta(hours=1)  # a top-up still pending this long is a merchant's case


def restock_rules(catalog: Sequence[ProductSettings]) -> list[RestockRule]:
    """A RestockRule for each product of the catalogue with `restock:`."""
    return [RestockRule(p.sku, p.restock.below, p.restock.up_to, p.restock.supplier or p.supplier,
                        p.restock.daily_budget, p.supplier_sku or p.sku, p.cost)
            for p in catalog if p.restock is not None]


def store_jobs(shop: Shop, store: SqlJobStore, alerts: AdminAlerts, config: JobsConfig,
               suppliers: Mapping[str, RestockSupplier] | None = None) -> StoreJobs:
    """The store's jobs (jobs/store.py) on the core parts they call, each built with what it uses. `suppliers`:
    whom restock buys from, when not the shop's own (tests and benches)."""
    health = SupplierHealth(shop.uow, shop.clock, alerts, backoff_max=config.backoff_max,
                            topup_stuck=config.topup_stuck)
    stock = StockWatch(shop.uow, shop.clock, shop, alerts, store, low_stock=config.low_stock,
                       expiry_margin=config.expiry_margin, language=shop.default_language)
    resellers = shop.resellers
    restocking = RestockDesk(shop.uow, shop.vault, shop.clock, shop, health, alerts,
                             shop.suppliers if suppliers is None else suppliers, config.rules, zone=config.zone,
                             on_stocked=resellers.fill_waiting if resellers is not None else None)
    summary = DailySummary(shop.uow, shop.clock, stock, health, alerts, store, zone=config.zone)
    return StoreJobs(shop, restocking=restocking, stock=stock, health=health, summary=summary)


def job_intervals(settings: Settings) -> dict[str, float]:
    js = settings.jobs
    return {"expire-holds": js.expire_holds_seconds, "dispatch-outbox": js.dispatch_outbox_seconds,
            "reconcile-wechat-pay": js.reconcile_wechat_pay_seconds, "restock": js.restock_seconds,
            "stock-alerts": js.stock_alerts_seconds, "expire-codes": js.expire_codes_seconds,
            "poll-topups": js.poll_topups_seconds, "reconcile-stars": js.reconcile_stars_seconds,
            "group-buy-expiry": settings.marketing.group_buy.expiry_seconds}


def start_scheduler(app: App, wechat_pay: PaymentReconciler | None = None, stars: StarLedger | None = None
                    ) -> tuple[AsyncIOScheduler, JobRunner]:
    """The scheduler with every job under the lease; returns (scheduler, runner)."""
    runner = app.job_runner()
    scheduler = build_scheduler(app.shop, wechat_pay, runner=runner, every=job_intervals(app.settings), stars=stars)
    scheduler.start()
    return scheduler, runner


async def stop_scheduler(scheduler: AsyncIOScheduler, runner: JobRunner) -> None:
    scheduler.shutdown(wait=False)
    await runner.release()


def add_promotions(shop: Shop, settings: Settings) -> None:
    """The promotions (core/promotions.py) in the order they apply: a price of their own first (flash sale,
    group-buy), then the member level's percentage, then coupons, then points spent."""
    shop.add_promotion(FlashSales(shop.uow, shop.catalog_ttl))  # a price of its own (core/flash_sales.py)
    shop.add_promotion(GroupBuyPromotion(group_offers(settings)))
    shop.group_buy = GroupBuyDesk(shop.uow, shop.clock, lambda: shop.promotions, shop.dispatcher.wake)
    members = member_desk(shop, settings)
    if members is not None:
        shop.add_promotion(LevelPromotion(members.current))  # after the promotions that set a price of their own
    cfg = settings.marketing.coupons
    coupons = Coupons(lambda: shop.vault.ring.fingerprint_key, cfg.max_guesses_per_hour, enabled=cfg.enabled)
    shop.add_promotion(coupons)  # off: still there, refusing every code (an order never silently ignores one)
    if cfg.enabled:
        shop.coupons = CouponDesk(shop.uow, shop.clock, coupons, shop.quote, shop.vault, code_length=cfg.code_length,
                                  alphabet=cfg.alphabet)
    if members is not None:
        shop.add_promotion(PointsPromotion(members.current))  # last: takes whatever is left, paid with points
        members.coupons = shop.coupons  # issues the coupons members get as rewards (core/members/coupons.py)


def member_policy(settings: Settings) -> MemberPolicy:
    m = settings.marketing.members
    return MemberPolicy(
        levels=tuple(Level(lv.level, dict(lv.name), lv.min_spend, lv.discount_percent, dict(lv.perks))
                     for lv in m.levels),
        points_per_unit=m.points_per_unit, points_days=m.points_days,
        mall=tuple(MallItem(i.sku, i.points, i.reward, i.coupon) for i in m.mall),
        referral_points=m.referral_points, gift_points=m.gift_points, gift_on=m.gift_on,
        referral_coupon=m.referral_coupon, gift_coupon=m.gift_coupon)


def member_desk(shop: Shop, settings: Settings) -> MemberDesk | None:
    """Members (core/members/) when anything of them is configured: levels and points follow every payment and
    refund (hooks in their transactions), the points mall's orders are paid through the "points" gateway."""
    policy = member_policy(settings)
    if not (policy.levels or policy.points_per_unit or policy.mall or policy.referral_reward or policy.gift):
        return None
    if policy.coupon_rewards and not settings.marketing.coupons.enabled:
        raise ConfigError([("marketing.members", "coupons as rewards need marketing.coupons.enabled")])
    shop.members = desk = MemberDesk(shop.uow, shop.clock, policy, lambda: shop.vault.ring.fingerprint_key)
    shop.book.on_paid(desk.on_paid)
    shop.dispatcher.on_refunded(desk.on_refunded)
    if any(m.reward == "product" for m in policy.mall):
        shop.add_gateway(PointsGateway())
    return desk


def group_offers(settings: Settings) -> dict[str, GroupOffer]:
    """`marketing.group_buy.offers` by SKU; each must name a `code` or `bundle` product of the catalogue."""
    kinds = {p.sku: p.kind for p in settings.catalog}
    problems = [(f"marketing.group_buy.offers[{i}].sku", f"no code or bundle product {o.sku!r} in the catalogue")
                for i, o in enumerate(settings.marketing.group_buy.offers)
                if kinds.get(o.sku) not in ("code", "bundle")]
    if problems:
        raise ConfigError(problems)
    return {o.sku: GroupOffer(o.sku, o.price, o.stars, o.size, o.hours) for o in settings.marketing.group_buy.offers}


def flash_sale_specs(settings: Settings) -> list[SaleSpec]:
    """config.yaml's flash sales (marketing.flash_sales.sales), made or changed at start (core/flash_sales.py)."""
    return [SaleSpec(s.sku, s.price, s.units, s.per_buyer, s.starts, s.ends, s.stars)
            for s in settings.marketing.flash_sales.sales]
