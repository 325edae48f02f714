#!/usr/bin/env bash
# bench/resilience.sh: upstream resilience figures for docs/performance.md.
#   1. one of three endpoints killed mid-run under closed-loop GET load: client-visible errors,
#      with the default resilience settings and with retries / ejection / breaker off;
#   2. one of three endpoints 10x slower: the share of requests it receives under
#      round_robin, least_requests and ewma.
# Everything runs in one process on 127.0.0.1 (test origins from rampart-testkit, the real
# gateway), bounded to a few seconds per scenario (~30 s in all with the defaults).
#
# Environment: DURATION_S=6 CONCURRENCY=16 FAST_MS=2 SLOW_MS=20 PROFILE=release (or dev)
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROFILE=${PROFILE:-release}
cd "$ROOT_DIR"
echo "load: $(uptime)"
if [[ "$PROFILE" == "release" ]]; then
    cargo run -q --release -p rampart-app --example resilience_bench
else
    cargo run -q -p rampart-app --example resilience_bench
fi
echo "load: $(uptime)"
