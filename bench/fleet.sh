#!/usr/bin/env bash
# A server holding 100,000 enrolled instances, on the embedded store and on
# Redis, each beside a server with an empty fleet measured in the same run:
#   start      spawn -> "listening api", spawn -> first heartbeat answered
#              (on Redis the fleet loads after the listeners are up), and
#              resident memory 2 s after that, minus the empty server's,
#              per enrolled instance (STARTS runs of each, medians)
#   by-id      DescribeInstances InstanceId.1=<an enrolled id>, 1 and 16
#              connections (the empty server's by-id, of a configured
#              instance, is the reference)
#   tag-page   DescribeInstances Filter tag:team=blue (10,000 match),
#              MaxResults=1000, 1 and 16 connections
#   heartbeat  10,000 instances' credentials in turn, unchanged facts, 32
#              connections
# each with wrk --latency and the server's CPU per request (utime + stime
# from /proc/PID/stat over the run), and redis-server's on Redis.
#
# usage: bench/fleet.sh [ROUNDS] [SECONDS]    (needs wrk, redis-server,
#        STARTS=N bench/fleet.sh ...           curl and python3 with botocore;
#                                              STARTS defaults to 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
secs=${2:-10}
starts=${STARTS:-5}
cargo build --release --locked --bin eic --example fleet_fixture >&2
eic=${CARGO_TARGET_DIR:-target}/release/eic
fixture=${CARGO_TARGET_DIR:-target}/release/examples/fleet_fixture
source bench/lib.sh
# As lib.sh's trap, but waiting for the servers to finish draining before
# their data dirs go (SIGTERM makes eic drain its connections first).
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
tick=$(getconf CLK_TCK)
instances=100000

redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start redis redis-server --port "$redis_port" --bind 127.0.0.1 --save "" \
  --appendonly yes --appendfsync everysec --dir "$work"
redis_pid=${pids[-1]}
for _ in $(seq 100); do
  [ "$(redis-cli -p "$redis_port" ping 2>/dev/null)" = PONG ] && break
  sleep 0.1
done
# The empty fleet on Redis is database 1 of the same redis-server.
store_url=redis://127.0.0.1:$redis_port
empty_store_url=redis://127.0.0.1:$redis_port/1

# Throttling out of the way as in bench/api.sh. Instances the bench does not
# heartbeat must not turn connection-lost mid-run: the liveness sweep would
# then audit 90,000 transitions, which a fleet whose agents heartbeat never
# does; the sweep itself still walks the whole fleet every second.
cat examples/dev.toml - >"$work/bench.toml" <<TOML
[throttling]
principal = { rate = 1e9, burst = 1e9 }
instance = { rate = 1e9, burst = 1e9 }

[fleet]
heartbeat_secs = 30
unavailable_after_secs = 3600
TOML

redis_bytes() { redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r'; }
redis_before=$(redis_bytes)
"$fixture" "$work/embedded" "$work/embedded.tsv" >"$work/fixture-embedded.out"
"$fixture" "$work/redis" "$work/redis.tsv" "$store_url" >"$work/fixture-redis.out"
redis_after=$(redis_bytes)
enrolled_id=$(awk '$1 == "instance" {print $2}' "$work/fixture-embedded.out")
echo "fixture: fleet.log $(($(stat -c %s "$work/embedded/fleet.log") / 1000000)) MB;" \
  "Redis used_memory +$(((redis_after - redis_before) / instances)) bytes per instance" >&2
mkdir -p "$work/empty-embedded" "$work/empty-redis"

now_ns() { date +%s%N; }
listening() { # name role: the address of its "listening ROLE" line, if any yet
  awk -v role="$2" '$1 == "listening" && $2 == role {print $3; exit}' "$work/$1.out"
}
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
server() { # name store(embedded|redis|empty-embedded|empty-redis): starts it
  local url=()
  case $2 in
    redis) url=(--store-url "$store_url") ;;
    empty-redis) url=(--store-url "$empty_store_url") ;;
  esac
  start "$1" "$eic" server --config "$work/bench.toml" --api-listen 127.0.0.1:0 \
    --instance-api-listen 127.0.0.1:0 --serial-listen 127.0.0.1:0 --tunnel-listen 127.0.0.1:0 --diagnostics-listen 127.0.0.1:0 --console-listen 127.0.0.1:0 --data-dir "$work/$2" "${url[@]}"
}
# One heartbeat of the fixture's first instance; 200 once the node reads the
# fleet (on Redis a node answers 503 until its first full load).
first_heartbeat() { # store instance-api address: prints the status
  local credential body
  IFS=$'\t' read -r credential body <"$work/$1.tsv"
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 -H "Authorization: Bearer $credential" \
    -H 'Content-Type: application/json' --data-binary "$body" "http://$2/eic/v1/heartbeat" || true
}
until_heartbeat() { # store instance-api address: waits (at most a minute) for a 200
  for _ in $(seq 12000); do
    [ "$(first_heartbeat "$1" "$2")" = 200 ] && return
    sleep 0.005
  done
  echo "the $1 server answered no heartbeat within a minute" >&2
  exit 1
}
stop() { # pid: ends a server this script started, and waits for it
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# Start: STARTS runs per store, each of a new process on the same data dir;
# polled every 5 ms (the ready time also includes one curl, a few ms). Sets
# listen_ms, ready_ms and rss (KiB); not in a subshell, so the server it
# starts is in $pids for the trap.
start_run() { # name store
  local t0 api ia pid
  t0=$(now_ns)
  server "$1" "$2"
  pid=${pids[-1]}
  for _ in $(seq 12000); do
    api=$(listening "$1" api)
    [ -n "$api" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$work/$1.err" >&2; exit 1; }
    sleep 0.005
  done
  [ -n "$api" ] || { echo "$1 did not listen within 60 s" >&2; exit 1; }
  listen_ms=$((($(now_ns) - t0) / 1000000))
  ready_ms=$listen_ms
  if [[ $2 != empty-* ]]; then
    ia=$(address "$1" instance-api)
    until_heartbeat "$2" "$ia"
    ready_ms=$((($(now_ns) - t0) / 1000000))
  fi
  sleep 2
  rss=$(rss_kib "$pid")
  stop "$pid"
}
echo "start: store run listen_ms ready_ms rss_kib"
for store in embedded redis empty-embedded empty-redis; do
  for r in $(seq "$starts"); do
    start_run "start-$store-$r" "$store"
    echo "start $store $r $listen_ms $ready_ms $rss" | tee -a "$work/starts"
  done
done
col() { awk -v s="$1" -v c="$2" '$2 == s {print $c}' "$work/starts" | median; }
for store in embedded redis; do
  full=$(col "$store" 6)
  empty=$(col "empty-$store" 6)
  echo "start $store median: listen $(col "$store" 4) ms, ready $(col "$store" 5) ms;" \
    "RSS $((full / 1024)) MiB vs empty fleet $((empty / 1024)) MiB:" \
    "$(((full - empty) * 1024 / instances)) bytes per enrolled instance"
done

# Load: the four servers up together, the tests interleaved round by round.
for store in embedded redis empty-embedded empty-redis; do server "$store" "$store"; done
# Only these four from here on (lib.sh's start() also recorded the start runs).
pid_of=()
declare -A api_of ia_of
i=$((${#pids[@]} - 4))
for store in embedded redis empty-embedded empty-redis; do
  pid_of[$store]=${pids[$i]}
  i=$((i + 1))
  api_of[$store]=$(address "$store" api)
  ia_of[$store]=$(address "$store" instance-api)
done
for store in embedded redis; do until_heartbeat "$store" "${ia_of[$store]}"; done

admin=(AKIDEXAMPLE 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY')
by_id="Action=DescribeInstances&Version=2016-11-15&InstanceId.1=$enrolled_id"
static_by_id="Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-abcd1234"
tag_page="Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=tag%3Ateam&Filter.1.Value.1=blue&MaxResults=1000"
sign() { # the signature covers the Host header and the time: per server, per round
  for store in embedded redis; do
    python3 bench/presign.py "http://${api_of[$store]}" ec2 "$by_id" "${admin[@]}" >"$work/by-id-$store.lua"
    python3 bench/presign.py "http://${api_of[$store]}" ec2 "$tag_page" "${admin[@]}" >"$work/tag-page-$store.lua"
    python3 bench/presign.py "http://${api_of[empty-$store]}" ec2 "$static_by_id" "${admin[@]}" >"$work/by-id-empty-$store.lua"
  done
}
# Checks once that the requests answer what they should before timing them.
sign
for store in embedded redis; do
  python3 - "$work/by-id-$store.lua" "${api_of[$store]}" "$enrolled_id" 1 <<'PY'
import json, re, sys, urllib.request
lua, addr, expect, count = sys.argv[1:5]
text = open(lua).read()
body = json.loads(re.search(r"^wrk.body = (.*)$", text, re.M).group(1))
headers = {json.loads(k): json.loads(v) for k, v in re.findall(r'^wrk.headers\[(.*?)\] = (.*)$', text, re.M)}
xml = urllib.request.urlopen(urllib.request.Request(f"http://{addr}/", body.encode(), headers)).read().decode()
assert xml.count("<instanceId>") == int(count) and expect in xml, xml[:2000]
PY
  python3 - "$work/tag-page-$store.lua" "${api_of[$store]}" "<value>blue</value>" 1000 <<'PY'
import json, re, sys, urllib.request
lua, addr, expect, count = sys.argv[1:5]
text = open(lua).read()
body = json.loads(re.search(r"^wrk.body = (.*)$", text, re.M).group(1))
headers = {json.loads(k): json.loads(v) for k, v in re.findall(r'^wrk.headers\[(.*?)\] = (.*)$', text, re.M)}
xml = urllib.request.urlopen(urllib.request.Request(f"http://{addr}/", body.encode(), headers)).read().decode()
assert xml.count("<instanceId>") == int(count) and expect in xml and "<nextToken>" in xml, xml[:2000]
print(f"tag page: {len(xml)} bytes of XML", file=sys.stderr)
PY
done

ms() { # a wrk latency ("812.00us", "1.20ms", "2.01s") in ms
  awk '{v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]m$/) v *= 60000; else if ($1 ~ /[0-9]s$/) v *= 1000; printf "%.2f", v}' <<<"$1"
}
# What a test queued must not be billed to the next: waits (at most 120 s)
# until the eic servers and redis-server together use under a fifth of a
# core (the idle servers' own sweeps and refreshes stay below that).
all_ticks() {
  local p sum=0
  for p in "${pid_of[@]}" "$redis_pid"; do sum=$((sum + $(cpu_ticks "$p"))); done
  echo "$sum"
}
settle() {
  local a b
  for _ in $(seq 240); do
    a=$(all_ticks)
    sleep 0.5
    b=$(all_ticks)
    [ $((b - a)) -le $((tick / 10)) ] && return
  done
  echo "the servers were still busy 120 s after a test" >&2
}
# CPU per request: from the start of the run until the server is idle again,
# over the requests completed plus one in flight per connection when wrk
# stopped (a DescribeInstances, once started, runs to its end; for the
# light requests those few are noise).
load() { # store test script connections address [path]
  local threads=2 out requests eic0 eic1 red0 red1 redis_cpu=-
  [ "$4" -lt 2 ] && threads=1
  settle
  eic0=$(cpu_ticks "${pid_of[$1]}")
  red0=$(cpu_ticks "$redis_pid")
  out=$(HEARTBEATS="$work/${1#empty-}.tsv" wrk -t"$threads" -c"$4" -d"${secs}s" --timeout 30s --latency \
    -s "$3" "http://$5${6:-/}")
  settle
  eic1=$(cpu_ticks "${pid_of[$1]}")
  red1=$(cpu_ticks "$redis_pid")
  requests=$(($(awk '/requests in/{print $1}' <<<"$out") + $4))
  if [[ $1 == *redis ]]; then
    redis_cpu=$(awk -v t="$((red1 - red0))" -v n="$requests" -v hz="$tick" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')
  fi
  echo "$r $1 $2 $4 $(awk '/^Requests\/sec/{print $2}' <<<"$out")" \
    "$(ms "$(awk '$1 == "50%" {print $2}' <<<"$out")") $(ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")" \
    "$(awk -v t="$((eic1 - eic0))" -v n="$requests" -v hz="$tick" 'BEGIN {printf "%.1f", t * 1e6 / hz / n}')" \
    "$redis_cpu $(awk '/^non-200/{print $3}' <<<"$out")"
}
changes() { # what durable fleet writes the heartbeats made: log bytes, stream entries
  echo "fleet.log $(stat -c %s "$work/embedded/fleet.log") bytes, changes stream $(redis-cli -p "$redis_port" xlen 'eic:{fleet}:changes') entries"
}
before=$(changes)
echo "round store test connections req/s p50_ms p99_ms eic_cpu_us/req redis_cpu_us/req non-200"
for r in $(seq "$rounds"); do
  sign
  for store in embedded redis; do
    load "empty-$store" by-id-static "$work/by-id-empty-$store.lua" 16 "${api_of[empty-$store]}"
    for c in 1 16; do
      load "$store" by-id "$work/by-id-$store.lua" "$c" "${api_of[$store]}"
    done
    for c in 1 16; do
      load "$store" tag-page "$work/tag-page-$store.lua" "$c" "${api_of[$store]}"
    done
    load "$store" heartbeat bench/heartbeats.lua 32 "${ia_of[$store]}" /eic/v1/heartbeat
  done
done
after=$(changes)
echo "durable fleet writes during the run: before: $before; after: $after" >&2
# Why any request was refused: the servers' errors and warnings, counted.
for store in embedded redis empty-embedded empty-redis; do
  grep -E ' (ERROR|WARN) ' "$work/$store.err" | sed -E 's/^[^ ]+ +//; s/ error=.*//' | sort | uniq -c | head -5 |
    sed "s/^/$store: /" >&2 || true
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
