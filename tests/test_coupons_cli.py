"""`run.py coupons` as a real process: single-use codes written once to a private file (and working in the shop), a
shared code, the list (names and counts, never codes), disabling; refusals in words, with no file left behind."""
from __future__ import annotations

import stat
from pathlib import Path

import pytest

from core.errors import ErrorCode, StoreError
from tests.dbtemplate import from_template
from tests.helpers import buyer, import_n, open_shop, product_id, run_cli, sqlite_url_for, write_config


async def test_generate_writes_codes_once_to_a_private_file_and_they_buy_with_a_discount(tmp_path: Path) -> None:
    url = from_template(sqlite_url_for(tmp_path))
    cfg = write_config(tmp_path, url=url)
    out = tmp_path / "spring.txt"
    done = run_cli(cfg, "coupons", "generate", "5", "--name", "spring", "--off", "10%", "--min-spend", "5.00",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"5 codes of coupon SPRING written to {out}" in done.stdout
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    codes = out.read_text(encoding="utf-8").split()
    assert len(set(codes)) == 5 and all(len(c) == 10 for c in codes)
    assert "Coupon SPRING" in done.stderr  # the progress bar

    again = run_cli(cfg, "coupons", "generate", "5", "--name", "other", "--off", "10%", "--out", str(out))
    assert again.returncode == 2 and "must not exist yet" in again.stderr
    assert out.read_text(encoding="utf-8").split() == codes  # never overwritten

    shared = run_cli(cfg, "coupons", "create", "vip", "--code", "VIP-2026-GOLD", "--off", "5.00", "--limit", "3",
                     "--per-buyer", "1")
    assert shared.returncode == 0 and "Coupon VIP made" in shared.stdout, shared.stderr
    listed = run_cli(cfg, "coupons", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("#1 SPRING [on]: 10% off") and "codes 5, used 0" in lines[0]
    assert lines[1].startswith("#2 VIP [on]: 5.00 CNY off") and "limit 3, per buyer 1" in lines[1]
    assert not any(c in listed.stdout for c in codes) and "VIP2026GOLD" not in listed.stdout.replace("-", "")

    async with open_shop(url, tmp_path) as (app, _, _):
        await import_n(app, 3)
        pid = await product_id(app)
        order = await app.shop.reserve(buyer("a"), pid, 1, "en", promo={"coupon": codes[0].lower()})
        assert (order.amount, order.discount) == (900, 100)
        vip = await app.shop.reserve(buyer("b"), pid, 1, "en", promo={"coupon": "vip 2026 gold"})
        assert vip.discount == 500

    off = run_cli(cfg, "coupons", "disable", "spring")
    assert off.returncode == 0 and "Coupon SPRING is off" in off.stdout
    async with open_shop(url, tmp_path) as (app, _, _):
        with pytest.raises(StoreError) as e:
            await app.shop.reserve(buyer("c"), await product_id(app), 1, "en", promo={"coupon": codes[1]})
        assert e.value.code is ErrorCode.COUPON_EXPIRED


def test_bad_terms_are_refused_in_words_and_leave_no_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, url=from_template(sqlite_url_for(tmp_path)),
                       extra={"store": {"demo": True, "default_language": "zh_CN", "languages": ["en", "zh_CN"]}})
    out = tmp_path / "bad.txt"
    done = run_cli(cfg, "coupons", "generate", "3", "--name", "bad", "--off", "150%", "--out", str(out))
    assert done.returncode == 2 and "折扣应为" in done.stderr and "bad_off" in done.stderr
    assert not out.exists()
    window = run_cli(cfg, "coupons", "create", "late", "--code", "LATE12345", "--off", "1.00", "--from", "2026-12-01",
                     "--until", "2026-11-01")
    assert window.returncode == 2 and "bad_window" in window.stderr
    missing = run_cli(cfg, "coupons", "disable", "nope")
    assert missing.returncode == 2 and "没有名为 nope 的优惠券" in missing.stderr
