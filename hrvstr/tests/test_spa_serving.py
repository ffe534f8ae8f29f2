"""Serving the built SPA on our origin (SPA_DIST_DIR), with a tiny bundle made here, and the
hand-over from our /login/ to it."""

from __future__ import annotations

import json
import re
import time

import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from conftest import logged_in
from hrvstr.spa import IMMUTABLE_FILE_PATTERN
from subscriptions.tests.factories import PASSWORD

INDEX = "<!doctype html><div id=root></div><script src=/assets/index-AbC_12-z.js></script>"


@pytest.fixture
def spa(settings, tmp_path):
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(INDEX)
    (tmp_path / "assets" / "index-AbC_12-z.js").write_text("console.log('spa')")
    (tmp_path / "hrvstr_logo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    settings.SPA_DIST_DIR = str(tmp_path)
    settings.WHITENOISE_ROOT = str(tmp_path)
    settings.WHITENOISE_IMMUTABLE_FILE_TEST = IMMUTABLE_FILE_PATTERN
    return tmp_path


def test_client_routes_get_index_html_never_cached(spa, db):
    client = Client()  # a new client: whitenoise reads the settings when it starts
    for path in ("/settings/usage", "/settings/billing?success=true", "/user-home", "/sentiment"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.content.decode() == INDEX
        assert response["Cache-Control"] == "no-cache"


def test_hashed_assets_are_cached_for_good_and_other_files_are_served(spa, db):
    client = Client()
    asset = client.get("/assets/index-AbC_12-z.js")
    assert asset.status_code == 200
    assert isinstance(asset, StreamingHttpResponse)  # a file, streamed
    assert b"".join(asset.streaming_content) == b"console.log('spa')"
    assert "immutable" in asset["Cache-Control"] and "max-age=315360000" in asset["Cache-Control"]
    logo = client.get("/hrvstr_logo.png")
    assert logo.status_code == 200 and "immutable" not in logo.get("Cache-Control", "")


def test_our_urls_keep_precedence_and_missing_files_are_404(spa, db):
    client = Client()
    assert client.get("/api/credits/balance").status_code == 401
    assert client.get("/api/no-such-endpoint").status_code == 404
    assert client.get("/admin/").status_code == 302
    assert client.get("/pricing/").content.decode() != INDEX
    assert client.get("/login/").content.decode() != INDEX
    for path in ("/static/nope.css", "/assets/index-Missing1.js", "/stripe/webhook/x/"):
        response = client.get(path)
        assert response.status_code == 404 and response.content.decode() != INDEX, path
    assert client.post("/settings/usage").status_code == 405


def test_a_post_to_an_unknown_url_is_still_404_not_a_csrf_failure(db):
    client = Client(enforce_csrf_checks=True)
    assert client.post("/api/credits/holds/-1/capture").status_code == 404
    assert client.post("/no-such-page/").status_code == 404


def test_without_spa_dist_dir_there_is_no_spa(db):
    assert Client().get("/settings/usage").status_code == 404


def handoff_data(response) -> dict:
    match = re.search(
        r'<script id="spa-handoff" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert match, "no hand-off data on the page"
    return json.loads(match.group(1))


def test_the_login_page_hands_the_user_to_the_spa(spa, owner):
    client = Client()
    response = client.post("/login/", {"username": owner.email, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/login/spa/"
    data = handoff_data(response)
    assert set(data) == {"auth_token", "refresh_token", "token_expiry", "user", "next"}
    assert data["next"] == "/user-home"
    assert data["user"]["email"] == owner.email and data["user"]["tier"] == "free"
    # The SPA counts itself signed in while the expiry is more than 24 hours away.
    assert int(data["token_expiry"]) > (time.time() + 6 * 86400) * 1000
    assert response["Cache-Control"].startswith("max-age=0")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {data['auth_token']}")
    assert api.get("/api/subscription/tier-info").status_code == 200
    refreshed = Client().post(
        "/api/auth/refresh",
        {"refreshToken": data["refresh_token"]},
        content_type="application/json",
    )
    assert refreshed.status_code == 200
    assert 'src="/static/hrvstr/spa_handoff.js"' in response.content.decode()


@pytest.mark.parametrize(
    ("next_url", "expected"),
    [
        ("/settings/tiers", "/settings/tiers"),
        ("https://evil.example/", "/user-home"),
        ("//evil.example/", "/user-home"),
        ("javascript:alert(1)", "/user-home"),
    ],
)
def test_the_hand_over_goes_only_to_our_own_paths(spa, owner, next_url, expected):
    response = logged_in(owner).get("/login/spa/", {"next": next_url})
    assert handoff_data(response)["next"] == expected


def test_the_hand_over_needs_a_signed_in_user(spa, db):
    response = Client().get("/login/spa/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_hand_over_script_writes_the_spas_four_keys():
    from pathlib import Path

    from django.contrib.staticfiles import finders

    found = finders.find("hrvstr/spa_handoff.js")
    assert isinstance(found, str)
    script = Path(found).read_text()
    for key in ("auth_token", "refresh_token", "token_expiry", "user"):
        assert f'localStorage.setItem("{key}"' in script
    assert "window.location.replace(data.next)" in script
