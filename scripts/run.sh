#!/usr/bin/env bash
# Sets up, builds and runs domain-park on loopback with a built-in default configuration:
# one worker per core, and in front of them the balancer on 127.0.0.1:5353 (UDP and TCP),
# Prometheus metrics on 127.0.0.1:9253 (balancer) and 127.0.0.1:9310+N (workers).
# Ctrl-C stops everything. Override with environment:
#   WORKERS=4            number of workers (default: one per core)
#   FRONT=balancer       the front end: balancer (default), coredns (stock CoreDNS with the
#                        repository's Corefile) or none (workers only)
#   PORT=5353            the front end's port;  WORKER_PORT=5300  the first worker's port
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null

WORKERS=${WORKERS:-$(nproc)}
FRONT=${FRONT:-balancer}
PORT=${PORT:-5353}
WORKER_PORT=${WORKER_PORT:-5300}
METRICS_BASE=${METRICS_BASE:-9310}
case "$FRONT" in balancer|coredns|none) ;; *) echo "run.sh: FRONT must be balancer, coredns or none" >&2; exit 2 ;; esac

pids=()
# Front end first (it was started last), then the workers: clients stop arriving before the
# workers go, so the balancer does not mark every worker down on the way out.
stop() {
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
}
trap stop EXIT INT TERM

# The balancer keeps its own connections to each worker, so each worker gets its own port;
# CoreDNS takes one address, so there the workers share one port with SO_REUSEPORT.
worker_args=()
for i in $(seq 0 $((WORKERS - 1))); do
  if [ "$FRONT" = balancer ]; then port=$((WORKER_PORT + i)); share=(); else port=$WORKER_PORT; share=(--reuseport); fi
  build/worker/domain-park-worker --host 127.0.0.1 --port "$port" "${share[@]}" \
    -n ns1.park.example:127.0.0.1 -n ns2.park.example:127.0.0.1 \
    --rua dmarc-reports@park.example --identity "worker-$i" \
    --metrics "127.0.0.1:$((METRICS_BASE + i))" &
  pids+=($!)
  worker_args+=(--worker "127.0.0.1:$port")
done

case "$FRONT" in
  balancer)
    build/balancer/domain-park-balancer --listen "127.0.0.1:$PORT" "${worker_args[@]}" --metrics 127.0.0.1:9253 &
    pids+=($!)
    ;;
  coredns)
    coredns=$(deploy/coredns/install-stock.sh | tail -1)
    DP_LISTEN=127.0.0.1 DP_WORKERS="127.0.0.1:$WORKER_PORT" DP_METRICS=127.0.0.1:9253 DP_HEALTH=127.0.0.1:8080 \
      DP_READY=127.0.0.1:8181 "$coredns" -conf Corefile -dns.port "$PORT" &
    pids+=($!)
    ;;
  none) PORT=$WORKER_PORT ;;
esac
sleep 0.5
cat <<MSG

domain-park: $WORKERS worker(s) from 127.0.0.1:$WORKER_PORT, front end: $FRONT, answering on 127.0.0.1:$PORT. Try:
  dig @127.0.0.1 -p $PORT example.com TXT +norec
  dig @127.0.0.1 -p $PORT _dmarc.example.com TXT +norec
  dig @127.0.0.1 -p $PORT example.co.uk NS +tcp
  curl -s 127.0.0.1:9253/metrics | grep -E '^(domain_park|coredns)_' | head
Ctrl-C stops them.
MSG
wait
