"""docker-compose.yml, the production shape: parsed here (no Docker daemon in CI).

Each service's command must be one this code base runs: the workers' arguments are parsed by
Procrastinate's own command-line parser, the queues are the ones billing/tasks.py uses, and
the settings they get load (queue mode, the pool) as production would load them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from billing import tasks

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def compose() -> dict:
    return yaml.safe_load((BASE_DIR / "docker-compose.yml").read_text())


def worker_options(command: list[str]) -> argparse.Namespace:
    from procrastinate import cli

    assert command[:4] == ["python", "manage.py", "procrastinate", "worker"], command
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser, include_app=False, include_schema=False)
    return parser.parse_args(command[3:])


def test_the_production_shape_has_web_workers_a_scheduler_postgres_and_redis():
    services = compose()["services"]
    assert set(services) == {"web", "worker", "scheduler", "postgres", "redis"}
    for name in ("web", "worker", "scheduler"):
        environment = services[name]["environment"]
        assert environment["HRVSTR_TASK_MODE"] == "queue"
        assert environment["DATABASE_URL"].startswith("postgres://")
        assert environment["REDIS_URL"].startswith("redis://redis:")
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["web"]["environment"]["DATABASE_POOL"] == "true"
    assert "command" not in services["web"]  # the image's: migrate, then gunicorn


def test_the_workers_serve_both_webhook_lanes_and_the_scheduler_the_scheduled_queue():
    services = compose()["services"]
    worker = worker_options(services["worker"]["command"])
    assert worker.queues == [tasks.PRIORITY_QUEUE, tasks.QUEUE]
    scheduler = worker_options(services["scheduler"]["command"])
    assert scheduler.queues == [tasks.SCHEDULED_QUEUE]


def web_settings(**overrides: str) -> list[str]:
    """What the web service's settings load as, in a fresh process with its environment."""
    environment = compose()["services"]["web"]["environment"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "HRVSTR_"))}
    env.update({k: str(v) for k, v in environment.items()})
    env.update(SECRET_KEY="compose-test-" + "x" * 50, ALLOWED_HOSTS="example.com", **overrides)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "d = s.DATABASES['default']; o = d.get('OPTIONS', {}); "
        "print(s.TASK_MODE, 'pool' in o, d.get('CONN_HEALTH_CHECKS', False), "
        "'procrastinate.contrib.django' in s.INSTALLED_APPS, o.get('prepare_threshold'))"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env | {"DJANGO_SETTINGS_MODULE": "hrvstr.settings"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


def test_the_web_service_settings_load_in_queue_mode_with_the_pool():
    assert web_settings() == ["queue", "True", "False", "True", "5"]


def test_prepared_statements_can_be_turned_off_for_an_external_pooler():
    assert web_settings(DATABASE_PREPARED_STATEMENTS="false")[-1] == "None"


def test_the_image_pools_connections_by_default():
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    assert "ENV DATABASE_POOL=true" in dockerfile
