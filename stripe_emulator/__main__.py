"""``python -m stripe_emulator --host 127.0.0.1 --port 12111 [--state PATH] [--webhook URL ...]``"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from .core import ACCOUNT_NAME_ENV, DEFAULT_ACCOUNT_NAME, Emulator
from .webhooks import is_loopback_host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", help="JSON snapshot file (loaded at start, saved on change)")
    parser.add_argument("--webhook", action="append", default=[], help="loopback URL to deliver to")
    parser.add_argument("--webhook-secret", action="append", default=[], help="whsec_... per URL")
    parser.add_argument("--events", default="*", help="comma-separated event types (default *)")
    parser.add_argument("--delivery", choices=("background", "sync"), default="background")
    parser.add_argument("--chaos", action="store_true", help="duplicate and shuffle deliveries")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="added to every API call (Stripe's real API answers in 150-400 ms)",
    )
    parser.add_argument(
        "--account-name",
        default=os.environ.get(ACCOUNT_NAME_ENV),
        help=f"the business the account belongs to (${ACCOUNT_NAME_ENV}; "
        f"default {DEFAULT_ACCOUNT_NAME!r})",
    )
    args = parser.parse_args(argv)
    if not is_loopback_host(args.host):
        parser.error(f"refusing --host {args.host}: the emulator only listens on loopback")
    emulator = Emulator(
        delivery=args.delivery, state_path=args.state, account_name=args.account_name
    )
    server = emulator.serve(args.host, args.port, tick=1.0, latency=args.latency_ms / 1000)
    events = [e.strip() for e in args.events.split(",") if e.strip()]
    known = {e["url"] for e in emulator.store.all("webhook_endpoint")}
    for i, url in enumerate(args.webhook):
        secret = args.webhook_secret[i] if i < len(args.webhook_secret) else None
        if url in known:  # from the state file: subscribe it to what was asked this time
            for endpoint in emulator.store.all("webhook_endpoint"):
                if endpoint["url"] == url:
                    endpoint["enabled_events"] = events
            continue
        endpoint = emulator.add_webhook_endpoint(url, secret, events)
        print(f"webhook {endpoint['id']} -> {url} secret={endpoint['secret']}", flush=True)
    if args.chaos:
        emulator.set_chaos(True, 0)
    print(f"Stripe emulator listening on {server.url} (api_base for stripe-python)", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()
    emulator.flush(1)  # give queued first attempts a moment; pending retries are dropped
    emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
