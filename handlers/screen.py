"""What a handler returns; each adapter renders it its own way (buttons, numbered lines, a terminal)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Action:
    id: str  # stable and short (Telegram callback_data is at most 64 bytes): "p:42", "buy:42:3"
    label: str
    copy_text: str | None = field(default=None, repr=False)  # a copy button (may carry a code); never an action
    web_app: str | None = None  # Telegram: a button opening this https URL as a Mini App (never an action); other
    # channels leave it out (flat_actions)


@dataclass(slots=True)
class Screen:
    title: str
    body: str = ""
    actions: list[list[Action]] = field(default_factory=list)  # rows of actions
    secrets: list[str] = field(default_factory=list)  # codes: rendered hidden/protected, never logged
    footer: str = ""  # shown after the secrets
    image: bytes | None = None
    file: tuple[str, bytes] | None = None
    invoice: dict[str, Any] | None = None  # order to be paid: adapters with a payment UI render it
    error: str | None = None  # the error code when this screen reports a refusal
    ask_contact: str | None = None  # Telegram: a "share my phone" reply keyboard with this label
    remove_keyboard: bool = False  # Telegram: take that keyboard away again

    @property
    def secret(self) -> bool:
        return bool(self.secrets)

    def flat_actions(self) -> list[Action]:
        """The actions a buyer can choose (numbered channels list these): not copy buttons, not Mini App buttons."""
        return [a for row in self.actions for a in row if a.copy_text is None and a.web_app is None]

    def __repr__(self) -> str:  # never print codes by accident
        return f"Screen(title={self.title!r}, actions={len(self.flat_actions())}, secrets={len(self.secrets)})"
