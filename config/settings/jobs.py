"""The `jobs:` section: how often each scheduled job runs, the scheduler lease, the daily summary and the time
zone the store's days are counted in."""
from __future__ import annotations

import re
import zoneinfo
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _check_hhmm(value: str) -> str:
    if value and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        raise ValueError('must be a time of day "HH:MM" (24-hour), or "" for none')
    return value


def _check_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone such as UTC or Asia/Shanghai") from None
    return value


class Jobs(BaseModel):
    """The scheduler (jobs/scheduler.py, jobs/store.py): intervals in seconds, the daily summary, code expiry; see
    [The scheduler](operating.md#the-scheduler)."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    lease_seconds: float = Field(60, ge=1, le=3600, description="the scheduler lease: a process that stops renewing "
                                                                "it (crashed) is replaced after this long")
    expire_holds_seconds: float = Field(30, gt=0, description="how often lapsed holds are released (and the buyers "
                                                              "told)")
    dispatch_outbox_seconds: float = Field(30, gt=0, description="how often the outbox is swept for retries (sends "
                                                                 "also start on every commit)")
    reconcile_wechat_pay_seconds: float = Field(60, gt=0, description="how often WeChat Pay is asked about unpaid "
                                                                      "orders (with `wechat.pay.mch_id`)")
    reconcile_stars_seconds: float = Field(60, gt=0, description="how often the bot's Star transactions are read for "
                                                                 "payments the store missed (with `telegram.token`)")
    restock_seconds: float = Field(60, gt=0, description="how often pools with `restock` are checked and bought up")
    stock_alerts_seconds: float = Field(60, gt=0, description="how often low / out-of-stock alerts are checked")
    expire_codes_seconds: float = Field(300, gt=0, description="how often codes near their `expires_at` are "
                                                               "withdrawn")
    poll_topups_seconds: float = Field(60, gt=0, description="how often pending top-ups are asked about at their "
                                                             "suppliers")
    expiry_margin_minutes: int = Field(60, ge=0, description="codes are withdrawn this long before their "
                                                             "`expires_at`")
    daily_summary_at: Annotated[str, AfterValidator(_check_hhmm)] = Field(
        "09:00", description='time of day (`HH:MM`, `jobs.timezone`) of the daily summary to the merchants; `""`: '
                             "none")
    timezone: Annotated[str, AfterValidator(_check_zone)] = Field(
        "UTC", description="IANA zone (e.g. `Asia/Shanghai`) for the summary's time, the restock budget's day and "
                           "the `per_day` rule's day")
    supplier_backoff_max_minutes: int = Field(60, ge=1, description="a failing supplier is left alone 1 minute after "
                                                                    "the first failure, doubling up to this")
    topup_stuck_minutes: int = Field(60, ge=1, description="a paid top-up the supplier has not finished after this "
                                                           "long is reported to the merchants once (never refunded "
                                                           "automatically: the supplier may still top the account up)")
