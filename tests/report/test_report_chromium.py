"""The report renders in a real browser: headless Chromium screenshots it and the picture is not blank."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        f"no headless browser found ({', '.join(BROWSERS)} not on PATH): install Debian's `chromium` "
        "(`.ci/run` does so when it runs as root with apt)"
    )


def screenshot(html: Path, png: Path, height: int = 4000) -> None:
    """Render ``html`` with headless Chromium into ``png`` at 1280 x ``height``."""
    cmd = [
        _browser(),
        "--headless",
        "--disable-gpu",
        "--no-sandbox",
        "--hide-scrollbars",
        f"--screenshot={png}",
        f"--window-size=1280,{height}",
        html.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and png.is_file(), f"chromium failed ({proc.returncode}): {proc.stderr[-800:]}"


@pytest.mark.slow
def test_report_renders_in_headless_chromium(full: tuple[Any, str], tmp_path: Path) -> None:
    from PIL import Image

    page = tmp_path / "report.html"
    page.write_text(full[1], encoding="utf-8")
    png = tmp_path / "shot.png"
    screenshot(page, png)
    with Image.open(png) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert rgb.shape[:2] == (4000, 1280)
    # a blank or failed page is one flat colour; the report has a dark header, charts and tables
    assert rgb.std() > 20, f"pixel std {rgb.std():.1f}: the page looks blank"
    colours = np.unique((rgb[::4, ::4] // 16).reshape(-1, 3), axis=0)
    assert len(colours) > 50, f"only {len(colours)} distinct colours: charts did not render"
    # the embedded charts drew: the growth-curve/serving blues appear, not only text greys
    blue = (rgb[..., 2] > rgb[..., 0] + 60) & (rgb[..., 2] > 120)
    assert blue.mean() > 0.005


def _driver(width: int, height: int) -> Any:
    """Selenium on Debian's Chromium and chromedriver (no browser download), headless, at ``width`` px."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="the layout test drives Chromium with selenium")
    driver_path = shutil.which("chromedriver")
    if driver_path is None:
        pytest.skip("no chromedriver on PATH: install Debian's `chromium-driver` (`.ci/run` does so as root)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = _browser()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--hide-scrollbars", f"--window-size={width},{height}"):  # fmt: skip
        opts.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver_path), options=opts)


@pytest.mark.slow
@pytest.mark.parametrize("width", [420, 1400])
def test_report_fits_a_phone_and_a_wide_screen(full: tuple[Any, str], tmp_path: Path, width: int) -> None:
    """No horizontal page overflow at 420 px (a phone) or 1400 px: wide tables scroll inside their own box, charts
    scale down, long names wrap. A screenshot of each width is kept next to the test's files."""
    page = tmp_path / "report.html"
    page.write_text(full[1], encoding="utf-8")
    driver = _driver(width, 900)
    try:
        driver.set_window_size(width, 900)
        driver.get(page.resolve().as_uri())
        inner = driver.execute_script("return window.innerWidth")
        scroll = driver.execute_script("return document.documentElement.scrollWidth")
        assert inner <= width and scroll <= inner, f"the page is {scroll} px wide in a {inner} px window"
        # every table sits in a box that scrolls on its own, and the wide ones do scroll there at 420 px
        loose = driver.execute_script(
            "return [...document.querySelectorAll('table')].filter(t => !t.parentElement.classList.contains('scroll'))"
            ".length"
        )
        assert loose == 0
        boxes = driver.execute_script(
            "return [...document.querySelectorAll('.scroll')].map(d => [d.scrollWidth, d.clientWidth])"
        )
        if width == 420:
            assert any(s > c for s, c in boxes), "no table is wider than a phone: the test proves nothing"
        imgs = driver.execute_script("return [...document.images].map(i => i.getBoundingClientRect().right)")
        assert imgs and max(imgs) <= inner, "a chart sticks out of the page"
        shot = tmp_path / f"report-{width}.png"
        driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        driver.quit()
