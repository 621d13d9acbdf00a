#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time and prints a summary (executions,
# coverage, corpus size, crashes). Not part of CI: a developer's check (docs/hardening.md).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 60 s, every target)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address); on a stable toolchain RUSTC_BOOTSTRAP=1 lets them through, which is
# what this script does. Set FUZZ_SANITIZER=none for faster runs without AddressSanitizer.
# The corpus grows in fuzz/corpus/<target> (kept between runs, not committed); crashes land in
# fuzz/artifacts/<target>; logs in fuzz/logs/<target>.log. Exits 1 when any target crashed.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
fuzz="$root/fuzz"
seconds="${1:-60}"
shift || true
sanitizer="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

cd "$fuzz"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

dict_for() {
    case "$1" in
        auth_token) echo "$fuzz/dicts/auth_token.dict" ;;
        *) echo "$fuzz/dicts/frames.dict" ;;
    esac
}

# Release build with debug assertions (so integer overflow panics too), same flags for run.
flags=(-O -a -s "$sanitizer")
echo "building the fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build "${flags[@]}"

mkdir -p "$fuzz/logs"
failed=0
summary=()
for target in "${targets[@]}"; do
    corpus="$fuzz/corpus/$target"
    seeds="$fuzz/seeds/$target"
    mkdir -p "$corpus" "$fuzz/artifacts/$target"
    dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    log="$fuzz/logs/$target.log"
    echo "fuzzing $target for ${seconds}s"
    status=ok
    if ! cargo fuzz run "${flags[@]}" "$target" "${dirs[@]}" -- \
        -max_total_time="$seconds" -dict="$(dict_for "$target")" -print_final_stats=1 \
        >"$log" 2>&1; then
        status=CRASH
        failed=1
    fi
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    rate="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    last="$(grep -E '#[0-9]+.*(cov|DONE)' "$log" | tail -1 || true)"
    cov="$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo '?')"
    ft="$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo '?')"
    files="$(find "$corpus" -type f | wc -l)"
    crashes="$(find "$fuzz/artifacts/$target" -type f | wc -l)"
    summary+=("$(printf '%-22s %-6s %12s %9s %7s %7s %8s %8s' \
        "$target" "$status" "$execs" "$rate" "$cov" "$ft" "$files" "$crashes")")
done

echo
printf '%-22s %-6s %12s %9s %7s %7s %8s %8s\n' \
    target status execs exec/s cov features corpus crashes
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "crash inputs are in fuzz/artifacts/; reproduce with: RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>" >&2
fi
exit "$failed"
