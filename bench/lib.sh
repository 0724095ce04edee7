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
