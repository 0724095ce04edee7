#!/usr/bin/env bash
# Concurrent serial console sessions through the eic-serial SSH gateway.
#
# Builds crates/eic-serial/examples/sessions_bench.rs (release) and ramps the
# number of concurrent sessions, stopping at the first N that fails. Each N
# is a fresh pair of processes: the gateway (measured) and a --client child
# (russh clients + the TCP echo console they all point at).
#
#   bench/serial.sh                    # ramp 100 1000 5000 10000
#   RAMP="100 500" bench/serial.sh
#   NOFILE=40000 bench/serial.sh       # also raise the hard RLIMIT_NOFILE (root)
#   CONCURRENCY=64 SESSION_TIMEOUT=30 DEADLINE=300 bench/serial.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RAMP=${RAMP:-"100 1000 5000 10000"}
CONCURRENCY=${CONCURRENCY:-64}
SESSION_TIMEOUT=${SESSION_TIMEOUT:-30}
DEADLINE=${DEADLINE:-300}

cargo build --release -q -p eic-serial --example sessions_bench
target_dir=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="${target_dir:-target}/release/examples/sessions_bench"

extra=()
[ -n "${NOFILE:-}" ] && extra+=(--nofile "$NOFILE")

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }

printf '%-9s %-6s %-8s %-8s %-8s %-9s %-10s %-7s %s\n' \
    sessions ok p50_ms p99_ms max_ms rss_MiB KiB/sess wall_s status
largest=0
for n in $RAMP; do
    # The example bounds itself by DEADLINE; timeout(1) is only a backstop.
    line=$(timeout -k 10 $((DEADLINE + 120)) "$bin" --sessions "$n" \
        --concurrency "$CONCURRENCY" --session-timeout "$SESSION_TIMEOUT" \
        --deadline "$DEADLINE" "${extra[@]}" 2>/dev/null | tail -n 1) || true
    [ -n "$line" ] || line="sessions=$n status=FAILED (no output: killed or crashed)"
    status=${line#* status=}
    status=${status% wall_s=*}
    printf '%-9s %-6s %-8s %-8s %-8s %-9s %-10s %-7s %s\n' \
        "$n" "$(field ok "$line")" "$(field p50_ms "$line")" "$(field p99_ms "$line")" \
        "$(field max_ms "$line")" "$(field gateway_rss_mib "$line")" \
        "$(field rss_per_session_kib "$line")" "$(field wall_s "$line")" "$status"
    if [ "$status" != ok ]; then
        echo "stopped at N=$n: $line"
        break
    fi
    largest=$n
done
echo "largest N reached: $largest (gateway fds/RLIMIT_NOFILE and RSS are in the full lines: run the example directly)"
