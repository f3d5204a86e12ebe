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
