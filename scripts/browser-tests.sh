#!/usr/bin/env bash
# Runs the browser end-to-end tests (tests/browser) in headless Chromium against a real gateway.
# Installs Chromium from apt when /usr/bin/chromium is missing, installs the pinned playwright-core
# with `npm ci`, builds the gateway unless GATEWAY_BIN points at one, and runs `node --test`.
# With NATS_URL and REDIS_URL set (servers already running), or with BROWSER_TESTS_DISTRIBUTED=1
# (this script then starts nats-server with JetStream and redis-server on free loopback ports),
# the crash test also runs distributed; the router-worker and bot-worker binaries are built too.
# Exits non-zero when a test fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_for_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "browser-tests: nothing listening on port $1" >&2
  return 1
}

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
  echo "browser-tests: started nats at $NATS_URL and redis at $REDIS_URL (logs in $dir)"
}

SERVICE_PIDS=()
stop_services() {
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap stop_services EXIT

if [[ "${BROWSER_TESTS_DISTRIBUTED:-}" == 1 && -z "${NATS_URL:-}" ]]; then
  start_services
fi

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser-tests: installing chromium from apt"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [[ -z "${GATEWAY_BIN:-}" ]]; then
  packages=(-p gateway)
  if [[ -n "${NATS_URL:-}" && -n "${REDIS_URL:-}" ]]; then
    packages+=(-p router-worker -p bot-worker)
  fi
  cargo build --quiet "${packages[@]}"
  export GATEWAY_BIN="$ROOT/target/debug/gateway"
fi

cd tests/browser
npm ci --no-audit --no-fund --loglevel=error
mkdir -p artifacts
# One test file at a time: each starts its own gateway and browser, and the machine is small.
node --test --test-concurrency=1 --test-timeout=180000 --test-reporter=spec "$@"
