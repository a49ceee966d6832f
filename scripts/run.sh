#!/usr/bin/env bash
# Sets up, builds and runs domain-park on loopback with a built-in default configuration:
# one worker per core sharing 127.0.0.1:5300 (UDP and TCP) through SO_REUSEPORT, with
# Prometheus metrics on 127.0.0.1:9310+N. Ctrl-C stops them. Override with environment:
#   WORKERS=4 PORT=5300 METRICS_BASE=9310 scripts/run.sh
# FRONT=coredns also starts stock CoreDNS with the repository's Corefile on 127.0.0.1:5353
# (COREDNS_PORT), forwarding to the workers over TCP (metrics :9253, /health :8080, /ready :8181).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh >/dev/null

WORKERS=${WORKERS:-$(nproc)}
PORT=${PORT:-5300}
METRICS_BASE=${METRICS_BASE:-9310}
pids=()
stop() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop EXIT INT TERM
for i in $(seq 0 $((WORKERS - 1))); do
  build/worker/domain-park-worker --host 127.0.0.1 --port "$PORT" --reuseport \
    -n ns1.park.example:127.0.0.1 -n ns2.park.example:127.0.0.1 \
    --rua dmarc-reports@park.example --identity "worker-$i" \
    --metrics "127.0.0.1:$((METRICS_BASE + i))" &
  pids+=($!)
done
if [ "${FRONT:-}" = coredns ]; then
  COREDNS_PORT=${COREDNS_PORT:-5353}
  coredns=$(deploy/coredns/install-stock.sh | tail -1)
  DP_WORKERS="127.0.0.1:$PORT" DP_METRICS=127.0.0.1:9253 DP_HEALTH=127.0.0.1:8080 DP_READY=127.0.0.1:8181 \
    "$coredns" -conf Corefile -dns.port "$COREDNS_PORT" &
  pids+=($!)
  echo "CoreDNS on 127.0.0.1:$COREDNS_PORT in front of the workers: dig @127.0.0.1 -p $COREDNS_PORT example.com TXT"
fi
sleep 0.5
cat <<MSG

domain-park: $WORKERS worker(s) on 127.0.0.1:$PORT (UDP and TCP). Try:
  dig @127.0.0.1 -p $PORT example.com TXT +norec
  dig @127.0.0.1 -p $PORT _dmarc.example.com TXT +norec
  dig @127.0.0.1 -p $PORT example.co.uk NS +tcp
  curl -s 127.0.0.1:$METRICS_BASE/metrics | grep domain_park_queries_total
Ctrl-C stops them.
MSG
wait
