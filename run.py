#!/usr/bin/env python3
"""The store's entry point: reads the config and runs a command on the store the composition root (app/) builds.

    python run.py [--config PATH]                  run the store (the terminal demo when no channel is set)
    python run.py [--config PATH] db upgrade       apply database migrations
    python run.py [--config PATH] codes import SKU FILE
    python run.py [--config PATH] codes rekey [--new-key]
    python run.py [--config PATH] stock
    python run.py [--config PATH] wechat menu     create the WeChat custom menu from wechat.menu
    python run.py [--config PATH] jobs            the scheduled jobs: last run, result, next run
    python run.py [--config PATH] jobs run NAME   run one job now
    python run.py [--config PATH] audit export --order ID [--format json|csv] [--out FILE]
    python run.py [--config PATH] codes burn SKU FILE   codes a supplier recalled: burned, buyers reissued
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.errors import StoreError, VaultError  # noqa: E402
from core.settings import ConfigError, Settings, load_settings  # noqa: E402
from app import App  # noqa: E402
from app.bootstrap import job_intervals, start_scheduler, stop_scheduler  # noqa: E402
from app.logs import quiet_libraries  # noqa: E402
from core.vault import read_key_file, write_key_file  # noqa: E402
from bots.reseller_cli import add_parser as add_reseller_parser  # noqa: E402

DEFAULT_CONFIG = ROOT / "config.yaml"
log = logging.getLogger("store")


# -- commands ------------------------------------------------------------------------------------

async def cmd_run(settings: Settings) -> int:
    from bots.console import ConsoleNotifier, run_console
    from core.demo import seed_demo_codes
    from handlers.customer import CustomerFlow
    from locales import Translator

    if not settings.demo_mode():
        return await cmd_run_channels(settings)
    i18n = Translator(settings.store.languages, settings.store.default_language)
    notifier = ConsoleNotifier()
    app = await App.open(settings, notifiers={"console": notifier})
    try:
        await seed_demo_codes(app.db.uow, app.vault, app.clock, await app.shop.products())
        flow = CustomerFlow(app.shop, i18n, shop_name=settings.store.name, support=settings.store.support,
                            demo_payments=True)
        notifier.flow = flow
        await app.shop.start()
        scheduler, runner = start_scheduler(app)
        try:
            await run_console(flow, notifier, i18n)
        finally:
            await stop_scheduler(scheduler, runner)
    finally:
        await app.close()
    return 0


async def cmd_run_channels(settings: Settings) -> int:
    """The chat storefronts that are configured (Telegram, WeChat, or both) on one App and one HTTP server."""
    from bots.http import HttpServer, webhook_path
    from bots.process import settle_heap

    tg = settings.telegram
    async with await App.open(settings) as app:
        server = HttpServer(settings.server.host, settings.server.port)
        runtime = wechat = None
        if tg.enabled:
            runtime = app.add_telegram()
        if settings.wechat.enabled:
            wechat = app.add_wechat(server)  # /wechat (and /wechat/pay/notify) on the server
        await app.shop.start()
        if wechat is not None:
            await wechat.start()
        scheduler, runner = start_scheduler(app, wechat.gateway if wechat is not None else None,
                                            runtime.port if runtime is not None else None)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            webhook = runtime is not None and tg.mode == "webhook"
            if webhook:
                secret = tg.webhook.secret.get_secret_value()
                server.add_telegram(runtime, webhook_path(tg.webhook.url), secret)
            from bots.b2b_api import mount_api
            from suppliers import mount_callbacks

            callbacks = mount_callbacks(server, app.shop, settings)  # suppliers' top-up results, when any
            if settings.server.api:  # the B2B API for resellers under /api/v1
                mount_api(server, app.resellers, settings)
            if webhook or wechat is not None or callbacks or settings.server.api:
                await server.start()
            if runtime is not None:
                if webhook:
                    await runtime.set_webhook(tg.webhook.url, tg.webhook.secret.get_secret_value())
                else:
                    await runtime.start()
            if wechat is not None:
                log.info("WeChat callback at http://%s:%s/wechat", settings.server.host, server.port)
            settle_heap()  # start-up's objects out of the garbage collector's way (bots/process.py)
            await stop.wait()
        finally:
            await stop_scheduler(scheduler, runner)
            await server.stop()
            if runtime is not None:
                await runtime.stop()
            if wechat is not None:
                await wechat.stop()
    return 0


async def cmd_wechat_menu(settings: Settings) -> int:
    """Creates the WeChat custom menu from `wechat.menu` (menu/create)."""
    from bots.wechat.client import WeChatApiError
    from bots.wechat.wiring import create_menu

    if not settings.wechat.enabled:
        print("error: wechat.appid is not set", file=sys.stderr)
        return 2
    try:
        menu = await create_menu(settings)
    except WeChatApiError as exc:
        print(f"error: WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    for button in menu["button"]:
        subs = button.get("sub_button")
        print(f"{button['name']}: " + (", ".join(f"{b['name']} ({b.get('key') or b.get('url')})" for b in subs)
                                        if subs else str(button.get("key") or button.get("url"))))
    print(f"custom menu created ({len(menu['button'])} buttons)")
    return 0


def open_codes_file(path: Path, verb: str) -> Any:
    """A file of codes opened for reading, or None after saying why not (missing, empty, binary):
    `codes import` and `codes burn` refuse the same files the same way ("nothing <verb>")."""
    from core.inventory import looks_binary

    try:
        fh = path.open("rb")
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}; nothing {verb}", file=sys.stderr)
        return None
    head = fh.read(8192)
    problem = "is empty" if not head else "looks like a binary file, not one code per line" if looks_binary(
        head) else ""
    if problem:
        fh.close()
        print(f"error: {path} {problem}; nothing {verb}", file=sys.stderr)
        return None
    fh.seek(0)
    return fh


async def cmd_import(settings: Settings, sku: str, file: str) -> int:
    from tqdm import tqdm

    from core.inventory import import_codes, read_lines

    path = Path(file)
    fh = open_codes_file(path, "imported")
    if fh is None:
        return 2
    with fh:
        size = path.stat().st_size
        async with await App.open(settings) as app:
            with tqdm(total=size, unit="B", unit_scale=True, desc=f"import {sku}", file=sys.stderr,
                      mininterval=0.5, dynamic_ncols=True) as bar:
                try:
                    report = await import_codes(app.db.uow, app.vault, app.clock, sku, read_lines(fh),
                                                progress=bar.update)
                    if report.imported:
                        await app.resellers.fill_waiting()  # B2B orders waiting for stock
                except StoreError as exc:
                    bar.close()
                    print(f"error: unknown SKU {sku!r}; nothing imported" if exc.code.value == "unknown_sku"
                          else f"error: {exc}", file=sys.stderr)
                    return 2
    print(f"{sku}: imported {report.imported}, duplicates {report.duplicates}, rejected {report.rejected}")
    for line_no, reason in report.rejected_lines[:20]:
        print(f"  rejected line {line_no}: {reason}")
    if report.rejected > 20:
        print(f"  … and {report.rejected - 20} more rejected lines")
    if report.rejected and not (report.imported or report.duplicates):
        return 2  # not one usable code in the file
    return 1 if report.rejected else 0


async def cmd_rekey(settings: Settings, new_key: bool) -> int:
    from tqdm import tqdm

    from core.inventory import rekey

    if new_key:
        if settings.vault.keys:
            print("error: keys come from vault.keys in the config: add the new key there and set "
                  "vault.current_key, then run `codes rekey`", file=sys.stderr)
            return 2
        key_file = settings.resolve_path(settings.vault.key_file)
        # Check the key file against the database first: a wrong file must not be extended and rewritten.
        await (await App.open(settings)).close()
        ring = read_key_file(key_file).with_new_key()
        write_key_file(key_file, ring, replace=True)
        print(f"added key {ring.current} to {key_file}; it is now the current key")
    async with await App.open(settings) as app:
        bar = tqdm(unit="codes", desc="rekey", file=sys.stderr, mininterval=0.5)
        try:
            report = await rekey(app.db.uow, app.vault, app.clock, progress=bar.update,
                                 total=lambda n: setattr(bar, "total", n))
        finally:
            bar.close()
    print(f"re-encrypted {report.moved} codes under key {report.key_id}")
    return 0


async def cmd_stock(settings: Settings) -> int:
    async with await App.open(settings) as app:
        lines = await app.shop.stock()
    width = max([len(s.sku) for s in lines] + [3])
    print(f"{'SKU':<{width}}  {'available':>9}  {'held':>6}  {'sold':>6}  {'expired':>7}")
    for s in lines:
        print(f"{s.sku:<{width}}  {s.available:>9}  {s.held:>6}  {s.sold:>6}  {s.expired:>7}")
    return 0


async def cmd_audit_export(settings: Settings, order_id: str, fmt: str, out: str | None) -> int:
    """Every audit entry of one order as evidence (JSON or CSV); codes only as fingerprint references."""
    from core.aftersales import export_csv, export_json, order_trail, record_export
    from storage.aftersales import SqlRecallRepo

    async with await App.open(settings) as app:
        trail = await order_trail(app.db.uow, order_id.strip().upper(), SqlRecallRepo())
        if trail is None:
            print(f"error: no order {order_id!r}", file=sys.stderr)
            return 2
        text = (export_csv if fmt == "csv" else export_json)(trail, app.clock.now())
        if out:
            try:
                Path(out).write_text(text, encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write {out}: {exc.strerror}", file=sys.stderr)
                return 2
        else:
            sys.stdout.write(text)
        await record_export(app.db.uow, app.clock, trail, "cli", "cli", fmt, len(trail.entries))
    if out:
        print(f"order {trail.order.id}: {len(trail.entries)} audit entries written to {out} ({fmt})")
    return 0


async def cmd_burn(settings: Settings, sku: str, file: str) -> int:
    """Codes a supplier recalled: available ones burned, buyers of sold ones reissued (or refunded)."""
    from tqdm import tqdm

    from core.aftersales import OutboxAlerts, RecallDesk
    from core.alerts import FanoutAlerts, LogAlerts
    from core.inventory import read_lines
    from storage.aftersales import SqlRecallRepo

    path = Path(file)
    fh = open_codes_file(path, "burned")
    if fh is None:
        return 2
    with fh:
        async with await App.open(settings) as app:
            admins = [("telegram", str(a)) for a in settings.telegram.admins] + [
                ("wechat", str(a)) for a in settings.wechat.admins]
            alerts = FanoutAlerts([LogAlerts(), OutboxAlerts(app.db.uow, admins)])
            desk = RecallDesk(app.db.uow, app.vault, app.clock, SqlRecallRepo(), alerts=alerts)
            with tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=f"burn {sku}", file=sys.stderr,
                      mininterval=0.5, dynamic_ncols=True) as bar:
                try:
                    r = await desk.burn(sku, read_lines(fh), progress=bar.update)
                except StoreError as exc:
                    bar.close()
                    print(f"error: unknown SKU {sku!r}; nothing burned" if exc.code.value == "unknown_sku"
                          else f"error: {sku} is a {exc.params.get('kind')} product: only code and supplier "
                               "products can be burned; nothing burned", file=sys.stderr)
                    return 2
    print(f"{sku}: burned available {r.burned_available}, reissued {r.reissued}, refunded {r.refunded}, "
          f"not found {r.not_found}" + (f", already burned {r.already_burned}" if r.already_burned else "")
          + (f", held orders swapped {r.held_swapped}" if r.held_swapped else "")
          + (f", rejected lines {r.rejected}" if r.rejected else ""))
    if not r.codes:
        return 2
    return 1 if r.not_found or r.rejected else 0


async def cmd_reseller(settings: Settings, args: argparse.Namespace) -> int:
    """`reseller ...`: reseller accounts, wallet top-ups and statements, API keys (bots/reseller_cli.py)."""
    from bots.reseller_cli import run as run_reseller

    async with await App.open(settings) as app:
        return await run_reseller(app, args)


async def cmd_jobs(settings: Settings, run: str | None) -> int:
    """`jobs`: every job's schedule, last run and result, next run, and who holds the scheduler lease.
    `jobs run NAME`: runs one job now in this process (its alerts go to the log, printed here)."""
    from jobs.scheduler import add_channel_jobs

    async with await App.open(settings) as app:
        runner = app.job_runner(owner="cli")
        add_channel_jobs(runner, app.shop, object() if settings.wechat.pay.mch_id else None,
                         job_intervals(settings), cast(Any, object()) if settings.telegram.enabled else None)
        if run is not None:
            spec = runner.jobs.get(run)
            if spec is None:
                print(f"error: no job {run!r}; jobs: {', '.join(runner.jobs)}", file=sys.stderr)
                return 2
            if not spec.manual:
                print(f"error: {run} runs only inside the running store (it needs the chat channels)",
                      file=sys.stderr)
                return 2
            record = await runner.run_now(run, runner="cli")
            print(f"{run}: {'ok' if record['ok'] else 'FAILED'} in {record['seconds']:.2f}s: {record['result']}")
            return 0 if record["ok"] else 1
        rows = await runner.status()
        lease = await runner.store.lease()
    now = app.clock.now()
    if lease is not None and lease.until > now:
        print(f"scheduler: running in {lease.owner} (lease until {_when(lease.until)})")
    else:
        print("scheduler: not running (no live lease)" + (f"; last holder {lease.owner}" if lease else ""))
    headers = ("job", "schedule", "last run", "next run", "last result")
    table = [(r["name"], r["schedule"], _when(r["last_run"]), _when(r["next_run"]),
              "-" if r["result"] is None else ("" if r["ok"] else "FAILED ") + str(r["result"])) for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[-1])
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _when(value: Any) -> str:
    if value is None:
        return "-"
    from datetime import datetime

    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return f"{at:%Y-%m-%d %H:%M:%S}Z"


async def cmd_db_upgrade(settings: Settings) -> int:
    from storage.db import Database

    db = Database(settings.database_url_resolved(), sqlite_synchronous=settings.database.sqlite_synchronous)
    try:
        await db.upgrade()
        print(f"database at revision {await db.current_revision()}")
    finally:
        await db.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="Card store: chat-bot shop for virtual goods.")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="settings file (default: config.yaml)")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("run", help="run the store (default)")
    db = sub.add_parser("db", help="database commands").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="apply migrations")
    codes = sub.add_parser("codes", help="code pool commands").add_subparsers(dest="codes_command", required=True)
    imp = codes.add_parser("import", help="import codes: one per line, or CSV with a `code` header")
    imp.add_argument("sku")
    imp.add_argument("file")
    rk = codes.add_parser("rekey", help="re-encrypt every code under the newest vault key")
    rk.add_argument("--new-key", action="store_true", help="add a fresh key to the key file first")
    burn = codes.add_parser("burn", help="codes a supplier recalled: burn them, reissue or refund their buyers")
    burn.add_argument("sku")
    burn.add_argument("file")
    au = sub.add_parser("audit", help="the audit log").add_subparsers(dest="audit_command", required=True)
    ax = au.add_parser("export", help="every audit entry of an order, as evidence")
    ax.add_argument("--order", required=True, help="the order id")
    ax.add_argument("--format", choices=("json", "csv"), default="json")
    ax.add_argument("--out", help="write to this file (default: standard output)")
    sub.add_parser("stock", help="SKU and available/held/sold counts")
    add_reseller_parser(sub)  # reseller ...
    wx = sub.add_parser("wechat", help="WeChat Official Account commands").add_subparsers(dest="wechat_command",
                                                                                         required=True)
    wx.add_parser("menu", help="create the custom menu from wechat.menu")
    jb = sub.add_parser("jobs", help="the scheduled jobs: last run, result, next run")
    jb_sub = jb.add_subparsers(dest="jobs_command")
    jr = jb_sub.add_parser("run", help="run one job now")
    jr.add_argument("name")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    quiet_libraries()
    cmd = args.command or "run"
    try:
        if cmd == "run":
            return asyncio.run(cmd_run(settings))
        if cmd == "db":
            return asyncio.run(cmd_db_upgrade(settings))
        if cmd == "codes" and args.codes_command == "import":
            return asyncio.run(cmd_import(settings, args.sku, args.file))
        if cmd == "codes" and args.codes_command == "rekey":
            return asyncio.run(cmd_rekey(settings, args.new_key))
        if cmd == "stock":
            return asyncio.run(cmd_stock(settings))
        if cmd == "reseller":
            return asyncio.run(cmd_reseller(settings, args))
        if cmd == "codes" and args.codes_command == "burn":
            return asyncio.run(cmd_burn(settings, args.sku, args.file))
        if cmd == "audit" and args.audit_command == "export":
            return asyncio.run(cmd_audit_export(settings, args.order, args.format, args.out))
        if cmd == "wechat" and args.wechat_command == "menu":
            return asyncio.run(cmd_wechat_menu(settings))
        if cmd == "jobs":
            return asyncio.run(cmd_jobs(settings, args.name if args.jobs_command == "run" else None))
    except ConfigError as exc:  # found while starting (e.g. a WeChat Pay certificate file that is missing)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
