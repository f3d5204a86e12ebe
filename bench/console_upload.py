#!/usr/bin/env python3
"""A big codes file uploaded through the web console: memory stays flat, whatever the file's size.

    .venv/bin/python bench/console_upload.py [--lines 1000000]

Opens a store on SQLite in a temp dir with the console on a real HTTP server (tests/console_kit.py), signs in as the
owner through a one-time link, then uploads a generated file of unique codes (`CARD-<16 random alnum>` per line)
from disk as the page's script does (multipart, X-CSRF-Token) and polls the import to done. The client streams the
file from disk too, so the process's memory is the server's: the body goes to a temporary file chunk by chunk and
the importer reads it line by line. Before the upload the peak RSS is reset (/proc/self/clear_refs); after it,
`rss_growth_mb` = peak RSS - RSS before. Target: `rss_growth_mb` < `file_mb` (and well under it for a large file).
The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from bench.common import emit, log, sqlite_url, temp_dir, write_code_file
from tests.console_kit import OWNER, open_console
from tests.helpers import SKU


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        return False
    return True


async def run(lines: int) -> dict[str, object]:
    with temp_dir("bench-console-upload-") as tmp:
        file = write_code_file(tmp / "codes.txt", lines)
        size = file.stat().st_size
        log(f"wrote {lines} codes, {size / 1e6:.1f} MB")
        extra = {"console": {"enabled": True, "max_upload_mb": max(1, size // (1024 * 1024) + 2)}}
        async with open_console(sqlite_url(tmp), tmp, extra=extra) as kit, kit.client(OWNER) as http:
            await kit.get(http, "/codes")
            headers = {"Accept": "application/json", "X-CSRF-Token": kit.csrf[id(http)]}

            async def upload(path: Path) -> tuple[float, float, dict[str, object]]:
                t0 = time.perf_counter()
                with path.open("rb") as fh:
                    form = aiohttp.FormData()
                    form.add_field("sku", SKU)
                    form.add_field("file", fh, filename=path.name, content_type="text/plain")
                    async with http.post(kit.base + "/console/codes/upload", data=form, headers=headers) as r:
                        answer = await r.json()
                        assert r.status == 202, answer
                t1 = time.perf_counter()
                while True:
                    async with http.get(kit.base + str(answer["status_url"])) as r:
                        state = await r.json()
                    if state["done"]:
                        return t1 - t0, time.perf_counter() - t1, state
                    await asyncio.sleep(0.2)

            warm = write_code_file(tmp / "warm.txt", 20_000)  # the same paths once, so their code is loaded
            await upload(warm)
            before = status_kb("VmRSS")
            peak_reset = reset_peak()
            log(f"RSS before the upload {before / 1024:.0f} MB (peak reset: {peak_reset})")
            up_s, import_s, state = await upload(file)
            peak = status_kb("VmHWM")
            log(f"uploaded in {up_s:.1f} s, imported in {import_s:.1f} s: {state['summary']!r}")
    growth = (peak - before) / 1024
    file_mb = size / (1024 * 1024)
    return {"lines": lines, "file_mb": round(file_mb, 1), "upload_seconds": round(up_s, 2),
            "import_seconds": round(import_s, 2), "imported": state["imported"], "rss_before_mb": round(before / 1024),
            "rss_growth_mb": round(growth, 1), "peak_measured": peak_reset,
            "ok": bool(state["imported"] == lines and state["state"] == "done" and growth < file_mb)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    args = ap.parse_args()
    emit(asyncio.run(run(args.lines)))


if __name__ == "__main__":
    main()
