"""Commissions (分销): a reseller earns a share of each paid order of a customer it referred, at its rate in basis
points (1/100 of a percent: `resellers.commission_bp`, or its own in `resellers.commissions`), rounded down to the
minor unit. The pure rules of core/resellers/; accrual, reversal and payouts on a real database are in
tests/test_commissions.py."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.resellers import CommissionPolicy, Reseller, commission_of


def reseller(name: str) -> Reseller:
    return Reseller(1, name, "active", 0, {}, 0, 0, "CNY", datetime(2026, 1, 1, tzinfo=UTC))


def test_commission_is_rounded_down_to_the_minor_unit() -> None:
    # moved from tests/test_commissions.py: a pure function, no store needed
    assert commission_of(1000, 1000) == 100  # 10% of 10.00
    assert commission_of(999, 1550) == 154  # 15.5% of 9.99 = 154.845 -> 154
    assert commission_of(1, 9999) == 0 and commission_of(-500, 1000) == 0


@pytest.mark.parametrize(("sale", "rate_bp", "earned"), [(2500, 1000, 250), (19_900, 500, 995), (10_000, 1, 1),
                                                         (10_000, 10_000, 10_000), (10_000, 0, 0)])
def test_a_resellers_commission_is_its_rate_of_the_sale(sale: int, rate_bp: int, earned: int) -> None:
    assert commission_of(sale, rate_bp) == earned


def test_a_reseller_with_its_own_rate_earns_that_and_every_other_the_default() -> None:
    policy = CommissionPolicy(default_bp=500, by_reseller={"acme": 1200})
    assert policy.rate(reseller("acme")) == 1200
    assert policy.rate(reseller("globex")) == 500
    assert commission_of(10_000, policy.rate(reseller("acme"))) == 1200  # 12% of 100.00


def test_no_rate_configured_means_no_commission() -> None:
    policy = CommissionPolicy()
    assert policy.rate(reseller("acme")) == 0 and commission_of(10_000, policy.rate(reseller("acme"))) == 0
