"""A crash between payment and sending: the buyer still gets the code, exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("crash_worker.py")


def write_config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        "store": {"demo": True},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"},
        "vault": {"key_file": str(tmp_path / "vault.key")},
        "catalog": [{"sku": "CARD", "title": "Card", "price": 100, "max_qty": 5}],
    }))
    return cfg


def test_given_a_paid_order_when_the_process_is_killed_before_sending_then_restart_delivers_once(tmp_path):
    cfg = write_config(tmp_path)
    errors = tmp_path / "worker.err"
    with errors.open("w") as err, subprocess.Popen([sys.executable, str(WORKER), str(cfg), "pay"],
                                                   stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT) as proc:
        try:
            paid = proc.stdout.readline().split()
            sending = proc.stdout.readline().split()
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert paid[:1] == ["PAID"] and paid[2] == "delivered", (paid, errors.read_text())
    order_id = paid[1]
    assert sending == ["SENDING", order_id]
    assert proc.returncode == -signal.SIGKILL

    out = tmp_path / "delivered.txt"
    for _ in range(2):  # the first restart sends; the second finds nothing left to send
        res = subprocess.run([sys.executable, str(WORKER), str(cfg), "resume", str(out)], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "PENDING 0" in res.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 2, lines
    assert {ln.split()[0] for ln in lines} == {order_id}
    assert {ln.split()[1] for ln in lines} == {"chat-1"}
    codes = [ln.split()[2] for ln in lines]
    assert len(set(codes)) == 2 and all(c.startswith("CRASH-CODE-") for c in codes)
