"""What every module of the merchant's commands shares: who is asking (AdminCtx) and the refusal that answers a
command typed wrong with its usage text (Usage). handlers/admin.py parses the commands and hands some on to
handlers/aftersales.py, handlers/risk_admin.py and handlers/wallet.py; they raise Usage, admin.py answers it.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.admin import Merchant


@dataclass(slots=True)
class AdminCtx:
    merchant: Merchant
    language: str


class Usage(Exception):
    """The command was typed wrong: answered with `admin.usage.<command>` (and audited as refused)."""

    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command
