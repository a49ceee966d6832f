#!/usr/bin/env bash
# Regenerates the settings tables in the READMEs from the programs' declarations
# (--settings-table); tests/docs checks that they are up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
python3 tests/docs/settings_tables.py --write --worker build/worker/domain-park-worker \
  --balancer build/balancer/domain-park-balancer
