"""Test speed-ups only; everything else is the real settings."""

import os

os.environ.setdefault("HRVSTR_TESTING", "true")

from hrvstr.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: live-server tests write from several threads, and
    # shared-cache SQLite answers "table is locked" at once instead of waiting its turn.
    VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_hrvstr.sqlite3")}  # noqa: F405
