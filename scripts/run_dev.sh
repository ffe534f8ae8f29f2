#!/usr/bin/env bash
# `make run`: the app on SQLite and, unless real Stripe keys are set, the offline Stripe
# emulator beside it (webhooks delivered to the app, state kept in var/). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
PORT="${PORT:-8000}"
EMULATOR_PORT="${STRIPE_EMULATOR_PORT:-12111}"
export DEBUG="${DEBUG:-true}"
export SITE_URL="${SITE_URL:-http://127.0.0.1:$PORT}"
mkdir -p var

emulator_pid=""
cleanup() { [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${STRIPE_TEST_SECRET_KEY:-}" ] && [ "${STRIPE_LIVE_MODE:-false}" != "true" ]; then
    export STRIPE_TEST_SECRET_KEY="sk_test_offlineEmulatorKey000000000000"
    export STRIPE_TEST_WEBHOOK_SECRET="whsec_offline_emulator_development"
    export STRIPE_API_HOST="http://127.0.0.1:$EMULATOR_PORT"
    "$BIN/python" -m stripe_emulator --port "$EMULATOR_PORT" \
        --state var/stripe_emulator.json \
        --webhook "http://127.0.0.1:$PORT/api/billing/webhook" \
        --webhook-secret "$STRIPE_TEST_WEBHOOK_SECRET" &
    emulator_pid=$!
    for _ in $(seq 1 50); do
        "$BIN/python" -c "import socket,sys; socket.create_connection(('127.0.0.1', $EMULATOR_PORT), 0.2)" 2>/dev/null && break
        sleep 0.2
    done
    echo "Offline Stripe: $STRIPE_API_HOST (test card 4242 4242 4242 4242)"
fi

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py createcachetable
"$BIN/python" manage.py seed_demo
if [ -n "${STRIPE_TEST_SECRET_KEY:-}${STRIPE_LIVE_SECRET_KEY:-}" ]; then
    "$BIN/python" manage.py stripe_sync_catalogue
fi
echo "Serving http://127.0.0.1:$PORT  (Ctrl-C stops everything)"
"$BIN/python" manage.py runserver "127.0.0.1:$PORT"
