#!/usr/bin/env bash
# Runs the browser end-to-end tests (tests/browser) in headless Chromium against a real gateway.
# Installs Chromium from apt when /usr/bin/chromium is missing, installs the pinned playwright-core
# with `npm ci`, builds the gateway unless GATEWAY_BIN points at one, and runs `node --test`.
# With NATS_URL and REDIS_URL set (servers already running) the crash test also runs distributed;
# then the router-worker and bot-worker binaries are built too.
# Exits non-zero when a test fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

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
node --test --test-concurrency=1 --test-reporter=spec "$@"
