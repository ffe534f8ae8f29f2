"""Production settings pass Django's deployment checklist, and secrets come from the environment."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One worker runs the module, so its one `check --deploy` serves both tests that read it.
pytestmark = pytest.mark.xdist_group("deploy")


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a clean environment: only what production would set."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env={**base, "DJANGO_SETTINGS_MODULE": "hrvstr.settings", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env(tmp_path) -> dict[str, str]:
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "billing.example.com",
        "CSRF_TRUSTED_ORIGINS": "https://billing.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'deploy.sqlite3'}",
        "STRIPE_TEST_SECRET_KEY": "sk_test_" + "a" * 24,
        "STRIPE_TEST_WEBHOOK_SECRET": "whsec_" + "b" * 24,
    }


@pytest.fixture(scope="module")
def deploy_check(tmp_path_factory) -> tuple[dict[str, str], subprocess.CompletedProcess]:
    """One ``check --deploy`` with production settings (a start of Django costs seconds)."""
    env = production_env(tmp_path_factory.mktemp("deploy"))
    return env, manage("check", "--deploy", "--fail-level", "WARNING", **env)


def test_check_deploy_is_clean_with_production_settings(deploy_check):
    _, result = deploy_check
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_are_https_only(tmp_path):
    code = (
        "from django.conf import settings as s;"
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE,"
        " s.SECURE_HSTS_SECONDS >= 31536000, s.DEBUG, s.CSRF_TRUSTED_ORIGINS)"
    )
    result = manage("shell", "-c", code, **production_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == (
        "True True True True False ['https://billing.example.com']"
    )


def test_without_a_secret_key_production_refuses_to_start(tmp_path):
    env = production_env(tmp_path)
    del env["SECRET_KEY"]
    result = manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_no_secret_reaches_the_output_of_a_start(deploy_check):
    env, result = deploy_check
    output = result.stdout + result.stderr
    for name in ("SECRET_KEY", "STRIPE_TEST_SECRET_KEY", "STRIPE_TEST_WEBHOOK_SECRET"):
        assert env[name] not in output, name
