"""`run.py reseller owner / payout / commissions / refund-topup` and `run.py codes import` completing B2B orders
that wait for stock, as real processes on the store's database."""
from __future__ import annotations

from pathlib import Path

from config.settings import Resellers
from core.models import Buyer
from core.orders import PaymentNotice
from handlers.customer import Ctx, CustomerFlow
from locales import Translator
from tests.helpers import PROVIDER, SKU, code_lines, open_shop, run_cli, sqlite_url_for, unique_codes, write_config

CATALOG = [{"sku": SKU, "title": "Game card 10", "price": 1000, "kind": "code", "max_qty": 5,
            "rules": {"partial": "wait"}}]


async def test_the_merchant_binds_an_owner_imports_for_a_waiting_order_and_pays_out_commission(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, catalog=CATALOG, demo=False, extra={"resellers": {"commission_bp": 1000}})
    assert run_cli(cfg, "reseller", "add", "Acme").returncode == 0
    assert run_cli(cfg, "reseller", "topup", "1", "10000", "--ref", "wire-1").returncode == 0
    owner = run_cli(cfg, "reseller", "owner", "1", "test:ann")
    assert owner.returncode == 0 and "test:ann acts for it" in owner.stdout
    bad = run_cli(cfg, "reseller", "owner", "1", "nocolon")
    assert bad.returncode == 2 and "bad_identity" in bad.stderr
    assert "error: nocolon is not a chat identity" in bad.stderr  # the refusal in words (handlers/errors.py)
    async with open_shop(sqlite_url_for(tmp_path), tmp_path, catalog=CATALOG, demo=False) as (app, _, _):
        desk = app.shop.resellers
        assert (await desk.reseller_of(Buyer("test", "ann"))).name == "Acme"
        waiting = await desk.order(await desk.get(1), SKU, 3, "po-1")  # no stock: it waits, paid
        assert waiting.order.status.value == "pending"
        # a customer who came through Acme's link buys (after the import below has stock for them too)
        await CustomerFlow(app.shop, Translator(), shop_name="S").on_text(Ctx(Buyer("test", "zed"), "zed"),
                                                                            "/start ref_1")
    codes = tmp_path / "codes.txt"
    codes.write_bytes(b"".join(code_lines(unique_codes(5))))
    assert run_cli(cfg, "codes", "import", SKU, str(codes)).returncode == 0
    async with open_shop(sqlite_url_for(tmp_path), tmp_path, catalog=CATALOG, demo=False) as (app, _, _):
        desk = app.shop.resellers
        done = await desk.get_order(await desk.get(1), waiting.order.id)
        assert done.order.status.value == "delivered" and len(done.codes) == 3  # the import completed it
        desk.configure(Resellers(commission_bp=1000))  # the config's rate, as run.py sets it
        zed = Buyer("test", "zed")
        order = await app.shop.reserve(zed, (await app.shop.product_by_sku(SKU)).id, 2, "en")
        await app.shop.pay(PaymentNotice(order.id, PROVIDER, "t-zed", order.amount, order.currency, zed))
    listed = run_cli(cfg, "reseller", "commissions", "1")
    assert listed.returncode == 0 and "commission balance 200" in listed.stdout and "accrual\t200" in listed.stdout
    over = run_cli(cfg, "reseller", "payout", "1", "201")
    assert over.returncode == 2 and "insufficient_commission" in over.stderr
    assert "the commission balance is 200, less than 201" in over.stderr
    paid = run_cli(cfg, "reseller", "payout", "1", "150", "--note", "bank 7")
    assert paid.returncode == 0 and "paid out 150 CNY, commission balance 50" in paid.stdout
    unknown = run_cli(cfg, "reseller", "refund-topup", "W000000NOTHERE")
    assert unknown.returncode == 2 and "unknown_topup" in unknown.stderr
    assert "There is no top-up W000000NOTHERE" in unknown.stderr
