"""The playground page: offline by construction, and driven in headless Chromium through Playwright.

The browser test needs Debian's Chromium at /usr/bin/chromium (scripts/install_browser.sh installs it;
`playwright install` is never used). Without it the test skips, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"


def test_page_is_served_and_loads_nothing_from_elsewhere(gpt_server) -> None:
    page = httpx.get(gpt_server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert 'id="prompt"' in html and "/v1/completions" in html and "tokens/s" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN scripts, styles or fonts
    assert not re.search(r"""(fetch|import)\s*\(\s*["'`](https?:)?//""", html)


@pytest.fixture(scope="module")
def chromium_path() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing: run `bash scripts/install_browser.sh` to enable the browser test"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true requires it)")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium_path: Path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium_path), headless=True,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


def _open(browser, server, model_id: str):
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1200, "height": 720})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server.url + "/")
    expect(page.locator("#model")).to_have_text(model_id)
    return page, errors


def test_playground_streams_text_in_headless_chromium(browser, gpt_server, gpt_client, model_id: str) -> None:
    from playwright.sync_api import expect

    expected = gpt_client.completions.create(model=model_id, prompt="Mr. Darcy", max_tokens=60, seed=21,
                                             temperature=0.8).choices[0].text
    ARTIFACTS.mkdir(exist_ok=True)
    page, errors = _open(browser, gpt_server, model_id)
    page.fill("#prompt", "Mr. Darcy")
    page.fill("#max_tokens", "60")
    page.fill("#temperature", "0.8")
    page.fill("#seed", "21")
    page.click("#generate")
    expect(page.locator("#stats")).to_contain_text("tokens/s", timeout=30_000)
    expect(page.locator("#generate")).to_be_enabled(timeout=30_000)  # the stream has finished
    page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
    streamed = page.locator("#completion").text_content()
    stats = page.locator("#stats").text_content()
    page.select_option("#mode", "chat")  # the same page against the chat endpoint (delta chunks)
    page.click("#generate")
    expect(page.locator("#stats")).to_contain_text("tokens/s", timeout=30_000)
    expect(page.locator("#generate")).to_be_enabled(timeout=30_000)
    chatted = page.locator("#completion").text_content()
    page.close()
    expected_chat = gpt_client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Mr. Darcy"}], max_tokens=60, seed=21,
        temperature=0.8).choices[0].message.content
    assert not errors, errors
    assert streamed == expected and len(streamed) > 0  # the page's SSE parsing reassembles the exact text
    assert chatted == expected_chat
    assert re.search(r"\b60 tokens · [\d.]+ tokens/s", stats), stats
    assert (ARTIFACTS / "playground.png").stat().st_size > 1000


def test_stop_button_cancels_the_generation_on_the_server(browser, long_server, model_id: str) -> None:
    from playwright.sync_api import expect

    scheduler = long_server.app.state.scheduler
    cancelled = scheduler.stats.cancelled
    page, errors = _open(browser, long_server, model_id)
    page.fill("#max_tokens", "100000")  # minutes of generation: only the Stop button can end it in time
    page.click("#generate")
    expect(page.locator("#completion")).not_to_have_text("", timeout=30_000)
    page.click("#stop")
    expect(page.locator("#generate")).to_be_enabled(timeout=10_000)
    deadline = time.monotonic() + 15
    while (scheduler.stats.cancelled == cancelled or scheduler.busy) and time.monotonic() < deadline:
        time.sleep(0.05)
    page.close()
    assert not errors, errors
    assert scheduler.stats.cancelled == cancelled + 1 and not scheduler.busy
