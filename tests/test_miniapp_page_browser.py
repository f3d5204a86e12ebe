"""The shop page in a real browser (Chromium via Playwright) against the real store: the store's Mini App API and
page on its HTTP server, its aiogram bot polling the fake Bot API. The Telegram client is not there: a test's own
`window.Telegram.WebApp` (tests/miniapp_stub.js) carries initData signed with the test bot's token and records what
the page asks of it (openInvoice, the Main and Back buttons); the page's vendored bridge (static/tg.js) steps aside
then, and is tested on its own against a recording `TelegramWebviewProxy` as a Telegram app provides it."""
from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Page, expect

from core.supply import import_codes
from core.webapp_auth import sign_init_data
from tests.telegram_harness import TOKEN
from tests.test_miniapp_orders import mini_app

STUB = (Path(__file__).parent / "miniapp_stub.js").read_text()
BUYER = 501
# after the harness's own GAME ("Game card", ⭐70, at most 3; tests/telegram_harness.py) and NOSTARS (no Stars price)
CATALOG: list[dict[str, Any]] = [
    {"sku": "STREAM", "title": {"en": "Streaming month", "zh_CN": "视频月卡"}, "price": 3000, "stars": 200,
     "category": {"en": "Video", "zh_CN": "视频"}, "description": {"en": "A month of films", "zh_CN": "一个月的电影"}},
    {"sku": "LIMITED", "title": {"en": "Gift card", "zh_CN": "礼品卡"}, "price": 200, "stars": 10, "max_qty": 5,
     "rules": {"per_buyer": 1}, "category": {"en": "Gifts", "zh_CN": "礼品"}},
    {"sku": "LONG", "title": "An unusually long product title without many breaks: Supercalifragilisticexpialidocious"
                             "SupercalifragilisticexpialidociousSupercalifragilisticexpialidocious",
     "price": 100, "stars": 5, "category": {"en": "Video", "zh_CN": "视频"}},
]


def user(language: str = "en", uid: int = BUYER) -> dict[str, Any]:
    return {"id": uid, "first_name": "Ann", "language_code": language}


def init_data(u: dict[str, Any], *, token: str = TOKEN, age: float = 0) -> str:
    fields = {"auth_date": str(int(time.time() - age)), "query_id": "AAHq", "user": json.dumps(u)}
    return sign_init_data(fields, token)


async def open_page(page: Page, base: str, u: dict[str, Any], *, init: str | None = None,
                    theme: dict[str, str] | None = None) -> None:
    """The Mini App as Telegram opens it: the test's WebApp stand-in first, then /app/."""
    data = {"initData": init if init is not None else init_data(u), "user": u, "themeParams": theme or {}}
    await page.add_init_script(script=STUB.replace("__INIT__", json.dumps(data)))
    await page.goto(base + "/")


def page_url(shop: Any) -> str:
    return shop.base.removesuffix("/api")


def card(page: Page, title: str) -> Any:
    return page.locator("button.card", has_text=title)


async def until(page: Page, js: str, timeout: float = 10) -> None:
    """Wait for a condition on the page (Playwright's wait_for_function evaluates strings, which the page's CSP
    rightly refuses)."""
    deadline = time.monotonic() + timeout
    while not await page.evaluate(js):
        assert time.monotonic() < deadline, f"not within {timeout}s: {js}"
        await asyncio.sleep(0.05)


async def main_button(page: Page) -> dict[str, Any]:
    return await page.evaluate("window.__tg.main")


async def test_browse_search_buy_pay_and_see_the_codes(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        codes = await shop.shop.stock(3)  # GAME: 3 left, a low stock
        base = page_url(shop)
        origin = base.removesuffix("/app")
        requested: list[str] = []
        page.on("request", lambda r: requested.append(r.url))
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await open_page(page, base, user())

        # the catalogue: a grid of every product on sale, its price in Stars and its availability
        await expect(card(page, "Game card")).to_contain_text("⭐70")
        await expect(card(page, "Game card")).to_contain_text("3 left")
        await expect(card(page, "Streaming month")).to_contain_text("Sold out")
        await expect(card(page, "Web only")).to_contain_text("Not sold here")  # no Stars price
        chips = page.get_by_role("navigation", name="Categories").get_by_role("button")
        await expect(chips).to_have_text(["All", "Video", "Gifts"])  # uncategorised products are under All
        assert await page.evaluate("window.__tg.back.visible") is False  # the first screen has no Back
        assert (await main_button(page))["visible"] is False

        # a category chip shows that category only; "All" shows everything again
        await page.get_by_role("button", name="Video", exact=True).click()
        await expect(card(page, "Streaming month")).to_be_visible()
        await expect(card(page, "Game card")).to_have_count(0)
        await expect(page.get_by_role("button", name="Video", exact=True)).to_have_attribute("aria-pressed", "true")
        await page.get_by_role("button", name="All", exact=True).click()
        await expect(card(page, "Game card")).to_be_visible()

        # search, by a word of the title
        await page.get_by_label("Search the shop").fill("films")  # a word of a description
        await page.get_by_role("button", name="Search", exact=True).click()
        await expect(page.get_by_role("heading", name="Results for “films”")).to_be_visible()
        await expect(page.locator("button.card")).to_have_count(1)
        await expect(card(page, "Streaming month")).to_be_visible()
        await page.get_by_label("Search the shop").fill("nothing-like-this")
        await page.get_by_role("button", name="Search", exact=True).click()
        await expect(page.get_by_text("Nothing matches “nothing-like-this”.")).to_be_visible()
        await page.get_by_label("Search the shop").fill("card")
        await page.get_by_role("button", name="Search", exact=True).click()
        await expect(page.locator("button.card")).to_have_count(2)  # Game card, Gift card

        # the product: description, availability, quantity within its bounds, the MainButton with the total
        await card(page, "Game card").click()
        await expect(page.get_by_role("heading", name="Game card")).to_be_visible()
        await expect(page.locator(".product .stock")).to_have_text("3 left")
        assert await page.evaluate("window.__tg.back.visible") is True
        assert await main_button(page) == {"visible": True, "active": True, "text": "Buy · ⭐70"}
        less, more = page.get_by_role("button", name="One less"), page.get_by_role("button", name="One more")
        await expect(less).to_be_disabled()  # min_qty 1
        await more.click()
        await more.click()
        await expect(page.locator("#qty")).to_have_text("3")
        await expect(more).to_be_disabled()  # max_qty 3 (and 3 left)
        await less.click()
        await expect(page.locator("#total")).to_have_text("Total: ⭐140")
        assert (await main_button(page))["text"] == "Buy · ⭐140"

        # Buy: the order is held and the page opens the invoice link the fake Bot API issued
        await page.evaluate("window.__tg.pressMain()")
        await until(page, "window.__tg.invoices.length === 1")
        link = (await page.evaluate("window.__tg.invoices"))[0]
        invoice = shop.api.invoice_of(link)
        assert (invoice["currency"], invoice["total_amount"]) == ("XTR", 140)

        # the buyer pays in Telegram: the bot's own pre-checkout and successful payment
        mark = shop.api.mark()
        tg_user = shop.api.user(BUYER, language_code="en")
        pre, paid = shop.api.pay_link_updates(tg_user, link)
        await shop.shop.send(pre)
        await shop.shop.send(paid)
        await page.evaluate("window.__tg.closeInvoice('paid')")
        await expect(page.get_by_text("Delivered — the codes are in your chat.")).to_be_visible(timeout=10_000)

        # the chat got the codes; "Show codes here" shows the same ones, copyable
        sent = await shop.api.wait_for("sendMessage", lambda c: c.params["chat_id"] == BUYER and any(
            code in c.params["text"] for code in codes), since=mark)
        in_chat = sorted(c for c in codes if c in sent.params["text"])
        assert len(in_chat) == 2
        await page.get_by_role("button", name="Show codes here").click()
        shown = page.locator("#codes code")
        await expect(shown).to_have_count(2)
        assert sorted(await shown.all_text_contents()) == in_chat
        await expect(page.get_by_role("button", name=f"Copy {in_chat[0]}")).to_be_visible()

        # Back leads to the product again, whose stock now says 1 left
        await page.evaluate("window.__tg.pressBack()")
        await expect(page.locator(".product .stock")).to_have_text("1 left")

        assert all(url.startswith(origin + "/") for url in requested), [u for u in requested
                                                                       if not u.startswith(origin)]
        assert not problems, problems  # no script error, no refused resource (CSP)


async def test_a_chinese_buyer_sees_the_shop_in_chinese(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        await shop.shop.stock(2)
        await open_page(page, page_url(shop), user("zh-hans"))
        await expect(card(page, "游戏点卡")).to_contain_text("仅剩 2 件")
        await expect(card(page, "视频月卡")).to_contain_text("已售罄")
        await expect(page.get_by_role("button", name="全部")).to_be_visible()
        assert await page.evaluate("document.documentElement.lang") == "zh-CN"
        await card(page, "视频月卡").click()
        await expect(page.get_by_text("一个月的电影")).to_be_visible()  # sold out: no quantity, no Buy
        assert (await main_button(page))["visible"] is False
        await page.evaluate("window.__tg.pressBack()")
        await card(page, "游戏点卡").click()
        await expect(page.get_by_text("数量")).to_be_visible()
        assert (await main_button(page))["text"] == "购买 · ⭐70"


async def test_the_page_fits_a_360_pixel_phone(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        await shop.shop.stock(1)
        await page.set_viewport_size({"width": 360, "height": 740})
        await open_page(page, page_url(shop), user())
        await expect(card(page, "An unusually long")).to_be_visible()
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        assert await page.evaluate(overflow) <= 0
        await card(page, "An unusually long").focus()  # the keyboard reaches a card, Enter opens it
        await page.keyboard.press("Enter")
        await expect(page.locator(".product h1")).to_be_visible()
        await expect(page.locator(".product img, .product .pic")).to_have_count(1)
        assert await page.evaluate(overflow) <= 0


async def test_forged_other_bots_or_stale_init_data_shows_open_the_shop_again(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        good = init_data(user())
        forged = good.replace(str(BUYER), "502")  # someone else's id under the first one's signature
        await open_page(page, page_url(shop), user(), init=forged)
        alert = page.locator('[data-state="unauthorized"]')
        await expect(alert).to_have_text(re.compile("open the shop again from the bot"))
        await expect(page.locator("button.card")).to_have_count(0)

        other_bot = init_data(user("zh-hans"), token="999:another-bot")  # the words follow the app's language
        page2 = await page.context.new_page()
        await open_page(page2, page_url(shop), user("zh-hans"), init=other_bot)
        await expect(page2.locator('[data-state="unauthorized"]')).to_contain_text("重新打开商店")

        stale = init_data(user(), age=3601)  # older than telegram.webapp.max_age_seconds
        page3 = await page.context.new_page()
        await open_page(page3, page_url(shop), user(), init=stale)
        await expect(page3.locator('[data-state="unauthorized"]')).to_contain_text("open the shop again")


async def test_over_the_rules_limit_the_page_shows_the_rules_words(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        app = shop.shop.app
        await import_codes(app.db.uow, app.vault, app.clock, "LIMITED", [b"GIFT-1\n", b"GIFT-2\n"])
        await open_page(page, page_url(shop), user())
        await card(page, "Gift card").click()
        await page.get_by_role("button", name="One more").click()
        await expect(page.locator("#qty")).to_have_text("2")
        await page.evaluate("window.__tg.pressMain()")
        alert = page.get_by_role("alert")
        await expect(alert).to_be_visible()
        status, body = await shop.order(await shop.pid("LIMITED"), 2, BUYER)  # what the API says to the same
        assert status == 422 and body["error"]["code"] == "rule_refused"
        await expect(alert).to_have_text(body["error"]["message"])
        assert await page.evaluate("window.__tg.invoices") == []  # nothing to pay
        assert await shop.held_by(BUYER) == []


async def test_a_risk_question_is_asked_and_answered_in_the_page(page: Page, tmp_path: Path) -> None:
    async with mini_app(tmp_path, extra={"catalog": CATALOG, "risk": {"new_account_points": 30}}) as shop:
        await shop.shop.stock(2)
        await open_page(page, page_url(shop), user())
        await card(page, "Game card").click()
        await expect(page.get_by_role("heading", name="Game card")).to_be_visible()  # loaded: the MainButton is set
        await page.evaluate("window.__tg.pressMain()")
        question = page.locator("#question")
        await expect(question).to_contain_text(re.compile(r"\d \+ \d"))  # the server's words, with its sum
        a, b = (int(x) for x in re.findall(r"(\d) \+ (\d)", await question.inner_text())[0])
        choices = page.get_by_role("group").get_by_role("button")
        await expect(choices).to_have_count(4)
        wrong = next(t for t in await choices.all_text_contents() if t != str(a + b))
        await page.get_by_role("button", name=wrong, exact=True).click()  # a wrong pick: the product, and why
        await expect(page.get_by_role("alert")).to_have_text("That was not the right answer. Please try again.")
        assert await page.evaluate("window.__tg.invoices") == []

        await page.evaluate("window.__tg.pressMain()")  # a new question, answered in the field
        await expect(question).to_contain_text(re.compile(r"\d \+ \d"))
        a, b = (int(x) for x in re.findall(r"(\d) \+ (\d)", await question.inner_text())[0])
        await page.get_by_label("Your answer").fill(str(a + b))
        await page.get_by_role("button", name="Continue").click()
        await until(page, "window.__tg.invoices.length === 1")
        link = (await page.evaluate("window.__tg.invoices"))[0]
        assert shop.api.invoice_of(link)["total_amount"] == 70


async def test_the_vendored_bridge_speaks_telegrams_protocol(page: Page, tmp_path: Path) -> None:
    """No Telegram.WebApp given: the page's own tg.js reads the launch fragment and talks to a recording
    TelegramWebviewProxy (what the Telegram apps provide) in Telegram's documented events."""
    async with mini_app(tmp_path, extra={"catalog": CATALOG}) as shop:
        await shop.shop.stock(2)
        await page.add_init_script(script="""
            window.__posted = [];
            window.TelegramWebviewProxy = { postEvent(type, data) { window.__posted.push([type, JSON.parse(data)]); } };
        """)
        theme = {"bg_color": "#112233", "text_color": "#eeeeee", "button_color": "#ff8800",
                 "button_text_color": "#000000"}
        fragment = urlencode({"tgWebAppData": init_data(user()), "tgWebAppVersion": "8.0",
                              "tgWebAppPlatform": "android", "tgWebAppThemeParams": json.dumps(theme)})
        await page.goto(page_url(shop) + "/#" + fragment)
        await expect(card(page, "Game card")).to_be_visible()  # the API took the fragment's initData

        async def posted(kind: str) -> list[Any]:
            return [data for name, data in await page.evaluate("window.__posted") if name == kind]

        async def receive(kind: str, data: Any = None) -> None:
            await page.evaluate("([k, d]) => window.Telegram.WebView.receiveEvent(k, d)", [kind, data])

        names = [name for name, _ in await page.evaluate("window.__posted")]
        assert {"web_app_ready", "web_app_expand", "web_app_request_theme"} <= set(names)
        background = "getComputedStyle(document.body).backgroundColor"
        assert await page.evaluate(background) == "rgb(17, 34, 51)"  # the theme, and its dark scheme
        assert await page.evaluate("document.documentElement.dataset.scheme") == "dark"

        await card(page, "Game card").click()
        await expect(page.get_by_role("heading", name="Game card")).to_be_visible()
        assert (await posted("web_app_setup_back_button"))[-1] == {"is_visible": True}
        assert (await posted("web_app_setup_main_button"))[-1] == {
            "is_visible": True, "is_active": True, "is_progress_visible": False, "text": "Buy · ⭐70",
            "color": "#ff8800", "text_color": "#000000"}

        await receive("main_button_pressed")
        await until(page, "window.__posted.some(([n]) => n === 'web_app_open_invoice')")
        [opened] = await posted("web_app_open_invoice")
        invoice = shop.api.invoice_of("https://t.me/$" + opened["slug"])  # the slug of the link the bot made
        assert invoice["total_amount"] == 70
        await receive("invoice_closed", {"slug": opened["slug"], "status": "cancelled"})
        await expect(page.get_by_role("alert")).to_have_text("The payment was cancelled. Nothing was charged.")
        await expect(page.get_by_role("heading", name="Game card")).to_be_visible()
        for _ in range(50):  # the page let go of the held order
            status, body = await shop.call("GET", f"/orders/{invoice['payload']}", BUYER)
            if body["order"]["status"] == "cancelled":
                break
            await asyncio.sleep(0.1)
        assert body["order"]["status"] == "cancelled"

        await receive("theme_changed", {"theme_params": {"bg_color": "#ffffff", "text_color": "#000000"}})
        assert await page.evaluate(background) == "rgb(255, 255, 255)"
        assert await page.evaluate("document.documentElement.dataset.scheme") == "light"

        await receive("back_button_pressed")
        await expect(card(page, "Game card")).to_be_visible()
        assert (await posted("web_app_setup_back_button"))[-1] == {"is_visible": False}
        assert (await posted("web_app_setup_main_button"))[-1] == {"is_visible": False}
