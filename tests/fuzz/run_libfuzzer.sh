#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time over a copy of its seed corpus (new inputs go
# to the copy, never into the repository), under the sanitizers it was built with.
# Usage: run_libfuzzer.sh BINARY CORPUS_DIR SECONDS [ARTIFACT_DIR]
# A crash, leak or sanitizer report fails the run; libFuzzer writes the input as
# ARTIFACT_DIR/crash-* (default: build dir): add it to CORPUS_DIR as a regression input once fixed.
# The last line gives the executions and the coverage (cov: edges, ft: features) reached.
set -euo pipefail
bin=$1 corpus=$2 secs=$3 artifacts=${4:-$(dirname "$bin")/fuzz-artifacts}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$artifacts"
cp -r "$corpus/." "$work/"
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" "$work" 2>"$work.log" || { tail -60 "$work.log"; rm -f "$work.log"; exit 1; }
grep -E "^#[0-9]+.*(DONE|cov:)" "$work.log" | tail -1
grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$work.log" || true
rm -f "$work.log"
