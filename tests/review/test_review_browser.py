"""The reviewers' page in a real browser: Debian's headless Chromium driven by Selenium through Debian's
chromedriver (no browser download). Log in with a token, label five items with the keyboard, undo one, and
check what the store holds."""

from __future__ import annotations

import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from growthcurve.review import queue as rq
from growthcurve.review.auth import add_reviewer
from growthcurve.review.web import create_review_app
from growthcurve.store import get_engine
from tests.review.conftest import LABELS, Traffic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def server(traffic: Traffic) -> Iterator[tuple[str, sa.Engine, str]]:
    import uvicorn

    rq.build_queue(
        traffic.url, "w1", labels=LABELS, config=rq.QueueConfig(mix={"uncertainty": 1, "random": 1}, double_share=0)
    )
    engine = get_engine(traffic.url)
    token = add_reviewer(engine, "ann", hours=1, queue="w1")
    port = _free_port()
    app = create_review_app(engine, "w1")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    th = threading.Thread(target=srv.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):
                break
        except OSError:
            time.sleep(0.1)
    else:
        pytest.fail("the review server did not start")
    yield base, engine, token
    srv.should_exit = True
    th.join(timeout=10)
    engine.dispose()


@pytest.fixture()
def browser(tmp_path: Path) -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (`.ci/run` installs them with apt)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,900"]:
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_label_five_items_with_the_keyboard_and_undo(server: tuple[str, sa.Engine, str], browser: Any) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base, engine, token = server
    d = browser
    # the page reloads after every answer: an element read mid-reload is stale, so the waits retry
    wait = WebDriverWait(d, 20, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    d.get(f"{base}/")
    field = wait.until(lambda drv: drv.find_element(By.ID, "token"))
    field.send_keys(token + Keys.ENTER)
    wait.until(lambda drv: drv.find_elements(By.ID, "item"))

    def current() -> tuple[str, list[str]]:
        el = d.find_element(By.ID, "item")
        return el.get_attribute("data-item"), [
            li.get_attribute("data-label") for li in d.find_elements(By.CSS_SELECTOR, "#choices li")
        ]

    def press(keys: str) -> None:
        d.find_element(By.TAG_NAME, "body").send_keys(keys)

    def next_after(item: str) -> None:
        wait.until(lambda drv: drv.find_elements(By.ID, "item") and current()[0] != item)

    expected: list[tuple[int, str]] = []
    # 1: the first shown label; 2: the second; Enter: the highlighted (first) one
    for key, pick in (("1", 0), ("2", 1), (Keys.ENTER, 0)):
        item, shown = current()
        press(key)
        next_after(item)
        expected.append((int(item), shown[pick]))
    # "/" searches every label: type part of a label, Enter takes the first match
    item, _ = current()
    press("/")
    search = d.find_element(By.ID, "search")
    wait.until(lambda drv: drv.switch_to.active_element == search)
    search.send_keys("transf")
    search.send_keys(Keys.ENTER)
    next_after(item)
    expected.append((int(item), "transfer"))
    item, shown = current()
    press("3")
    next_after(item)
    expected.append((int(item), shown[2]))
    # the page shows progress and throughput
    assert "5 / " in d.find_element(By.ID, "progress").text and "/min" in d.find_element(By.ID, "progress").text
    # u undoes the last answer and shows that item again
    press("u")
    wait.until(lambda drv: current()[0] == str(expected[-1][0]))
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("select item_id, label, reviewer, source, stream, undone_at from review_answers order by id")
        ).all()
    assert [(r.item_id, r.label) for r in rows] == expected
    assert all(r.reviewer == "ann" and r.source in ("prediction", "handoff") and r.stream for r in rows)
    assert [r.undone_at is not None for r in rows] == [False, False, False, False, True]
