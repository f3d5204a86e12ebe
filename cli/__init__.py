"""The command line behind `run.py`: one module per command group, each with `add_parser(sub, say)` (its arguments)
and `execute(settings, args, say)` (the command, on the store the composition root builds, app/).

Every message goes through locales/ (the `cli` room, cli.po) in the merchant's language, `store.default_language`
of the config given with --config. Messages printed before the settings are read (the settings' own errors, and
--help when the config cannot be read) are English; argparse's own words ("usage:", its errors) stay argparse's.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from types import ModuleType

from app.logs import configure as configure_logging
from cli import (
    audit,
    backup,
    codes,
    console,
    coupons,
    db,
    forget,
    jobs,
    report,
    reseller,
    restore,
    stock,
    telegram,
    wechat,
)
from cli import run as run_store
from cli.common import Voice
from config.settings import ConfigError, Settings, load_settings
from core.errors import VaultError
from storage.migrations import SchemaAheadError

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
# The command groups, in the order `run.py --help` lists them; no command given is `run`.
GROUPS: dict[str, ModuleType] = {"run": run_store, "db": db, "codes": codes, "audit": audit, "stock": stock,
                                 "report": report, "reseller": reseller, "telegram": telegram, "wechat": wechat,
                                 "jobs": jobs, "backup": backup, "restore": restore,
                                 "console": console, "coupons": coupons, "forget": forget}


def build_parser(say: Voice) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description=say.t("cli.description"))
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help=say.t("cli.help.config"))
    sub = p.add_subparsers(dest="command")
    for group in GROUPS.values():
        group.add_parser(sub, say)
    return p


def _settings(path: str) -> Settings | ConfigError:
    try:
        return load_settings(path)
    except ConfigError as exc:
        return exc


def _voice(settings: Settings | ConfigError) -> Voice:
    return Voice(settings.store.default_language if isinstance(settings, Settings) else "en")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The settings are read before the arguments are parsed, so that the help is in the merchant's language too; a
    # settings error waits until the arguments are known to be right (a wrong command is said first, as argparse
    # always did).
    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--config", default=str(DEFAULT_CONFIG))
    try:
        path = pre.parse_known_args(argv)[0].config
    except argparse.ArgumentError:  # `--config` without a file: the full parser says so below
        path = str(DEFAULT_CONFIG)
    settings = _settings(path)
    args = build_parser(_voice(settings)).parse_args(argv)
    if args.config != path:  # an abbreviated --conf, which only the full parser understands
        settings = _settings(args.config)
    say = _voice(settings)
    if isinstance(settings, ConfigError):
        say.err("cli.error", error=settings)
        return 2
    command = args.command or "run"
    configure_logging(settings.logging.level, terminal_demo=command == "run" and settings.demo_mode(),
                      fmt=settings.logging.format)
    try:
        return asyncio.run(GROUPS[command].execute(settings, args, say))
    except ConfigError as exc:  # found while starting (e.g. a WeChat Pay certificate file that is missing)
        say.err("cli.error", error=exc)
        return 2
    except SchemaAheadError as exc:  # database.url holds a newer release's schema: nothing was run on it
        say.err("cli.error", error=exc)
        return 2
    except VaultError as exc:
        say.err("cli.error", error=exc)
        return 3
    except KeyboardInterrupt:
        return 130
