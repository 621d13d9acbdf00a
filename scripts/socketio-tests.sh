#!/usr/bin/env bash
# Runs the Socket.IO endpoint's tests (tests/socketio: node --test with the real socket.io-client)
# against real gateways: first embedded, then distributed over a nats-server with JetStream and a
# redis-server this script starts on free loopback ports (skip that with SOCKETIO_TESTS_MODES=
# embedded). Builds the gateway and the workers unless GATEWAY_BIN points at a built gateway;
# installs the pinned client with `npm ci`. Extra arguments go to `node --test`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODES="${SOCKETIO_TESTS_MODES:-embedded distributed}"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "socketio-tests: nothing listening on port $1" >&2
  return 1
}

SERVICE_PIDS=()
stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  SERVICE_PIDS=()
}
trap stop_services EXIT

start_services() {
  local dir nats_port redis_port
  dir="$(mktemp -d)"
  nats_port="$(free_port)"
  redis_port="$(free_port)"
  nats-server -a 127.0.0.1 -p "$nats_port" -js -sd "$dir/js" >"$dir/nats.log" 2>&1 &
  SERVICE_PIDS+=("$!")
  /usr/bin/redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$dir" >"$dir/redis.log" 2>&1 &
  SERVICE_PIDS+=("$!")
  wait_for_port "$nats_port"
  wait_for_port "$redis_port"
  export NATS_URL="nats://127.0.0.1:$nats_port" REDIS_URL="redis://127.0.0.1:$redis_port"
  echo "socketio-tests: nats at $NATS_URL, redis at $REDIS_URL (logs in $dir)"
}

if [[ -z "${GATEWAY_BIN:-}" ]]; then
  cargo build --quiet -p gateway -p router-worker -p bot-worker
fi

cd tests/socketio
npm ci --no-audit --no-fund --loglevel=error
for mode in $MODES; do
  echo "socketio-tests: $mode"
  if [[ "$mode" == distributed ]]; then
    start_services
  else
    unset NATS_URL REDIS_URL
  fi
  node --test --test-concurrency=1 --test-timeout=120000 --test-reporter=spec "$@"
  stop_services
done
