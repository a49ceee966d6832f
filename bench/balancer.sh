#!/usr/bin/env bash
# Our balancer against dnsdist and CoreDNS, in one run, in front of the same workers.
#
# WORKERS domain-park workers (distinct loopback ports) are started once; then each front in
# FRONTS is started in front of them, one after the other, measured and stopped: the
# domain-park balancer (its answer cache on when it supports one), dnsdist (Debian package,
# packet cache on) and stock CoreDNS (the repository's Corefile: forward + cache). Front and
# workers are pinned to SERVER_CPU, dns_load to CLIENT_CPU. Per front:
#
#   1. memory per cached answer, on a fresh front: MEM_WARM queries for new names, RSS, one
#      UDP pass of MEM_NAMES queries each asking a name never asked before (dns_load
#      --random-label), RSS again; (after - before) / entries added (the front's own
#      cache-entry metric when it has one, else the names answered);
#   2. on a second fresh front, answer check: dig, then one pass over the cache-hit mix over
#      UDP and one over TCP (this also fills the cache with every answer of the mix, for both
#      transports);
#   3. load, DURATION seconds each, closed loop: {hit, miss} mix x {udp, tcp} clients. hit = the
#      bench mix (make_mix.py: 100,000 queries over 10,000 domains), all in the cache after
#      step 2; miss = the same mix with a fresh random label in front of every name, so every
#      query goes to a worker (and its answer into the cache).
#
# Results: bench/results/<timestamp>-balancer/ (configs, every dns_load JSON, CPU/RSS per run)
# and table.md there. Every run is bounded, loopback only, every process stopped by PID.
#
#   bench/balancer.sh
#   DURATION=10 FRONTS="balancer dnsdist" bench/balancer.sh
#
# Settings (environment, defaults in brackets):
#   DURATION [5]          seconds per load run
#   WORKERS [2]           workers behind every front
#   FRONTS ["balancer dnsdist coredns"]   MIXES ["hit miss"]   TRANSPORTS ["udp tcp"]
#   UDP_SOCKETS [4] UDP_INFLIGHT [50]     closed-loop UDP clients: sockets x queries in flight
#   TCP_CONNS [10] TCP_INFLIGHT [100]     pipelined TCP clients: connections x in flight
#   CACHE_ENTRIES [200000]  cache capacity given to every front (balancer, dnsdist, and
#                           CoreDNS's success and denial caches each)
#   BALANCER_CACHE_JSON ['"cache": {"max_entries": CACHE_ENTRIES}']  JSON member(s) that turn
#                           the balancer's cache on; dropped (and said so) when the balancer
#                           rejects them, i.e. before it has a cache. Empty: no cache.
#   BALANCER_EXTRA_JSON ['']  more JSON members for the balancer's file (e.g. to turn rate
#                           limiting off: all load comes from 127.0.0.1)
#   DNSDIST_VECTOR [32]   setUDPMultipleMessagesVectorSize (recvmmsg batch; 1 = plain recvmsg)
#   DNSDIST_TCP_INFLIGHT [TCP_INFLIGHT]  setLocal maxInFlight: pipelined queries per client TCP
#                           connection handled out of order (0 = one at a time, dnsdist's default)
#   DNSDIST_EXTRA ['']    Lua lines appended to dnsdist's configuration
#   MEM_NAMES [100000]    distinct names cached for the memory figure
#   MEM_WARM [20000]      distinct names asked before the "before" RSS of that figure
#   SERVER_CPU [0] CLIENT_CPU [1]   PORT [15400] (+1 metrics, +2/+3 CoreDNS health/ready)
#   WORKER_PORT_BASE [15410]        WORKER_BIN [build/worker/domain-park-worker]
#   BALANCER_BIN [build/balancer/domain-park-balancer]
#   QUIET_WAIT [120]      seconds to wait for an idle machine before each load run
#   RETRIES [1]           repeats of a run that other processes took > 20% of a core from
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LOG_TAG=balancer-bench
# shellcheck source=bench/common.sh
. "$HERE/common.sh"

DURATION=${DURATION:-5}
WORKERS=${WORKERS:-2}
FRONTS=${FRONTS:-balancer dnsdist coredns}
MIXES=${MIXES:-hit miss}
TRANSPORTS=${TRANSPORTS:-udp tcp}
CACHE_ENTRIES=${CACHE_ENTRIES:-200000}
default_cache_json="\"cache\": {\"max_entries\": $CACHE_ENTRIES}"
BALANCER_CACHE_JSON=${BALANCER_CACHE_JSON-$default_cache_json}  # set but empty: no cache
BALANCER_EXTRA_JSON=${BALANCER_EXTRA_JSON:-}
DNSDIST_VECTOR=${DNSDIST_VECTOR:-32}
DNSDIST_TCP_INFLIGHT=${DNSDIST_TCP_INFLIGHT:-$TCP_INFLIGHT}
DNSDIST_EXTRA=${DNSDIST_EXTRA:-}
MEM_NAMES=${MEM_NAMES:-100000}
MEM_WARM=${MEM_WARM:-20000}
PORT=${PORT:-15400}
WORKER_PORT_BASE=${WORKER_PORT_BASE:-15410}
BALANCER_BIN=${BALANCER_BIN:-$ROOT/build/balancer/domain-park-balancer}
RETRIES=${RETRIES:-1}
METRICS_PORT=$((PORT + 1))

for f in $FRONTS; do
    case "$f" in balancer|dnsdist|coredns) ;; *) echo "balancer.sh: unknown front '$f'" >&2; exit 2 ;; esac
done

# dnsdist, dig, the helpers: Debian packages; install what is missing (needs root or sudo).
install_missing dnsdist:dnsdist dig:bind9-dnsutils curl:curl bc:bc taskset:util-linux g++:g++

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP-balancer
WORK=$(mktemp -d /tmp/domain-park-balancer-bench.XXXXXX)
WORKER_PIDS=()
WORKER_ADDRS=()
FRONT_PID=""

# Stop by PID: SIGTERM, up to 7 s for a graceful drain, then SIGKILL.
stop_front() { if [[ -n "$FRONT_PID" ]]; then stop_pids "$FRONT_PID"; FRONT_PID=""; fi; }
cleanup() {
    stop_front
    stop_pids "${WORKER_PIDS[@]}"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ inputs

[[ -x "$WORKER_BIN" ]] || { echo "balancer.sh: no worker at $WORKER_BIN (scripts/build.sh, or set WORKER_BIN)" >&2; exit 2; }
if [[ " $FRONTS " == *" balancer "* && ! -x "$BALANCER_BIN" ]]; then
    echo "balancer.sh: no balancer at $BALANCER_BIN (scripts/build.sh, or set BALANCER_BIN)" >&2; exit 2
fi
COREDNS=""
if [[ " $FRONTS " == *" coredns "* ]]; then
    COREDNS=${DP_COREDNS:-$("$ROOT/deploy/coredns/install-stock.sh" | tail -1)}
fi
mkdir -p "$OUT"
build_tools dns_load
python3 "$HERE/make_mix.py" -o "$WORK/mix.txt"
cp "$WORK/mix.txt" "$OUT/mix.txt"
MIX_LINES=$(wc -l < "$WORK/mix.txt")
echo "example.com TXT" > "$WORK/probe.txt"

# ------------------------------------------------------------------ measurement helpers

front_load() {  # front_load OUTFILE dns_load-args... : pinned to the client CPU, against the front
    load "$1" -q -p "$PORT" "${@:2}"
}

# The front's cache counters as JSON {"hits":..,"misses":..,"entries":..} (absent: null).
cache_stats() {
    local front=$1 text=""
    case "$front" in
        balancer|dnsdist|coredns) text=$(curl -sf --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null || true) ;;
    esac
    printf '%s' "$text" | python3 -c '
import json, re, sys
front = sys.argv[1]
hits = misses = entries = None
def add(a, v):
    return v if a is None else a + v
for line in sys.stdin:
    if not line or line[0] == "#":
        continue
    m = re.match(r"([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)", line)
    if not m:
        continue
    name, labels, value = m.group(1), m.group(2) or "", float(m.group(3))
    if front == "dnsdist":
        if name == "dnsdist_cache_hits": hits = add(hits, value)
        elif name == "dnsdist_cache_misses": misses = add(misses, value)
        elif name == "dnsdist_pool_cache_entries": entries = add(entries, value)
    elif front == "coredns":
        if name == "coredns_cache_hits_total": hits = add(hits, value)
        elif name == "coredns_cache_misses_total": misses = add(misses, value)
        elif name == "coredns_cache_entries": entries = add(entries, value)
    else:
        # The balancer: whatever its cache exports, by name (hits/misses/entries in the
        # metric name, or a result="hit"/"miss" label); histograms are skipped.
        if "cache" not in name or name.endswith(("_bucket", "_sum", "_count")):
            continue
        if "entries" in name:
            entries = add(entries, value)
        elif "hit" in name or re.search(r"=\"hits?\"", labels):
            hits = add(hits, value)
        elif "miss" in name or re.search(r"=\"miss(es)?\"", labels):
            misses = add(misses, value)
print(json.dumps({"hits": hits, "misses": misses, "entries": entries}))
' "$front"
}

# measure FRONT OUTBASE SEED_BASE dns_load-args...: one load run (repeated when other
# processes took more than 20% of a core), with CPU of front, workers, generator and the rest,
# the front's RSS after it, and the front's cache counters before and after.
# Each repeat with a new seed (SEED_BASE + 10 x attempt).
measure() { repeat_disturbed "$2.server.json" measure_once "$@"; }

measure_once() {
    local front=$1 base=$2 seed=$(($3 + 10 * RUN_ATTEMPT)) f0 f1 w0 w1 m0 m1 t0 t1 s0 s1
    shift 3
    wait_quiet
    s0=$(cache_stats "$front")
    f0=$(ticks "$FRONT_PID"); w0=$(ticks "${WORKER_PIDS[@]}"); m0=$(busy_ticks); t0=$(date +%s.%N)
    front_load "$base.json" -S "$seed" "$@"
    t1=$(date +%s.%N); m1=$(busy_ticks); w1=$(ticks "${WORKER_PIDS[@]}"); f1=$(ticks "$FRONT_PID")
    s1=$(cache_stats "$front")
    python3 - "$base.json" "$((f1 - f0))" "$((w1 - w0))" "$((m1 - m0))" "$TCK" "$(echo "$t1 - $t0" | bc)" \
        "$(rss_kb "$FRONT_PID")" "$s0" "$s1" > "$base.server.json" <<'EOF'
import json, sys
run = json.loads(open(sys.argv[1]).read().splitlines()[-1])
f, w, m, tck, wall, rss = (int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
                           float(sys.argv[6]), int(sys.argv[7]))
gen = run.get("cpu_s", 0.0)
print(json.dumps({"front_cpu_s": f / tck, "workers_cpu_s": w / tck, "client_cpu_s": gen, "wall_s": wall,
                  "other_cpu_s": (m - f - w) / tck - gen, "rss_kb": rss,
                  "cache_before": json.loads(sys.argv[8]), "cache_after": json.loads(sys.argv[9])}))
EOF
    grep -o '"qps":[0-9.]*' "$base.json" | sed "s|^|    $(basename "$base") |" >&2
}

# Ready when it answers NOERROR to 20 queries (at most 30 s).
wait_up() { wait_answering "$1" "$2" "$3" "$WORK/probe.txt" 20; }

# ------------------------------------------------------------------ workers and fronts

start_all_workers() {
    local i
    start_workers "$WORKERS" "$OUT"
    for ((i = 0; i < WORKERS; i++)); do
        wait_up $((WORKER_PORT_BASE + i)) "${WORKER_PIDS[$i]}" "worker $i" || exit 1
    done
}

BALANCER_CACHE="off"
write_balancer_config() {  # write_balancer_config FILE WITH_CACHE
    local file=$1 with_cache=$2 i members=() a workers=""
    for a in "${WORKER_ADDRS[@]}"; do workers+="${workers:+, }\"$a\""; done
    members+=("\"listen\": [\"127.0.0.1:$PORT\"]" "\"workers\": [$workers]" "\"metrics\": \"127.0.0.1:$METRICS_PORT\""
              "\"threads\": 1")
    [[ $with_cache == 1 && -n "$BALANCER_CACHE_JSON" ]] && members+=("$BALANCER_CACHE_JSON")
    [[ -n "$BALANCER_EXTRA_JSON" ]] && members+=("$BALANCER_EXTRA_JSON")
    { echo "{"; local n=${#members[@]}; for ((i = 0; i < n; i++)); do
        printf '  %s%s\n' "${members[$i]}" "$([[ $i -lt $((n - 1)) ]] && echo ,)"; done; echo "}"; } > "$file"
}

write_dnsdist_config() {
    local file=$1 i
    {
        echo "-- generated by bench/balancer.sh"
        echo "setSecurityPollSuffix(\"\")            -- no security polling (no DNS traffic off loopback)"
        echo "setLocal(\"127.0.0.1:$PORT\", {maxInFlight=$DNSDIST_TCP_INFLIGHT})  -- UDP + TCP; maxInFlight: pipelined TCP handled out of order"
        echo "setACL({\"127.0.0.0/8\"})"
        echo "setMaxTCPClientThreads(1)                 -- one TCP worker thread (default 10)"
        echo "setUDPMultipleMessagesVectorSize($DNSDIST_VECTOR)   -- recvmmsg batch on the UDP listener"
        for ((i = 0; i < WORKERS; i++)); do
            echo "newServer({address=\"${WORKER_ADDRS[$i]}\", name=\"w$i\"})"
        done
        echo "setServerPolicy(leastOutstanding)         -- the default, stated"
        echo "pc = newPacketCache($CACHE_ENTRIES, {maxTTL=86400, minTTL=0, temporaryFailureTTL=60})"
        echo "getPool(\"\"):setCache(pc)"
        echo "-- the Prometheus endpoint, only to read the cache's hits, misses and entries"
        echo "webserver(\"127.0.0.1:$METRICS_PORT\")"
        echo "setWebserverConfig({acl=\"127.0.0.0/8\", statsRequireAuthentication=false})"
        [[ -n "$DNSDIST_EXTRA" ]] && printf '%s\n' "$DNSDIST_EXTRA"
        true
    } > "$file"
}

write_corefile() {
    # The repository's Corefile with the worker addresses, cache capacities set to CACHE_ENTRIES.
    corefile_for "${WORKER_ADDRS[*]}" \
        -e "s/^\(        success \)[0-9]*/\1$CACHE_ENTRIES/" -e "s/^\(        denial \)[0-9]*/\1$CACHE_ENTRIES/" > "$1"
}

start_front() {
    local front=$1
    case "$front" in
        balancer)
            write_balancer_config "$OUT/balancer.json" 1
            BALANCER_CACHE="off"
            if [[ -n "$BALANCER_CACHE_JSON" ]]; then
                if "$BALANCER_BIN" --check-config -c "$OUT/balancer.json" > "$OUT/balancer-check.log" 2>&1; then
                    BALANCER_CACHE="on"
                else
                    [[ -f "$OUT/balancer.nocache" ]] ||
                        log "the balancer rejects the cache setting ($(head -1 "$OUT/balancer-check.log")):" \
                            "running it without a cache (its cache-hit numbers are forwarding numbers)"
                    touch "$OUT/balancer.nocache"
                    BALANCER_CACHE="rejected"
                    write_balancer_config "$OUT/balancer.json" 0
                fi
            fi
            taskset -c "$SERVER_CPU" "$BALANCER_BIN" -c "$OUT/balancer.json" >> "$OUT/balancer.log" 2>&1 &
            ;;
        dnsdist)
            write_dnsdist_config "$OUT/dnsdist.conf"
            dnsdist --check-config -C "$OUT/dnsdist.conf" > "$OUT/dnsdist-check.log" 2>&1 ||
                { cat "$OUT/dnsdist-check.log" >&2; return 1; }
            taskset -c "$SERVER_CPU" dnsdist --supervised --disable-syslog -C "$OUT/dnsdist.conf" \
                >> "$OUT/dnsdist.log" 2>&1 &
            ;;
        coredns)
            write_corefile "$OUT/Corefile"
            start_coredns "$OUT/Corefile" >> "$OUT/coredns.log" 2>&1
            ;;
    esac
    FRONT_PID=$!
    wait_up "$PORT" "$FRONT_PID" "$front" || { tail -20 "$OUT/$front.log" >&2; stop_front; return 1; }
    # The check the issue asks for, kept with the results.
    dig @127.0.0.1 -p "$PORT" example.com TXT +tries=1 +time=2 > "$OUT/$front/dig.txt" 2>&1 || true
    grep -q 'status: NOERROR' "$OUT/$front/dig.txt" && grep -q 'v=spf1' "$OUT/$front/dig.txt" ||
        { log "$front: dig got no SPF answer:"; cat "$OUT/$front/dig.txt" >&2; stop_front; return 1; }
    awk '/^Threads:/ {print $2}' "/proc/$FRONT_PID/status" > "$OUT/$front/threads.txt"
}

run_front() {
    local front=$1 d=$OUT/$1
    mkdir -p "$d"
    log "$front: starting on CPU $SERVER_CPU, port $PORT, $WORKERS worker(s)"
    # 1. Memory per cached answer, on a fresh process so the cache has room for every name:
    #    MEM_WARM new names first (buffers, rings and tables that any traffic grows), RSS, then
    #    MEM_NAMES new names, RSS again.
    start_front "$front" || { echo '{"skipped":"did not start"}' > "$d/skipped.json"; return 0; }
    front_load "$d/mem-warm.json" -m udp -n "$MEM_WARM" -d 0 -c 1 -w 100 -t 2 --random-label -S 100
    sleep 1
    local rss0 rss1 c0 c1
    rss0=$(rss_kb "$FRONT_PID"); c0=$(cache_stats "$front")
    front_load "$d/mem.json" -m udp -n "$MEM_NAMES" -d 0 -c 1 -w 100 -t 2 --random-label -S 101
    sleep 1
    rss1=$(rss_kb "$FRONT_PID"); c1=$(cache_stats "$front")
    printf '{"names":%s,"warm_names":%s,"rss_before_kb":%s,"rss_after_kb":%s,"cache_before":%s,"cache_after":%s}\n' \
        "$MEM_NAMES" "$MEM_WARM" "$rss0" "$rss1" "$c0" "$c1" > "$d/mem.server.json"
    log "$front: RSS $((rss0 / 1024)) -> $((rss1 / 1024)) MiB after $MEM_NAMES new names"
    stop_front
    # 2. Answer check and cache fill, on a second fresh process: the whole hit mix once over
    #    UDP and once over TCP (a cache may keep the transports apart: dnsdist does).
    start_front "$front" || { echo '{"skipped":"did not start"}' > "$d/skipped.json"; return 0; }
    front_load "$d/verify-udp.json" -m udp -n "$MIX_LINES" -d 0 -c 1 -w 100 -t 2
    front_load "$d/verify-tcp.json" -m tcp -n "$MIX_LINES" -d 0 -c 1 -w 100 -t 2
    # 3. Load.
    local mix t seed=200 args
    for mix in $MIXES; do
        for t in $TRANSPORTS; do
            client_args "$t"
            args=("${CLIENT_ARGS[@]}")
            [[ $mix == miss ]] && args+=(--random-label)
            seed=$((seed + 1))
            log "$front: $mix mix, $t clients, $DURATION s"
            measure "$front" "$d/$mix-$t" "$seed" -d "$DURATION" "${args[@]}"
        done
    done
    echo "$front" > "$d/done"
    [[ $front == balancer ]] && echo "$BALANCER_CACHE" > "$d/cache.txt"
    stop_front
}

# ------------------------------------------------------------------ main

start_all_workers
log "workers up: ${WORKER_PIDS[*]} on ports $WORKER_PORT_BASE..$((WORKER_PORT_BASE + WORKERS - 1))"
python3 - "$OUT/meta.json" <<EOF
import json, subprocess, sys
def version(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except Exception:
        return None
json.dump({
    "duration": $DURATION, "workers": $WORKERS, "fronts": "$FRONTS".split(),
    "server_cpu": "$SERVER_CPU", "client_cpu": "$CLIENT_CPU",
    "udp": "$UDP_SOCKETS sockets x $UDP_INFLIGHT in flight, closed loop",
    "tcp": "$TCP_CONNS connections x $TCP_INFLIGHT in flight, pipelined",
    "mix_lines": $MIX_LINES, "mem_names": $MEM_NAMES, "mem_warm": $MEM_WARM, "cache_entries": $CACHE_ENTRIES,
    "dnsdist_vector": $DNSDIST_VECTOR, "dnsdist_tcp_inflight": $DNSDIST_TCP_INFLIGHT,
    "versions": {"dnsdist": version(["dnsdist", "--version"]),
                 "coredns": version(["${COREDNS:-true}", "-version"]) if "$COREDNS" else None,
                 "balancer": version(["$BALANCER_BIN", "--version"])},
}, open(sys.argv[1], "w"))
EOF
for front in $FRONTS; do run_front "$front"; done

ln -sfn "$(basename "$OUT")" "$HERE/results/latest-balancer"
python3 "$HERE/report_balancer.py" "$OUT"
log "results in $OUT"
