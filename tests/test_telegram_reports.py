"""/report and /export in Telegram end to end (aiogram and python-telegram-bot against the local fake Bot API, a real
SQLite store): the merchant gets the figures as text first, then each chart as a photo whose file is a real PNG of
the promised size; /export is a protected CSV document of the day's orders with no code in it; anyone else is
refused and gets no file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from PIL import Image

from tests.fake_bot_api import FakeBotAPI
from tests.telegram_harness import Shopfront
from tests.test_telegram_admin import BOSS, admin_commands, sold_order


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        return img.size


async def test_report_sends_the_text_then_three_chart_photos(api: FakeBotAPI, tmp_path: Path, library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        await shop.stock(3)
        await sold_order(shop, api.user(501), "charge-1")
        boss = api.user(BOSS, "Boss")
        mark = api.mark()
        await shop.send(api.message_update(boss, "/report"))
        await api.wait_for("sendPhoto", lambda c: "Top products" in (c.params.get("caption") or ""), since=mark)
        sent = [c for c in api.calls_since(mark) if c.method in ("sendMessage", "sendPhoto")
                and c.params.get("chat_id") == BOSS]
        assert [c.method for c in sent] == ["sendMessage", "sendPhoto", "sendPhoto", "sendPhoto"]  # text first
        text = sent[0].params["text"]
        assert text.startswith("<b>Report ") and "Orders paid: 1" in text and "Revenue: ⭐70" in text
        assert "Funnel: 0 product views → 1 invoices → 1 paid → 1 delivered" in text
        photos = sent[1:]
        assert [c.params["caption"] for c in photos] == ["<b>Daily revenue (XTR)</b>", "<b>Funnel</b>",
                                                        "<b>Top products (units sold)</b>"]
        for call in photos:
            name, data = call.files["photo"]
            assert name.endswith(".png") and png_size(data) == (800, 450) and 5_000 < len(data) < 500_000
            assert call.params.get("protect_content") is True
        assert {"command": "report", "period": text.split("Report ")[1].split(" ")[0]} in await admin_commands(shop)


async def test_export_is_a_protected_csv_document_and_only_for_merchants(api: FakeBotAPI, tmp_path: Path,
                                                                          library: str) -> None:
    async with Shopfront(api, tmp_path, library=library) as shop:
        codes = await shop.stock(3)
        order_id, code = await sold_order(shop, api.user(501), "charge-1")
        boss = api.user(BOSS, "Boss")
        mark = api.mark()
        await shop.send(api.message_update(boss, "/export today"))
        doc = await api.wait_for("sendDocument", lambda c: c.params.get("chat_id") == BOSS, since=mark)
        assert doc.params.get("protect_content") is True
        assert "1 orders paid" in doc.params["caption"]
        name, data = doc.files["document"]
        assert name.startswith("orders_") and name.endswith(".csv")
        text = data.decode("utf-8-sig")
        rows = list(csv.reader(io.StringIO(text)))
        assert len(rows) == 2 and rows[1][0] == order_id and rows[1][5:9] == ["telegram", "telegram:501", "GAME", "1"]
        assert rows[1][10:] == ["70", "XTR"]  # paid in Stars: the order says so
        assert code not in text and not any(c in text for c in codes)
        async with shop.app.db.uow() as uow:
            [entry] = await uow.audit.latest("export", f"telegram:{BOSS}", limit=5)
        assert entry.detail["rows"] == 1 and entry.channel == "telegram"
        ann = api.user(501)
        mark = api.mark()
        await shop.send(api.message_update(ann, "/export"))
        refusal = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 501, since=mark)
        assert "not allowed" in refusal.params["text"].lower()
        assert not api.calls_since(mark, "sendDocument")
