#!/usr/bin/env bash
# The Instance Connect Endpoint's tunnel on loopback, against a direct TCP
# connection in the same run:
#   throughput  SIZE bytes from the instance side (socat serving /dev/zero)
#               read by `socat` directly, by `eic open-tunnel` through the
#               tunnel, and by the AWS CLI v2's open-tunnel (its mirror,
#               tests/clients/eice_open_tunnel.py on awscrt), timed by
#               hyperfine in ROUNDS rounds that each run all three (so a
#               drift of this shared machine falls on all alike); the eic
#               server's CPU per GB from /proc/PID/stat
#   latency     1-byte round trips to an echo server, direct and through the
#               tunnel, interleaved (bench/tunnel.py: a WebSocket client on
#               Python's ssl, so no client process sits in the path)
#   memory      the server's RSS before and after IDLE more idle tunnels
# against one release eic server whose tunnel listener is on
# 127.0.0.31:443 with tls = "auto".
#
# usage: bench/tunnel.sh [SIZE [RUNS [ROUNDS [ROUNDTRIPS [IDLE]]]]]   (as root: port
#        443; needs hyperfine, socat, python3 with botocore and awscrt 0.36.0)
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:-1073741824}
runs=${2:-9}
rounds=${3:-3}
per=$(( runs / rounds ))
roundtrips=${4:-5000}
idle=${5:-1000}
cargo build --release --locked --bin eic >&2
source bench/lib.sh
eic=target/release/eic
ulimit -n "$(ulimit -Hn)"
dns=127.0.0.31
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
source_port=$(free_port)
echo_port=$(free_port)
hold_port=$(free_port)

sed "s/^dns_name = \"localhost\"/dns_name = \"$dns\"\nallowed_ports = [$source_port, $echo_port, $hold_port]/" \
  examples/dev.toml >"$work/bench.toml"
# The caps out of the way: one principal opens every idle tunnel.
sed -i "s/^\[tunnel\]/[tunnel]\nmax_tunnels_per_principal = 100000\nmax_tunnels_per_endpoint = 100000/" "$work/bench.toml"
cat >>"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }
TOML
start server "$eic" server --config "$work/bench.toml" --api-listen 127.0.0.1:0 \
  --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen "$dns:443" --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 \
  --data-dir "$work/data"
server_pid=${pids[-1]}
api=$(address server api)
address server tunnel >/dev/null
"$eic" ca-certificate --config "$work/bench.toml" --data-dir "$work/data" >"$work/ca.pem"

start source socat "TCP-LISTEN:$source_port,bind=127.0.0.1,reuseaddr,fork" "SYSTEM:head -c $size /dev/zero"
start echo socat "TCP-LISTEN:$echo_port,bind=127.0.0.1,reuseaddr,fork,nodelay" PIPE
for port in "$source_port" "$echo_port"; do
  for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-west-2 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_ENDPOINT_URL="http://$api" SSL_CERT_FILE="$work/ca.pem" EIC_CA="$work/ca.pem"
tunnel_flags="--instance-connect-endpoint-id eice-0de00000000000001 --instance-connect-endpoint-dns-name $dns --private-ip-address 127.0.0.1 --remote-port $source_port"

cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
tick=$(getconf CLK_TCK)
echo "== throughput: $size bytes from the instance side, $runs runs each in $rounds rounds"
before=$(cpu)
for round in $(seq "$rounds"); do
  hyperfine --style none --runs "$per" --export-json "$work/throughput-$round.json" \
    -n direct "socat -u TCP:127.0.0.1:$source_port - >/dev/null" \
    -n eic-open-tunnel "$eic open-tunnel $tunnel_flags </dev/null >/dev/null" \
    -n cli-v2-open-tunnel "python3 crates/eic/tests/clients/eice_open_tunnel.py --region us-west-2 $tunnel_flags </dev/null >/dev/null" \
    >/dev/null
done
after=$(cpu)
python3 - "$size" "$(( after - before ))" "$tick" "$runs" "$work"/throughput-*.json <<'PY'
import json, statistics, sys
size, ticks, tick, runs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
times = {}
for path in sys.argv[5:]:
    for r in json.load(open(path))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
direct = statistics.median(times["direct"])
for name, ts in times.items():
    median = statistics.median(ts)
    print(f"  {name:<20} median {median:.3f} s (min {min(ts):.3f}, max {max(ts):.3f})  {size / median / 1e6:5.0f} MB/s  {direct / median * 100:5.1f}% of direct")
# Two of the three commands go through the server.
print(f"  server CPU        {ticks / tick / (2 * runs) / (size / 1e9):.2f} s per GB relayed (both tunnel clients' runs)")
PY
echo "== latency"
python3 bench/tunnel.py rtt "$dns" "$echo_port" "$server_pid" "$roundtrips"
echo "== memory"
python3 bench/tunnel.py idle "$dns" "$hold_port" "$server_pid" "$idle"
