"""`make screenshots` keeps working: the command runs end to end into a temporary folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devtools.browser import chromium_available
from devtools.screenshots import CHURNED_PAGES, PAST_DUE_PAGES, STAFF_PAGES, USER_PAGES, WIDTHS
from hrvstr.testing import full_size_only

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium and playwright"),
    full_size_only(),  # 21 s at one width
]
BASE_DIR = Path(__file__).resolve().parents[2]


def test_make_screenshots_saves_every_page_at_every_width(tmp_path):
    widths = WIDTHS
    result = subprocess.run(
        [sys.executable, "-m", "devtools.screenshots", "--out", str(tmp_path)]
        + [f"--width={label}" for label in widths],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    every_page = {**USER_PAGES, **PAST_DUE_PAGES, **CHURNED_PAGES, **STAFF_PAGES}
    expected = {f"{name}-{label}.png" for name in every_page for label in widths}
    saved = {path.name for path in tmp_path.glob("*.png")}
    assert saved == expected
    for path in tmp_path.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
