"""`run.py codes import|rekey|burn`: the code pool: codes in, every code under the newest key, recalled codes out."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from app import App
from app.bootstrap import recall_desk
from cli.common import Voice, open_codes_file
from config.settings import Settings
from core.errors import ErrorCode, StoreError
from core.supply import import_codes, read_lines, rekey
from core.vault import read_key_file, write_key_file


def add_parser(sub: Any, say: Voice) -> None:
    codes = sub.add_parser("codes", help=say.t("cli.help.codes")).add_subparsers(dest="codes_command",
                                                                                  required=True)
    imp = codes.add_parser("import", help=say.t("cli.help.codes.import"))
    imp.add_argument("sku")
    imp.add_argument("file")
    rk = codes.add_parser("rekey", help=say.t("cli.help.codes.rekey"))
    rk.add_argument("--new-key", action="store_true", help=say.t("cli.help.codes.new_key"))
    burn = codes.add_parser("burn", help=say.t("cli.help.codes.burn"))
    burn.add_argument("sku")
    burn.add_argument("file")


async def execute(settings: Settings, args: argparse.Namespace, say: Voice) -> int:
    if args.codes_command == "import":
        return await import_file(settings, args.sku, args.file, say)
    if args.codes_command == "rekey":
        return await rekey_all(settings, args.new_key, say)
    return await burn_file(settings, args.sku, args.file, say)


async def import_file(settings: Settings, sku: str, file: str, say: Voice) -> int:
    path = Path(file)
    nothing = say.t("cli.codes.nothing_imported")
    fh = open_codes_file(path, nothing, say)
    if fh is None:
        return 2
    with fh:
        size = path.stat().st_size
        async with await App.open(settings) as app:
            with tqdm(total=size, unit="B", unit_scale=True, desc=say.t("cli.codes.import.progress", sku=sku),
                      file=sys.stderr, mininterval=0.5, dynamic_ncols=True) as bar:
                try:
                    report = await import_codes(app.db.uow, app.vault, app.clock, sku, read_lines(fh),
                                                progress=bar.update)
                    if report.imported:
                        await app.resellers.fill_waiting()  # B2B orders waiting for stock
                except StoreError as exc:
                    bar.close()
                    if exc.code is ErrorCode.UNKNOWN_SKU:
                        say.err("cli.codes.unknown_sku", sku=repr(sku), nothing=nothing)
                    else:
                        say.refused(exc)
                    return 2
    say.out("cli.codes.import.done", sku=sku, imported=report.imported, duplicates=report.duplicates,
            rejected=report.rejected)
    for line_no, reason in report.rejected_lines[:20]:
        say.out("cli.codes.import.rejected_line", line=line_no, reason=reason)
    if report.rejected > 20:
        say.out("cli.codes.import.more_rejected", count=report.rejected - 20)
    if report.rejected and not (report.imported or report.duplicates):
        return 2  # not one usable code in the file
    return 1 if report.rejected else 0


async def rekey_all(settings: Settings, new_key: bool, say: Voice) -> int:
    if new_key:
        if settings.vault.keys:
            say.err("cli.codes.rekey.keys_in_config")
            return 2
        key_file = settings.resolve_path(settings.vault.key_file)
        # Check the key file against the database first: a wrong file must not be extended and rewritten.
        await (await App.open(settings)).close()
        ring = read_key_file(key_file).with_new_key()
        write_key_file(key_file, ring, replace=True)
        say.out("cli.codes.rekey.key_added", key=ring.current, file=key_file)
    async with await App.open(settings) as app:
        bar = tqdm(unit=say.t("cli.codes.rekey.unit"), desc=say.t("cli.codes.rekey.progress"), file=sys.stderr,
                   mininterval=0.5)
        try:
            report = await rekey(app.db.uow, app.vault, app.clock, progress=bar.update,
                                 total=lambda n: setattr(bar, "total", n))
        finally:
            bar.close()
    say.out("cli.codes.rekey.done", count=report.moved, key=report.key_id)
    return 0


async def burn_file(settings: Settings, sku: str, file: str, say: Voice) -> int:
    """Codes a supplier recalled: available ones burned, buyers of sold ones reissued (or refunded)."""
    path = Path(file)
    nothing = say.t("cli.codes.nothing_burned")
    fh = open_codes_file(path, nothing, say)
    if fh is None:
        return 2
    with fh:
        async with await App.open(settings) as app:
            desk = recall_desk(app.shop, settings)
            with tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                      desc=say.t("cli.codes.burn.progress", sku=sku), file=sys.stderr, mininterval=0.5,
                      dynamic_ncols=True) as bar:
                try:
                    r = await desk.burn(sku, read_lines(fh), progress=bar.update)
                except StoreError as exc:
                    bar.close()
                    if exc.code is ErrorCode.UNKNOWN_SKU:
                        say.err("cli.codes.unknown_sku", sku=repr(sku), nothing=nothing)
                    else:
                        say.err("cli.codes.burn.wrong_kind", sku=sku, kind=exc.params.get("kind"))
                    return 2
    print(say.t("cli.codes.burn.done", sku=sku, burned=r.burned_available, reissued=r.reissued,
                refunded=r.refunded, not_found=r.not_found)
          + (say.t("cli.codes.burn.already_burned", count=r.already_burned) if r.already_burned else "")
          + (say.t("cli.codes.burn.held_swapped", count=r.held_swapped) if r.held_swapped else "")
          + (say.t("cli.codes.burn.rejected", count=r.rejected) if r.rejected else ""))
    if not r.codes:
        return 2
    return 1 if r.not_found or r.rejected else 0
