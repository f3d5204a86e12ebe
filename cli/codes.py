"""`run.py codes import|rekey|burn`: the code pool: codes in, every code under the newest key, recalled codes out."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app import App
from cli.common import open_codes_file
from core.aftersales import OutboxAlerts, RecallDesk
from core.alerts import FanoutAlerts, LogAlerts
from core.errors import StoreError
from core.inventory import import_codes, read_lines, rekey
from core.settings import Settings
from core.vault import read_key_file, write_key_file
from storage.aftersales import SqlRecallRepo


def add_parser(sub: Any) -> None:
    codes = sub.add_parser("codes", help="code pool commands").add_subparsers(dest="codes_command", required=True)
    imp = codes.add_parser("import", help="import codes: one per line, or CSV with a `code` header")
    imp.add_argument("sku")
    imp.add_argument("file")
    rk = codes.add_parser("rekey", help="re-encrypt every code under the newest vault key")
    rk.add_argument("--new-key", action="store_true", help="add a fresh key to the key file first")
    burn = codes.add_parser("burn", help="codes a supplier recalled: burn them, reissue or refund their buyers")
    burn.add_argument("sku")
    burn.add_argument("file")


async def execute(settings: Settings, args: argparse.Namespace) -> int:
    if args.codes_command == "import":
        return await cmd_import(settings, args.sku, args.file)
    if args.codes_command == "rekey":
        return await cmd_rekey(settings, args.new_key)
    return await cmd_burn(settings, args.sku, args.file)


async def cmd_import(settings: Settings, sku: str, file: str) -> int:
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


async def cmd_burn(settings: Settings, sku: str, file: str) -> int:
    """Codes a supplier recalled: available ones burned, buyers of sold ones reissued (or refunded)."""
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
