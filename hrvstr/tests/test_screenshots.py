"""`make screenshots` keeps working: the command runs end to end into a temporary folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hrvstr.browser import chromium_available
from hrvstr.screenshots import STAFF_PAGES, USER_PAGES, WIDTHS

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not chromium_available(), reason="needs /usr/bin/chromium and playwright"),
]
BASE_DIR = Path(__file__).resolve().parents[2]


def test_make_screenshots_saves_every_page_at_both_widths(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hrvstr.screenshots", "--out", str(tmp_path)],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = {f"{name}-{label}.png" for name in {**USER_PAGES, **STAFF_PAGES} for label in WIDTHS}
    saved = {path.name for path in tmp_path.glob("*.png")}
    assert saved == expected
    for path in tmp_path.glob("*.png"):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000
