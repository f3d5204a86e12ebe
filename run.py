#!/usr/bin/env python3
"""The store's entry point: `make run` and every command below; the commands live in cli/, the store they run
on is built by the composition root, app/.

    python run.py [--config PATH]                  run the store (the terminal demo when no channel is set)
    python run.py [--config PATH] db upgrade       apply database migrations
    python run.py [--config PATH] codes import SKU FILE
    python run.py [--config PATH] codes rekey [--new-key]
    python run.py [--config PATH] stock
    python run.py [--config PATH] telegram setup  set the bot's commands and descriptions in Telegram
    python run.py [--config PATH] wechat menu     create the WeChat custom menu from wechat.menu
    python run.py [--config PATH] jobs            the scheduled jobs: last run, result, next run
    python run.py [--config PATH] jobs run NAME   run one job now
    python run.py [--config PATH] audit export --order ID [--format json|csv] [--out FILE]
    python run.py [--config PATH] codes burn SKU FILE   codes a supplier recalled: burned, buyers reissued
    python run.py [--config PATH] report [--from D --to D | --period 7d] [--csv FILE]   sales figures
    python run.py [--config PATH] reseller ...    reseller accounts, wallets, API keys, card faces
    python run.py [--config PATH] coupons generate N --name NAME --off 10% --out FILE | create | list | disable
    python run.py [--config PATH] forget CHANNEL:ID [--yes]   erase a person's data (the books keep it anonymised)
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from cli import main as cli_main  # noqa: PLC0415 - importable once the project root is on sys.path (above)

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
