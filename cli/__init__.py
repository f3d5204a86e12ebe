"""The command line behind `run.py`: one module per command group, each with `add_parser(sub)` (its arguments)
and `execute(settings, args)` (the command, on the store the composition root builds, app/)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from types import ModuleType

from app.logs import configure as configure_logging
from cli import audit, codes, db, jobs, reseller, stock, wechat
from cli import run as run_store
from core.errors import VaultError
from core.settings import ConfigError, load_settings

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config.yaml"
# The command groups, in the order `run.py --help` lists them; no command given is `run`.
GROUPS: dict[str, ModuleType] = {"run": run_store, "db": db, "codes": codes, "audit": audit, "stock": stock,
                                 "reseller": reseller, "wechat": wechat, "jobs": jobs}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run.py", description="Card store: chat-bot shop for virtual goods.")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="settings file (default: config.yaml)")
    sub = p.add_subparsers(dest="command")
    for group in GROUPS.values():
        group.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = args.command or "run"
    configure_logging(settings.logging.level, terminal_demo=command == "run" and settings.demo_mode())
    try:
        return asyncio.run(GROUPS[command].execute(settings, args))
    except ConfigError as exc:  # found while starting (e.g. a WeChat Pay certificate file that is missing)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
