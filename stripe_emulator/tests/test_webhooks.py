"""Webhook delivery: signatures, callables, HTTP targets, background retries, chaos, records."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from stripe_emulator import Emulator, sign
from stripe_emulator.client import EmulatorHTTPClient
from stripe_emulator.webhooks import is_loopback_url

from .tests_helpers import SECRET, START, FakeClock, Sink


def test_signature_matches_stripe_python(emu, client, sink, clock):
    clock.t = START - 10 * 86400  # the emulator's clock is far behind the wall clock
    client.v1.customers.create(params={"email": "sig@x.io"})
    headers = sink.headers[0]
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["User-Agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
    t = int(headers["Stripe-Signature"].split(",")[0][2:])
    assert abs(t - time.time()) < 5  # always wall-clock, so tolerance checks pass
    body = json.dumps(sink.events[0], separators=(",", ":"))
    assert headers["Stripe-Signature"] == sign(body, SECRET, t)
    assert sink.events[0]["created"] == int(clock.t)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, headers["Stripe-Signature"], "whsec_wrong")


def test_event_envelope(emu, client, sink):
    client.v1.customers.create(params={"email": "env@x.io"}, options={"idempotency_key": "idem-1"})
    event = sink.events[0]
    assert event["id"].startswith("evt_") and event["object"] == "event"
    assert event["livemode"] is False and event["pending_webhooks"] == 1
    assert event["request"]["idempotency_key"] == "idem-1"
    assert event["request"]["id"].startswith("req_")
    assert event["data"]["object"]["email"] == "env@x.io"
    # once delivered, the stored event has no pending webhooks left
    assert client.v1.events.retrieve(event["id"]).pending_webhooks == 0


def test_enabled_events_filter_and_failing_target_recorded(emu, client):
    only_paid = Sink()
    failing = Sink(status=500)
    emu.add_webhook_endpoint(only_paid, SECRET, ["invoice.paid"])
    ep = emu.add_webhook_endpoint(failing, SECRET)
    client.v1.customers.create(params={"email": "f@x.io"})
    assert only_paid.events == []
    assert failing.types == ["customer.created"]
    record = emu.deliveries[-1]
    assert record["endpoint"] == ep["id"] and record["status"] == 500 and not record["ok"]
    assert record["attempt"] == 1 and record["event"] == failing.events[0]["id"]
    failing.status = 200
    assert emu.redeliver(record["event"], ep["id"]) == [200]
    assert emu.deliveries[-1]["attempt"] == 2 and emu.deliveries[-1]["ok"]


def test_callable_that_raises_is_recorded(emu, client):
    def broken(body, headers):
        raise RuntimeError("receiver crashed")

    emu.add_webhook_endpoint(broken, SECRET)
    client.v1.customers.create(params={"email": "c@x.io"})
    record = emu.deliveries[-1]
    assert record["status"] is None and "receiver crashed" in record["error"]


def test_loopback_only():
    assert is_loopback_url("http://127.0.0.1:8000/x")
    assert is_loopback_url("http://localhost/x") and is_loopback_url("http://[::1]:9/x")
    assert not is_loopback_url("http://10.0.0.1/x")
    assert not is_loopback_url("https://example.com/x")
    emu = Emulator()
    with pytest.raises(Exception) as info:
        emu.add_webhook_endpoint("http://192.168.1.2/hook", SECRET)
    assert "loopback" in str(info.value)


def test_chaos_duplicates_and_shuffles(emu, client, catalog):
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": catalog["pro_monthly"].id}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    calm, wild = Sink(), Sink()
    emu.add_webhook_endpoint(calm, SECRET)
    emu.complete_checkout(session.id)
    # the same scenario with chaos on: the same events, some twice, in another order
    emu2 = Emulator(clock=FakeClock())
    emu2.add_webhook_endpoint(wild, SECRET)
    emu2.set_chaos(True, seed=3)
    c2 = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emu2))
    price = c2.v1.prices.create(
        params={
            "product_data": {"name": "P"},
            "unit_amount": 3000,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    emu2.deliver_late()
    wild.events.clear()
    s2 = c2.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu2.complete_checkout(s2.id)
    held = emu2.dispatcher.pending()
    assert held > 0  # some are late: due later on the emulator clock
    assert emu2.deliver_late() == held
    assert sorted(set(wild.types)) == sorted(set(calm.types))
    assert len(wild.types) > len(set(e["id"] for e in wild.events))  # duplicates
    assert wild.types != calm.types  # shuffled
    ids = [e["id"] for e in wild.events]
    assert all(ids.count(i) <= 2 for i in ids)


class Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    received: list[tuple[dict, dict]] = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        stripe.Webhook.construct_event(body, self.headers["Stripe-Signature"], SECRET)
        status = self.statuses.pop(0) if self.statuses else 200
        self.received.append((json.loads(body), dict(self.headers)))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.statuses = []
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_background_delivery_over_http_with_retries(receiver):
    emu = Emulator(delivery="background", retry_delays=(0.05, 0.05, 0.05))
    client = stripe.StripeClient("sk_test_bg", http_client=EmulatorHTTPClient(emu))
    port = receiver.server_address[1]
    emu.add_webhook_endpoint(f"http://127.0.0.1:{port}/hook", SECRET)
    Receiver.statuses = [500, 503]  # the first two attempts fail
    client.v1.customers.create(params={"email": "bg@x.io"})
    assert emu.flush(10)
    attempts = [(d["attempt"], d["status"]) for d in emu.deliveries]
    assert attempts == [(1, 500), (2, 503), (3, 200)]
    assert len(Receiver.received) == 3
    assert Receiver.received[-1][1]["Content-Type"] == "application/json; charset=utf-8"
    emu.close()


def test_sync_http_delivery_can_call_back_into_the_emulator(receiver):
    """A receiver that re-fetches the object (like dj-stripe) must not deadlock."""
    with_server = Emulator()
    server = with_server.serve()
    try:
        seen = []

        def refetch(body, headers):
            event = json.loads(body)
            api = stripe.StripeClient(
                "sk_test_cb", base_addresses={"api": server.url}, max_network_retries=0
            )
            seen.append(api.v1.customers.retrieve(event["data"]["object"]["id"]).email)
            return 200

        with_server.add_webhook_endpoint(refetch, SECRET, ["customer.created"])
        api = stripe.StripeClient("sk_test_cb", base_addresses={"api": server.url})
        api.v1.customers.create(params={"email": "cb@x.io"})
        assert seen == ["cb@x.io"]
    finally:
        server.shutdown()


def test_a_failed_delivery_is_retried_on_stripes_schedule_on_the_emulator_clock(emu, client):
    failing = Sink(status=500)
    emu.add_webhook_endpoint(failing, SECRET)
    client.v1.customers.create(params={"email": "r@x.io"})
    assert [d["attempt"] for d in emu.deliveries] == [1]
    emu.advance_clock(59)
    assert len(emu.deliveries) == 1
    emu.advance_clock(1)  # one minute after the failure
    assert [d["attempt"] for d in emu.deliveries] == [1, 2]
    emu.advance_clock(2 * 60)  # then two minutes, four, ...
    assert [d["attempt"] for d in emu.deliveries] == [1, 2, 3]
    failing.status = 200
    emu.advance_clock(3 * 86400)
    attempts = [(d["attempt"], d["ok"]) for d in emu.deliveries]
    assert attempts == [(1, False), (2, False), (3, False), (4, True)]
    assert emu.dispatcher.pending() == 0


def test_retries_stop_after_three_days(emu, client):
    failing = Sink(status=503)
    emu.add_webhook_endpoint(failing, SECRET)
    client.v1.customers.create(params={"email": "g@x.io"})
    for _ in range(8):
        emu.advance_clock(86400)
    times = [d["emulator_time"] for d in emu.deliveries]
    assert len(times) == 13  # the first attempt and 12 retries
    assert times[-1] - times[0] <= 3 * 86400
    assert emu.dispatcher.pending() == 0


def test_chaos_delivers_last_months_events_after_this_months_renewal(client, catalog):
    emu = Emulator(clock=FakeClock())
    sink = Sink()
    emu.add_webhook_endpoint(sink, SECRET)
    emu.set_chaos(True, seed=11)
    c = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emu))
    price = c.v1.prices.create(
        params={
            "product_data": {"name": "P"},
            "unit_amount": 3000,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    session = c.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "line_items": [{"price": price.id}],
            "success_url": "http://127.0.0.1/ok",
        }
    )
    emu.complete_checkout(session.id)
    emu.advance_clock(32 * 86400)
    emu.deliver_late()
    paid = [e for e in sink.events if e["type"] == "invoice.paid"]
    reasons = [e["data"]["object"]["billing_reason"] for e in paid]
    assert set(reasons) == {"subscription_create", "subscription_cycle"}
    created = [e["created"] for e in sink.events]
    assert created != sorted(created)  # older events arrived after newer ones


def test_background_delivery_runs_several_deliveries_at_once(client):
    emu = Emulator(delivery="background", workers=4)
    lock, busy, peak = threading.Lock(), [0], [0]

    def slow(body, headers):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.1)
        with lock:
            busy[0] -= 1
        return 200

    emu.add_webhook_endpoint(slow, SECRET)
    c = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emu))
    for i in range(8):
        c.v1.customers.create(params={"email": f"p{i}@x.io"})
    assert emu.flush(10)
    emu.close()
    assert len(emu.deliveries) == 8 and peak[0] > 1


def test_flush_everything_delivers_what_chaos_held_back(client):
    emu = Emulator(clock=FakeClock())
    sink = Sink()
    emu.add_webhook_endpoint(sink, SECRET)
    emu.set_chaos(True, seed=5)
    c = stripe.StripeClient("sk_test_x", http_client=EmulatorHTTPClient(emu))
    for i in range(10):
        c.v1.customers.create(params={"email": f"h{i}@x.io"})
    assert emu.dispatcher.pending() > 0
    resp = emu.handle("POST", "/_emulator/flush", {}, b"everything=true")
    assert resp.json() == {"drained": True, "pending": 0}
    assert {e["id"] for e in sink.events} == {e["id"] for e in emu.events()}
