"""The merchant onboards a reseller with `run.py reseller ...`, starts the store with `server.api: true`, and the
reseller's system buys over the signed API from that real process."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from core.signing import signed_headers
from tests.helpers import ROOT, SKU, code_lines, free_port, run_cli, unique_codes, write_config


def _call(base: str, key_id: str, secret: str, method: str, path: str, body: dict | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else b""
    extra = dict(headers or {})
    h = {**signed_headers(key_id, secret, method, path, data, idempotency_key=extra.pop("Idempotency-Key", None)),
         **extra, "Content-Type": "application/json"}
    req = urllib.request.Request(base + path, data=data or None, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_reseller_onboarded_by_cli_buys_from_the_running_store(tmp_path: Path) -> None:
    port = free_port()
    cfg = write_config(tmp_path, demo=False, extra={"server": {"port": port, "api": True, "api_rate_per_second": 50}})
    codes = tmp_path / "codes.txt"
    codes.write_bytes(b"".join(code_lines(unique_codes(20))))
    assert run_cli(cfg, "codes", "import", SKU, str(codes)).returncode == 0

    added = run_cli(cfg, "reseller", "add", "Acme", "--discount", "10", "--credit", "500")
    assert added.returncode == 0, added.stderr
    assert "reseller 1 Acme: discount 10%, credit limit 500" in added.stdout
    assert run_cli(cfg, "reseller", "topup", "1", "5000", "--ref", "wire-1").returncode == 0
    again = run_cli(cfg, "reseller", "topup", "1", "5000", "--ref", "wire-1")
    assert again.returncode == 2 and "duplicate_topup" in again.stderr
    key = run_cli(cfg, "reseller", "key", "1")
    assert key.returncode == 0, key.stderr
    lines = dict(ln.split(": ", 1) for ln in key.stdout.splitlines() if ": " in ln)
    key_id, secret = lines["key id"], lines["secret"]
    assert secret not in run_cli(cfg, "reseller", "show", "1").stdout

    store = subprocess.Popen([sys.executable, "run.py", "--config", str(cfg)], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=2) as resp:
                    assert json.loads(resp.read())["openapi"].startswith("3.")
                break
            except OSError:
                assert store.poll() is None and time.monotonic() < deadline, "the store did not start"
                time.sleep(0.2)
        status, body = _call(base, key_id, secret, "POST", "/api/v1/orders", {"sku": SKU, "qty": 4},
                             {"Idempotency-Key": "cli-1"})
        assert status == 201 and len(body["order"]["codes"]) == 4 and body["order"]["amount"] == 3600
        status, bal = _call(base, key_id, secret, "GET", "/api/v1/balance")
        assert (status, bal["balance"], bal["available"]) == (200, 1400, 1900)
    finally:
        store.send_signal(signal.SIGTERM)
        out, err = store.communicate(timeout=30)
    assert store.returncode == 0, err
    for code in body["order"]["codes"]:  # codes never reach the log
        assert code not in out and code not in err
    statement = run_cli(cfg, "reseller", "statement", "1")
    assert [ln.split("\t")[1] for ln in statement.stdout.splitlines()[1:]] == ["debit", "topup"]
    assert "ledger sum 1400" in run_cli(cfg, "reseller", "show", "1").stdout
