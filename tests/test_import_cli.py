"""`run.py codes import` and `run.py stock` as the merchant runs them: a real process, a real config file."""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from tests.helpers import SKU, run_cli, stock_table, write_config

CATALOG = [
    {"sku": SKU, "title": "Game card 10", "price": 1000, "kind": "code", "max_qty": 5},
    {"sku": "VIP-MONTH", "title": "VIP month", "price": 1500, "kind": "code"},
]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    return write_config(tmp_path, catalog=CATALOG)


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _counts(stdout: str, sku: str = SKU) -> tuple[int, int, int]:
    m = re.search(rf"^{re.escape(sku)}: imported (\d+), duplicates (\d+), rejected (\d+)$", stdout, re.MULTILINE)
    assert m, stdout
    return int(m[1]), int(m[2]), int(m[3])


def _rejected(stdout: str) -> list[tuple[int, str]]:
    return [(int(n), why) for n, why in re.findall(r"^  rejected line (\d+): (.+)$", stdout, re.MULTILINE)]


def _available(cfg: Path, sku: str = SKU) -> int:
    done = run_cli(cfg, "stock")
    assert done.returncode == 0, done.stderr
    return stock_table(done.stdout)[sku][0]


def test_given_a_messy_plain_file_when_imported_then_good_codes_land_and_bad_lines_are_reported_by_number(
        tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "codes.txt", b"".join([
        b"AAAA-1111\n",            # 1
        b"\n",                     # 2 blank: skipped, not an error
        b"BBBB-2222\n",            # 3
        b"AAAA-1111\n",            # 4 duplicate of line 1
        b"X" * 600 + b"\n",        # 5 too long
        b"CCCC\x013333\n",         # 6 control character
        b"\xff\xfeDDDD-4444\n",    # 7 not UTF-8
        b"   \n",                  # 8 blank
        b"EEEE-5555",              # 9 no newline at the end
    ]))
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 1, done.stderr
    assert _counts(done.stdout) == (3, 1, 3)
    assert _rejected(done.stdout) == [(5, "too long"), (6, "control characters"), (7, "not UTF-8")]
    assert "Traceback" not in done.stderr
    assert _available(cfg) == 3


def test_given_codes_with_bidi_zero_width_or_c1_characters_when_imported_then_those_lines_are_refused_by_number(
        tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "codes.txt", "".join([
        "\ufeffAAAA-1111\n",        # 1 a BOM at the very start of the file: stripped, the code lands
        "BBBB\u202e2222\n",         # 2 right-to-left override: shows as BBBB2222 reversed
        "\u200bCCCC-3333\n",        # 3 zero-width space
        "DDDD\u2066-4444\u2069\n",  # 4 left-to-right isolate
        "EEEE\u200d5555\n",         # 5 zero-width joiner
        "\ufeffFFFF-6666\n",        # 6 a BOM that is not at the start of the file
        "GGGG\x857777\n",           # 7 C1 control (NEL)
        "HHHH\u2028-8888\n",        # 8 line separator
        "卡密-9999\n",               # 9 non-ASCII but visible: lands
    ]).encode())
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 1, done.stderr
    assert _counts(done.stdout) == (2, 0, 7)
    assert _rejected(done.stdout) == [(2, "invisible characters"), (3, "invisible characters"),
                                      (4, "invisible characters"), (5, "invisible characters"),
                                      (6, "invisible characters"), (7, "control characters"),
                                      (8, "invisible characters")]
    assert _available(cfg) == 2


def test_given_a_file_already_imported_when_imported_again_then_nothing_new_lands(tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "codes.txt", b"".join(f"CODE-{i:05d}\n".encode() for i in range(50)))
    first = run_cli(cfg, "codes", "import", SKU, str(f))
    assert first.returncode == 0 and _counts(first.stdout) == (50, 0, 0)
    again = run_cli(cfg, "codes", "import", SKU, str(f))
    assert again.returncode == 0, again.stderr
    assert _counts(again.stdout) == (0, 50, 0)
    assert _available(cfg) == 50


def test_given_a_large_file_with_duplicates_across_batches_when_imported_then_each_code_lands_once(
        tmp_path: Path, cfg: Path) -> None:
    codes = [f"BULK-{i:06d}" for i in range(12_000)]
    lines = codes + codes[:1500] + codes[-500:]  # repeats of the first and the last batch
    random.Random(7).shuffle(lines)
    f = _file(tmp_path, "bulk.txt", "\n".join(lines).encode() + b"\n")
    done = run_cli(cfg, "codes", "import", SKU, str(f), timeout=300)
    assert done.returncode == 0, done.stderr
    assert _counts(done.stdout) == (12_000, 2_000, 0)
    assert _available(cfg) == 12_000


def test_given_a_windows_file_with_a_bom_when_imported_then_the_codes_carry_neither_bom_nor_carriage_return(
        tmp_path: Path, cfg: Path) -> None:
    windows = _file(tmp_path, "win.txt", "\ufeffWIN-0001\r\nWIN-0002\r\n".encode())
    assert _counts(run_cli(cfg, "codes", "import", SKU, str(windows)).stdout) == (2, 0, 0)
    # The same codes typed plainly are recognised as the same codes.
    plain = _file(tmp_path, "plain.txt", b"WIN-0001\nWIN-0002\n")
    assert _counts(run_cli(cfg, "codes", "import", SKU, str(plain)).stdout) == (0, 2, 0)


def test_given_a_csv_with_expiry_dates_when_imported_then_bad_and_past_dates_are_rejected(
        tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "codes.csv", b"".join([
        b"code,expires_at\n",                          # 1 header
        b"CSV-0001,2099-01-01\n",                      # 2
        b"CSV-0002,not-a-date\n",                      # 3
        b"CSV-0003,2001-01-01T00:00:00Z\n",            # 4 already expired
        b"CSV-0004,\n",                                # 5 no expiry
        b"CSV-0005,2099-06-01T12:00:00+08:00\n",       # 6
        b",2099-01-01\n",                              # 7 no code
    ]))
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 1, done.stderr
    assert _counts(done.stdout) == (3, 0, 3)
    assert _rejected(done.stdout) == [(3, "bad expires_at"), (4, "already expired"), (7, "empty code")]
    assert _available(cfg) == 3


def test_given_a_binary_file_when_imported_then_it_is_refused_and_nothing_lands(tmp_path: Path, cfg: Path) -> None:
    rnd = random.Random(1)
    data = bytes(rnd.randrange(256) for _ in range(20_000))
    data = data[:100] + b"\x00\x00" + data[100:]
    f = _file(tmp_path, "photo.jpg", data)
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 2
    assert "binary" in done.stderr and "nothing imported" in done.stderr
    assert "imported" not in done.stdout
    assert _available(cfg) == 0


def test_given_an_empty_file_when_imported_then_it_is_refused(tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "empty.txt", b"")
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 2
    assert "empty" in done.stderr and "nothing imported" in done.stderr


def test_given_an_unknown_sku_when_importing_then_it_is_refused_naming_the_sku(tmp_path: Path, cfg: Path) -> None:
    f = _file(tmp_path, "codes.txt", b"AAAA-1111\n")
    done = run_cli(cfg, "codes", "import", "NO-SUCH-SKU", str(f))
    assert done.returncode == 2
    assert "NO-SUCH-SKU" in done.stderr and "nothing imported" in done.stderr
    assert "Traceback" not in done.stderr
    assert _available(cfg) == 0


def test_given_a_missing_file_when_importing_then_it_is_refused(tmp_path: Path, cfg: Path) -> None:
    done = run_cli(cfg, "codes", "import", SKU, str(tmp_path / "nope.txt"))
    assert done.returncode == 2
    assert "nope.txt" in done.stderr and "nothing imported" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("text, named", [
    ("store:\n  name: Shop\n  curency: CNY\n", "store.curency: unknown key (did you mean 'currency'?)"),
    ("store:\n  name: Shop\n   currency: CNY\n", "YAML syntax error at line 3"),
    ("catalog:\n  - sku: A\n    title: A\n    price: -5\n", "catalog[0].price"),
], ids=["unknown-key", "yaml-syntax", "bad-value"])
def test_given_a_malformed_config_when_the_cli_runs_then_it_names_the_problem_without_a_traceback(
        tmp_path: Path, text: str, named: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    f = _file(tmp_path, "codes.txt", b"AAAA-1111\n")
    done = run_cli(cfg, "codes", "import", SKU, str(f))
    assert done.returncode == 2
    assert named in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was created on the way


def test_given_codes_in_two_products_when_the_merchant_asks_for_stock_then_each_sku_shows_its_count(
        tmp_path: Path, cfg: Path) -> None:
    a = _file(tmp_path, "a.txt", b"A-1\nA-2\nA-3\n")
    b = _file(tmp_path, "b.txt", b"B-1\n")
    assert run_cli(cfg, "codes", "import", SKU, str(a)).returncode == 0
    assert run_cli(cfg, "codes", "import", "VIP-MONTH", str(b)).returncode == 0
    done = run_cli(cfg, "stock")
    assert done.returncode == 0
    assert stock_table(done.stdout) == {SKU: (3, 0, 0), "VIP-MONTH": (1, 0, 0)}


def test_given_a_chinese_merchant_when_they_run_the_cli_then_help_messages_and_errors_are_in_chinese(tmp_path: Path):
    """The command line speaks `store.default_language` (through locales/, cli.po) like the rest of the shop."""
    cfg = write_config(tmp_path, catalog=CATALOG, extra={"store": {"demo": True, "default_language": "zh_CN"}})
    helped = run_cli(cfg, "--help")
    assert helped.returncode == 0 and "卡密库存命令" in helped.stdout, helped.stdout  # codes: the code pool
    codes = _file(tmp_path, "codes.txt", b"ZH-CODE-1\n")
    unknown = run_cli(cfg, "codes", "import", "NOPE", str(codes))
    assert unknown.returncode == 2 and "错误：没有 SKU 'NOPE'；未导入任何卡密" in unknown.stderr, unknown.stderr
    done = run_cli(cfg, "codes", "import", SKU, str(codes))
    assert done.returncode == 0 and f"{SKU}：导入 1，重复 0，拒绝 0" in done.stdout, done.stdout
    stock = run_cli(cfg, "stock")
    assert stock.stdout.splitlines()[0].split() == ["SKU", "可售", "锁定", "已售", "已过期"], stock.stdout
