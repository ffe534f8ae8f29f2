"""gunicorn.conf.py's settings from the environment (the server itself: test_production_server)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parent.parent.parent / "gunicorn.conf.py"


@pytest.mark.parametrize(("setting", "accesslog"), [(None, "-"), ("", None), ("/tmp/a", "/tmp/a")])
def test_the_access_log_goes_to_stdout_unless_told_otherwise(monkeypatch, setting, accesslog):
    if setting is None:
        monkeypatch.delenv("GUNICORN_ACCESS_LOG", raising=False)
    else:
        monkeypatch.setenv("GUNICORN_ACCESS_LOG", setting)
    assert runpy.run_path(str(CONFIG))["accesslog"] == accesslog
