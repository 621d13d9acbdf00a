#!/usr/bin/env bash
# Compares our gateway's Socket.IO endpoint with the Node reference server
# (loadtest/node-reference: socket.io 4 + @socket.io/redis-adapter over a redis-server) under the
# same client load from the same `loadtest --protocol socketio`: fanout at each of $RATES
# deliveries/s (1000 clients, 10 guilds of 100, 10 senders), $IDLE_CLIENTS idle WebSocket
# connections, and $POLL_SESSIONS idle long-polling sessions (node-reference/idle-polling.js).
# Ours runs embedded (one process); Node's CPU counts node + redis (the adapter publishes every
# emit through Redis). Writes <name>.json/.txt into $OUT and a ratio table to $OUT/summary.md.
#
# Knobs: RATES="10000 30000 100000" (RATES="": idle runs only) DURATION=8s WARMUP=2s IDLE_CLIENTS=10000 POLL_SESSIONS=1000
#        OUT=bench-results/socketio-<UTC> PROFILE=release BENCH_BIN=dir (prebuilt binaries)
# Needs: cargo, node/npm, redis-server, python3, curl.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RATES="${RATES-10000 30000 100000}"
DURATION="${DURATION:-8s}"
WARMUP="${WARMUP:-2s}"
IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
POLL_SESSIONS="${POLL_SESSIONS:-1000}"
CLIENTS=1000 GUILDS=10 SENDERS=10 BYTES=100
OUT="${OUT:-bench-results/socketio-$(date -u +%Y%m%dT%H%M%SZ)}"
PROFILE="${PROFILE:-release}"
BIN="${BENCH_BIN:-$ROOT/target/$PROFILE}"
SECRET="bench-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
mkdir -p "$OUT"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_http() {
  for _ in $(seq 1 300); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench-socketio: $1 never answered" >&2
  return 1
}

if [[ -z "${BENCH_BIN:-}" ]]; then
  cargo build --quiet --profile "$PROFILE" -p gateway -p loadtest
fi
(cd loadtest/node-reference && npm ci --no-audit --no-fund --loglevel=error)

# start_server ours|node: sets PORT and WATCH (the --watch-pid arguments).
start_server() {
  PORT="$(free_port)"
  if [[ "$1" == ours ]]; then
    env SEND_RATE_PER_SEC=1000000 SEND_BURST=1000000 USER_SEND_RATE_PER_SEC=0 RUST_LOG=warn \
      LISTEN_ADDR="127.0.0.1:$PORT" DEV_LOGIN=true JWT_SECRET="$SECRET" MAX_CONNECTIONS_PER_USER=100 DEV_LOGIN_MAX_SESSIONS=100000 \
      MAX_HANDSHAKES_PER_IP_PER_SEC=1000000 HANDSHAKE_BURST_PER_IP=1000000 \
      "$BIN/gateway" >"$OUT/ours-server.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID=$!
    WATCH=(--watch-pid "$SERVER_PID")
  else
    local redis_port
    redis_port="$(free_port)"
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
    PIDS+=($!)
    local redis_pid=$!
    sleep 0.3
    (cd loadtest/node-reference && exec env LISTEN_ADDR="127.0.0.1:$PORT" JWT_SECRET="$SECRET" \
      REDIS_URL="redis://127.0.0.1:$redis_port" node server.js) >"$OUT/node-server.log" 2>&1 &
    PIDS+=($!)
    SERVER_PID=$!
    WATCH=(--watch-pid "$SERVER_PID" --watch-pid "$redis_pid")
  fi
  wait_http "http://127.0.0.1:$PORT/healthz"
}

for server in ours node; do
  for d in $RATES; do
    start_server "$server"
    rate="$(python3 -c "print($d * $GUILDS / $CLIENTS)")"
    echo "=== $server fanout $d deliveries/s"
    "$BIN/loadtest" fanout --protocol socketio --target "ws://127.0.0.1:$PORT/socket.io/" "${WATCH[@]}" \
      --clients "$CLIENTS" --guilds "$GUILDS" --senders "$SENDERS" --rate "$rate" --message-bytes "$BYTES" \
      --duration "$DURATION" --warmup "$WARMUP" --quiet --json "$OUT/$server-fanout-$d.json" \
      | tee "$OUT/$server-fanout-$d.txt" || true
    cleanup
  done
  start_server "$server"
  echo "=== $server idle $IDLE_CLIENTS websocket connections"
  "$BIN/loadtest" idle --protocol socketio --target "ws://127.0.0.1:$PORT/socket.io/" "${WATCH[0]}" "${WATCH[1]}" \
    --clients "$IDLE_CLIENTS" --guilds 100 --duration 5s --ramp 5000 --quiet --json "$OUT/$server-idle.json" \
    | tee "$OUT/$server-idle.txt" || true
  cleanup
  start_server "$server"
  echo "=== $server idle $POLL_SESSIONS long-polling sessions"
  node loadtest/node-reference/idle-polling.js "http://127.0.0.1:$PORT" "$SERVER_PID" "$POLL_SESSIONS" 8000 \
    | tee "$OUT/$server-polling.json" || true
  cleanup
done

python3 - "$OUT" "$RATES" <<'PY' | tee "$OUT/summary.md"
import json, os, sys
out, rates = sys.argv[1], sys.argv[2].split()
def load(name):
    p = os.path.join(out, name)
    try:
        return json.load(open(p))
    except Exception:
        return None
def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "–"
print("| measure | ours | Node | ours/Node |\n|---|---|---|---|")
best = {}
for d in rates:
    row = {}
    for s in ("ours", "node"):
        r = load(f"{s}-fanout-{d}.json")
        dl = (r or {}).get("delivery") or {}
        sv = (r or {}).get("server") or {}
        row[s] = (sv.get("cpu_us_per_delivery"), (dl.get("latency") or {}).get("p99_ms"), dl.get("delivery_ratio"), dl.get("deliveries_per_s"))
        if row[s][1] is not None and row[s][1] < 50 and (row[s][2] or 0) > 0.999:
            best[s] = max(best.get(s, 0), float(d))
    fmt = lambda v, f: (f % v) if v is not None else "–"
    print(f"| CPU-µs per delivery at {d}/s | {fmt(row['ours'][0], '%.2f')} | {fmt(row['node'][0], '%.2f')} | {ratio(row['ours'][0], row['node'][0])} |")
    print(f"| p99 ms at {d}/s (delivery ratio ours / Node: {fmt(row['ours'][2], '%.4f')} / {fmt(row['node'][2], '%.4f')}) | {fmt(row['ours'][1], '%.1f')} | {fmt(row['node'][1], '%.1f')} | {ratio(row['ours'][1], row['node'][1])} |")
print(f"| highest rate of {' / '.join(rates)} with p99 < 50 ms and all delivered | {best.get('ours', '–')} | {best.get('node', '–')} | {ratio(best.get('ours'), best.get('node'))} |")
idle = {s: ((load(f"{s}-idle.json") or {}).get("server") or {}).get("rss_kib_per_connection") for s in ("ours", "node")}
print(f"| idle WebSocket: RSS KiB per connection | {idle['ours'] or '–'} | {idle['node'] or '–'} | {ratio(idle['ours'], idle['node'])} |")
poll = {}
for s in ("ours", "node"):
    try:
        poll[s] = json.loads(open(os.path.join(out, f"{s}-polling.json")).read().strip().splitlines()[-1])
    except Exception:
        poll[s] = {}
pk = {s: poll[s].get("kibPerSession") for s in poll}
print(f"| idle long-polling: RSS KiB per session ({poll['ours'].get('sessions', '–')} / {poll['node'].get('sessions', '–')} held) | {pk['ours'] if pk['ours'] is not None else '–'} | {pk['node'] if pk['node'] is not None else '–'} | {ratio(pk['ours'], pk['node'])} |")
PY
