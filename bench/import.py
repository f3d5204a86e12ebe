#!/usr/bin/env python3
"""Bulk code import through the real CLI: wall time and peak memory of `run.py codes import`.

    .venv/bin/python bench/import.py [--lines 1000000]

Generates a file of unique codes (`CARD-<16 random alnum>`, one per line) in a temp dir, writes a temp config
with one `code` product (SQLite file and vault key file in the temp dir), then runs
`python run.py --config CFG codes import SKU FILE` as a child process. Measures the child's wall seconds and
peak RSS (wait4 rusage ru_maxrss; /proc VmHWM is polled too). Targets: <= 60 s, <= 300 MB.
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, SKU, emit, log, temp_dir, write_code_file, write_config

SUMMARY = re.compile(r"^(?P<sku>\S+): imported (?P<imported>\d+), duplicates (?P<dup>\d+), rejected (?P<rej>\d+)$",
                     re.MULTILINE)


def vm_hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def last_progress(path: Path) -> str:
    """The newest tqdm update from the child's stderr (carriage-return separated)."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, path.stat().st_size - 400))
            tail = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in re.split(r"[\r\n]", tail) if p.strip()]
    return parts[-1] if parts else ""


def run_cli(cfg: Path, sku: str, file: Path, work: Path, python: str) -> dict[str, object]:
    cmd = [python, str(ROOT / "run.py"), "--config", str(cfg), "codes", "import", sku, str(file)]
    out_path, err_path = work / "child.out", work / "child.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=work)
        hwm = 0
        next_report = t0 + 5
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            hwm = max(hwm, vm_hwm_kb(p.pid))
            now = time.perf_counter()
            if now >= next_report:
                log(f"child running {now - t0:5.1f}s, VmHWM {hwm / 1024:.0f} MB, {last_progress(err_path)}")
                next_report = now + 5
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text(encoding="utf-8", errors="replace")
    stderr = err_path.read_text(encoding="utf-8", errors="replace")
    return {"seconds": seconds, "rc": p.returncode, "maxrss_kb": ru.ru_maxrss, "vmhwm_kb": hwm,
            "stdout": stdout, "stderr": stderr}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1_000_000, help="codes in the generated file (default 1000000)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (file, config, database)")
    args = ap.parse_args()

    with temp_dir("bench-import-", keep=args.keep) as d:
        t = time.perf_counter()
        file = write_code_file(d / "codes.txt", args.lines)
        log(f"generated {args.lines} codes ({file.stat().st_size / 2**20:.1f} MB) in {time.perf_counter() - t:.1f}s "
            f"at {file}")
        cfg = write_config(d)
        log(f"config {cfg}; running: run.py --config {cfg.name} codes import {SKU} {file.name}")
        res = run_cli(cfg, SKU, file, d, sys.executable)
        m = SUMMARY.search(str(res["stdout"]))
        imported = int(m.group("imported")) if m else -1
        duplicates = int(m.group("dup")) if m else -1
        rejected = int(m.group("rej")) if m else -1
        peak_kb = max(int(res["maxrss_kb"]), int(res["vmhwm_kb"]))  # type: ignore[call-overload]
        db_rows = -1
        try:
            with sqlite3.connect(d / "store.db") as conn:
                db_rows = conn.execute("SELECT count(*) FROM codes").fetchone()[0]
        except sqlite3.Error as exc:
            log(f"could not count rows: {exc}")
        log(f"child exit {res['rc']} after {res['seconds']:.1f}s, peak RSS {peak_kb / 1024:.0f} MB; "
            f"summary: {m.group(0) if m else 'NOT FOUND'}; codes rows in db: {db_rows}")
        if res["rc"] != 0 or not m:
            tail = str(res["stderr"]).replace("\r", "\n").strip().splitlines()[-15:]
            log("child stderr (tail):\n" + "\n".join(tail))
        if args.keep:
            log(f"kept {d}")
    seconds = float(res["seconds"])  # type: ignore[arg-type]
    peak_mb = peak_kb / 1024
    emit({
        "bench": "import", "lines": args.lines, "imported": imported, "duplicates": duplicates, "rejected": rejected,
        "db_rows": db_rows, "seconds": round(seconds, 2), "codes_per_s": round(imported / seconds, 1) if seconds else 0,
        "peak_rss_mb": round(peak_mb, 1), "rusage_maxrss_mb": round(int(res["maxrss_kb"]) / 1024, 1),  # type: ignore[call-overload]
        "vmhwm_mb": round(int(res["vmhwm_kb"]) / 1024, 1), "exit_code": res["rc"],  # type: ignore[call-overload]
        "ok": bool(res["rc"] == 0 and imported == args.lines and seconds <= 60 and peak_mb <= 300),
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
