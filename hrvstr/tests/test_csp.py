"""Content-Security-Policy on every page, no inline code for it to block, and JSON errors
under /api/ (issue 12, item 7). test_browser.py loads the pages in Chromium and fails on any
CSP violation it reports."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from csp.constants import NONE, SELF
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client

from hrvstr import csp
from hrvstr.tests.routes import routes

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            parsed[words[0]] = words[1:]
    return parsed


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["visitor", "staff"])
def test_every_route_answers_with_a_strict_policy(who, staff, settings):
    settings.RATELIMIT_ENABLE = False
    client = Client()
    if who == "staff":
        client.force_login(staff, backend="hrvstr.auth.EmailBackend")
    paths = routes() + ["/admin/", "/admin/dashboard/", "/admin/auth/user/", "/no-such-page/"]
    for path in paths:
        response = client.get(path)
        header = response.get("Content-Security-Policy")
        assert header, (path, response.status_code)
        policy = directives(header)
        for directive in ("script-src", "style-src", "default-src"):
            assert "'unsafe-inline'" not in policy[directive], (path, directive)
            assert "'unsafe-eval'" not in policy.get(directive, []), (path, directive)
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]


TEMPLATE_DIRS = [BASE_DIR / "templates", *BASE_DIR.glob("*/templates")]
INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),  # an inline script
    re.compile(r"<style[\s>]", re.I),
    re.compile(r"\sstyle=", re.I),
    re.compile(r"\son[a-z]+=", re.I),  # onclick= and friends
    re.compile(r"javascript:", re.I),
]


def test_our_templates_have_no_inline_scripts_or_styles():
    found = []
    for directory in TEMPLATE_DIRS:
        for template in directory.rglob("*.html"):
            text = template.read_text()
            if template.name == "500.html":  # allowed by its hash, checked below
                text = text.replace(f"<style>{csp.ERROR_PAGE_STYLE}</style>", "")
            found += [f"{template}: {p.pattern}" for p in INLINE if p.search(text)]
    assert not found, found


def test_the_error_page_style_is_the_one_the_policy_hashes():
    html = render_to_string("500.html")
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)
    assert styles == [csp.ERROR_PAGE_STYLE]
    assert (
        csp.sha256_source(styles[0]) in settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]["style-src"]
    )


def test_forms_may_go_to_stripe_and_to_the_offline_stripe_when_it_is_used(db, settings):
    header = directives(Client().get("/pricing/")["Content-Security-Policy"])
    assert "https://checkout.stripe.com" in header["form-action"]
    settings.STRIPE_API_HOST = "http://127.0.0.1:12345"
    header = directives(Client().get("/pricing/")["Content-Security-Policy"])
    assert "http://127.0.0.1:12345" in header["form-action"]


def test_extra_sources_and_the_spa_policy_are_configurable():
    merged = csp.with_extra(
        csp.base_directives(), "connect-src https://api.example.com; worker-src blob:"
    )
    assert merged["connect-src"] == ["'self'", "https://api.example.com"]
    assert merged["worker-src"] == ["'self'", "blob:"]
    assert csp.base_directives()["connect-src"] == ["'self'"]  # the base is not changed
    assert settings.CSP_SPA_DIRECTIVES["script-src"] == ["'self'"]


def test_a_policy_built_once_is_the_one_django_csp_builds_each_time():
    from csp.constants import NONCE
    from csp.utils import build_policy

    spa = settings.CSP_SPA_DIRECTIVES
    cases: list[dict[str, Any]] = [
        {},
        {"update": {"form-action": ["http://127.0.0.1:12345"], "worker-src": ["blob:"]}},
        {"config": spa},
        {"replace": {"img-src": ["https://cdn.example.com"]}},
        {"config": {"upgrade-insecure-requests": True, "default-src": [SELF]}},
        {"update": {"img-src": {"https://a.example", "https://b.example"}}},  # a set: not kept
    ]
    for parts in cases:
        for report_only in (False, True):
            for _ in range(2):  # built, then kept
                assert csp.build_policy_once(**parts, report_only=report_only) == build_policy(
                    **parts, report_only=report_only
                ), parts
    # A nonce is the request's own: never kept.
    with_nonce: dict[str, Any] = {"config": {"script-src": [SELF, NONCE]}}
    first = csp.build_policy_once(**with_nonce, nonce="first")
    assert "'nonce-first'" in first
    assert "'nonce-second'" in csp.build_policy_once(**with_nonce, nonce="second")


@pytest.mark.django_db
def test_a_changed_policy_setting_is_served_at_once(settings):
    assert "img-src 'self' data:" in Client().get("/pricing/")["Content-Security-Policy"]
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": [SELF], "img-src": [NONE]}}
    header = directives(Client().get("/pricing/")["Content-Security-Policy"])
    assert header["img-src"] == [NONE]
    assert "Content-Security-Policy-Report-Only" not in Client().get("/pricing/")
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = {"DIRECTIVES": {"default-src": [SELF]}}
    assert "default-src" in Client().get("/pricing/")["Content-Security-Policy-Report-Only"]


# --- JSON errors under /api/ -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/no-such-thing", "/api/credits/nope/", "/api/billing/x"])
def test_a_404_under_api_is_json(path):
    response = Client().get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"success": False, "error": "Not found", "code": "not_found"}
    assert response.templates == []  # no HTML page rendered and thrown away


@pytest.mark.django_db
def test_a_page_404_is_still_the_html_page():
    response = Client().get("/no-such-page/")
    assert response.status_code == 404
    assert [t.name for t in response.templates][:1] == ["404.html"]


@pytest.mark.django_db
def test_a_405_under_api_is_json_and_keeps_allow():
    response = Client().get("/api/billing/webhook")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "POST"


@pytest.mark.django_db
def test_drf_errors_pass_unchanged_and_pages_keep_the_html_404(api):
    response = api.delete("/api/credits/balance")
    assert response.status_code == 405 and response.json()["success"] is False
    page = Client().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
