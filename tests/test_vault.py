"""The code vault: per-row AES-GCM, keyed fingerprints, the key file, refusing to start on wrong keys, rekey."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import App
from core.errors import VaultError
from core.supply import rekey
from core.vault import KeyRing, Vault, read_key_file, write_key_file
from storage import tables as t
from tests.helpers import (
    SKU,
    buyer,
    code_lines,
    import_lines,
    import_n,
    make_settings,
    open_shop,
    pay,
    pending_outbox,
    product_id,
    run_cli,
    settle,
    stock_of,
    stock_table,
    write_config,
)

OTHER_SKU = "CARD-20"
TWO_PRODUCTS = [
    {"sku": SKU, "title": "Game card 10", "price": 1000, "kind": "code", "max_qty": 5},
    {"sku": OTHER_SKU, "title": "Game card 20", "price": 2000, "kind": "code", "max_qty": 5},
]


def _vault() -> Vault:
    return Vault(KeyRing.generate())


async def _all_codes(app) -> dict[int, str]:
    """Every code in the database, decrypted with the app's vault: id -> plain text."""
    async with app.db.uow() as uow:
        ids = list((await uow.codes.c.execute(select(t.codes.c.id))).scalars())
        stored = await uow.codes.get_many(ids)
    return {c.id: app.vault.decrypt(c.id, c.key_id, c.nonce, c.ciphertext) for c in stored}


async def _key_ids(app) -> dict[str, int]:
    async with app.db.uow() as uow:
        rows = await uow.codes.c.execute(select(t.codes.c.key_id))
        out: dict[str, int] = {}
        for (kid,) in rows:
            out[kid] = out.get(kid, 0) + 1
    return out


# -- ciphertexts ----------------------------------------------------------------------------------------------

def test_given_a_code_encrypted_for_row_1_when_its_ciphertext_is_read_as_row_2_then_it_does_not_decrypt() -> None:
    v = _vault()
    kid, nonce, ct = v.encrypt(1, "STEAM-AAAA-BBBB")
    assert v.decrypt(1, kid, nonce, ct) == "STEAM-AAAA-BBBB"
    with pytest.raises(VaultError, match="code 2 does not decrypt"):
        v.decrypt(2, kid, nonce, ct)


@pytest.mark.parametrize("part", ["ciphertext", "tag", "nonce"])
def test_given_a_stored_code_when_one_bit_is_changed_then_it_does_not_decrypt(part: str) -> None:
    v = _vault()
    kid, nonce, ct = v.encrypt(7, "STEAM-AAAA-BBBB")
    if part == "nonce":
        nonce = bytes([nonce[0] ^ 1]) + nonce[1:]
    else:
        i = 0 if part == "ciphertext" else len(ct) - 1  # AES-GCM puts the 16-byte tag last
        ct = ct[:i] + bytes([ct[i] ^ 1]) + ct[i + 1:]
    with pytest.raises(VaultError, match="does not decrypt"):
        v.decrypt(7, kid, nonce, ct)


def test_given_a_code_under_an_unknown_key_id_then_the_vault_says_the_key_is_not_loaded() -> None:
    v = _vault()
    _, nonce, ct = v.encrypt(3, "X")
    with pytest.raises(VaultError, match="'k9', which is not loaded"):
        v.decrypt(3, "k9", nonce, ct)


def test_given_the_same_code_twice_then_each_encryption_uses_a_fresh_nonce() -> None:
    v = _vault()
    a, b = v.encrypt(1, "SAME"), v.encrypt(1, "SAME")
    assert a[1] != b[1] and a[2] != b[2]


async def test_given_a_row_whose_ciphertext_was_copied_from_another_row_when_sold_then_it_is_never_delivered(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path) as (app, notifier, _):
        first, second = await import_n(app, 2)
        codes = await _all_codes(app)
        id_first = next(i for i, c in codes.items() if c == first)
        id_second = next(i for i, c in codes.items() if c == second)
        async with app.db.uow(write=True) as uow:  # someone with database access duplicates a code
            row = (await uow.codes.c.execute(select(t.codes).where(t.codes.c.id == id_first))).one()
            await uow.codes.c.execute(update(t.codes).where(t.codes.c.id == id_second)
                                      .values(key_id=row.key_id, nonce=row.nonce, ciphertext=row.ciphertext))
            await uow.commit()

        order = await app.shop.reserve(buyer(1), await product_id(app), 2, "en")
        assert (await pay(app, order)).outcome == "delivered"
        await settle(app)
        # The buyer does not get `first` twice (nor a broken code): the delivery waits for the merchant.
        assert notifier.deliveries == []
        assert await pending_outbox(app) == 1
        with pytest.raises(VaultError):
            await app.shop.reveal(order.id, buyer(1))


# -- fingerprints ---------------------------------------------------------------------------------------------

def test_given_a_code_then_its_fingerprint_is_stable_per_product_and_differs_across_products_and_keys() -> None:
    v = _vault()
    fp = v.fingerprint(1, "CODE-1")
    assert fp == v.fingerprint(1, "CODE-1") == v.fingerprinter(1)("CODE-1")
    assert fp != v.fingerprint(2, "CODE-1")
    assert fp != v.fingerprint(1, "CODE-2")
    assert fp != _vault().fingerprint(1, "CODE-1")  # keyed: nobody without the key can test a guess
    assert b"CODE-1" not in fp


async def test_given_an_imported_code_when_imported_again_after_restart_then_it_is_a_duplicate_but_not_across_products(
        sqlite_url: str, tmp_path: Path) -> None:
    async with open_shop(sqlite_url, tmp_path, catalog=TWO_PRODUCTS) as (app, _, _):
        codes = await import_n(app, 3)
    async with open_shop(sqlite_url, tmp_path, catalog=TWO_PRODUCTS) as (app, _, _):
        again = await import_lines(app, code_lines(codes))
        assert (again.imported, again.duplicates) == (0, 3)
        other = await import_lines(app, code_lines(codes), OTHER_SKU)
        assert (other.imported, other.duplicates) == (3, 0)
        assert await stock_of(app) == (3, 0, 0) and await stock_of(app, OTHER_SKU) == (3, 0, 0)


# -- the key file ---------------------------------------------------------------------------------------------

async def test_given_a_new_store_when_it_starts_then_the_key_file_is_created_readable_by_the_owner_only(
        sqlite_url: str, tmp_path: Path) -> None:
    old = os.umask(0)  # even under a careless umask
    try:
        async with open_shop(sqlite_url, tmp_path) as (app, _, _):
            await import_n(app, 1)
    finally:
        os.umask(old)
    key_file = tmp_path / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring = read_key_file(key_file)
    assert ring.current in ring.keys


def _other_ring(kind: str, key_file: Path) -> bytes:
    ring = read_key_file(key_file)
    if kind == "another key ring":
        other = KeyRing.generate()
    elif kind == "same fingerprint key, other code key":
        other = KeyRing({ring.current: KeyRing.generate().keys["k1"]}, ring.current, ring.fingerprint_key)
    else:
        return b'{"version": 1, "keys": '  # a truncated file
    return other.to_json().encode()


@pytest.mark.parametrize("kind, message", [
    ("another key ring", "fingerprint key from the key file .* is not the one this database was written with"),
    ("same fingerprint key, other code key", "key 'k1' from the key file .* does not match the database"),
    ("truncated file", "key file .* is not a valid key file"),
])
async def test_given_codes_when_the_store_starts_with_a_wrong_key_file_then_it_refuses_and_changes_nothing(
        db_url: str, tmp_path: Path, kind: str, message: str) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        codes = await import_n(app, 5)
    key_file = tmp_path / "vault.key"
    good = key_file.read_bytes()
    key_file.write_bytes(_other_ring(kind, key_file))
    wrong = key_file.read_bytes()

    with pytest.raises(VaultError, match=message) as err:
        await App.open(make_settings(db_url, tmp_path))
    assert "nothing was changed" in str(err.value) or kind == "truncated file"
    assert key_file.read_bytes() == wrong

    key_file.write_bytes(good)  # the merchant restores the right file: the codes are all there
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        order = await app.shop.reserve(buyer(1), await product_id(app), 5, "en")
        await pay(app, order)
        await settle(app)
        assert sorted(notifier.codes()) == sorted(codes)


async def test_given_codes_when_the_key_file_is_deleted_then_the_store_refuses_to_start_and_makes_no_new_key(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 2)
    key_file = tmp_path / "vault.key"
    key_file.unlink()
    with pytest.raises(VaultError, match="key file .* is missing.*restore the key file") as err:
        await App.open(make_settings(db_url, tmp_path))
    assert "k1" in str(err.value)
    assert not key_file.exists()
    assert not list(tmp_path.glob("vault.key*"))


def test_given_codes_when_the_cli_starts_without_its_key_file_then_it_exits_with_a_clear_message(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    f = tmp_path / "codes.txt"
    f.write_text("CODE-ONE\nCODE-TWO\n")
    assert run_cli(cfg, "codes", "import", SKU, str(f)).returncode == 0
    (tmp_path / "vault.key").unlink()

    done = run_cli(cfg, "stock")
    assert done.returncode == 3
    assert "key file" in done.stderr and "is missing" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "vault.key").exists()


# -- rekey ---------------------------------------------------------------------------------------------------

async def test_given_codes_sold_and_unsold_when_rekeyed_to_a_new_key_via_the_cli_then_all_move_and_still_read_the_same(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    cfg = write_config(tmp_path, url=url)
    async with open_shop(url, tmp_path) as (app, notifier, _):
        await import_n(app, 30)
        order = await app.shop.reserve(buyer(1), await product_id(app), 2, "en")
        await pay(app, order)
        await settle(app)
        bought = notifier.codes()
        before = await _all_codes(app)
        assert await _key_ids(app) == {"k1": 30}

    done = run_cli(cfg, "codes", "rekey", "--new-key")
    assert done.returncode == 0, done.stderr
    assert "added key k2" in done.stdout
    assert "re-encrypted 30 codes under key k2" in done.stdout

    key_file = tmp_path / "vault.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ring = json.loads(key_file.read_text())
    assert ring["current"] == "k2" and set(ring["keys"]) == {"k1", "k2"}

    async with open_shop(url, tmp_path) as (app, notifier, _):
        assert await _key_ids(app) == {"k2": 30}
        assert await _all_codes(app) == before
        assert (await app.shop.reveal(order.id, buyer(1)))[2] == bought  # the buyer's codes still show
        assert await stock_of(app) == (28, 0, 2)

    # Running it again has nothing left to move.
    again = run_cli(cfg, "codes", "rekey")
    assert again.returncode == 0 and "re-encrypted 0 codes under key k2" in again.stdout
    assert stock_table(run_cli(cfg, "stock").stdout)[SKU] == (28, 0, 2)


async def test_given_a_rekey_interrupted_after_its_first_batch_when_run_again_then_every_code_is_under_the_new_key(
        db_url: str, tmp_path: Path) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        await import_n(app, 25)
        before = await _all_codes(app)
    key_file = tmp_path / "vault.key"
    write_key_file(key_file, read_key_file(key_file).with_new_key(), replace=True)

    class Interrupted(Exception):
        pass

    def crash(_moved: int) -> None:
        raise Interrupted

    async with open_shop(db_url, tmp_path) as (app, _, _):
        assert app.vault.current_key == "k2"
        with pytest.raises(Interrupted):
            await rekey(app.db.uow, app.vault, app.clock, progress=crash, batch_size=10)
        assert await _key_ids(app) == {"k1": 15, "k2": 10}  # the first batch landed whole
        assert await _all_codes(app) == before  # half-moved codes all still read

    async with open_shop(db_url, tmp_path) as (app, _, _):  # a fresh start, as after a crash
        report = await rekey(app.db.uow, app.vault, app.clock, batch_size=10)
        assert (report.moved, report.remaining_before) == (15, 15)
        assert await _key_ids(app) == {"k2": 25}
        assert await _all_codes(app) == before
        assert await stock_of(app) == (25, 0, 0)


def test_given_a_wrong_key_file_when_rekey_new_key_runs_then_it_refuses_and_leaves_the_file_alone(
        tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    f = tmp_path / "codes.txt"
    f.write_text("CODE-ONE\nCODE-TWO\n")
    assert run_cli(cfg, "codes", "import", SKU, str(f)).returncode == 0
    key_file = tmp_path / "vault.key"
    key_file.write_text(KeyRing.generate().to_json())
    wrong = key_file.read_bytes()

    done = run_cli(cfg, "codes", "rekey", "--new-key")
    assert done.returncode == 3 and "nothing was changed" in done.stderr
    assert key_file.read_bytes() == wrong


@pytest.mark.parametrize("kind", ["another key ring", "same fingerprint key, other code key"])
async def test_given_the_key_checks_in_meta_were_wiped_when_a_wrong_key_file_is_used_then_the_codes_refuse_it(
        db_url: str, tmp_path: Path, kind: str) -> None:
    async with open_shop(db_url, tmp_path) as (app, _, _):
        codes = await import_n(app, 3)
        # The key checks are lost (say, a restore that left out the meta table).
        async with app.db.write_engine.begin() as conn:
            await conn.exec_driver_sql("DELETE FROM meta WHERE key LIKE 'vault.%'")
    key_file = tmp_path / "vault.key"
    good = key_file.read_bytes()
    key_file.write_bytes(_other_ring(kind, key_file))
    with pytest.raises(VaultError, match="does not open the codes stored under it") as err:
        await App.open(make_settings(db_url, tmp_path))
    assert "nothing was changed" in str(err.value)

    key_file.write_bytes(good)  # the right key opens them and writes fresh checks; the codes sell as before
    async with open_shop(db_url, tmp_path) as (app, notifier, _):
        async with app.db.uow() as uow:
            assert "vault.canary.k1" in await uow.meta.with_prefix("vault.")
        order = await app.shop.reserve(buyer(1), await product_id(app), 3, "en")
        await pay(app, order)
        await settle(app)
        assert sorted(notifier.codes()) == sorted(codes)
