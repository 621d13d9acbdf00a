#!/usr/bin/env bash
# Runs the benchmark matrix of docs/benchmarks.md on this machine: the bare socket-stack
# ceiling, the embedded gateway and the distributed deployment (2 gateways, 2 routers, NATS
# JetStream, Redis) under the same fanout load, plus an idle-connections run. Every run writes
# <name>.json and <name>.svg into $OUT; a Markdown summary goes to $OUT/summary.md.
#
# Usage: loadtest/bench.sh [ceiling|embedded|distributed|idle|idle-multi|handshake|storm|presence|abuse|all]...
#        (default: all)
# Knobs (environment):
#   RATES="10000 50000 100000"  target deliveries per second (each one run per target)
#   CLIENTS=1000 GUILDS=10 GPC=1 SENDERS=10 BYTES=100   the reference load (10 guilds of 100)
#   DURATION=30s WARMUP=5s ENCODING=json
#   IDLE_CLIENTS=10000          connections held by the idle run (≤ ~19,900 per process)
#   MULTI_CLIENTS=50000 MULTI_GATEWAYS=3   idle-multi: that many connections over that many
#                               embedded gateways, one loadtest process per gateway (the open-
#                               file limit is per process)
#   HANDSHAKE_CLIENTS=10000 HANDSHAKE_RAMP=20000   handshake: connections opened as fast as the
#                               ramp allows against the distributed deployment (JWT + Redis)
#   STORM_CLIENTS=$CLIENTS      receivers dropped at once by the storm run
#   STORM_RATE=100              messages/s kept flowing during the reconnect storm
#   PRESENCE_ENABLED=true|false passed to every gateway (unset: the gateway's default, on)
#   SERVER_THREADS=n            tokio worker threads of every server process (unset: one per core)
#   GATEWAY_ENV="NAME=value …"  more settings for every server process the run starts
#   NATS_MONITOR_PORT=8222      the distributed run's nats-server serves /varz, /connz there
#   presence (issue #13): the storm (STORM_CLIENTS) and an idle hold of IDLE_CLIENTS for
#                               PRESENCE_IDLE=30s, each with presence on then off, embedded;
#                               PRESENCE_DISTRIBUTED=1 adds the distributed storm on/off;
#                               PRESENCE_RUNS="storm idle" picks the embedded runs
#   OUT=bench-results/<UTC timestamp>
#   PROFILE=release             (debug: only to check the script itself, numbers meaningless)
#   BENCH_BIN=dir               use the binaries in dir without building (a baseline copy)
# Needs: cargo, curl, python3; nats-server and redis-server for the distributed run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/sbin"

RATES="${RATES:-10000 50000 100000}"
CLIENTS="${CLIENTS:-1000}"
GUILDS="${GUILDS:-10}"
GPC="${GPC:-1}"
SENDERS="${SENDERS:-10}"
BYTES="${BYTES:-100}"
DURATION="${DURATION:-30s}"
WARMUP="${WARMUP:-5s}"
ENCODING="${ENCODING:-json}"
IDLE_CLIENTS="${IDLE_CLIENTS:-10000}"
MULTI_CLIENTS="${MULTI_CLIENTS:-50000}"
MULTI_GATEWAYS="${MULTI_GATEWAYS:-3}"
HANDSHAKE_CLIENTS="${HANDSHAKE_CLIENTS:-10000}"
HANDSHAKE_RAMP="${HANDSHAKE_RAMP:-20000}"
STORM_CLIENTS="${STORM_CLIENTS:-$CLIENTS}"
OUT="${OUT:-bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
SECRET="bench-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SCENARIOS=("$@")
((${#SCENARIOS[@]})) || SCENARIOS=(all)

mkdir -p "$OUT"
PROFILE="${PROFILE:-release}"
BIN="${BENCH_BIN:-$ROOT/target/$PROFILE}"
STARTED=()
WORK="$(mktemp -d)"

cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${STARTED[@]}"; do wait "$pid" 2>/dev/null || true; done
  STARTED=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start NAME command... : runs it in the background with its log in $OUT, records the pid.
start() {
  local name="$1"
  shift
  "$@" >"$OUT/$name.log" 2>&1 &
  STARTED+=($!)
  LAST_PID=$!
}

# wait_http URL [PID]: until URL answers 2xx; fails early when PID has exited.
wait_http() {
  local url="$1" pid="${2:-}"
  for _ in $(seq 1 300); do
    curl -fsS "$url" >/dev/null 2>&1 && return 0
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: the process behind $url exited; see $OUT/*.log" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "bench: $url never answered" >&2
  return 1
}

# messages/s that give $1 deliveries/s with the configured guild sizes
rate_for() {
  python3 -c "print($1 * $GUILDS / ($CLIENTS * $GPC))"
}

fanout() {
  local name="$1" deliveries="$2"
  shift 2
  echo "=== $name: $deliveries deliveries/s"
  "$BIN/loadtest" fanout --clients "$CLIENTS" --guilds "$GUILDS" --guilds-per-client "$GPC" \
    --senders "$SENDERS" --rate "$(rate_for "$deliveries")" --message-bytes "$BYTES" \
    --duration "$DURATION" --warmup "$WARMUP" --encoding "$ENCODING" --quiet \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" | tee "$OUT/$name.txt"
}

# The per-user send limit (USER_SEND_RATE_PER_SEC, default 20/s) would cap each sender far below
# the offered load; it is off here as the per-connection one is.
# The send limits and the per-address handshake limit (100/s, burst 1,000) are off: every
# loadtest client comes from 4 loopback addresses, so with it on a 10k idle hold or storm is
# refused 429 after ~4k. `abuse` runs with the defaults instead.
gateway_env=(SEND_RATE_PER_SEC=1000000 SEND_BURST=1000000 USER_SEND_RATE_PER_SEC=0
  MAX_HANDSHAKES_PER_IP_PER_SEC=0 RUST_LOG=warn LOG_FORMAT=json)
[[ -z "${PRESENCE_ENABLED:-}" ]] || gateway_env+=(PRESENCE_ENABLED="$PRESENCE_ENABLED")
[[ -z "${SERVER_THREADS:-}" ]] || gateway_env+=(TOKIO_WORKER_THREADS="$SERVER_THREADS")
# GATEWAY_ENV="NAME=value …": more settings for every gateway the run starts (an experiment).
# shellcheck disable=SC2206
[[ -z "${GATEWAY_ENV:-}" ]] || gateway_env+=($GATEWAY_ENV)

run_ceiling() {
  for d in $RATES; do
    local port
    port="$(free_port)"
    start "ceiling-server-$d" "$BIN/loadtest" ceiling --ceiling-listen "127.0.0.1:$port" --timeout 1h
    local pid=$LAST_PID
    wait_http "http://127.0.0.1:$port/healthz" "$pid"
    "$BIN/loadtest" ceiling --target "ws://127.0.0.1:$port/ws" --watch-pid "$pid" \
      --clients "$CLIENTS" --guilds "$GUILDS" --guilds-per-client "$GPC" --senders "$SENDERS" \
      --rate "$(rate_for "$d")" --message-bytes "$BYTES" --duration "$DURATION" --warmup "$WARMUP" \
      --encoding "$ENCODING" --quiet --json "$OUT/ceiling-$d.json" --plot "$OUT/ceiling-$d.svg" \
      | tee "$OUT/ceiling-$d.txt"
    cleanup
  done
}

start_embedded() {
  local port
  port="$(free_port)"
  # DEV_LOGIN_MAX_SESSIONS: a 10k storm logs in 10,000 receivers and its senders, more than the
  # default keeps (the oldest would lose their guilds and be refused no_guild_context).
  start embedded-gateway env "${gateway_env[@]}" LISTEN_ADDR="127.0.0.1:$port" DEV_LOGIN=true \
    DEV_LOGIN_MAX_SESSIONS=1000000 JWT_SECRET="$SECRET" "$BIN/gateway"
  GATEWAY_PID=$LAST_PID
  GATEWAY_URL="ws://127.0.0.1:$port/ws"
  wait_http "http://127.0.0.1:$port/healthz" "$GATEWAY_PID"
}

run_embedded() {
  for d in $RATES; do
    start_embedded
    fanout "embedded-$d" "$d" --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID"
    cleanup
  done
}

# abuse (harden, issue #14): the reference load on an embedded gateway without, then with, 20
# abusive clients (loadtest abuse; the abusers run in a second loadtest process it starts, from
# 127.0.1.x); ABUSE_DELIVERIES sets the load (default 10000 deliveries/s). The gateway keeps its
# default limits (the point of the run); the reference senders (10 msg/s each) are within them.
# ABUSERS_NICE=N starts the abusers' process with nice -n N (see loadtest/src/scenarios/abuse.rs).
run_abuse() {
  local gateway_env=(RUST_LOG=warn LOG_FORMAT=json)
  start_embedded
  "$BIN/loadtest" abuse --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID" \
    --clients "$CLIENTS" --guilds "$GUILDS" --guilds-per-client "$GPC" --senders "$SENDERS" \
    --rate "$(rate_for "${ABUSE_DELIVERIES:-10000}")" --message-bytes "$BYTES" \
    --duration "$DURATION" --warmup "$WARMUP" --encoding "$ENCODING" --quiet \
    --json "$OUT/abuse.json" | tee "$OUT/abuse.txt"
  cleanup
}

start_distributed() {
  local nats_port redis_port
  nats_port="$(free_port)"
  redis_port="$(free_port)"
  start nats nats-server -js -a 127.0.0.1 -p "$nats_port" ${NATS_MONITOR_PORT:+-m "$NATS_MONITOR_PORT"} -sd "$WORK/nats-$RANDOM"
  DIST_PIDS=("$LAST_PID")
  start redis redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no
  DIST_PIDS+=("$LAST_PID")
  REDIS_URL="redis://127.0.0.1:$redis_port"
  local common=(NATS_URL="nats://127.0.0.1:$nats_port" REDIS_URL="$REDIS_URL" JWT_SECRET="$SECRET")
  sleep 0.5
  for i in 1 2; do
    start "router-$i" env "${gateway_env[@]}" "${common[@]}" LISTEN_ADDR="127.0.0.1:$(free_port)" \
      "$BIN/router-worker"
    DIST_PIDS+=("$LAST_PID")
  done
  start bot env "${gateway_env[@]}" "${common[@]}" LISTEN_ADDR="127.0.0.1:$(free_port)" "$BIN/bot-worker"
  DIST_PIDS+=("$LAST_PID")
  DIST_TARGETS=()
  for i in 1 2; do
    local port
    port="$(free_port)"
    start "gateway-$i" env "${gateway_env[@]}" "${common[@]}" LISTEN_ADDR="127.0.0.1:$port" "$BIN/gateway"
    DIST_PIDS+=("$LAST_PID")
    DIST_TARGETS+=(--target "ws://127.0.0.1:$port/ws")
    wait_http "http://127.0.0.1:$port/readyz" "$LAST_PID"
  done
}

# cpu_ticks PID...: "pid utime+stime" per process (clock ticks), for a per-process breakdown.
cpu_ticks() {
  for pid in "$@"; do
    awk -v p="$pid" '{print p, $14 + $15}' "/proc/$pid/stat" 2>/dev/null || true
  done
}

# cpu_split NAME BEFORE AFTER: CPU seconds per process over the run, by its log name.
cpu_split() {
  local name="$1" before="$2" after="$3"
  python3 - "$before" "$after" "$OUT" "$(getconf CLK_TCK)" <<'PY' | tee "$OUT/$name.cpu.txt"
import sys, os
before = dict(l.split() for l in sys.argv[1].splitlines() if l.strip())
after = dict(l.split() for l in sys.argv[2].splitlines() if l.strip())
tck = int(sys.argv[4])
for pid, t in after.items():
    comm = open(f"/proc/{pid}/comm").read().strip() if os.path.exists(f"/proc/{pid}/comm") else "?"
    print(f"cpu pid {pid} {comm}: {(int(t) - int(before.get(pid, 0))) / tck:.2f} s")
PY
}

run_distributed() {
  for d in $RATES; do
    start_distributed
    local watch=()
    for pid in "${DIST_PIDS[@]}"; do watch+=(--watch-pid "$pid"); done
    local before
    before="$(cpu_ticks "${DIST_PIDS[@]}")"
    fanout "distributed-$d" "$d" "${DIST_TARGETS[@]}" "${watch[@]}" \
      --redis-url "$REDIS_URL" --jwt-secret "$SECRET"
    cpu_split "distributed-$d" "$before" "$(cpu_ticks "${DIST_PIDS[@]}")"
    cleanup
  done
}

run_idle() {
  start_embedded
  echo "=== idle-embedded: $IDLE_CLIENTS connections"
  "$BIN/loadtest" idle --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID" --clients "$IDLE_CLIENTS" \
    --guilds "$GUILDS" --duration 10s --quiet --json "$OUT/idle-embedded.json" | tee "$OUT/idle-embedded.txt"
  cleanup
  local port
  port="$(free_port)"
  start idle-ceiling-server "$BIN/loadtest" ceiling --ceiling-listen "127.0.0.1:$port" --timeout 1h
  local pid=$LAST_PID
  wait_http "http://127.0.0.1:$port/healthz" "$pid"
  echo "=== idle-ceiling: $IDLE_CLIENTS connections"
  "$BIN/loadtest" ceiling --target "ws://127.0.0.1:$port/ws" --watch-pid "$pid" \
    --clients "$IDLE_CLIENTS" --guilds "$GUILDS" --senders 1 --rate 1 --duration 10s --quiet \
    --json "$OUT/idle-ceiling.json" | tee "$OUT/idle-ceiling.txt"
  cleanup
}

# MULTI_CLIENTS idle connections over MULTI_GATEWAYS embedded gateways: one loadtest process
# per gateway, each from its own source addresses, all holding at the same time.
run_idle_multi() {
  local per=$((MULTI_CLIENTS / MULTI_GATEWAYS)) loaders=()
  for i in $(seq 1 "$MULTI_GATEWAYS"); do
    start_embedded
    local sources="127.0.$i.1,127.0.$i.2,127.0.$i.3,127.0.$i.4"
    echo "=== idle-multi-$i: $per connections"
    "$BIN/loadtest" idle --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID" --clients "$per" \
      --guilds "$GUILDS" --source-addrs "$sources" --duration 20s --quiet \
      --json "$OUT/idle-multi-$i.json" >"$OUT/idle-multi-$i.txt" 2>&1 &
    loaders+=($!)
  done
  local failed=0
  for pid in "${loaders[@]}"; do wait "$pid" || failed=1; done
  cat "$OUT"/idle-multi-*.txt
  cleanup
  return "$failed"
}

# Handshake throughput with JWT + Redis: HANDSHAKE_CLIENTS opened at up to HANDSHAKE_RAMP/s
# over the two distributed gateways.
run_handshake() {
  start_distributed
  local watch=()
  for pid in "${DIST_PIDS[@]}"; do watch+=(--watch-pid "$pid"); done
  echo "=== handshake-distributed: $HANDSHAKE_CLIENTS connections at up to $HANDSHAKE_RAMP/s"
  "$BIN/loadtest" idle "${DIST_TARGETS[@]}" "${watch[@]}" --redis-url "$REDIS_URL" \
    --jwt-secret "$SECRET" --clients "$HANDSHAKE_CLIENTS" --guilds "$GUILDS" \
    --ramp "$HANDSHAKE_RAMP" --duration 3s --quiet --json "$OUT/handshake-distributed.json" \
    | tee "$OUT/handshake-distributed.txt"
  cleanup
}

storm() {
  local name="$1"
  shift
  echo "=== $name: $STORM_CLIENTS clients drop and resume"
  "$BIN/loadtest" storm --clients "$STORM_CLIENTS" --guilds "$GUILDS" --guilds-per-client "$GPC" \
    --senders "$SENDERS" --rate "${STORM_RATE:-100}" --message-bytes "$BYTES" \
    --duration 10s --warmup "$WARMUP" --encoding "$ENCODING" --quiet \
    --json "$OUT/$name.json" --plot "$OUT/$name.svg" "$@" | tee "$OUT/$name.txt"
}

run_storm() {
  start_embedded
  storm storm-embedded --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID"
  cleanup
  start_distributed
  local watch=()
  for pid in "${DIST_PIDS[@]}"; do watch+=(--watch-pid "$pid"); done
  storm storm-distributed "${DIST_TARGETS[@]}" "${watch[@]}" --redis-url "$REDIS_URL" --jwt-secret "$SECRET"
  cleanup
}

# presence (issue #13): the same storm and idle hold with presence on, then off (the gateways'
# PRESENCE_ENABLED), so the cost of presence is a ratio within one run.
run_presence() {
  local orig=("${gateway_env[@]}") mode
  for mode in true false; do
    gateway_env=("${orig[@]}" PRESENCE_ENABLED="$mode")
    if [[ " ${PRESENCE_RUNS:-storm idle} " == *" storm "* ]]; then
      start_embedded
      storm "storm-presence-$mode-embedded" --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID"
      cleanup
    fi
    [[ " ${PRESENCE_RUNS:-storm idle} " == *" idle "* ]] || continue
    start_embedded
    echo "=== idle-presence-$mode-embedded: $IDLE_CLIENTS connections for ${PRESENCE_IDLE:-30s}"
    "$BIN/loadtest" idle --target "$GATEWAY_URL" --watch-pid "$GATEWAY_PID" --clients "$IDLE_CLIENTS" \
      --guilds "$GUILDS" --duration "${PRESENCE_IDLE:-30s}" --quiet \
      --json "$OUT/idle-presence-$mode-embedded.json" | tee "$OUT/idle-presence-$mode-embedded.txt"
    cleanup
  done
  if [[ "${PRESENCE_DISTRIBUTED:-0}" == 1 ]]; then
    for mode in true false; do
      gateway_env=("${orig[@]}" PRESENCE_ENABLED="$mode")
      start_distributed
      local watch=()
      for pid in "${DIST_PIDS[@]}"; do watch+=(--watch-pid "$pid"); done
      storm "storm-presence-$mode-distributed" "${DIST_TARGETS[@]}" "${watch[@]}" \
        --redis-url "$REDIS_URL" --jwt-secret "$SECRET"
      cleanup
    done
  fi
  gateway_env=("${orig[@]}")
}

summarize() {
  python3 - "$OUT" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = ["| run | deliveries/s | ratio | p50 ms | p99 ms | p99.9 ms | server CPU-µs/delivery | server RSS KiB/conn |",
        "|---|---|---|---|---|---|---|---|"]
storms = ["", "| storm run | clients | all resumed ms | handshakes/s | resume p50 / p99 ms | lost | duplicates | reconnect failures | presence snapshots / diffs per client |",
          "|---|---|---|---|---|---|---|---|---|"]
idles = ["", "| idle run | connections held | window s | gateway CPU s | % of one core |", "|---|---|---|---|---|"]
def f(v, fmt="{:.2f}"):
    return "–" if v is None else fmt.format(v)
for path in sorted(out.glob("*.json")):
    r = json.loads(path.read_text())
    d = r.get("delivery") or {}
    s = r.get("server") or {}
    lat = d.get("latency") or {}
    rows.append(f"| {path.stem} | {f(d.get('deliveries_per_s'), '{:.0f}')} | {f(d.get('delivery_ratio'), '{:.4f}')} "
                f"| {f(lat.get('p50_ms'))} | {f(lat.get('p99_ms'))} | {f(lat.get('p999_ms'))} "
                f"| {f(s.get('cpu_us_per_delivery'))} | {f(s.get('rss_kib_per_connection'))} |")
    st = r.get("storm")
    if st:
        res = st.get("resume") or {}
        pres = st.get("presence_per_client") or {}
        storms.append(f"| {path.stem} | {st['clients_dropped']} | {f(st.get('all_resumed_ms'), '{:.1f}')} "
                      f"| {f(st.get('handshakes_per_s'), '{:.0f}')} "
                      f"| {f(res.get('p50_ms'))} / {f(res.get('p99_ms'))} | {st['lost']} | {st['duplicates']} "
                      f"| {st['reconnect_failures']} | {f(pres.get('snapshots'))} / {f(pres.get('diffs'))} |")
    if path.stem.startswith("idle-presence-"):
        idles.append(f"| {path.stem} | {(r.get('connections') or {}).get('connected', '–')} | {f(s.get('window_s'), '{:.1f}')} "
                     f"| {f(s.get('cpu_us') and s['cpu_us'] / 1e6)} | {f(s.get('cpu_percent_of_one_core'))} |")
if len(storms) > 3:
    rows += storms
if len(idles) > 3:
    rows += idles
(out / "summary.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
PY
}

profile_flag=()
[[ "$PROFILE" == release ]] && profile_flag=(--release)
# BENCH_BIN=dir: run the binaries in dir as they are (e.g. a copy of a baseline build).
[[ -n "${BENCH_BIN:-}" ]] || cargo build "${profile_flag[@]}" -p loadtest -p gateway -p router-worker -p bot-worker --bins
for scenario in "${SCENARIOS[@]}"; do
  case "$scenario" in
    ceiling) run_ceiling ;;
    embedded) run_embedded ;;
    distributed) run_distributed ;;
    idle) run_idle ;;
    idle-multi) run_idle_multi ;;
    handshake) run_handshake ;;
    storm) run_storm ;;
    abuse) run_abuse ;;
    presence) run_presence ;;
    all) run_ceiling; run_embedded; run_distributed; run_idle; run_idle_multi; run_handshake; run_storm ;;
    *) echo "bench: unknown scenario $scenario (ceiling|embedded|distributed|idle|idle-multi|handshake|storm|abuse|presence|all)" >&2; exit 2 ;;
  esac
done
summarize
echo "bench: results in $OUT"
