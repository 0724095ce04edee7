#!/usr/bin/env bash
# `eic authorized-keys` end to end (process start to keys printed, against
# a local server) and in the official parser's flag mode, beside AWS's own
# eic_parse_authorized_keys on the same fixture, measured in the same run.
#
# usage: bench/authorized_keys.sh PATH/TO/eic_parse_authorized_keys [RUNS]
#   (the official script is in aws/aws-ec2-instance-connect-config,
#    src/bin/eic_parse_authorized_keys; needs hyperfine, curl, openssl)
set -euo pipefail
cd "$(dirname "$0")/.."
official=$(realpath "$1")
runs=${2:-200}
cargo build --release --locked --bin eic >&2
eic=$PWD/target/release/eic
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

"$eic" server --config examples/dev.toml --api-listen 127.0.0.1:0 --instance-api-listen 127.0.0.1:0 \
  --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening serial-console" "$work/out" && break; sleep 0.1; done
api=$(awk '/listening api /{print $3}' "$work/out")
iapi=$(awk '/listening instance-api /{print $3}' "$work/out")

ssh-keygen -q -t rsa -b 2048 -N '' -f "$work/key"
EIC_ENDPOINT="http://$api" python3 crates/eic/tests/clients/push_key.py i-abcd1234 ec2-user "$work/key.pub" >/dev/null
"$eic" agent-config --config examples/dev.toml --data-dir "$work/data" --instance-id i-abcd1234 \
  --endpoint "http://$iapi" >"$work/agent.toml"
fingerprint=$(ssh-keygen -lf "$work/key.pub" | awk '{print $2}')

# The same fixture as files, for the parser flag mode and the official parser.
credential=$(python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["credential"])' "$work/agent.toml")
python3 -c 'import sys,tomllib;print(tomllib.load(open(sys.argv[1],"rb"))["trust_anchor"],end="")' "$work/agent.toml" >"$work/ca.pem"
get() { curl -sf -H "X-aws-ec2-metadata-token: $credential" "http://$iapi/latest/meta-data/managed-ssh-keys/$1"; }
get active-keys/ec2-user/ >"$work/blob"
get signer-cert/ >"$work/chain.pem"
mkdir -p "$work/ocsp" "$work/tmp"
for name in $(get signer-ocsp/); do get "signer-ocsp/$name" | base64 -d >"$work/ocsp/$name"; done
flags=(-x false -p "$work/blob" -o /usr/bin/openssl -d "$work/tmp" -i i-abcd1234
       -c managed-ssh-signer.us-west-2.eic.internal -a "$work/ca.pem" -v "$work/ocsp" -f "$fingerprint")
chain=$(cat "$work/chain.pem")
# Every contender must print the key before it is timed.
for cmd in "$eic authorized-keys --config $work/agent.toml ec2-user $fingerprint" ; do
  $cmd | grep -q "^ssh-rsa" || { echo "eic end to end printed no key" >&2; exit 1; }
done
"$eic" authorized-keys "${flags[@]}" -s "$chain" | grep -q "^ssh-rsa" || { echo "eic parser mode printed no key" >&2; exit 1; }
"$official" "${flags[@]}" -s "$chain" | grep -q "^ssh-rsa" || { echo "official parser printed no key" >&2; exit 1; }

printf '%s\n' "$chain" >"$work/chain.arg"
# As AWS's curl script runs it: a fresh temporary directory each time.
for contender in official eic-parser; do
  [ "$contender" = official ] && bin="$official" || bin="$eic authorized-keys"
  cat >"$work/$contender.sh" <<SH
d=\$(mktemp -d)
$bin ${flags[*]/$work\/tmp/\$d} -s "\$(cat $work/chain.arg)"
status=\$?
rm -rf "\$d"
exit \$status
SH
done
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/eic.json" \
  "$eic authorized-keys --config $work/agent.toml ec2-user $fingerprint" >&2
hyperfine --warmup 3 --runs "$runs" --export-json "$work/eic-parser.json" "sh $work/eic-parser.sh" >&2
hyperfine --warmup 2 --runs "$(( runs < 30 ? runs : 30 ))" --export-json "$work/official.json" "sh $work/official.sh" >&2
python3 - "$work" <<'PY'
import json, statistics, sys
work = sys.argv[1]
print("contender runs p50_ms p99_ms")
for name, file in [("eic end to end (HTTP + verify)", "eic"), ("eic parser flags (sh -c wrapper)", "eic-parser"),
                   ("official eic_parse_authorized_keys (sh -c wrapper)", "official")]:
    times = sorted(json.load(open(f"{work}/{file}.json"))["results"][0]["times"])
    p99 = times[min(len(times) - 1, int(round(0.99 * (len(times) - 1))))]
    print(f"{name} | {len(times)} | {statistics.median(times)*1000:.2f} | {p99*1000:.2f}")
PY
