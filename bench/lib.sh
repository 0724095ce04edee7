# Shared by the benchmark scripts: source it after setting nothing; it makes
# a scratch directory ($work), and kills what start() started on exit.
work=$(mktemp -d)
pids=()
declare -A pid_of
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
start() { # name, command...: starts it in the background, records its pid
  local name=$1; shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  pid_of[$name]=$!
}
cpu_ticks() { # name: user + system CPU ticks the process has used so far
  awk '{print $14 + $15}' "/proc/${pid_of[$1]}/stat"
}
address() { # name [role]: waits for its "listening [role]" line, prints the address
  local addr
  for _ in $(seq 100); do
    addr=$(awk -v role="${2:-}" '$1 == "listening" && (role == "" || $2 == role) {print $3; exit}' "$work/$1.out")
    [ -n "$addr" ] && { echo "$addr"; return; }
    sleep 0.1
  done
  echo "$1 did not start" >&2; cat "$work/$1.err" >&2; exit 1
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The instance side of the login benchmarks: one real sshd whose
# AuthorizedKeysCommand is the benchmarked eic. sshd runs that command only
# from a path no one else can write, which /tmp is not, so eic is copied to
# a run dir under /run (removed on exit).
login_rig() { # tag eic-binary: sets run_dir, eic, port, host_key; writes $work/known_hosts
  run_dir=/run/eic-bench-$1-$$
  mkdir -p "$run_dir" /run/sshd
  chmod 755 "$run_dir"
  trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work" "$run_dir"' EXIT
  cp "$2" "$run_dir/eic"
  chmod 755 "$run_dir/eic"
  eic=$run_dir/eic
  port=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$run_dir/host_key"
  host_key=$(cut -d' ' -f1,2 "$run_dir/host_key.pub")
  echo "[127.0.0.1]:$port $host_key" >"$work/known_hosts"
}
start_login_sshd() { # config data-dir instance-id instance-api-address [sshd_config lines...]
  local config=$1 data=$2 id=$3 iapi=$4
  shift 4
  "$eic" agent-config --config "$config" --data-dir "$data" --instance-id "$id" \
    --endpoint "http://$iapi" >"$run_dir/agent.toml"
  chmod 644 "$run_dir/agent.toml"
  {
    cat <<CONF
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
    printf '%s\n' "$@"
  } >"$run_dir/sshd_config"
  start sshd /usr/sbin/sshd -D -e -f "$run_dir/sshd_config"
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && return
    sleep 0.1
  done
  echo "sshd did not start" >&2; cat "$work/sshd.err" >&2; exit 1
}
# One release eic server for the login benchmarks: examples/dev.toml with
# throttling out of the way and instance `id` on the rig's sshd, reached at
# 127.0.0.1 through `address_field` (private_ip_address or
# public_ip_address). Sets server_pid, api, iapi and console.
start_login_server() { # id address_field
  cat examples/dev.toml - >"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }

[[instances]]
id = "$1"
$2 = "127.0.0.1"
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
}
