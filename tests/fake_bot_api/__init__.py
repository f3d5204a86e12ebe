"""A local fake of the Telegram Bot API for end-to-end tests (aiohttp.web, real HTTP on 127.0.0.1).

Both client libraries can poll it for real:

    async with FakeBotAPI(token="123:ABC") as api:
        # aiogram
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.base)))
        # python-telegram-bot
        app = (ApplicationBuilder().token(api.token)
               .base_url(f"{api.base}/bot").base_file_url(f"{api.base}/file/bot").build())
        api.push_update(api.message_update(api.user(42), "/start"))
        call = await api.wait_for("sendMessage", lambda c: c.params["chat_id"] == 42)

The parts: wire.py (what the clients send and what they get back: `Call`, `ApiError`), state.py (what the fake
holds: queue, chats, messages, files; waiting on a change), updates.py (the updates a test makes users send),
methods.py (the Bot API methods of messages, files, commands, polling and webhooks), stars.py (invoices,
pre-checkout and payments in Stars, refunds, the Star balance), delivery.py (`api.deliver_to(urls, secret)`: pushed
updates are POSTed to webhook URLs in turn, re-sent until answered 200, optionally in two copies at once; and
`api.send_rates()`, the most messages received in any one second, overall and per chat), server.py (`FakeBotAPI`:
the HTTP server that routes each request to its method, records it, and lets a test wait for it).

Like the real server it also enforces a few rules that bite in production: callback_data of 1-64 bytes,
text <= 4096 / caption <= 1024 chars, "message is not modified" on a no-op edit, no getUpdates while a
webhook is set, Stars invoices with exactly one price and no provider_token, refunds only of known charges,
commands of [a-z0-9_]{1,32} with 1-256 char descriptions, descriptions <= 512 / short ones <= 120 (UTF-16 units),
two-letter language codes, invoice links (createInvoiceLink: XTR with exactly one price and no provider_token,
payload 1-128 bytes, title 1-32, description 1-255; `api.invoice_of(link)`, and `api.pay_link_updates(user, link)`
builds the pre_checkout_query and successful_payment of paying one), web_app buttons and menu buttons on https
addresses only (`api.menu_buttons`). `api.my_commands(lang, chat_id)`, `api.descriptions`,
`api.short_descriptions`: what the bot set.
Not modelled: parse_mode (text is stored as sent, tags included), media groups, inline mode, chat members.
Everything runs on the test's event loop: call the sync helpers from that loop, not from other threads.

Client quirks: aiogram's `bot.id` comes from the token prefix, getMe says `bot_id` (777): use a token like
"777:ABC" where that matters. Under `-W error`, PTB 22's RetryAfter() itself emits PTBDeprecationWarning
(int retry_after) unless PTB_TIMEDELTA=1 is set, so a PTB 429 test sees that warning instead of RetryAfter.
aiogram's Dispatcher runs handlers as tasks by default; with `handle_as_tasks=False`, `wait_confirmed(update)`
means the handler has finished, which makes stopping polling deterministic.
"""
from tests.fake_bot_api.server import FakeBotAPI
from tests.fake_bot_api.wire import ApiError, Call

__all__ = ["ApiError", "Call", "FakeBotAPI"]
