"""The terminal demo as a merchant would first see it: `python run.py` with no tokens configured."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_demo(workdir: Path, keys: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(workdir / "config.yaml")],
                          input=keys, capture_output=True, text=True, timeout=120, cwd=workdir)


def test_given_the_default_config_when_a_customer_shops_in_the_terminal_then_they_pay_and_see_their_code(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")  # the documented default, data/ under tmp_path
    # Catalogue -> Game cards -> Steam card -> Buy -> Pay (demo)
    res = run_demo(tmp_path, "1\n1\n1\n1\n1\n")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "Welcome to Demo Card Shop!" in out and "Demo shop" in out
    assert "Steam Wallet ¥50" in out
    order = re.search(r"Order (\w{14})", out).group(1)
    assert f"✅ Order {order} delivered" in out
    code = re.search(r"│ (DEMO-[A-Z0-9-]+) +│", out).group(1)
    assert (tmp_path / "data" / "store.db").exists()
    assert (tmp_path / "data" / "vault.key").stat().st_mode & 0o777 == 0o600

    # Second run on the same data: no new demo codes, the order is in My orders, the code can be shown again,
    # and the shop speaks Chinese after switching.
    res = run_demo(tmp_path, "2\n1\n1\n/language\n2\n1\n")
    assert res.returncode == 0, res.stderr
    assert f"{order} · Steam Wallet ¥50 × 1 · delivered" in res.stdout
    assert f"│ {code} │" in res.stdout
    assert "已切换为简体中文" in res.stdout and "商品列表" in res.stdout

    stock = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(tmp_path / "config.yaml"),
                            "stock"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    line = next(ln for ln in stock.stdout.splitlines() if ln.startswith("STEAM-50"))
    assert line.split()[1:] == ["49", "0", "1", "0"]
    assert code not in stock.stdout + stock.stderr


def test_given_a_first_start_when_the_demo_opens_then_the_shop_speaks_first_and_an_unknown_reply_gets_the_apology_first(
        tmp_path):
    """What a new merchant sees in the terminal (`make run`, standard error and output on one screen): the shop's
    welcome before anything else (no migration log lines on a first start), and for a reply the shop does not
    understand, the apology before the menu it leads back to."""
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    res = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config", str(tmp_path / "config.yaml")],
                         input="hello\n", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stdout
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert lines[0] == "Welcome to Demo Card Shop!", lines[:3]
    assert "alembic" not in res.stdout.lower() and " INFO " not in res.stdout
    answer = res.stdout[res.stdout.index("> ") + 2:]  # after the first prompt: the answer to "hello"
    assert answer.lstrip().startswith("Sorry, I did not understand that. Here is the menu.")
    assert answer.index("Sorry, I did not understand") < answer.index("Welcome to Demo Card Shop!")
