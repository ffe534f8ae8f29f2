"""Test speed-ups only; everything else is the real settings."""

import os

os.environ.setdefault("HRVSTR_TESTING", "true")

from hrvstr.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
