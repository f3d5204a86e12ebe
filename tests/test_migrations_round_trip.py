"""Every migration of the scale-out tables goes up on top of its parent, down again cleanly, and up again; the
chain has one head (a merge of two branches that both added a migration would leave two and break `db upgrade`).
Runs on SQLite and PostgreSQL."""
from __future__ import annotations

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from storage.db import MIGRATIONS, Database
from tests.test_suppliers_migration import _alembic

TABLES = {
    "0006_resellers": {"resellers", "wallet_ledger", "api_idempotency", "api_keys", "api_nonces"},
    "0007_aftersales_more": {"tickets"},
    "0008_reseller_groups": {"reseller_owners", "reseller_groups", "group_members", "group_orders"},
    "0009_wallet_commissions": {"wallet_topups", "commissions", "b2b_waiting"},
    "0010_card_faces": {"card_faces", "reseller_users"},
    "0011_wechat_nonces": {"wechat_nonces"},
    "0011_account_links": {"link_codes"},
    "0014_report_events": {"report_events"},
    "0016_product_images": {"product_images"},
    "0017_stock_alerts": {"stock_alerts"},
    "0018_broadcasts": {"broadcasts", "news_optouts"},
    "0019_promotions": set(),
    "0020_coupons": {"coupons", "coupon_codes", "coupon_uses"},
    "0022_members": {"points_ledger", "member_spend", "referral_codes"},
    "0023_group_buy": {"group_buys", "group_buy_members"},
    "0021_flash_sales": {"flash_sales", "flash_sale_uses"},
    "0024_member_coupons": {"member_coupons"},
}
COLUMNS = {  # columns a migration adds to an older table
    "0011_account_links": {"customers": {"person", "link_set", "linked_at"}},
    "0016_product_images": {"products": {"image"}},
    "0018_broadcasts": {"customers": {"last_message_at"}, "outbox": {"priority", "broadcast_id"}},
    "0019_promotions": {"orders": {"discount", "stars_discount", "promo"}},
    "0023_group_buy": {"products": {"bundle"}},
    "0024_member_coupons": {"coupon_codes": {"void_at"}},
}


def _script() -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def test_the_migrations_form_one_chain_with_one_head() -> None:
    script = _script()
    assert len(script.get_heads()) == 1
    assert set(TABLES) <= {r.revision for r in script.walk_revisions()}


@pytest.mark.parametrize("revision", sorted(TABLES))
async def test_a_migration_upgrades_from_its_parent_and_downgrades_cleanly(blank_db_url: str, revision: str) -> None:
    parent = _script().get_revision(revision).down_revision
    assert isinstance(parent, str)
    ours = TABLES[revision] | {f"{t}.{c}" for t, cols in COLUMNS.get(revision, {}).items() for c in cols}

    async def tables(db: Database) -> set[str]:
        async with db.read_engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            for table, cols in COLUMNS.get(revision, {}).items():
                have = {c["name"] for c in await conn.run_sync(lambda c, t=table: inspect(c).get_columns(t))}
                names |= {f"{table}.{col}" for col in cols & have}
            return names

    db = Database(blank_db_url)
    try:
        await _alembic(db, parent)
        assert not ours & await tables(db)
        await _alembic(db, revision)
        assert ours <= await tables(db)
        await _alembic(db, parent, down=True)
        assert not ours & await tables(db)
        await _alembic(db, "heads")
        assert ours <= await tables(db)
    finally:
        await db.dispose()
