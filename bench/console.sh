#!/usr/bin/env bash
# The browser console's terminal against plain ssh on loopback, one release
# eic server and one real sshd (whose AuthorizedKeysCommand is the same
# eic): keystroke-to-echo latency and bulk output, both paths in the same
# run (bench/console_latency.py); the eic server's CPU over the run from
# /proc/PID/stat.
#
# usage: bench/console.sh [ROUNDTRIPS [SIZE]]   (as root: sshd and /run; needs
#        sshd, python3 with boto3 and websocket-client)
set -euo pipefail
cd "$(dirname "$0")/.."
roundtrips=${1:-2000}
size=${2:-30000000}
if [ -z "${EIC_BIN:-}" ]; then
  cargo build --release --locked --bin eic >&2
  EIC_BIN=target/release/eic
fi
source bench/lib.sh
tick=$(getconf CLK_TCK)
login_rig console "$EIC_BIN"
id=i-0be9c000000000002

start_login_server "$id" private_ip_address
start_login_sshd "$work/bench.toml" "$work/data" "$id" "$iapi"

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2 EIC_ENDPOINT=http://$api
export AWS_CONFIG_FILE=$work/no-config AWS_SHARED_CREDENTIALS_FILE=$work/no-credentials
ssh-keygen -q -t ed25519 -N '' -f "$work/key"
# Plain ssh's key is pushed once; it stays in for the session it opens.
python3 crates/eic/tests/clients/push_key.py "$id" root "$work/key.pub" >/dev/null
signin=$("$eic" console-url --config "$work/bench.toml" --data-dir "$work/data" \
  --principal arn:aws:iam::111122223333:user/admin)
echo "eic $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(ssh -V 2>&1)"
before=$(awk '{print $14 + $15}' "/proc/$server_pid/stat"); t0=$(date +%s%3N)
python3 bench/console_latency.py "http://$console" "$signin" "$id" "$port" "$work/key" \
  "$work/known_hosts" "$roundtrips" "$size"
after=$(awk '{print $14 + $15}' "/proc/$server_pid/stat"); t1=$(date +%s%3N)
echo "eic server CPU over the run: $(( (after - before) * 1000 / tick )) ms in $(( t1 - t0 )) ms"
