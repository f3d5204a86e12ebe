"""The composition root: the one place that builds the store's services from one Settings object and wires them
together (the database, the vault, the shop and its desks, the optional features, the scheduler's jobs). Nothing
else composes core; the adapters (bots/), repositories (storage/) and suppliers are handed what they need here.

    app = await App.open(settings)         # the store, migrated and synced with the catalogue
    ...
    await app.close()
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.alerts import FanoutAlerts, LogAlerts
from core.clock import Clock, SystemClock
from core.models import Kind, ProductSpec
from core.orders import OrderPolicy
from core.ports import Notifier, PaymentGateway
from core.risk import policy_from as risk_policy_from
from core.settings import Settings
from core.shop import Shop
from core.vault import KeyRing, Vault, open_vault
from storage.groups import attach as attach_groups
from storage.resellers import attach as attach_resellers
from suppliers import build_suppliers


def product_specs(settings: Settings) -> list[ProductSpec]:
    return [
        ProductSpec(sku=p.sku, kind=Kind(p.kind), title=dict(p.title), description=dict(p.description),
                    category=dict(p.category), price=p.price, currency=settings.store.currency, stars=p.stars,
                    min_qty=p.min_qty, max_qty=p.max_qty, hold_minutes=p.hold_minutes, active=p.active,
                    rules=dict(p.rules), position=i)
        for i, p in enumerate(settings.catalog)
    ]


def config_ring(settings: Settings) -> KeyRing | None:
    keys = settings.vault.decoded_keys()
    if not keys:
        return None
    fp = settings.vault.fingerprint_key_bytes()
    assert fp is not None  # validated by settings
    return KeyRing(keys, settings.vault.current_key or list(keys)[-1], fp)


class App:
    """Everything the store runs on, opened from one Settings object."""

    def __init__(self, settings: Settings, db: Any, vault: Vault, shop: Shop, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.vault = vault
        self.shop = shop
        self.clock = clock
        self.alerts: FanoutAlerts = shop.alerts  # type: ignore[assignment]  # one fan-out: the log plus the channels

    @classmethod
    async def open(cls, settings: Settings, *, clock: Clock | None = None,
                   notifiers: Mapping[str, Notifier] | None = None,
                   gateways: Mapping[str, PaymentGateway] | None = None, max_batch: int = 256) -> App:
        from core.payments import DemoGateway
        from storage.db import Database

        clock = clock or SystemClock()
        db = Database(settings.database_url_resolved(), echo=settings.database.echo,
                      sqlite_synchronous=settings.database.sqlite_synchronous,
                      pool_size=settings.database.pool_size, now_fn=clock.now)
        try:
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
                        currency=settings.store.currency)
            shop.attach_suppliers(build_suppliers(settings))
            attach_resellers(shop).configure(settings.resellers)  # reseller accounts, wallets, commissions
            shop.card_faces = card_face_desk(shop, settings)  # resellers' card faces (定制卡面)
            attach_groups(shop, settings)  # reseller group chats: /buy in a linked group (Telegram)
            shop.problems = problem_desk(shop, settings)  # buyers' problem reports (issue 7)
            shop.guard.configure(risk_policy_from(settings.risk), settings.jobs.timezone)
            shop.alerts = FanoutAlerts([LogAlerts()])  # the channels add themselves (cmd_run_channels)
            await shop.sync_catalog(product_specs(settings))
        except BaseException:
            await db.dispose()
            raise
        return cls(settings, db, vault, shop, clock)

    def job_runner(self, alerts: Any = None, owner: str | None = None) -> Any:
        """The scheduler's jobs on this App (core.jobs.JobRunner under the lease in `meta`); alerts to
        self.alerts (the log, plus the channels added to it)."""
        from datetime import time, timedelta

        from core.jobs import JobRunner, JobsConfig, StoreJobs, restock_rules
        from storage.jobs import SqlJobStore

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
        self.jobs = StoreJobs(self.shop, store, self.alerts, config)
        at = time.fromisoformat(js.daily_summary_at) if js.daily_summary_at else None
        self.jobs.register(runner, job_intervals(self.settings), at)
        return runner

    async def close(self) -> None:
        await self.shop.close()
        await self.db.dispose()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def card_face_desk(shop: Shop, settings: Settings) -> Any:
    """Resellers' card faces: from the config (`card_faces:`, paths resolved) and `run.py reseller cardface`."""
    from core.cardfaces import CardFace, CardFaceDesk
    from storage.cardfaces import SqlCardFaceRepo

    configured = {name: CardFace(f.display_name, f.background,
                                 *(str(settings.resolve_path(p)) if p else "" for p in (f.background_image, f.logo,
                                                                                        f.font)))
                  for name, f in settings.card_faces.items()}
    return CardFaceDesk(shop.uow, shop.clock, SqlCardFaceRepo(), configured)


def problem_desk(shop: Shop, settings: Settings) -> Any:
    """After-sales reports (core/aftersales.py): per-product reissue policies, the supplier's code check, tickets
    (storage/aftersales.py); tickets and reissues are told to the merchants through outbox notices (and the log)."""
    from core.aftersales import OutboxAlerts, ProblemDesk, ReissuePolicy
    from storage.aftersales import SqlTicketRepo

    policies = {p.sku: ReissuePolicy(**p.aftersales.model_dump()) for p in settings.catalog if p.aftersales}
    admins = [("telegram", str(a)) for a in settings.telegram.admins] + [
        ("wechat", str(a)) for a in settings.wechat.admins]
    alerts = FanoutAlerts([LogAlerts(), OutboxAlerts(shop.uow, admins, shop.dispatcher.wake)])
    return ProblemDesk(shop.uow, shop.clock, policies=policies, alerts=alerts, wake=shop.dispatcher.wake,
                       tickets=SqlTicketRepo(), vault=shop.vault, supply=shop.supply)


def job_intervals(settings: Settings) -> dict[str, float]:
    js = settings.jobs
    return {"expire-holds": js.expire_holds_seconds, "dispatch-outbox": js.dispatch_outbox_seconds,
            "reconcile-wechat-pay": js.reconcile_wechat_pay_seconds, "restock": js.restock_seconds,
            "stock-alerts": js.stock_alerts_seconds, "expire-codes": js.expire_codes_seconds,
            "poll-topups": js.poll_topups_seconds, "reconcile-stars": js.reconcile_stars_seconds}


def start_scheduler(app: App, wechat_pay: Any = None, stars: Any = None) -> tuple[Any, Any]:
    """The scheduler with every job under the lease; returns (scheduler, runner)."""
    from jobs.scheduler import build_scheduler

    runner = app.job_runner()
    scheduler = build_scheduler(app.shop, wechat_pay, runner=runner, every=job_intervals(app.settings), stars=stars)
    scheduler.start()
    return scheduler, runner


async def stop_scheduler(scheduler: Any, runner: Any) -> None:
    scheduler.shutdown(wait=False)
    await runner.release()
