"""The store's HTTP server in a real browser (tests/browser.py: headless Chromium via Playwright): what a reseller's
developer sees opening the B2B API's address — the OpenAPI document, and a clear refusal of an unsigned call."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.async_api import Page

from tests.browser import ARTIFACTS, require_chromium
from tests.helpers import ROOT, free_port, start_store, stop_store, write_config


@pytest.fixture
def store(tmp_path: Path) -> Iterator[str]:
    """`run.py` with the B2B API on its HTTP server, as a merchant runs it; yields the server's base URL."""
    port = free_port()
    cfg = write_config(tmp_path, demo=False, extra={"server": {"port": port, "api": True}})
    proc = start_store(cfg, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_store(proc)


async def test_the_api_address_shows_its_document_and_refuses_unsigned_calls(store: str, page: Page) -> None:
    resp = await page.goto(store + "/api/v1/openapi.json")
    assert resp is not None and resp.status == 200
    assert resp.headers["content-type"].startswith("application/json")
    shown = await page.locator("body").inner_text()
    doc = json.loads(shown)  # the browser shows the document itself, whole
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "Card Store B2B API"
    assert "/api/v1/orders" in doc["paths"]

    resp = await page.goto(store + "/api/v1/balance")
    assert resp is not None and resp.status == 401
    error = json.loads(await page.locator("body").inner_text())["error"]
    assert error["code"] == "missing_auth" and "X-Api-Key" in error["message"]


def test_a_failing_browser_test_leaves_a_screenshot(tmp_path: Path) -> None:
    """The page fixture's promise, checked on a test that fails on purpose (in its own pytest run)."""
    require_chromium()
    test = tmp_path / "test_fails.py"
    test.write_text(
        "from playwright.async_api import Page\n"
        "async def test_fails(page: Page) -> None:\n"
        "    await page.set_content('<h1>Stock: 0</h1>')\n"
        "    assert await page.locator('h1').inner_text() == 'Stock: 10'\n", encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-p", "tests.browser", "--rootdir", str(ROOT), "-c", str(ROOT / "pyproject.toml"), str(test)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1 and "1 failed" in out.stdout, out.stdout + out.stderr
    found = re.search(r"screenshot of the page when the test failed: (\S+\.png)", out.stdout)
    assert found, out.stdout
    shot = Path(found.group(1))
    try:
        assert shot.parent == ARTIFACTS and "test_fails" in shot.name
        with Image.open(shot) as img:
            assert img.format == "PNG" and img.width == 1280
    finally:
        shot.unlink(missing_ok=True)
