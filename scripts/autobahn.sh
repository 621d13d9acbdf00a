#!/usr/bin/env bash
# WebSocket protocol conformance with the Autobahn test suite's fuzzing client (wstest), against
#   1. echo-stack: an echo server on the gateway's own WebSocket stack (axum over
#      tokio-tungstenite, the gateway's socket settings; tests/autobahn/echo-server) — the
#      suite's cases expect an echo, so this is where pass/fail is meaningful;
#   2. gateway: the real embedded gateway's /ws (token from dev login). It answers frames
#      with chat frames, not echoes, so only its closing behaviour is graded, and it must
#      survive every case (no panic, /healthz still answering).
# Not part of CI. See docs/hardening.md.
#
#   scripts/autobahn.sh [CASES]     CASES: a JSON list of case patterns, default all but
#                                   9.* (performance) and 12.*/13.* (permessage-deflate,
#                                   which the gateway does not offer), e.g. '["1.*","7.*"]'
#
# Needs Python 2.7 (the suite is Python 2 only): $PYTHON2, python2.7 on PATH, or pyenv's 2.7.
# Installs autobahntestsuite from PyPI into target/autobahn/site on first use. Reports land in
# target/autobahn/reports (index.html). Exits 1 when a conformance case failed on the echo
# stack or the gateway died, panicked or failed to close properly.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/target/autobahn"
cases="${1:-[\"*\"]}"
exclude='["9.*", "12.*", "13.*"]'
[ "$#" -gt 0 ] && exclude='[]'
mkdir -p "$out"

find_python2() {
    if [ -n "${PYTHON2:-}" ]; then echo "$PYTHON2"; return; fi
    if command -v python2.7 >/dev/null 2>&1 && python2.7 -c 'import sys' 2>/dev/null; then
        command -v python2.7; return
    fi
    for candidate in "$HOME"/.pyenv/versions/2.7*/bin/python2.7; do
        [ -x "$candidate" ] && { echo "$candidate"; return; }
    done
    echo "no Python 2.7 found (set PYTHON2); autobahntestsuite runs only on Python 2.7" >&2
    exit 2
}

python2="$(find_python2)"
site="$out/site"
if [ ! -d "$site/autobahntestsuite" ]; then
    echo "installing autobahntestsuite into $site"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$python2" -m pip install -q --target "$site" \
        autobahntestsuite==25.10.1
fi

echo "building the gateway and the echo server"
(cd "$root" && cargo build -q -p gateway)
CARGO_TARGET_DIR="$out/echo-target" cargo build -q \
    --manifest-path "$root/tests/autobahn/echo-server/Cargo.toml"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() {
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listening on port $1" >&2
    return 1
}

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

echo_port="$(free_port)"
LISTEN_ADDR="127.0.0.1:$echo_port" "$out/echo-target/debug/autobahn-echo-server" \
    >"$out/echo-server.log" 2>&1 &
pids+=("$!")
wait_for_port "$echo_port"

gateway_port="$(free_port)"
gateway_log="$out/gateway.log"
# One dev-login user opens every case's connection: no per-user handshake budget here.
LISTEN_ADDR="127.0.0.1:$gateway_port" DEV_LOGIN=true USER_HANDSHAKES_PER_MIN=0 \
    JWT_SECRET="autobahn-secret-0123456789abcdef" RUST_LOG=info \
    "$root/target/debug/gateway" >"$gateway_log" 2>&1 &
gateway_pid="$!"
pids+=("$gateway_pid")
wait_for_port "$gateway_port"

token="$(curl -sf -X POST "http://127.0.0.1:$gateway_port/api/dev/login" \
    -H 'content-type: application/json' \
    -d '{"name":"fuzz","role":"member","guilds":["g1"]}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')"

spec="$out/fuzzingclient.json"
cat >"$spec" <<EOF
{
  "outdir": "$out/reports",
  "servers": [
    {"agent": "echo-stack", "url": "ws://127.0.0.1:$echo_port/"},
    {"agent": "gateway", "url": "ws://127.0.0.1:$gateway_port/ws"}
  ],
  "cases": $cases,
  "exclude-cases": $exclude,
  "exclude-agent-cases": {}
}
EOF

echo "running the fuzzing client (cases $cases, excluding $exclude)"
(cd "$out" && AUTOBAHN_EXTRA_HEADERS="{\"Authorization\": \"Bearer $token\"}" \
    "$python2" "$root/tests/autobahn/wstest_with_headers.py" "$site" -- \
    -m fuzzingclient -s "$spec" >"$out/wstest.log" 2>&1)

alive=yes
kill -0 "$gateway_pid" 2>/dev/null || alive=no
health="$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$gateway_port/healthz" || true)"
panics="$(grep -c 'panicked' "$gateway_log" || true)"

python3 "$root/tests/autobahn/summarise.py" "$out/reports/index.json" \
    --gateway-alive "$alive" --gateway-health "$health" --gateway-panics "$panics"
