#!/usr/bin/env bash
# Screenshots of the read side, taken from the real running app with real posts.
#
#   bash docs/screenshots.sh        (needs Debian's chromium: apt-get install chromium)
#
# Starts `ledger serve` on free 127.0.0.1 ports with a fresh ledger in a temporary
# directory, posts the samples and generated orders through the receiver with
# `ledger send`, names the folders, takes the screenshots into docs/, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
work=$(mktemp -d)
server=
trap '[ -n "$server" ] && kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port); ds_port=$(free_port)
export LEDGER_DB="$work/ledger.db" ORDERDESK_STORE_ID=70412 ORDERDESK_API_KEY=test-api-key
unset LEDGER_DATASETTE_PASSWORD LEDGER_DATASETTE_PASSWORD_HASH

"$PY" -m ledger serve --port "$port" --datasette-port "$ds_port" >"$work/serve.log" 2>&1 &
server=$!
up=
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && { up=1; break; }
  sleep 0.2
done
[ -n "$up" ] || { echo "the server did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }

send() { "$PY" -m ledger send --url "http://127.0.0.1:$port/orderdesk" "$@" >/dev/null; }
"$PY" -m ledger folders set 48201 New >/dev/null
"$PY" -m ledger folders set 48202 Prepared >/dev/null
"$PY" -m ledger folders set 48203 Closed >/dev/null
"$PY" -m ledger folders set 48204 Canceled >/dev/null
send tests/samples/a-new-order.json tests/samples/b-updated-shipped-closed.json
send tests/samples/a-new-order.json   # a retry: a duplicate
send --api-key wrong-key tests/samples/c-unicode-discount-percent.json || true  # rejected
send tests/samples/c-unicode-discount-percent.json tests/samples/d-canceled.json
"$PY" docs/generate_orders.py "$work/orders"
send "$work"/orders/*.json
send "$work"/orders/1-41000[0-2]*-new.json   # Order Desk retrying: duplicates
curl -s -o /dev/null -X GET "http://127.0.0.1:$port/orderdesk"   # a wrong method: rejected

ds="http://127.0.0.1:$ds_port"
shoot() {  # shoot NAME PATH [HEIGHT]
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$(mktemp -d -p "$work")" \
    --window-size="1400,${3:-1000}" --virtual-time-budget=8000 \
    --screenshot="docs/$1.png" "$ds$2" 2>/dev/null
}
shoot index /
shoot orders /ledger/orders 1100
stale_order=$("$PY" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute(
  "SELECT order_id FROM reconcile_stale_snapshots ORDER BY seq LIMIT 1").fetchone()[0])' "$LEDGER_DB")
shoot order-history "/ledger/history_of_order?order_id=$stale_order" 900
shoot reconciliation /-/reconciliation 1300
shoot dashboard /-/dashboards/ledger 1500
shoot event /ledger/events/5 1400
echo "screenshots in docs/; server log:"
cat "$work/serve.log"
