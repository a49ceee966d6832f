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
LOG_TAG=coredns-bench
# shellcheck source=bench/common.sh
. "$HERE/common.sh"
DURATION=${DURATION:-10}
WORKER_COUNTS=${WORKER_COUNTS:-1 2}
CACHE_MODES=${CACHE_MODES:-on off}
PORT=${PORT:-15350}
WORKER_PORT_BASE=${WORKER_PORT_BASE:-15360}
STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/coredns-$STAMP
WORK=$(mktemp -d /tmp/domain-park-coredns-bench.XXXXXX)
WORKER_PIDS=()
WORKER_ADDRS=()
CDNS_PID=""

stop_all() { stop_pids "${WORKER_PIDS[@]}" ${CDNS_PID:+"$CDNS_PID"}; WORKER_PIDS=() WORKER_ADDRS=() CDNS_PID=""; }
trap 'stop_all; rm -rf "$WORK"' EXIT

[[ -x "$WORKER_BIN" ]] || { echo "coredns.sh: no worker at $WORKER_BIN (run scripts/build.sh)" >&2; exit 2; }
COREDNS=${DP_COREDNS:-$("$ROOT/deploy/coredns/install-stock.sh" | tail -1)}
mkdir -p "$OUT"
build_tools dns_load
python3 "$HERE/make_mix.py" -o "$WORK/mix.txt"

run_case() {  # run_case CACHE WORKERS
    local cache=$1 workers=$2 i corefile="$WORK/Corefile"
    start_workers "$workers" "$WORK"
    # The repository's Corefile with the worker addresses, for "cache off" without its cache block.
    if [[ $cache == on ]]; then
        corefile_for "${WORKER_ADDRS[*]}" > "$corefile"
    else
        corefile_for "${WORKER_ADDRS[*]}" |
            awk '/^    cache / {skip = 1} skip && /^    }/ {skip = 0; next} !skip' > "$corefile"
    fi
    start_coredns "$corefile" > "$WORK/coredns.log" 2>&1
    CDNS_PID=$!
    for ((i = 0; i < 100; i++)); do
        curl -sf "http://127.0.0.1:$((PORT + 3))/ready" >/dev/null 2>&1 && break
        kill -0 "$CDNS_PID" 2>/dev/null || break
        sleep 0.1
    done
    if ! curl -sf "http://127.0.0.1:$((PORT + 3))/ready" >/dev/null 2>&1; then
        echo "coredns.sh: CoreDNS did not become ready:" >&2
        cat "$WORK/coredns.log" >&2
        exit 1
    fi
    # One pass over the mix: warms the cache (when on) and checks every answer comes back.
    load "$OUT/verify-cache$cache-w$workers.json" -q -p "$PORT" -m udp -d 0 \
        -n "$(wc -l < "$WORK/mix.txt")" -c 1 -w 50 -t 2
    local t c0 c1
    for t in udp tcp; do
        client_args "$t"
        log "cache $cache, $workers worker(s), $t clients, $DURATION s"
        c0=$(ticks "${WORKER_PIDS[@]}" "$CDNS_PID")
        load "$OUT/cache$cache-w$workers-$t.json" -q -p "$PORT" -d "$DURATION" "${CLIENT_ARGS[@]}"
        c1=$(ticks "${WORKER_PIDS[@]}" "$CDNS_PID")
        echo "{\"server_cpu_s\": $(echo "($c1 - $c0) / $TCK" | bc -l)}" > "$OUT/cache$cache-w$workers-$t.cpu.json"
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
