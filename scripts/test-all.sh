#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (nats-server ≥ 2.11
# via scripts/install-nats-server.sh, redis-server, haproxy, chromium, node), builds the workspace, then runs the Rust suites
# (unit, contract in embedded and distributed mode, fault tests, load-test smoke runs), the
# deployment checks and the browser end-to-end tests. Exits non-zero when anything fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

missing=()
command -v redis-server >/dev/null || [[ -x /usr/bin/redis-server ]] || missing+=(redis-server)
command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]] || missing+=(haproxy)
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  echo "test-all: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"
scripts/install-nats-server.sh || { echo "test-all: could not install nats-server 2.11+"; exit 1; }

failed=()
step() {
  local name="$1"
  shift
  echo "=== $name"
  if ! "$@"; then
    failed+=("$name")
  fi
}

step build cargo build --workspace --all-targets --locked
# The tests start our binaries as child processes; the build above made them.
export TESTKIT_PREBUILT=1
# The fault tests run against one NATS node and a 3-node cluster (gateway/tests/faults.rs).
# The cluster's stream-leader kill (gateway/tests/cluster_leader.rs) runs as its own step with
# its output shown, so the election time is in the log.
LEADER_KILL=killing_the_stream_leader_loses_and_repeats_nothing
step "rust tests" cargo test --workspace --locked --no-fail-fast -- --skip "$LEADER_KILL"
step "stream leader kill (3-node cluster)" \
  cargo test -p gateway --locked --test cluster_leader -- --nocapture "$LEADER_KILL"
step "deployment checks" scripts/check-deploy.sh
export GATEWAY_BIN="$ROOT/target/debug/gateway" BROWSER_TESTS_DISTRIBUTED=1
step "browser tests" scripts/browser-tests.sh
step "socket.io tests" scripts/socketio-tests.sh

if ((${#failed[@]})); then
  echo "test-all: FAILED: ${failed[*]}"
  exit 1
fi
echo "test-all: every suite passed"
