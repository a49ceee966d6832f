#!/usr/bin/env bash
# CoreDNS in front of domain-park workers, measured with dns_load: the figures the balancer
# must beat. For each of {cache on, cache off} x {1, 2 workers}: CoreDNS (the repository's
# Corefile) and the workers pinned to SERVER_CPU, dns_load pinned to CLIENT_CPU, UDP then TCP
# clients, DURATION seconds each. Every run is bounded and every process stopped by PID.
#
#   bench/coredns.sh                      # needs build/ (scripts/build.sh) and Go for CoreDNS
#   DURATION=5 WORKER_COUNTS="1" CACHE_MODES="on" bench/coredns.sh
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
DURATION=${DURATION:-10}
WORKER_COUNTS=${WORKER_COUNTS:-1 2}
CACHE_MODES=${CACHE_MODES:-on off}
UDP_SOCKETS=${UDP_SOCKETS:-4}
UDP_INFLIGHT=${UDP_INFLIGHT:-50}
TCP_CONNS=${TCP_CONNS:-10}
TCP_INFLIGHT=${TCP_INFLIGHT:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-15350}
WORKER_PORT_BASE=${WORKER_PORT_BASE:-15360}
WORKER_BIN=${WORKER_BIN:-$ROOT/build/worker/domain-park-worker}
BIN=$HERE/.build
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/coredns-$STAMP
WORK=$(mktemp -d /tmp/domain-park-coredns-bench.XXXXXX)
PIDS=()

log() { echo "[coredns-bench] $*" >&2; }
stop_all() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

[[ -x "$WORKER_BIN" ]] || { echo "coredns.sh: no worker at $WORKER_BIN (run scripts/build.sh)" >&2; exit 2; }
COREDNS=${DP_COREDNS:-$("$ROOT/deploy/coredns/install-stock.sh" | tail -1)}
mkdir -p "$BIN" "$OUT"
[[ -x "$BIN/dns_load" && "$BIN/dns_load" -nt "$HERE/dns_load.cpp" ]] ||
    g++ -std=c++20 -O2 -Wall -Wextra -Werror -o "$BIN/dns_load" "$HERE/dns_load.cpp"
python3 "$HERE/make_mix.py" -o "$WORK/mix.txt"

# CPU ticks (user + system) of a set of processes.
ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat"))); done; echo $t; }

run_case() {  # run_case CACHE WORKERS
    local cache=$1 workers=$2 i addrs="" corefile="$WORK/Corefile"
    for ((i = 0; i < workers; i++)); do
        taskset -c "$SERVER_CPU" "$WORKER_BIN" --host 127.0.0.1 --port $((WORKER_PORT_BASE + i)) \
            -n ns1.park.example:192.0.2.53,2001:db8::53 -n ns2.park.example:192.0.2.54 \
            --rua dmarc@park.example --identity "w$i" > "$WORK/worker$i.log" 2>&1 &
        PIDS+=($!)
        addrs="$addrs 127.0.0.1:$((WORKER_PORT_BASE + i))"
    done
    # The repository's Corefile with the worker addresses written in place of {$DP_WORKERS}
    # (CoreDNS substitutes a variable within one token, so it cannot carry a list), and for
    # "cache off" without its cache block.
    addrs=${addrs# }
    if [[ $cache == on ]]; then
        sed "s/{\$DP_WORKERS}/$addrs/" "$ROOT/Corefile" > "$corefile"
    else
        sed "s/{\$DP_WORKERS}/$addrs/" "$ROOT/Corefile" |
            awk '/^    cache / {skip = 1} skip && /^    }/ {skip = 0; next} !skip' > "$corefile"
    fi
    DP_METRICS=127.0.0.1:$((PORT + 1)) DP_HEALTH=127.0.0.1:$((PORT + 2)) \
        DP_READY=127.0.0.1:$((PORT + 3)) GOMAXPROCS=1 \
        taskset -c "$SERVER_CPU" "$COREDNS" -conf "$corefile" -dns.port "$PORT" > "$WORK/coredns.log" 2>&1 &
    local cpid=$!
    PIDS+=("$cpid")
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$((PORT + 3))/ready" >/dev/null 2>&1 && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    if ! curl -sf "http://127.0.0.1:$((PORT + 3))/ready" >/dev/null 2>&1; then
        echo "coredns.sh: CoreDNS did not become ready:" >&2
        cat "$WORK/coredns.log" >&2
        exit 1
    fi
    # One pass over the mix: warms the cache (when on) and checks every answer comes back.
    taskset -c "$CLIENT_CPU" "$BIN/dns_load" -q -s 127.0.0.1 -p "$PORT" -f "$WORK/mix.txt" -m udp -d 0 \
        -n "$(wc -l < "$WORK/mix.txt")" -c 1 -w 50 -t 2 > "$OUT/verify-cache$cache-w$workers.json"
    local t c0 c1
    for t in udp tcp; do
        local args=(-m udp -c "$UDP_SOCKETS" -w "$UDP_INFLIGHT")
        [[ $t == tcp ]] && args=(-m tcp -c "$TCP_CONNS" -w "$TCP_INFLIGHT")
        log "cache $cache, $workers worker(s), $t clients, $DURATION s"
        c0=$(ticks "${PIDS[@]}")
        taskset -c "$CLIENT_CPU" "$BIN/dns_load" -q -s 127.0.0.1 -p "$PORT" -f "$WORK/mix.txt" \
            -d "$DURATION" "${args[@]}" > "$OUT/cache$cache-w$workers-$t.json"
        c1=$(ticks "${PIDS[@]}")
        echo "{\"server_cpu_s\": $(echo "($c1 - $c0) / $(getconf CLK_TCK)" | bc -l)}" > "$OUT/cache$cache-w$workers-$t.cpu.json"
    done
    stop_all
}

for cache in $CACHE_MODES; do
    for w in $WORKER_COUNTS; do run_case "$cache" "$w"; done
done

python3 - "$OUT" <<'EOF'
import glob, json, os, sys
out = sys.argv[1]
rows = []
for f in sorted(glob.glob(os.path.join(out, "cache*-w*-*.json"))):
    if f.endswith(".cpu.json"):
        continue
    name = os.path.basename(f)[:-5]
    cache, w, t = name.split("-")
    j = json.loads(open(f).read().splitlines()[-1])
    cpu = json.load(open(f[:-5] + ".cpu.json"))["server_cpu_s"]
    lat = j["latency_us"]
    rows.append(f"| {cache[5:]} | {w[1:]} | {t} | {j['qps']:,.0f} | {lat['p50']:,.0f} | {lat['p99']:,.0f} | "
                f"{j['lost']} | {100 * cpu / j['duration_s']:.0f} |")
table = ["| CoreDNS cache | workers | clients | answered q/s | p50 µs | p99 µs | lost | server CPU % |",
         "|---|--:|---|--:|--:|--:|--:|--:|"] + rows
open(os.path.join(out, "table.md"), "w").write("\n".join(table) + "\n")
print("\n".join(table))
print(f"\nresults in {out}")
EOF
