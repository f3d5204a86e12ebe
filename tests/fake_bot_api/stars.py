"""Payments in Telegram Stars: invoices (one price, no provider_token), the pre-checkout query and the
successful payment a test makes a user send, refunds of known charges only (once), and the bot's Star balance
history (getStarTransactions) that reconciliation pages through.
"""
from __future__ import annotations

import time

from tests.fake_bot_api.state import BotState
from tests.fake_bot_api.wire import ApiError


class StarsPayments(BotState):
    """The payment updates and the Bot API methods of invoices, refunds and Star transactions."""

    # ------------------------------------------------------------------ updates
    def pre_checkout_update(self, user: dict, payload: str, total_amount: int, currency: str = "XTR",
                            id: str | None = None) -> dict:
        return {"pre_checkout_query": {"id": id or f"pcq{next(self._ids)}", "from": user, "currency": currency,
                                       "total_amount": total_amount, "invoice_payload": payload}}

    def successful_payment_update(self, user: dict, payload: str, total_amount: int, charge_id: str,
                                  currency: str = "XTR") -> dict:
        """The service message announcing a payment; registers `charge_id` for refundStarPayment."""
        self._charges[charge_id] = {"user_id": user["id"], "refunded": False, "amount": total_amount, "user": user}
        if currency == "XTR":  # Stars reach the bot's balance: an incoming transaction from the user
            self.star_transactions.append({
                "id": charge_id, "amount": total_amount, "date": int(time.time()),
                "source": {"type": "user", "transaction_type": "invoice_payment", "user": user,
                           "invoice_payload": payload}})
        payment = {"currency": currency, "total_amount": total_amount, "invoice_payload": payload,
                   "telegram_payment_charge_id": charge_id, "provider_payment_charge_id": ""}
        return {"message": self._message(user["id"], user, successful_payment=payment)}

    # ------------------------------------------------------------------ Bot API methods
    def _m_sendInvoice(self, p: dict, files: dict) -> dict:
        prices = p.get("prices") or []
        if p.get("currency") == "XTR" and (len(prices) != 1 or p.get("provider_token")):
            raise ApiError(400, "Bad Request: Stars invoices need exactly one price and no provider_token")
        if not 1 <= len((p.get("payload") or "").encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload must be 1-128 bytes")
        markup = p.get("reply_markup")
        if isinstance(markup, dict) and markup.get("inline_keyboard"):
            first = (markup["inline_keyboard"][0] or [{}])[0]
            if first.get("pay") is not True:
                raise ApiError(400, "Bad Request: the first button of an invoice must be a Pay button")
        invoice = {"title": p.get("title", ""), "description": p.get("description", ""),
                   "start_parameter": p.get("start_parameter", ""), "currency": p.get("currency", ""),
                   "total_amount": sum(int(price["amount"]) for price in prices)}
        return self._bot_message(p, invoice=invoice)

    def _m_createInvoiceLink(self, p: dict, files: dict) -> str:
        """A Stars invoice as a link https://t.me/$<slug>, remembered by its slug (`pay_link_updates` pays it)."""
        prices = p.get("prices") or []
        if p.get("currency") != "XTR":
            raise ApiError(400, "Bad Request: CURRENCY_INVALID (the fake issues Stars invoice links only)")
        if len(prices) != 1 or p.get("provider_token"):
            raise ApiError(400, "Bad Request: Stars invoices need exactly one price and no provider_token")
        if not 1 <= len((p.get("payload") or "").encode()) <= 128:
            raise ApiError(400, "Bad Request: invoice payload must be 1-128 bytes")
        if not 1 <= len(p.get("title") or "") <= 32:
            raise ApiError(400, "Bad Request: invoice title must be 1-32 characters")
        if not 1 <= len(p.get("description") or "") <= 255:
            raise ApiError(400, "Bad Request: invoice description must be 1-255 characters")
        amount = int(prices[0]["amount"])
        if amount < 1:
            raise ApiError(400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
        slug = f"inv{next(self._ids)}x{len(self.invoice_links)}"
        self.invoice_links[slug] = {"title": p["title"], "description": p["description"], "payload": p["payload"],
                                    "currency": "XTR", "total_amount": amount, "label": prices[0].get("label")}
        return f"https://t.me/${slug}"

    def invoice_of(self, link: str) -> dict:
        """The invoice a link of createInvoiceLink stands for (KeyError: not one this fake issued)."""
        return self.invoice_links[link.rsplit("$", 1)[-1]]

    def pay_link_updates(self, user: dict, link: str, charge_id: str | None = None) -> tuple[dict, dict]:
        """What Telegram sends the bot when `user` pays an invoice link in the app: the pre_checkout_query, then
        (once the bot said ok) the successful_payment. Push the first, wait for answerPreCheckoutQuery, then the
        second."""
        invoice = self.invoice_of(link)
        pre = self.pre_checkout_update(user, invoice["payload"], invoice["total_amount"], invoice["currency"])
        paid = self.successful_payment_update(user, invoice["payload"], invoice["total_amount"],
                                              charge_id or f"link-charge-{next(self._ids)}", invoice["currency"])
        return pre, paid

    def _m_answerPreCheckoutQuery(self, p: dict, files: dict) -> bool:
        return True

    def _m_refundStarPayment(self, p: dict, files: dict) -> bool:
        charge = self._charges.get(p.get("telegram_payment_charge_id", ""))
        if charge is None or charge["user_id"] != p.get("user_id"):
            raise ApiError(400, "Bad Request: CHARGE_NOT_FOUND")
        if charge["refunded"]:
            raise ApiError(400, "Bad Request: CHARGE_ALREADY_REFUNDED")
        charge["refunded"] = True
        if any(t["id"] == p["telegram_payment_charge_id"] for t in self.star_transactions):
            self.star_transactions.append({
                "id": p["telegram_payment_charge_id"], "amount": charge["amount"], "date": int(time.time()),
                "receiver": {"type": "user", "transaction_type": "invoice_payment", "user": charge["user"]}})
        return True

    def _m_getStarTransactions(self, p: dict, files: dict) -> dict:
        """Telegram's order (oldest first); offset = how many to skip; 1 <= limit <= 100 (default 100)."""
        offset, limit = int(p.get("offset") or 0), int(p.get("limit") or 100)
        if offset < 0 or not 1 <= limit <= 100:
            raise ApiError(400, "Bad Request: invalid offset or limit")
        return {"transactions": self.star_transactions[offset:offset + limit]}
