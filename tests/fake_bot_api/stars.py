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
