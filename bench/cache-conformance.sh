#!/usr/bin/env bash
# bench/cache-conformance.sh: run the external HTTP caching test suite
# (http-tests/cache-tests, the suite behind https://cache-tests.fyi) against Rampart's cache.
#
# The suite is NOT vendored: point SUITE_DIR at a checkout (test-engine/ layout, with its npm
# dependencies installed: `cd $SUITE_DIR && npm install --omit=dev`). See docs/cache.md,
# "External conformance: http-tests/cache-tests".
#
# It starts, on 127.0.0.1 only, the suite's origin server (SUITE_PORT), Rampart in front of it
# (RAMPART_PORT, admin on ADMIN_PORT) with the cache on, runs the suite's CLI against Rampart,
# prints a summary per test class (required / optimal / check) with every failing required
# test, and stops what it started.
#
# Environment:
#   SUITE_DIR      (required) the suite checkout
#   RAMPART_BIN    rampart binary (default: target/release/rampart, else `rampart` on PATH)
#   SUITE_PORT=8000 RAMPART_PORT=8080 ADMIN_PORT=18999
#   OUT_DIR        where results.json, summary.txt and the logs go (default: a mktemp dir)
#   TEST_ID        run one test by id and show the suite's request/response dump
#   BASE_URL       skip Rampart, run the CLI against this URL (e.g. another cache) instead
#   ROUTE_CACHE    TOML lines for the route's [routes.cache] table, e.g. 'set_cookie = "store"'
#   RAMPART_WAF__ENABLED etc.: the usual RAMPART_<SECTION>__<KEY> overrides pass through.
#     Defaults set here (override them to measure other settings):
#       RAMPART_WAF__ENABLED=false   the WAF blocks some of the suite's deliberately odd
#                                    requests (M-SEARCH, odd header values) before the cache
#       RAMPART_LOG__ACCESS_LOG=off, RAMPART_ADMIN__TOKEN_FILE=$OUT_DIR/admin.token
set -euo pipefail

: "${SUITE_DIR:?set SUITE_DIR to a checkout of http-tests/cache-tests}"
SUITE_DIR=$(cd "$SUITE_DIR" && pwd)
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE_PORT=${SUITE_PORT:-8000}
RAMPART_PORT=${RAMPART_PORT:-8080}
ADMIN_PORT=${ADMIN_PORT:-18999}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/cache-conformance.XXXXXX)}
mkdir -p "$OUT_DIR"
export RAMPART_WAF__ENABLED=${RAMPART_WAF__ENABLED:-false}
export RAMPART_LOG__ACCESS_LOG=${RAMPART_LOG__ACCESS_LOG:-off}
export RAMPART_ADMIN__TOKEN_FILE=${RAMPART_ADMIN__TOKEN_FILE:-$OUT_DIR/admin.token}

if [[ -z "${RAMPART_BIN:-}" ]]; then
    if [[ -x "$ROOT_DIR/target/release/rampart" ]]; then
        RAMPART_BIN="$ROOT_DIR/target/release/rampart"
    else
        RAMPART_BIN=$(command -v rampart || true)
    fi
fi

for f in test-engine/cli.mjs test-engine/server/server.mjs test-engine/lib/results.mjs tests/index.mjs; do
    [[ -f "$SUITE_DIR/$f" ]] || { echo "SUITE_DIR lacks $f (need the test-engine/ layout)" >&2; exit 2; }
done
[[ -d "$SUITE_DIR/node_modules" ]] || { echo "run 'npm install --omit=dev' in $SUITE_DIR first" >&2; exit 2; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do port_busy "$1" && return 0; sleep 0.1; done
    echo "nothing listening on 127.0.0.1:$1" >&2; return 1
}

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

for p in "$SUITE_PORT" $([[ -z "${BASE_URL:-}" ]] && echo "$RAMPART_PORT $ADMIN_PORT"); do
    if port_busy "$p"; then echo "127.0.0.1:$p is already in use" >&2; exit 2; fi
done

# The suite's origin. Run with node directly (npm run would leave the npm process as the pid
# to stop); the npm_package_config_* variables are what `npm run server` would set.
(cd "$SUITE_DIR" && exec env npm_package_config_protocol=http npm_package_config_port="$SUITE_PORT" \
    npm_package_config_pidfile="$OUT_DIR/suite-server.pid" npm_config_host=127.0.0.1 \
    node test-engine/server/server.mjs) >"$OUT_DIR/suite-server.log" 2>&1 &
PIDS+=($!)
wait_port "$SUITE_PORT"

if [[ -z "${BASE_URL:-}" ]]; then
    [[ -n "$RAMPART_BIN" && -x "$RAMPART_BIN" ]] || { echo "no rampart binary (set RAMPART_BIN)" >&2; exit 2; }
    # The origin deliberately answers 5xx in many tests: upstream resilience (outlier ejection,
    # breaker, retries of 502/503/504) would eject it or replay requests (the suite sees a
    # second request and fails the test as a retry), so it is off here. It is not part of
    # the cache; everything else is the embedded default.
    cat >"$OUT_DIR/rampart.toml" <<EOF
[[upstreams]]
name = "origin"
endpoints = ["http://127.0.0.1:$SUITE_PORT"]
[upstreams.outlier]
consecutive_failures = 0
[upstreams.breaker]
enabled = false
[upstreams.retry]
max_attempts = 1

[[routes]]
name = "suite"
path = "/"
upstream = "origin"
${ROUTE_CACHE:+
[routes.cache]
$ROUTE_CACHE}
EOF
    "$RAMPART_BIN" run --config "$OUT_DIR/rampart.toml" \
        --listen "127.0.0.1:$RAMPART_PORT" --admin "127.0.0.1:$ADMIN_PORT" \
        >"$OUT_DIR/rampart.log" 2>&1 &
    PIDS+=($!)
    wait_port "$RAMPART_PORT"
    BASE_URL="http://127.0.0.1:$RAMPART_PORT"
fi

echo "suite:   $SUITE_DIR"
echo "target:  $BASE_URL${RAMPART_BIN:+ ($RAMPART_BIN)}"
echo "output:  $OUT_DIR"
echo "load:    $(uptime)"

if [[ -n "${TEST_ID:-}" ]]; then
    (cd "$SUITE_DIR" && npm_package_config_base="$BASE_URL" npm_package_config_id="$TEST_ID" \
        node --no-warnings test-engine/cli.mjs)
    exit 0
fi

start=$(date +%s)
(cd "$SUITE_DIR" && npm_package_config_base="$BASE_URL" npm_package_config_id="" \
    node --no-warnings test-engine/cli.mjs) >"$OUT_DIR/results.json" 2>"$OUT_DIR/cli.err"
echo "run:     $(( $(date +%s) - start )) s"

# Classify with the suite's own rules (test-engine/lib/results.mjs, dependencies honoured as
# on cache-tests.fyi): a test whose depends_on did not pass is "dependency" (not counted as a
# failure of its own), a failed setup step is "setup".
cat >"$OUT_DIR/summary.mjs" <<'EOF'
import fs from 'fs'
import { pathToFileURL } from 'url'
const [suiteDir, resultsFile] = process.argv.slice(2)
const suites = (await import(pathToFileURL(`${suiteDir}/tests/index.mjs`))).default
const { determineTestResult, resultTypes } = await import(pathToFileURL(`${suiteDir}/test-engine/lib/results.mjs`))
const results = JSON.parse(fs.readFileSync(resultsFile, 'utf8'))
const names = new Map(Object.entries(resultTypes).map(([k, v]) => [v, k]))
const label = { pass: 'pass', yes: 'pass', fail: 'fail', optional_fail: 'fail', no: 'fail',
  setup_fail: 'setup', harness_fail: 'harness', dependency_fail: 'dependency', retry: 'retry', untested: 'untested' }
const counts = {}
const failing = []
for (const suite of suites) {
  for (const test of suite.tests) {
    const kind = test.kind || 'required'
    // browser_only tests are skipped by the suite's runner for a non-browser cache
    const outcome = test.browser_only ? 'browser-only' : label[names.get(determineTestResult(suites, test.id, results))]
    counts[kind] ??= {}
    counts[kind][outcome] = (counts[kind][outcome] || 0) + 1
    if (outcome !== 'pass' && outcome !== 'browser-only') {
      const r = results[test.id]
      failing.push([kind, `  ${outcome.padEnd(10)} ${test.id}: ${Array.isArray(r) ? r[1] : ''}`])
    }
  }
}
const order = ['pass', 'fail', 'setup', 'dependency', 'harness', 'retry', 'untested', 'browser-only']
for (const kind of ['required', 'optimal', 'check']) {
  const c = counts[kind] || {}
  const total = Object.values(c).reduce((a, b) => a + b, 0)
  console.log(`${kind.padEnd(9)} ${String(total).padStart(3)} tests: ` +
    order.filter(o => c[o]).map(o => `${o} ${c[o]}`).join(', '))
}
for (const kind of ['required', 'optimal', 'check']) {
  const these = failing.filter(f => f[0] === kind).map(f => f[1])
  console.log(`${kind} tests not passing (outcome, id, the suite's message):`)
  console.log(these.length ? these.join('\n') : '  none')
}
EOF
node "$OUT_DIR/summary.mjs" "$SUITE_DIR" "$OUT_DIR/results.json" | tee "$OUT_DIR/summary.txt"
