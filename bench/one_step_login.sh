#!/usr/bin/env bash
# Push-to-first-output on loopback: `eic ssh root@i-… true` beside, in the
# same run,
#   floor     plain ssh with a key pushed beforehand (the login itself)
#   mssh      PyPI ec2instanceconnectcli 1.0.3 (RSA-2048 key, describe, push)
#   cli+ssh   `aws ec2-instance-connect send-ssh-public-key` then ssh
# against one release eic server and a real sshd on a loopback port whose
# AuthorizedKeysCommand is the same release eic. RUNS logins of each, in
# ROUNDS rounds that interleave the four commands (so a drift of this
# shared machine's speed falls on all of them alike), timed by hyperfine
# (the floor re-pushes its key before every run, untimed); p50/p99 over all
# rounds; the eic server's CPU per login from /proc/PID/stat, also net of
# the idle server's rate.
#
# usage: bench/one_step_login.sh [RUNS [ROUNDS]]   (as root: sshd and /run; needs
#        hyperfine, sshd, mssh, aws, python3 with boto3)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-60}
rounds=${2:-6}
per=$(( runs / rounds ))
cargo build --release --locked --bin eic >&2
source bench/lib.sh
tick=$(getconf CLK_TCK)
login_rig login target/release/eic
id=i-0be9c000000000001

start_login_server "$id" public_ip_address
start_login_sshd "$work/bench.toml" "$work/data" "$id" "$iapi" "MaxStartups 100"

export AWS_ACCESS_KEY_ID=AKIDEXAMPLE
export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
export AWS_REGION=us-west-2 AWS_DEFAULT_REGION=us-west-2
export AWS_ENDPOINT_URL=http://$api
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=$work/no-config AWS_SHARED_CREDENTIALS_FILE=$work/no-credentials
export EIC_ENDPOINT=http://$api

ssh-keygen -q -t ed25519 -N '' -f "$work/key"
strict="-o UserKnownHostsFile=$work/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"
plain_ssh="ssh -p $port -i $work/key -o IdentitiesOnly=yes $strict root@127.0.0.1 true"
push="python3 crates/eic/tests/clients/push_key.py $id root $work/key.pub >/dev/null"

cpu() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
now_ms() { date +%s%3N; }
# The server's own background work (liveness sweep, refreshers, signer) in
# CPU ms per wall second, subtracted from each command's CPU per login.
idle_before=$(cpu); idle_t0=$(now_ms)
sleep 10
idle_us_per_s=$(( ($(cpu) - idle_before) * 1000000000 / tick / ($(now_ms) - idle_t0) ))
names=(floor eic mssh cli+ssh)
commands=(
  "$plain_ssh"
  "$eic ssh root@$id true"
  "mssh -p $port $strict root@$id true"
  "aws ec2-instance-connect send-ssh-public-key --instance-id $id --instance-os-user root --ssh-public-key file://$work/key.pub >/dev/null && $plain_ssh"
)
prepares=("$push" "" "" "")
declare -a total_ns idle_ns logins
echo "eic $(git rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(ssh -V 2>&1)"
echo "idle server: $(( idle_us_per_s / 1000 )).$(( idle_us_per_s % 1000 / 100 )) ms CPU per second; $rounds rounds of $per runs each, the commands interleaved"
for round in $(seq "$rounds"); do
  for i in "${!names[@]}"; do
    prepare=()
    [ -n "${prepares[i]}" ] && prepare=(--prepare "${prepares[i]}")
    before=$(cpu); t0=$(now_ms)
    hyperfine --runs "$per" --warmup 1 "${prepare[@]}" \
      --export-json "$work/${names[i]}.$round.json" "${commands[i]}" >&2
    after=$(cpu); t1=$(now_ms)
    total_ns[i]=$(( ${total_ns[i]:-0} + (after - before) * 1000000000 / tick ))
    idle_ns[i]=$(( ${idle_ns[i]:-0} + idle_us_per_s * (t1 - t0) ))
    logins[i]=$(( ${logins[i]:-0} + per + 1 ))
  done
done
for i in "${!names[@]}"; do
  python3 - "${names[i]}" "$(( total_ns[i] / 1000 / logins[i] ))" \
    "$(( (total_ns[i] - idle_ns[i]) / 1000 / logins[i] ))" "$work/${names[i]}".*.json <<'PY'
import json, sys
name, total_us, net_us, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
times = sorted(t for f in files for t in json.load(open(f))["results"][0]["times"])
pick = lambda q: times[min(len(times) - 1, int(q * len(times)))] * 1000
print(f"{name:<8} n={len(times)} p50={pick(0.5):.0f} ms p99={pick(0.99):.0f} ms"
      f"  eic server CPU/login {total_us / 1000:.2f} ms, net of idle {net_us / 1000:.2f} ms")
PY
done
