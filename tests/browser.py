"""Browser fixtures: Debian's Chromium driven headless by Playwright (its wheel carries the driver; there is no
`playwright install` here — docs/tests-and-benchmarks.md, "Browser tests"). tests/conftest.py loads them for every
test; a browser test asks for `page` (a fresh page in a fresh browser context) in an async test. When a test that
used `page` fails, the page as it was is saved to tests/artifacts/<test>.png (gitignored) and the path is added to
the failure's report.

Without Chromium the browser tests are skipped, saying so; `.ci/run` installs it and sets STORE_TEST_REQUIRE_BROWSER,
which turns a missing browser into a failure.
"""
from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = Path(os.environ.get("STORE_TEST_CHROMIUM", "/usr/bin/chromium"))
REQUIRED = os.environ.get("STORE_TEST_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# --no-sandbox: the tests run as root in CI, where Chromium's sandbox refuses to start; the rest keep a headless
# test browser from calling home (updates, sync, field trials) and from waiting on a GPU.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                           pytest.TestReport]:
    """Keep each phase's report on the test, so the page fixture's teardown knows whether the test failed; a failed
    test's report names the screenshot the teardown is about to take (said now: pytest-xdist sends the report on
    before the teardown runs)."""
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    if report.when == "call" and report.failed and "page" in getattr(item, "fixturenames", ()):
        shot = screenshot_path(item.nodeid)
        report.sections.append(("browser", f"screenshot of the page when the test failed: {shot}"))
    return report


def screenshot_path(nodeid: str) -> Path:
    return ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_") + ".png")


def require_chromium() -> None:
    """Skip the test when Chromium is missing (fail when STORE_TEST_REQUIRE_BROWSER=1, as in .ci/run)."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: apt-get install chromium fonts-noto-cjk (.ci/run does)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    p = await context.new_page()
    try:
        yield p
        reports = request.node.stash.get(REPORTS, {})
        if "call" in reports and reports["call"].failed:
            path = screenshot_path(request.node.nodeid)
            path.parent.mkdir(parents=True, exist_ok=True)
            await p.screenshot(path=str(path), full_page=True)
    finally:
        await context.close()
