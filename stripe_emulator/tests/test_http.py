"""Over a real loopback socket: the SDK via base_addresses / api_base, the admin API, pages."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.server import EmulatorServer
from stripe_emulator.testing import WebhookSink, running_emulator

from .tests_helpers import SECRET


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(url, data=None, method=None):
    body = urlencode(data, doseq=True).encode() if data is not None else None
    req = urllib.request.Request(
        url, data=body, method=method or ("POST" if data is not None else "GET")
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


@pytest.fixture
def served():
    with running_emulator() as (emulator, server):
        yield emulator, server


def test_sdk_over_http_smoke(served, monkeypatch):
    emu, server = served
    client = stripe.StripeClient(
        "sk_test_http", base_addresses={"api": server.url}, max_network_retries=0
    )
    price = client.v1.prices.create(
        params={
            "product_data": {"name": "Pro"},
            "unit_amount": 1200,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "pro",
        }
    )
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer_email": "h@x.io",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://127.0.0.1:8000/done/{CHECKOUT_SESSION_ID}",
        }
    )
    assert session.url == f"{server.url}/checkout/{session.id}"
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve("cus_nope")
    assert info.value.http_status == 404
    # module-level api_base, as dj-stripe's STRIPE_API_HOST sets it
    monkeypatch.setattr(stripe, "api_base", server.url)
    monkeypatch.setattr(stripe, "api_key", "sk_test_http")
    assert stripe.Price.list(lookup_keys=["pro"]).data[0].id == price.id
    # the hosted checkout page over HTTP
    status, headers, body = call(session.url)
    assert status == 200 and b"Pro" in body
    status, headers, _ = call(session.url, {"card_number": "4242424242424242", "exp": "12/34"})
    assert status == 303 and headers["Location"] == f"http://127.0.0.1:8000/done/{session.id}"
    done = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["subscription"]})
    assert done.subscription.status == "active"


def test_admin_api(served):
    emu, server = served
    admin = f"{server.url}/_emulator"
    sink = WebhookSink()
    emu.add_webhook_endpoint(sink, SECRET)
    status, _, body = call(f"{admin}/webhook_endpoints", {"url": "http://127.0.0.1:9/none"})
    assert status == 200 and json.loads(body)["secret"].startswith("whsec_")
    status, _, body = call(f"{admin}/webhook_endpoints", {"url": "http://8.8.8.8/x"})
    assert status == 400
    listed = json.loads(call(f"{admin}/webhook_endpoints")[2])
    assert len(listed["data"]) == 2 and all(e["secret"] for e in listed["data"])
    client = stripe.StripeClient("sk_test_a", base_addresses={"api": server.url})
    price = client.v1.prices.create(
        params={
            "product_data": {"name": "P"},
            "unit_amount": 1000,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )

    def new_session():
        return client.v1.checkout.sessions.create(
            params={
                "mode": "subscription",
                "line_items": [{"price": price.id}],
                "success_url": "http://127.0.0.1/ok",
            }
        )

    declined = new_session()
    status, _, body = call(f"{admin}/checkout/{declined.id}/complete", {"outcome": "decline"})
    assert status == 402 and json.loads(body)["error"]["code"] == "card_declined"
    session = new_session()
    status, _, body = call(f"{admin}/checkout/{session.id}/complete", {"card": "4242424242424242"})
    assert status == 200 and json.loads(body)["status"] == "complete"
    customer = json.loads(body)["customer"]
    status, _, _ = call(f"{admin}/customers/{customer}/renewal_outcome", {"outcome": "fail"})
    assert status == 200
    status, _, body = call(f"{admin}/clock/advance", {"days": 32})
    assert status == 200 and json.loads(body)["clock_offset"] == 32 * 86400
    sub = client.v1.subscriptions.list(params={"customer": customer}).data[0]
    assert sub.status == "past_due"
    deliveries = json.loads(call(f"{admin}/deliveries")[2])["data"]
    failed = json.loads(call(f"{admin}/deliveries?failed=true")[2])["data"]
    assert deliveries and failed and all(not d["ok"] for d in failed)
    event_id = sink.types and json.loads(sink.received[0][0])["id"]
    status, _, body = call(f"{admin}/deliveries/redeliver", {"event": event_id})
    assert status == 200 and 200 in json.loads(body)["statuses"]
    assert json.loads(call(f"{admin}/chaos", {"enabled": "true", "seed": "1"})[2])["chaos"]
    assert json.loads(call(f"{admin}/flush", {"timeout": "5"})[2])["drained"]
    info = json.loads(call(admin)[2])
    assert info["counts"]["subscription"] == 1 and "4242424242424242" in info["test_cards"]
    assert json.loads(call(f"{admin}/state")[2])["version"] == 1
    assert json.loads(call(f"{admin}/reset", {})[2])["reset"]
    assert client.v1.customers.list().data == []


def test_refuses_non_loopback_hosts():
    with pytest.raises(ValueError):
        EmulatorServer(Emulator(), "0.0.0.0", 0)
    result = subprocess.run(
        [sys.executable, "-m", "stripe_emulator", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "loopback" in result.stderr


def test_main_starts_and_serves(tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "--port",
            "0",
            "--state",
            str(state),
            "--webhook",
            "http://127.0.0.1:9/hook",
            "--webhook-secret",
            "whsec_cli",
            "--account-name",
            "Acme Analytics",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert "whsec_cli" in lines[0]
        url = lines[1].split("listening on ")[1].split()[0]
        client = stripe.StripeClient("sk_test_cli", base_addresses={"api": url})
        client.v1.customers.create(params={"email": "cli@x.io"})
        account = client.v1.accounts.retrieve_current()
        assert account.settings.dashboard.display_name == "Acme Analytics (Stripe emulator)"
        assert "cli@x.io" in state.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_concurrent_requests_keep_state_consistent(served):
    import concurrent.futures

    emu, server = served
    client = stripe.StripeClient("sk_test_c", base_addresses={"api": server.url})
    sink = WebhookSink()
    emu.add_webhook_endpoint(sink, SECRET, ["customer.created"])

    def create(i):
        return client.v1.customers.create(params={"email": f"c{i}@x.io"}).id

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(40)))
    assert len(set(ids)) == 40
    listed = [c.id for c in client.v1.customers.list(params={"limit": 100}).auto_paging_iter()]
    assert sorted(listed) == sorted(ids)
    assert len(sink.received) == 40


def test_internal_errors_become_500(served, monkeypatch):
    emu, server = served

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(emu, "handle", boom)
    status, _, body = call(f"{server.url}/v1/account")
    assert status == 500 and json.loads(body)["error"]["type"] == "api_error"


def test_ticker_runs_due_work_as_time_passes():
    from .tests_helpers import FakeClock

    clock = FakeClock()
    emu = Emulator(clock=clock)
    server = emu.serve(tick=0.02)
    try:
        client = stripe.StripeClient("sk_test_t", base_addresses={"api": server.url})
        price = client.v1.prices.create(
            params={"product_data": {"name": "T"}, "unit_amount": 100, "currency": "usd"}
        )
        session = client.v1.checkout.sessions.create(
            params={"mode": "payment", "line_items": [{"price": price.id}], "success_url": "x"}
        )
        clock.t += 24 * 3600 + 1
        for _ in range(200):
            if client.v1.checkout.sessions.retrieve(session.id).status == "expired":
                break
            time.sleep(0.01)
        assert client.v1.checkout.sessions.retrieve(session.id).status == "expired"
    finally:
        server.shutdown()


def test_a_paused_emulator_leaves_api_calls_unanswered_until_resumed(served):
    emu, server = served
    client = stripe.StripeClient(
        "sk_test_paused",
        base_addresses={"api": server.url},
        http_client=stripe.RequestsClient(timeout=0.5),
        max_network_retries=0,
    )
    status, _, body = call(f"{server.url}/_emulator/pause", {})
    assert status == 200 and json.loads(body)["paused"] is True
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.customers.create(params={"email": "held@example.com"})
    assert 0.4 < time.monotonic() - started < 3
    # The admin API still answers while paused; the held call is processed once resumed, as
    # Stripe may process a call whose answer never arrived.
    assert json.loads(call(f"{server.url}/_emulator")[2])["paused"] is True
    assert call(f"{server.url}/_emulator/resume", {})[0] == 200
    assert client.v1.customers.create(params={"email": "after@example.com"}).email
    deadline = time.monotonic() + 5
    while len(emu.store.all("customer")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(c["email"] for c in emu.store.all("customer")) == [
        "after@example.com",
        "held@example.com",
    ]


def test_a_timed_pause_ends_by_itself(served):
    emu, server = served
    assert call(f"{server.url}/_emulator/pause", {"seconds": "0"})[0] == 400
    emu.pause(0.3)
    assert emu.paused
    time.sleep(0.6)
    assert not emu.paused


def test_a_latency_setting_delays_every_api_call_and_nothing_else():
    emulator = Emulator()
    server = emulator.serve(latency=0.15)
    try:
        client = stripe.StripeClient(
            "sk_test_latency", base_addresses={"api": server.url}, max_network_retries=0
        )
        started = time.monotonic()
        for _ in range(3):
            client.v1.customers.create(params={"email": "slow@example.com"})
        per_call = (time.monotonic() - started) / 3
        assert 0.15 <= per_call < 0.6, per_call
        started = time.monotonic()
        status, _headers, _body = call(f"{server.url}/_emulator/deliveries")
        assert status == 200 and time.monotonic() - started < 0.15
    finally:
        server.shutdown()
        emulator.close()
