#!/usr/bin/env bash
# API throughput: eic (SigV4 + validation + durable embedded store) against
# a bare hyper server with a fixed body, measured in the same run with wrk
# replaying one SigV4-signed SendSSHPublicKey at 32 connections.
#
# usage: bench/api.sh [ROUNDS] [SECONDS]     (needs wrk and python3 with botocore)
#        DURABILITY=fsync bench/api.sh ...    (the store's durability; default
#                                              that of examples/dev.toml)
#        TLS=1 bench/api.sh ...               (adds eic over HTTPS, a second
#                                              server with a self-signed cert)
#        METRICS_OFF=1 bench/api.sh ...       (adds eic without a diagnostics
#                                              listener, which counts no metric,
#                                              as "eic-no-metrics")
#        BASELINE=/path/to/old/eic bench/api.sh ...
#                                             (adds that build of eic, e.g. the
#                                              previous commit's, as "baseline")
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
cargo build --release --locked --bin eic --example bare_hyper >&2
source bench/lib.sh

# The fixtures, with throttling out of the way (one principal and one
# instance take every request) and a principal with a ten-statement policy.
ten_policy=$(python3 bench/ten_statement_policy.py)
durability=${DURABILITY:-interval}
cat <(sed "s/^durability = .*/durability = \"$durability\"/" examples/dev.toml) - >"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }

[[principals]]
arn = "arn:aws:iam::111122223333:user/bench"
access_keys = [{ id = "AKIDBENCHEXAMPLE", secret = "benchSecretKey/EXAMPLE000000000000000000" }]
tags = { userName = "ec2-user" }
policies = ['$ten_policy']
TOML
start eic target/release/eic server --config "$work/bench.toml" --api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 --data-dir "$work/data"
start bare target/release/examples/bare_hyper 127.0.0.1:0
eic_addr=$(address eic api)
bare_addr=$(address bare)
if [ -n "${METRICS_OFF:-}" ]; then
  sed '/^\[diagnostics\]/,/^$/d' "$work/bench.toml" >"$work/bench-no-metrics.toml"
  start eic-no-metrics target/release/eic server --config "$work/bench-no-metrics.toml" --api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --data-dir "$work/data-no-metrics"
  no_metrics_addr=$(address eic-no-metrics api)
fi
if [ -n "${BASELINE:-}" ]; then
  # The same config without what the baseline may not know (the
  # diagnostics listener: the baseline of its cost is a build without it).
  sed '/^\[diagnostics\]/,/^$/d' "$work/bench.toml" >"$work/bench-baseline.toml"
  start baseline "$BASELINE" server --config "$work/bench-baseline.toml" --api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --data-dir "$work/data-baseline"
  baseline_addr=$(address baseline api)
fi
if [ -n "${TLS:-}" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
  sed "s#^listen = \"127.0.0.1:8080\"#&\ntls = { certificate = \"$work/tls.pem\", private_key = \"$work/tls.key\" }#" \
    "$work/bench.toml" >"$work/bench-tls.toml"
  start eic-tls target/release/eic server --config "$work/bench-tls.toml" --api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 --data-dir "$work/data-tls"
  tls_addr=$(address eic-tls api)
fi
key='ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEz1IfFgVwd94PL4XD1ju7YfyPsL9Z7CdrE/Ace+v3k5 bench'
body=$(printf '{"InstanceId": "i-abcd1234", "InstanceOSUser": "ec2-user", "SSHPublicKey": "%s"}' "$key")
python3 bench/presign.py "http://$eic_addr" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
  AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' >"$work/admin.lua"
[ -n "${TLS:-}" ] && python3 bench/presign.py "https://$tls_addr" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
  AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' >"$work/admin-tls.lua"
[ -n "${METRICS_OFF:-}" ] && python3 bench/presign.py "http://$no_metrics_addr" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
  AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' >"$work/admin-no-metrics.lua"
[ -n "${BASELINE:-}" ] && python3 bench/presign.py "http://$baseline_addr" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
  AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' >"$work/admin-baseline.lua"
python3 bench/presign.py "http://$eic_addr" AWSEC2InstanceConnectService.SendSSHPublicKey "$body" \
  AKIDBENCHEXAMPLE 'benchSecretKey/EXAMPLE000000000000000000' >"$work/ten.lua"

# The server's own CPU per request (user + system, from /proc) beside req/s:
# wrk shares the two cores, so req/s alone moves with wrk's share.
run() { # name, address, script[, scheme[, process name]]
  local out before after
  before=$(cpu_ticks "${5:-$1}")
  out=$(wrk -t2 -c32 -d"${secs}s" --latency -s "$work/$3.lua" "${4:-http}://$2/")
  after=$(cpu_ticks "${5:-$1}")
  local rps p99 bad requests
  rps=$(awk '/^Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  bad=$(awk '/^non-200/{print $3}' <<<"$out")
  requests=$(awk '/requests in/{print $1}' <<<"$out")
  echo "$1 $rps $p99 ${bad:-0} $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN{printf "%.2f", t * 1e6 / hz / n}')"
}

echo "system req/s p99 non-200 server-cpu-us/req" 
for r in $(seq "$rounds"); do
  run bare "$bare_addr" admin
  run eic "$eic_addr" admin
  if [ -n "${METRICS_OFF:-}" ]; then run eic-no-metrics "$no_metrics_addr" admin-no-metrics; fi
  if [ -n "${BASELINE:-}" ]; then run baseline "$baseline_addr" admin-baseline; fi
  run eic-10-statements "$eic_addr" ten http eic
  if [ -n "${TLS:-}" ]; then run eic-tls "$tls_addr" admin-tls https; fi
done
echo "eic data dir after the run: $(du -sh "$work/data" | cut -f1), keys stored: $(target/release/eic keys list --data-dir "$work/data" | wc -l)" >&2
