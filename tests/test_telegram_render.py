"""How a Screen looks in Telegram: codes hidden and protected, long code lists as a protected file."""
from __future__ import annotations

from bots.telegram.common import render
from handlers.screen import Action, Screen


def test_given_a_few_codes_then_they_are_spoilers_in_a_protected_message_with_copy_buttons() -> None:
    [msg] = render(Screen("Delivered <now>", "Card & more", actions=[[Action("menu", "Menu")]],
                          secrets=["A<1>", "B-2"], footer="Keep it"))
    assert msg.protect and msg.document is None
    assert "<b>Delivered &lt;now&gt;</b>" in msg.text and "Card &amp; more" in msg.text
    assert "<tg-spoiler><code>A&lt;1&gt;</code></tg-spoiler>" in msg.text
    assert [b.copy_text for row in msg.buttons for b in row if b.copy_text] == ["A<1>", "B-2"]
    assert [b.callback_data for row in msg.buttons for b in row if b.callback_data] == ["menu"]


def test_given_codes_too_long_for_a_message_then_they_go_out_as_a_protected_txt_file() -> None:
    codes = [f"CARD-{i:05d}-{'X' * 40}" for i in range(200)]
    [msg] = render(Screen("Delivered", "Bulk", secrets=codes))
    assert msg.protect and msg.document is not None
    name, data = msg.document
    assert name == "codes.txt" and data.decode().splitlines() == codes
    assert "CARD-" not in msg.text and len(msg.text) <= 1024


def test_given_no_codes_then_the_message_is_not_protected() -> None:
    [msg] = render(Screen("Menu", actions=[[Action("cat", "Catalogue")]]))
    assert not msg.protect and msg.buttons[0][0].callback_data == "cat"
