#!/usr/bin/env bash
# Side-by-side benchmark of the domain-park worker against a do-nothing echo server (the
# limit of one core) and Knot DNS (a mature authoritative server), each on one pinned core,
# with dns_load on the other. Every step is bounded in time; every server started here is
# stopped here, by PID. Loopback only.
#
#   bench/run.sh [all|throughput|idle|dnsperf]      (default all; see README.md)
#
# Settings (environment, defaults in brackets):
#   DURATION [10]        seconds per throughput run
#   UDP_SOCKETS [4] UDP_INFLIGHT [50]    closed-loop UDP: sockets x queries in flight
#   TCP_CONNS [10] TCP_INFLIGHT [100]    pipelined TCP: connections x queries in flight
#   IDLE_CONNS [10000] IDLE_HOLD [5]     idle-connection memory test
#   DNSPERF_RATE [50000] DNSPERF_DURATION [5]
#   SERVERS ["echo worker knot"]   which servers to run
#   SERVER_CPU [0] CLIENT_CPU [1]  PORT_BASE [15300] (worker +0, echo +1, knot +2)
#   WORKER_BIN [build/worker/domain-park-worker]  WORKER_ARGS [extra worker flags]
#   MIX [generated: 10000 domains, 100000 queries, seed 1]
#   QUIET_WAIT [120]     seconds to wait for an idle machine before each measured run
#   RETRIES [2]          times a run is repeated when other processes took > 20% of a core

set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
WHAT=${1:-all}
case "$WHAT" in all|throughput|idle|dnsperf) ;; *) echo "usage: $0 [all|throughput|idle|dnsperf]" >&2; exit 2 ;; esac

# The peers and helpers come from Debian's packages; install what is missing (needs root or sudo).
if [ "${BENCH_NO_INSTALL:-0}" != 1 ]; then
    missing=()
    for pair in knotd:knot dnsperf:dnsperf bc:bc taskset:util-linux g++:g++; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        echo "[bench] installing ${missing[*]}"
        $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

DURATION=${DURATION:-10}
UDP_SOCKETS=${UDP_SOCKETS:-4}
UDP_INFLIGHT=${UDP_INFLIGHT:-50}
TCP_CONNS=${TCP_CONNS:-10}
TCP_INFLIGHT=${TCP_INFLIGHT:-100}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
DNSPERF_RATE=${DNSPERF_RATE:-50000}
DNSPERF_DURATION=${DNSPERF_DURATION:-5}
SERVERS=${SERVERS:-echo worker knot}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT_BASE=${PORT_BASE:-15300}
WORKER_BIN=${WORKER_BIN:-$ROOT/build/worker/domain-park-worker}
WORKER_ARGS=${WORKER_ARGS:-}
QUIET_WAIT=${QUIET_WAIT:-120}
RETRIES=${RETRIES:-2}
NCPU=$(nproc)

declare -A PORT=([worker]=$PORT_BASE [echo]=$((PORT_BASE + 1)) [knot]=$((PORT_BASE + 2)))
TCK=$(getconf CLK_TCK)
BIN=$HERE/.build
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP
WORK=$(mktemp -d /tmp/domain-park-bench.XXXXXX)
mkdir -p "$OUT"
SERVER_PID=""

log() { printf '[bench] %s\n' "$*" >&2; }

cleanup() {
    if [[ -n "$SERVER_PID" ]]; then stop_server; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The idle test needs one descriptor per connection, in dns_load and in the server.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_CONNS + 100 )); then
    log "ulimit -n is $(ulimit -n): idle test limited"
    IDLE_CONNS=$(( $(ulimit -n) - 100 ))
fi

# ------------------------------------------------------------------ build and inputs

build() {
    mkdir -p "$BIN"
    local t
    for t in dns_load echo_server; do
        if [[ ! -x "$BIN/$t" || "$HERE/$t.cpp" -nt "$BIN/$t" ]]; then
            log "building $t"
            g++ -std=c++20 -O2 -Wall -Wextra -Werror -o "$BIN/$t" "$HERE/$t.cpp"
        fi
    done
}

make_inputs() {
    if [[ -n "${MIX:-}" ]]; then
        cp "$MIX" "$WORK/mix.txt"
    else
        python3 "$HERE/make_mix.py" -o "$WORK/mix.txt"
    fi
    cp "$WORK/mix.txt" "$OUT/mix.txt"
    MIX_LINES=$(grep -cv '^[#;]' "$WORK/mix.txt")
    # Readiness probe: the SOA of every zone, so Knot counts as up only once all are loaded.
    python3 - "$WORK/mix.txt" > "$WORK/probe.txt" <<EOF
import sys
sys.path.insert(0, "$HERE")
from make_mix import registrable
seen = set()
for line in open(sys.argv[1]):
    p = line.split()
    d = registrable(p[0]) if p else None
    if d and d not in seen:
        seen.add(d)
        print(d, "SOA")
EOF
    PROBE_LINES=$(wc -l < "$WORK/probe.txt")
}

# ------------------------------------------------------------------ servers

have_server() {
    case "$1" in
        echo) return 0 ;;
        worker) [[ -x "$WORKER_BIN" ]] ;;
        knot) command -v knotd >/dev/null ;;
    esac
}

start_server() {
    local name=$1 port=${PORT[$1]}
    case "$name" in
        echo)
            taskset -c "$SERVER_CPU" "$BIN/echo_server" --host 127.0.0.1 --port "$port" \
                > "$WORK/echo.log" 2>&1 &
            ;;
        worker)
            # shellcheck disable=SC2086  # WORKER_ARGS is a list of flags
            taskset -c "$SERVER_CPU" "$WORKER_BIN" --host 127.0.0.1 --port "$port" \
                -n ns1.park.example:192.0.2.53,2001:db8::53 -n ns2.park.example:192.0.2.54 \
                --rua dmarc@park.example --identity bench \
                --idle-timeout 300 --max-connections $((IDLE_CONNS + 1000)) $WORKER_ARGS \
                > "$WORK/worker.log" 2>&1 &
            ;;
        knot)
            if [[ ! -f "$WORK/knot/knot.conf" ]]; then
                python3 "$HERE/knot/make_zones.py" "$WORK/mix.txt" --out "$WORK/knot" --port "$port" >&2
            fi
            mkdir -p "$WORK/knot/db"
            taskset -c "$SERVER_CPU" knotd -c "$WORK/knot/knot.conf" > "$WORK/knot.log" 2>&1 &
            ;;
    esac
    SERVER_PID=$!
    SERVER_NAME=$name
    wait_ready "$name" "$port"
}

wait_ready() {
    local name=$1 port=$2 i ok
    for ((i = 0; i < 120; i++)); do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$name exited during startup:"; cat "$WORK/$name.log" >&2
            SERVER_PID=""
            return 1
        fi
        ok=$("$BIN/dns_load" -q -s 127.0.0.1 -p "$port" -f "$WORK/probe.txt" -n "$PROBE_LINES" -d 0 \
                -c 1 -w 50 -t 0.3 2>/dev/null | tail -1 |
             python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(j["rcodes"].get("NOERROR",0))' \
             2>/dev/null || echo 0)
        if [[ "$ok" == "$PROBE_LINES" ]]; then return 0; fi
        sleep 0.25
    done
    log "$name did not answer all $PROBE_LINES probe queries within 30 s"
    stop_server
    return 1
}

stop_server() {
    local i
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER_PID/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$SERVER_PID/status"; }
# utime + stime of the whole process (all threads), in clock ticks.
cpu_ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$SERVER_PID/stat"; }

# Busy ticks of the whole machine (user, nice, system, irq, softirq, steal), all CPUs.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# A build or test run of someone else on this machine takes cores from the server or the
# generator and silently halves the numbers; wait until the machine is idle (< 10% busy).
wait_quiet() {
    local i a b
    for ((i = 0; i < QUIET_WAIT; i++)); do
        a=$(busy_ticks); sleep 1; b=$(busy_ticks)
        if (( (b - a) * 10 < TCK * NCPU )); then return 0; fi
        (( i % 10 == 0 )) && log "machine busy ($(( (b - a) * 100 / (TCK * NCPU) ))% of $NCPU CPUs), waiting"
    done
    log "machine still busy after $QUIET_WAIT s: measuring anyway (see 'other CPU' in the table)"
}

# measure OUTFILE SERVERJSON dns_load-args...: one pinned load run, plus the server's CPU
# and memory and the CPU time that neither server nor generator used (other processes).
measure() {
    local attempt
    for ((attempt = 0; attempt <= RETRIES; attempt++)); do
        measure_once "$@"
        if python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(m["other_cpu_s"] > 0.2 * m["wall_s"])' "$2"; then
            return 0
        fi
        (( attempt < RETRIES )) && log "run disturbed by other processes, repeating"
    done
    return 0
}

measure_once() {
    local out=$1 meta=$2 c0 c1 m0 m1 t0 t1
    shift 2
    wait_quiet
    c0=$(cpu_ticks); m0=$(busy_ticks); t0=$(date +%s.%N)
    load "$out" "$@"
    t1=$(date +%s.%N); m1=$(busy_ticks); c1=$(cpu_ticks)
    local gen
    gen=$(tail -1 "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("cpu_s", 0))')
    awk -v rss="$(rss_kb)" -v hwm="$(hwm_kb)" -v c="$((c1 - c0))" -v m="$((m1 - m0))" -v tck="$TCK" \
        -v wall="$(echo "$t1 - $t0" | bc)" -v gen="$gen" 'BEGIN {
            printf "{\"rss_kb\":%d,\"hwm_kb\":%d,\"cpu_s\":%.3f,\"wall_s\":%.3f,", rss, hwm, c / tck, wall
            printf "\"client_cpu_s\":%.3f,\"other_cpu_s\":%.3f}\n", gen, (m - c) / tck - gen }' > "$meta"
}

load() {  # load OUTFILE dns_load-args... ; runs pinned on the client core
    taskset -c "$CLIENT_CPU" "$BIN/dns_load" -s 127.0.0.1 -f "$WORK/mix.txt" "${@:2}" > "$1"
}

# ------------------------------------------------------------------ phases

throughput() {
    mkdir -p "$OUT/verify" "$OUT/throughput"
    local s t
    for s in $SERVERS; do
        if ! have_server "$s"; then
            log "skipping $s (not installed / not built)"
            for t in udp tcp; do echo '{"skipped":"not built"}' > "$OUT/throughput/$s-$t.server.json"; done
            continue
        fi
        log "$s: starting on CPU $SERVER_CPU, port ${PORT[$s]}"
        start_server "$s" || continue
        # One pass over the whole mix: warms the server and checks every answer comes back.
        load "$OUT/verify/$s.json" -p "${PORT[$s]}" -m udp -n "$MIX_LINES" -d 0 -c 1 -w 100 -t 1
        for t in udp tcp; do
            log "$s: $t for $DURATION s"
            if [[ $t == udp ]]; then
                set -- -m udp -c "$UDP_SOCKETS" -w "$UDP_INFLIGHT"
            else
                set -- -m tcp -c "$TCP_CONNS" -w "$TCP_INFLIGHT"
            fi
            measure "$OUT/throughput/$s-$t.json" "$OUT/throughput/$s-$t.server.json" \
                -p "${PORT[$s]}" -d "$DURATION" "$@"
            grep -v '^{' "$OUT/throughput/$s-$t.json" | sed 's/^/    /' >&2
        done
        stop_server
    done
}

idle() {
    mkdir -p "$OUT/idle"
    local s before after i
    for s in worker knot; do
        [[ " $SERVERS " == *" $s "* ]] || continue
        have_server "$s" || { log "idle: skipping $s (not built)"; continue; }
        log "$s: $IDLE_CONNS idle TCP connections for $IDLE_HOLD s"
        start_server "$s" || continue
        wait_quiet
        before=$(rss_kb)
        taskset -c "$CLIENT_CPU" "$BIN/dns_load" -s 127.0.0.1 -p "${PORT[$s]}" -f "$WORK/mix.txt" \
            -m tcp-idle -c "$IDLE_CONNS" -d "$IDLE_HOLD" > "$WORK/idle-$s.out" &
        local lpid=$!
        for ((i = 0; i < 600; i++)); do
            grep -q '^READY' "$WORK/idle-$s.out" 2>/dev/null && break
            kill -0 "$lpid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 0.5  # let the server finish accounting for the last connections
        after=$(rss_kb)
        wait "$lpid" || true
        python3 - "$WORK/idle-$s.out" "$before" "$after" > "$OUT/idle/$s.json" <<'EOF'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
j = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {"opened": 0}
j["rss_before_kb"] = int(sys.argv[2])
j["rss_after_kb"] = int(sys.argv[3])
print(json.dumps(j))
EOF
        stop_server
    done
}

dnsperf_check() {
    mkdir -p "$OUT/dnsperf"
    command -v dnsperf >/dev/null || { log "dnsperf not installed: skipping the check"; return; }
    local s=echo
    if [[ " $SERVERS " == *" worker "* ]] && have_server worker; then s=worker; fi
    log "dnsperf check against $s at $DNSPERF_RATE q/s and unthrottled, $DNSPERF_DURATION s each"
    start_server "$s" || return
    wait_quiet
    local flows=4 per=50  # 200 in flight in both tools
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/mix.txt" -e \
        -l "$DNSPERF_DURATION" -Q "$DNSPERF_RATE" -c $flows -q $((flows * per)) > "$OUT/dnsperf/dnsperf-rate.txt" 2>&1 || true
    load "$OUT/dnsperf/dns_load-rate.json" -p "${PORT[$s]}" -m udp -r "$DNSPERF_RATE" -c $flows -w $per -d "$DNSPERF_DURATION"
    taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT[$s]}" -d "$WORK/mix.txt" -e \
        -l "$DNSPERF_DURATION" -c $flows -q $((flows * per)) > "$OUT/dnsperf/dnsperf-max.txt" 2>&1 || true
    load "$OUT/dnsperf/dns_load-max.json" -p "${PORT[$s]}" -m udp -c $flows -w $per -d "$DNSPERF_DURATION"
    printf '{"target":"%s","rate":%s,"duration":%s}\n' "$s" "$DNSPERF_RATE" "$DNSPERF_DURATION" > "$OUT/dnsperf/meta.json"
    stop_server
}

# ------------------------------------------------------------------ main

build
make_inputs
printf '{"duration":%s,"server_cpu":"%s","client_cpu":"%s","udp":"%s sockets x %s in flight, closed loop","tcp":"%s connections x %s in flight, pipelined","mix_lines":%s,"worker_bin":"%s"}\n' \
    "$DURATION" "$SERVER_CPU" "$CLIENT_CPU" "$UDP_SOCKETS" "$UDP_INFLIGHT" "$TCP_CONNS" "$TCP_INFLIGHT" \
    "$MIX_LINES" "$WORKER_BIN" > "$OUT/meta.json"

case "$WHAT" in
    all) throughput; idle; dnsperf_check ;;
    throughput) throughput ;;
    idle) idle ;;
    dnsperf) dnsperf_check ;;
esac

ln -sfn "$STAMP" "$HERE/results/latest"
python3 "$HERE/report.py" "$OUT"
log "results in $OUT"
