#!/usr/bin/env bash
# bench/callgrind-proxy.sh: instructions per proxied request, counted by valgrind's callgrind.
#
# Wall-clock benchmarks on a shared 2-core machine move with the load; instruction counts do
# not (the same binary and inputs give the same count whatever else runs). This runs the
# gateway under callgrind in front of `rampart demo --backend-only`, sends REQUESTS keep-alive
# GETs of /static/1k.json with wrk, and prints user-space instructions per request (kernel time
# is not counted). Startup is subtracted by a second, request-free run.
#
# Without CONFIG: the pass-through proxy (cache, WAF, security headers and access log off
# unless overridden by RAMPART_* variables), `rampart run --upstream ...`.
# With CONFIG=file: `rampart run --config` on a copy of the file in which `@ORIGIN@` is replaced
# by the origin's address and `@WORK@` by the temp dir; --listen / --admin are set by the
# script. bench/callgrind/{off,guard}.toml are the protection-cost pair (docs/guard.md).
#
#   RAMPART=target/release/rampart  REQUESTS=5000  CONNS=8  PORT=18300
#   CONFIG=bench/callgrind/guard.toml   HEADER='x-api-key: ...' (sent by wrk and the probe)
#   KEEP=1 keeps the callgrind files (callgrind_annotate them for the per-function profile).
set -euo pipefail
ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RAMPART=${RAMPART:-"$ROOT_DIR/target/release/rampart"}
REQUESTS=${REQUESTS:-5000}
CONNS=${CONNS:-8}
PORT=${PORT:-18300}
KEEP=${KEEP:-0}
CONFIG=${CONFIG:-}
HEADER=${HEADER:-}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install -y wrk)" >&2; exit 1; }
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [[ $KEEP == 1 ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
ORIGIN="127.0.0.1:$((PORT + 1))"
if [[ -n $CONFIG ]]; then
    sed -e "s|@ORIGIN@|$ORIGIN|g" -e "s|@WORK@|$WORK|g" "$CONFIG" >"$WORK/config.toml"
    RUN_ARGS=(--config "$WORK/config.toml")
else
    export RAMPART_WAF__ENABLED=${RAMPART_WAF__ENABLED:-false}
    export RAMPART_SECURITY_HEADERS__ENABLED=${RAMPART_SECURITY_HEADERS__ENABLED:-false}
    export RAMPART_LOG__ACCESS_LOG=${RAMPART_LOG__ACCESS_LOG:-off}
    export RAMPART_CACHE__ENABLED=${RAMPART_CACHE__ENABLED:-false}
    RUN_ARGS=(--upstream "http://$ORIGIN")
fi
HDR_ARGS=()
[[ -n $HEADER ]] && HDR_ARGS=(-H "$HEADER")

"$RAMPART" demo --backend-only --backend "$ORIGIN" >"$WORK/origin.log" 2>&1 &
PIDS+=($!)
wait_up() { for _ in $(seq 1 600); do curl -fs -o /dev/null "${HDR_ARGS[@]}" "$1" && return 0; sleep 0.1; done; return 1; }
wait_up "http://$ORIGIN/static/1k.json"

# A wrk script that stops after exactly REQUESTS responses in all.
cat >"$WORK/count.lua" <<LUA
local n = 0
local per = $REQUESTS
function response() n = n + 1; if n >= per then wrk.thread:stop() end end
LUA

run() { # $1 = name, $2 = 1 to send requests
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$1" \
        "$RAMPART" run "${RUN_ARGS[@]}" --listen "127.0.0.1:$PORT" \
        --admin "127.0.0.1:$((PORT + 2))" >"$WORK/$1.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid") # stopped by the EXIT trap if start-up fails
    wait_up "http://127.0.0.1:$PORT/static/1k.json" ||
        { tail "$WORK/$1.log" >&2; echo "the gateway does not answer 2xx (wrong HEADER?)" >&2; exit 1; }
    local sent=1
    if [[ $2 == 1 ]]; then
        wrk -t1 -c"$CONNS" -d120s -s "$WORK/count.lua" "${HDR_ARGS[@]}" \
            "http://127.0.0.1:$PORT/static/1k.json" >"$WORK/wrk.txt"
        grep -q "Non-2xx" "$WORK/wrk.txt" && { cat "$WORK/wrk.txt" >&2; echo "non-2xx answers" >&2; exit 1; }
        sent=$(( $(awk '/requests in/ {print $1}' "$WORK/wrk.txt") + 1 ))
    fi
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    local ir
    ir=$(awk '/^summary:|^totals:/ {print $2; exit}' "$WORK/cg.$1")
    echo "$ir $sent"
}
read -r base base_n < <(run idle 0)
read -r total n < <(run load 1)
echo "requests: $((n - base_n)); instructions: total $total, startup $base"
echo "instructions per request: $(( (total - base) / (n - base_n) ))"
