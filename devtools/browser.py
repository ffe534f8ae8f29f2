"""Headless Chromium for the browser tests and ``make screenshots``.

Debian's chromium package, driven by Playwright: Playwright's own browser download is not
used (it cannot be fetched here), so the executable path is explicit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

CHROMIUM = Path(os.environ.get("HRVSTR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chromium_available() -> bool:
    if not CHROMIUM.exists():
        return False
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


def launch(playwright: Playwright) -> Browser:
    """A headless Debian Chromium (``playwright`` is a started sync_playwright())."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
