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
run_dir=/run/eic-bench-console-$$
mkdir -p "$run_dir" /run/sshd
chmod 755 "$run_dir"
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work" "$run_dir"' EXIT
cp "$EIC_BIN" "$run_dir/eic"
chmod 755 "$run_dir/eic"
eic=$run_dir/eic
id=i-0be9c000000000002
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
ssh-keygen -q -t ed25519 -N '' -f "$run_dir/host_key"
host_key=$(cut -d' ' -f1,2 "$run_dir/host_key.pub")
echo "[127.0.0.1]:$port $host_key" >"$work/known_hosts"

cat examples/dev.toml - >"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }

[[instances]]
id = "$id"
private_ip_address = "127.0.0.1"
ssh_port = $port
host_keys = ["$host_key"]
account = "111122223333"
state = "running"
availability_zone = "us-west-2a"
instance_type = "t3.micro"
TOML
start server "$eic" server --config "$work/bench.toml" --api-listen 127.0.0.1:0 \
  --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 \
  --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 --data-dir "$work/data"
server_pid=${pids[-1]}
api=$(address server api)
iapi=$(address server instance-api)
console=$(address server console)
"$eic" agent-config --config "$work/bench.toml" --data-dir "$work/data" --instance-id "$id" \
  --endpoint "http://$iapi" >"$run_dir/agent.toml"
chmod 644 "$run_dir/agent.toml"
cat >"$run_dir/sshd_config" <<CONF
Port $port
ListenAddress 127.0.0.1
HostKey $run_dir/host_key
PidFile $run_dir/sshd.pid
AuthorizedKeysFile none
AuthorizedKeysCommand $eic authorized-keys --config $run_dir/agent.toml %u %f
AuthorizedKeysCommandUser nobody
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
CONF
start sshd /usr/sbin/sshd -D -e -f "$run_dir/sshd_config"
for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break
  sleep 0.1
done

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
