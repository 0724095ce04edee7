#!/usr/bin/env bash
# Push throughput of eic on Redis beside one node on the embedded store, in
# the same run: wrk replays one SigV4-signed SendSSHPublicKey at 32
# connections in total against
#   embedded      one node, embedded store (durability of examples/dev.toml)
#   redis-1-node  one node on redis-server
#   redis-2-nodes two nodes on the same redis-server, 16 connections each at
#                 once (the sum of both is reported)
# redis-server runs with appendonly yes, appendfsync everysec.
#
# usage: bench/redis.sh [ROUNDS] [SECONDS]   (needs wrk, redis-server and
#                                             python3 with botocore)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
cargo build --release --locked --bin eic >&2
eic=${CARGO_TARGET_DIR:-target}/release/eic
source bench/lib.sh

redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly yes --appendfsync everysec --dir "$work"
until [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ]; do sleep 0.1; done
store_url=redis://127.0.0.1:$redis_port

# The fixtures with throttling out of the way (one principal and one
# instance take every request), as in bench/api.sh.
cat examples/dev.toml - >"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }
TOML
listen=(--api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0)
start embedded "$eic" server --config "$work/bench.toml" "${listen[@]}" --data-dir "$work/embedded"
# The Redis nodes share one data dir (its key material); the second starts
# once the first has created it.
start node-a "$eic" server --config "$work/bench.toml" "${listen[@]}" --data-dir "$work/shared" --store-url "$store_url"
embedded=$(address embedded api)
node_a=$(address node-a api)
start node-b "$eic" server --config "$work/bench.toml" "${listen[@]}" --data-dir "$work/shared" --store-url "$store_url"
node_b=$(address node-b api)

key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 bench'
body=$(printf '{"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": "%s"}' "$key")
for name in embedded node_a node_b; do # the signature covers the Host header
  python3 bench/presign.py "http://${!name}" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
    AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' >"$work/$name.lua"
done

wrk_run() { # address, script, threads, connections: prints "req/s p99 non-200"
  local out
  out=$(wrk -t"$3" -c"$4" -d"${secs}s" --latency -s "$work/$2.lua" "http://$1/")
  echo "$(awk '/^Requests\/sec/{print $2}' <<<"$out") $(awk '$1=="99%"{print $2}' <<<"$out") $(awk '/^non-200/{print $3}' <<<"$out")"
}

echo "setup req/s p99 non-200"
for _ in $(seq "$rounds"); do
  echo "embedded $(wrk_run "$embedded" embedded 2 32)"
  echo "redis-1-node $(wrk_run "$node_a" node_a 2 32)"
  wrk_run "$node_a" node_a 1 16 >"$work/a.result" &
  wrk_run "$node_b" node_b 1 16 >"$work/b.result"
  wait $!
  read -r a_rps a_p99 a_bad <"$work/a.result"
  read -r b_rps b_p99 b_bad <"$work/b.result"
  echo "redis-2-nodes $(awk -v a="$a_rps" -v b="$b_rps" 'BEGIN{printf "%.2f", a + b}') $a_p99/$b_p99 $((a_bad + b_bad))"
done
echo "redis memory after the run: $(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory_human/{print $2}' | tr -d '\r')" >&2
