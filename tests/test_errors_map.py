"""One error vocabulary: every refusal of the core (a core.errors.Refused) becomes its message in one place
(handlers/errors.py), with its parameters written the way the reader's language writes them; the B2B API answers
with its own stable codes. (That every refusal has a message in every language: tests/test_locales_and_layers.py.)"""
from __future__ import annotations

import pytest

from bots.b2b_api import ERRORS
from core.admin import AdminCode, AdminError
from core.errors import ErrorCode, Refused, StoreError
from core.groups import GroupCode, GroupError
from core.payments import Refusal
from core.resellers import ResellerCode, ResellerError
from handlers import errors
from locales import Translator

TR = Translator(("en", "zh_CN"))


def test_a_store_error_is_a_refusal_raised_as_before() -> None:
    with pytest.raises(Refused) as err:
        raise StoreError(ErrorCode.SOLD_OUT, available=2)
    assert isinstance(err.value, StoreError) and err.value.code is ErrorCode.SOLD_OUT
    assert err.value.params == {"available": 2} and str(err.value) == "sold_out (available=2)"
    assert StoreError("hold_limit", limit=3).code is ErrorCode.HOLD_LIMIT  # the value names the member too
    with pytest.raises(ValueError):
        StoreError("no_such_code")  # a code outside the enum fails where it is raised


@pytest.mark.parametrize(("exc", "key"), [
    (StoreError(ErrorCode.SOLD_OUT, available=0), "error.sold_out"),
    (StoreError(ErrorCode.RULE_REFUSED, rule="per_day", limit=1), "rules.refused.per_day"),
    (StoreError(ErrorCode.RULE_REFUSED), "error.rule_refused"),  # no rule named: the general words
    (GroupError(GroupCode.RULE_REFUSED, rule="sale_ended"), "rules.refused.sale_ended"),
    (GroupError(GroupCode.UNKNOWN_QUOTE), "groups.error.unknown_quote"),
    (ResellerError(ResellerCode.UNKNOWN_RESELLER, reseller=9), "reseller.error.unknown_reseller"),
    (AdminError(AdminCode.TICKET_CLOSED, ticket="T1", state="rejected"), "admin.error.ticket_closed"),
])
def test_every_refusal_has_one_message_key(exc: Refused, key: str) -> None:
    assert errors.message_of(exc).key == key


def test_parameters_are_written_the_way_the_readers_language_writes_them() -> None:
    funds = GroupError(GroupCode.INSUFFICIENT_FUNDS, amount=12_000, available=5_050, currency="CNY")
    assert errors.text(TR, "en", funds) == "The wallet cannot pay CN¥120.00: CN¥50.50 available (balance and credit)."
    assert "¥120.00" in errors.text(TR, "zh_CN", funds) and "CN¥" not in errors.text(TR, "zh_CN", funds)
    paid = AdminError(AdminCode.ALREADY_REFUNDED, order="O1", status="refunded")
    assert errors.text(TR, "zh_CN", paid) == TR.t("zh_CN", "admin.error.already_refunded", order="O1",
                                                  status=TR.t("zh_CN", "status.refunded"))
    closed = AdminError(AdminCode.TICKET_CLOSED, ticket="T1", state="rejected")
    assert errors.text(TR, "en", closed) == "Ticket T1 was already answered: " + TR.t(
        "en", "aftersales.ticket_status.rejected") + "."
    assert closed.params["state"] == "rejected"  # the refusal itself keeps its code (the audit records it)
    screen = errors.screen(TR, "en", ResellerError(ResellerCode.BAD_AMOUNT, amount=0))
    assert (screen.title, screen.error) == ("The amount must be more than 0.", "bad_amount")
    assert errors.words(TR, "en", Refusal.EXPIRED) == "The hold on this order lapsed. Please order again."


def test_the_b2b_api_names_the_same_refusals_it_always_named_and_every_one_has_a_status() -> None:
    assert {c for codes in errors.API_CODES.values() for c in codes} <= set(ERRORS)
    # A reseller refusal the API knows passes through with its own code; every other is bad_request.
    assert errors.API_CODES[ResellerCode] == {c for c in ResellerCode if c.value in ERRORS}
    assert errors.API_CODES[ErrorCode] == {
        ErrorCode.UNKNOWN_SKU, ErrorCode.NOT_FOUND, ErrorCode.BAD_QUANTITY, ErrorCode.KIND_NOT_SUPPORTED,
        ErrorCode.PRODUCT_UNAVAILABLE, ErrorCode.SOLD_OUT, ErrorCode.BAD_ACCOUNT, ErrorCode.RULE_REFUSED,
        ErrorCode.RISK_REFUSED, ErrorCode.NOT_YET_DUE}
    assert errors.api_code(ResellerError(ResellerCode.INSUFFICIENT_FUNDS)) == "insufficient_funds"
    assert errors.api_code(ResellerError(ResellerCode.NAME_TAKEN, name="x")) == "bad_request"
    assert errors.api_code(StoreError(ErrorCode.RATE_LIMITED)) == "bad_request"
    assert errors.api_code(StoreError(ErrorCode.NOT_YET_DUE, date="2026-01-01")) == "not_yet_due"
