#!/usr/bin/env bash
# The worker's database-outage test with a longer outage (test/cli-worker.test.ts cuts the
# database for 4 s): a real `groundskeeper worker` behind a TCP proxy that is killed for N seconds
# (default 30) while jobs run; the worker must keep running and finish every job afterwards.
#   bash scripts/db-outage.sh [seconds]      (TEST_DATABASE_URL=… to use a running server)
set -euo pipefail
cd "$(dirname "$0")/.."
GK_TEST_OUTAGE_MS=$(( ${1:-30} * 1000 )) exec npx vitest run test/cli-worker.test.ts -t "database outage"
