# shellcheck shell=bash
# Shared by bench/run.sh, bench/coredns.sh and bench/balancer.sh; sourced, not run. Before
# sourcing, a script sets HERE (this folder), ROOT (the repository), LOG_TAG (its log prefix);
# before calling the functions, WORK (its scratch folder, holding mix.txt) and what they name.
# Every process started here is stopped by PID; everything is on loopback.

# Settings the scripts share, with the same defaults (each script lists them in its header).
UDP_SOCKETS=${UDP_SOCKETS:-4}
UDP_INFLIGHT=${UDP_INFLIGHT:-50}
TCP_CONNS=${TCP_CONNS:-10}
TCP_INFLIGHT=${TCP_INFLIGHT:-100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
WORKER_BIN=${WORKER_BIN:-$ROOT/build/worker/domain-park-worker}
QUIET_WAIT=${QUIET_WAIT:-120}
NCPU=$(nproc)
TCK=$(getconf CLK_TCK)
BIN=$HERE/.build
STOP_TENTHS=70   # stop_pids: tenths of a second to wait after SIGTERM

log() { printf '[%s] %s\n' "$LOG_TAG" "$*" >&2; }

# install_missing COMMAND:PACKAGE...: install, from Debian's packages, those whose command is
# missing (needs root or sudo); nothing when BENCH_NO_INSTALL=1.
install_missing() {
    [ "${BENCH_NO_INSTALL:-0}" != 1 ] || return 0
    local pair missing=() SUDO=""
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
}

# build_tools NAME...: compile bench/NAME.cpp into $BIN/NAME when missing or older than its source.
build_tools() {
    mkdir -p "$BIN"
    local t
    for t in "$@"; do
        if [[ ! -x "$BIN/$t" || "$HERE/$t.cpp" -nt "$BIN/$t" || "$HERE/mix_query.hpp" -nt "$BIN/$t" ]]; then
            log "building $t"
            g++ -std=c++20 -O2 -Wall -Wextra -Werror -o "$BIN/$t" "$HERE/$t.cpp"
        fi
    done
}

# ------------------------------------------------------------------ processes

# start_worker PORT IDENTITY [FLAG...]: a domain-park worker on 127.0.0.1:PORT, pinned to
# SERVER_CPU, in the background (its PID in $!; redirect the call for its log).
start_worker() {
    taskset -c "$SERVER_CPU" "$WORKER_BIN" --host 127.0.0.1 --port "$1" \
        -n ns1.park.example:192.0.2.53,2001:db8::53 -n ns2.park.example:192.0.2.54 \
        --rua dmarc@park.example --identity "$2" "${@:3}" &
}

# start_workers COUNT LOGDIR: COUNT workers on ports WORKER_PORT_BASE.., identities w0..,
# logs LOGDIR/worker<i>.log; PIDs appended to WORKER_PIDS, addresses to WORKER_ADDRS.
start_workers() {
    local i
    for ((i = 0; i < $1; i++)); do
        start_worker $((WORKER_PORT_BASE + i)) "w$i" > "$2/worker$i.log" 2>&1
        WORKER_PIDS+=($!)
        WORKER_ADDRS+=("127.0.0.1:$((WORKER_PORT_BASE + i))")
    done
}

# corefile_for ADDRS [SED_ARGS...]: the repository's Corefile on stdout, the worker addresses
# ADDRS (space-separated) written in place of {$DP_WORKERS} (CoreDNS substitutes a variable
# within one token, so it cannot carry a list), edited further by SED_ARGS (-e ...).
corefile_for() {
    sed -e "s/{\$DP_WORKERS}/$1/" "${@:2}" "$ROOT/Corefile"
}

# start_coredns COREFILE: $COREDNS on 127.0.0.1:PORT (metrics PORT+1, health +2, ready +3),
# one Go thread, pinned to SERVER_CPU, in the background (its PID in $!; redirect the call).
start_coredns() {
    DP_LISTEN=127.0.0.1 DP_METRICS=127.0.0.1:$((PORT + 1)) DP_HEALTH=127.0.0.1:$((PORT + 2)) DP_READY=127.0.0.1:$((PORT + 3)) \
        GOMAXPROCS=1 taskset -c "$SERVER_CPU" "$COREDNS" -conf "$1" -dns.port "$PORT" &
}

# stop_pids PID...: SIGTERM to all, up to STOP_TENTHS tenths of a second for them to exit (the
# workers and the balancer drain connections for up to 5 s), then SIGKILL to any left.
stop_pids() {
    local p i alive
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for ((i = 0; i < STOP_TENTHS; i++)); do
        alive=0
        for p in "$@"; do if kill -0 "$p" 2>/dev/null; then alive=1; fi; done
        ((alive)) || break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

# wait_answering PORT PID NAME PROBEFILE COUNT: ready when the server answers NOERROR to all
# COUNT queries of PROBEFILE (at most 30 s; fails at once when PID exits).
wait_answering() {
    local port=$1 pid=$2 name=$3 probe=$4 count=$5 i ok
    for ((i = 0; i < 120; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then log "$name exited during startup"; return 1; fi
        ok=$("$BIN/dns_load" -q -s 127.0.0.1 -p "$port" -f "$probe" -n "$count" -d 0 -c 1 \
                -w $((count < 50 ? count : 50)) -t 0.3 2>/dev/null |
             python3 -c 'import json,sys; print(json.loads(sys.stdin.read()).get("rcodes", {}).get("NOERROR", 0))' \
             2>/dev/null || echo 0)
        [[ "$ok" == "$count" ]] && return 0
        sleep 0.25
    done
    log "$name did not answer all $count probe queries within 30 s"
    return 1
}

# ------------------------------------------------------------------ measuring

# ticks PID...: user + system CPU ticks of these processes (all threads).
ticks() {
    local t=0 p
    for p in "$@"; do t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat"))); done
    echo "$t"
}
# Busy ticks of the whole machine (user, nice, system, irq, softirq, steal), all CPUs.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# A build or test run of someone else on this machine takes cores from the server or the
# generator and silently halves the numbers; wait until the machine is idle (< 10% busy), at
# most QUIET_WAIT seconds.
wait_quiet() {
    local i a b
    for ((i = 0; i < QUIET_WAIT; i++)); do
        a=$(busy_ticks); sleep 1; b=$(busy_ticks)
        if (( (b - a) * 10 < TCK * NCPU )); then return 0; fi
        (( i % 10 == 0 )) && log "machine busy ($(( (b - a) * 100 / (TCK * NCPU) ))% of $NCPU CPUs), waiting"
    done
    log "machine still busy after $QUIET_WAIT s: measuring anyway (see 'other CPU' in the table)"
}

# repeat_disturbed META COMMAND...: run COMMAND, which writes META (JSON with wall_s and
# other_cpu_s), again while other processes took more than 20% of a core, at most RETRIES
# times more; RUN_ATTEMPT counts the runs from 0.
repeat_disturbed() {
    local meta=$1
    shift
    for ((RUN_ATTEMPT = 0; RUN_ATTEMPT <= RETRIES; RUN_ATTEMPT++)); do
        "$@"
        if python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(m["other_cpu_s"] > 0.2 * m["wall_s"])' "$meta"; then
            return 0
        fi
        (( RUN_ATTEMPT < RETRIES )) && log "run disturbed by other processes, repeating"
    done
    return 0
}

# client_args udp|tcp: the closed-loop client shape, in CLIENT_ARGS: UDP_SOCKETS sockets x
# UDP_INFLIGHT queries in flight, or TCP_CONNS connections x TCP_INFLIGHT pipelined.
client_args() {
    if [[ $1 == udp ]]; then CLIENT_ARGS=(-m udp -c "$UDP_SOCKETS" -w "$UDP_INFLIGHT")
    else CLIENT_ARGS=(-m tcp -c "$TCP_CONNS" -w "$TCP_INFLIGHT"); fi
}

load() {  # load OUTFILE dns_load-args... : the mix against 127.0.0.1, pinned to the client CPU
    taskset -c "$CLIENT_CPU" "$BIN/dns_load" -s 127.0.0.1 -f "$WORK/mix.txt" "${@:2}" > "$1"
}
