"""The bench's floor endpoint exists only when ``HRVSTR_BENCH_ENDPOINTS`` is on."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import clear_url_caches

import hrvstr.urls


@pytest.fixture
def bench_urls(settings):
    def load(enabled: bool):
        settings.HRVSTR_BENCH_ENDPOINTS = enabled
        importlib.reload(hrvstr.urls)
        clear_url_caches()

    yield load
    settings.HRVSTR_BENCH_ENDPOINTS = False
    importlib.reload(hrvstr.urls)
    clear_url_caches()


def test_the_floor_endpoint_is_off_by_default(api, bench_urls):
    bench_urls(False)
    assert api.get("/api/bench/floor").status_code == 404


def test_the_floor_endpoint_needs_a_login_and_costs_one_query(api, anon, owner, bench_urls):
    bench_urls(True)
    assert anon.get("/api/bench/floor").status_code == 401
    api.get("/api/bench/floor")  # warm the connection
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/bench/floor")
    assert response.status_code == 200
    assert response.json() == {"success": True, "data": {"id": owner.pk}}
    assert len(queries) == 1


def test_the_setting_is_off_unless_set():
    from django.conf import settings

    assert settings.HRVSTR_BENCH_ENDPOINTS is False
