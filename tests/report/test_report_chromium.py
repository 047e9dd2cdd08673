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
