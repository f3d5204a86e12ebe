"""The command line behind `run.py`: one module per command group, each with `add_parser(sub)` (its arguments)
and `execute(settings, args)` (the command, on the store the composition root builds, app/)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from types import ModuleType

from app.logs import quiet_libraries
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
    logging.basicConfig(level=settings.logging.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    quiet_libraries()
    try:
        return asyncio.run(GROUPS[args.command or "run"].execute(settings, args))
    except ConfigError as exc:  # found while starting (e.g. a WeChat Pay certificate file that is missing)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except VaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
