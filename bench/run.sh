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
LOG_TAG=bench
# shellcheck source=bench/common.sh
. "$HERE/common.sh"
WHAT=${1:-all}
case "$WHAT" in all|throughput|idle|dnsperf|pairs) ;; *) echo "usage: $0 [all|throughput|idle|dnsperf|pairs]" >&2; exit 2 ;; esac

# The peers and helpers come from Debian's packages; install what is missing (needs root or sudo).
install_missing knotd:knot dnsperf:dnsperf bc:bc taskset:util-linux g++:g++

DURATION=${DURATION:-10}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_HOLD=${IDLE_HOLD:-5}
DNSPERF_RATE=${DNSPERF_RATE:-50000}
DNSPERF_DURATION=${DNSPERF_DURATION:-5}
SERVERS=${SERVERS:-echo worker knot}
PORT_BASE=${PORT_BASE:-15300}
WORKER_ARGS=${WORKER_ARGS:-}
RETRIES=${RETRIES:-2}
PAIRS=${PAIRS:-30}            # pairs mode: back-to-back echo/worker UDP pairs
PAIR_SECONDS=${PAIR_SECONDS:-1}
STOP_TENTHS=50   # stop_server: 5 s after SIGTERM, then SIGKILL

declare -A PORT=([worker]=$PORT_BASE [echo]=$((PORT_BASE + 1)) [knot]=$((PORT_BASE + 2)))
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP
WORK=$(mktemp -d /tmp/domain-park-bench.XXXXXX)
mkdir -p "$OUT"
SERVER_PID=""

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
            start_worker "$port" bench --idle-timeout 300 --max-connections $((IDLE_CONNS + 1000)) $WORKER_ARGS \
                > "$WORK/worker.log" 2>&1
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

# Up when it answers the SOA probe of every zone (at most 30 s); else stopped, its log shown if
# it exited.
wait_ready() {
    local name=$1 port=$2
    wait_answering "$port" "$SERVER_PID" "$name" "$WORK/probe.txt" "$PROBE_LINES" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || cat "$WORK/$name.log" >&2
    stop_server
    return 1
}

# SERVER_PID may hold several PIDs (pairs mode): split on purpose.
# shellcheck disable=SC2086
stop_server() { stop_pids $SERVER_PID; SERVER_PID=""; }

# measure OUTFILE SERVERJSON dns_load-args...: one pinned load run, plus the server's CPU
# and memory and the CPU time that neither server nor generator used (other processes);
# repeated when other processes disturbed it.
measure() { repeat_disturbed "$2" measure_once "$@"; }

measure_once() {
    local out=$1 meta=$2 c0 c1 m0 m1 t0 t1
    shift 2
    wait_quiet
    c0=$(ticks "$SERVER_PID"); m0=$(busy_ticks); t0=$(date +%s.%N)
    load "$out" "$@"
    t1=$(date +%s.%N); m1=$(busy_ticks); c1=$(ticks "$SERVER_PID")
    local gen
    gen=$(tail -1 "$out" | python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("cpu_s", 0))')
    awk -v rss="$(rss_kb "$SERVER_PID")" -v hwm="$(hwm_kb "$SERVER_PID")" -v c="$((c1 - c0))" -v m="$((m1 - m0))" -v tck="$TCK" \
        -v wall="$(echo "$t1 - $t0" | bc)" -v gen="$gen" 'BEGIN {
            printf "{\"rss_kb\":%d,\"hwm_kb\":%d,\"cpu_s\":%.3f,\"wall_s\":%.3f,", rss, hwm, c / tck, wall
            printf "\"client_cpu_s\":%.3f,\"other_cpu_s\":%.3f}\n", gen, (m - c) / tck - gen }' > "$meta"
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
            client_args "$t"
            measure "$OUT/throughput/$s-$t.json" "$OUT/throughput/$s-$t.server.json" \
                -p "${PORT[$s]}" -d "$DURATION" "${CLIENT_ARGS[@]}"
            grep -v '^{' "$OUT/throughput/$s-$t.json" | sed 's/^/    /' >&2
        done
        stop_server
    done
}

# The UDP ratio worker/echo from PAIRS back-to-back pairs of PAIR_SECONDS runs, both servers up
# the whole time on SERVER_CPU (the one not under load idles), the order alternating (ABBA) so
# that drift on this shared machine cancels; the median pair is the figure. Closer in time than
# the throughput phase's separate 5 s runs, whose ratio moves by +-8% here from run to run; the
# neighbours' load changes within seconds, so many 1 s pairs cancel it better than a few long ones.
pairs() {
    mkdir -p "$OUT/pairs"
    local pids=() i a b
    taskset -c "$SERVER_CPU" "$BIN/echo_server" --host 127.0.0.1 --port "${PORT[echo]}" > "$WORK/echo.log" 2>&1 &
    pids+=($!)
    # shellcheck disable=SC2086  # WORKER_ARGS is a list of flags
    start_worker "${PORT[worker]}" bench $WORKER_ARGS > "$WORK/worker.log" 2>&1
    pids+=($!)
    SERVER_PID="${pids[*]}"
    wait_answering "${PORT[echo]}" "${pids[0]}" echo "$WORK/probe.txt" "$PROBE_LINES" || return 1
    wait_answering "${PORT[worker]}" "${pids[1]}" worker "$WORK/probe.txt" "$PROBE_LINES" || return 1
    load "$OUT/pairs/warm.json" -p "${PORT[worker]}" -m udp -n "$MIX_LINES" -d 0 -c 1 -w 100 -t 1
    client_args udp
    for ((i = 1; i <= PAIRS; i++)); do
        if ((i % 2)); then a=echo b=worker; else a=worker b=echo; fi
        wait_quiet
        load "$OUT/pairs/$i-$a.json" -p "${PORT[$a]}" -d "$PAIR_SECONDS" "${CLIENT_ARGS[@]}"
        load "$OUT/pairs/$i-$b.json" -p "${PORT[$b]}" -d "$PAIR_SECONDS" "${CLIENT_ARGS[@]}"
        log "pair $i done"
    done
    stop_pids "${pids[@]}"
    SERVER_PID=""
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
        before=$(rss_kb "$SERVER_PID")
        taskset -c "$CLIENT_CPU" "$BIN/dns_load" -s 127.0.0.1 -p "${PORT[$s]}" -f "$WORK/mix.txt" \
            -m tcp-idle -c "$IDLE_CONNS" -d "$IDLE_HOLD" > "$WORK/idle-$s.out" &
        local lpid=$!
        for ((i = 0; i < 600; i++)); do
            grep -q '^READY' "$WORK/idle-$s.out" 2>/dev/null && break
            kill -0 "$lpid" 2>/dev/null || break
            sleep 0.1
        done
        sleep 0.5  # let the server finish accounting for the last connections
        after=$(rss_kb "$SERVER_PID")
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

build_tools dns_load echo_server
make_inputs
printf '{"duration":%s,"server_cpu":"%s","client_cpu":"%s","udp":"%s sockets x %s in flight, closed loop","tcp":"%s connections x %s in flight, pipelined","mix_lines":%s,"worker_bin":"%s"}\n' \
    "$DURATION" "$SERVER_CPU" "$CLIENT_CPU" "$UDP_SOCKETS" "$UDP_INFLIGHT" "$TCP_CONNS" "$TCP_INFLIGHT" \
    "$MIX_LINES" "$WORKER_BIN" > "$OUT/meta.json"

case "$WHAT" in
    all) throughput; idle; dnsperf_check; pairs ;;
    throughput) throughput ;;
    idle) idle ;;
    dnsperf) dnsperf_check ;;
    pairs) pairs ;;
esac

ln -sfn "$STAMP" "$HERE/results/latest"
python3 "$HERE/report.py" "$OUT"
log "results in $OUT"
