#!/usr/bin/env bash
# bench/protection.sh: the cost of Rampart's protection layers on cache hits.
#
# One origin (`rampart demo --backend-only`), one gateway restarted per variant, the same load
# (`rampart bench` on a cacheable 1 KiB object, every request a cache hit):
#   off     WAF off, security headers off, no lists / bans / limits / CORS / hygiene / auth
#   guard   everything but the WAF: global IP deny list, a ban rule, two rate limits (per IP
#           and per API key, high enough never to refuse), CORS, route hygiene, API-key auth
#           (SHA-256 + constant-time compare per request), security headers
#   all     guard + the WAF (built-in rules, paranoia 1, block)
# Variants run in rounds (off guard all, off guard all, ...) so machine-load drift hits each
# alike; the table gives the median req/s per variant and its ratio to `off`.
#
# Environment:
#   DURATION=5s  WARMUP=1s  CONNECTIONS=50  THREADS=2  ROUNDS=3
#   BASE_PORT=18280  origin; +1 gateway; +2 gateway admin
#   RAMPART_BIN=target/release/rampart   SKIP_BUILD=1 to use an existing binary
#   KEEP_DIR=1 keeps the temp dir (configs, logs, JSON results)
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18280}
ORIGIN_PORT=$BASE_PORT
GW_PORT=$((BASE_PORT + 1))
ADMIN_PORT=$((BASE_PORT + 2))
RAMPART_BIN=${RAMPART_BIN:-"${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/rampart"}
VARIANTS="off guard all"
API_KEY="bench-key-0123456789"

die() { echo "protection.sh: error: $*" >&2; exit 1; }
say() { echo "protection.sh: $*" >&2; }

PIDS=()
WORK=$(mktemp -d /tmp/rampart-protection.XXXXXX)
stop_pid() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [[ -n "${KEEP_DIR:-}" ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

http_status() { # port path [header]
    local port=$1 path=$2 hdr=${3:-} line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: close\r\n\r\n' "$path" "$hdr" >&3
    IFS= read -r -t 5 line <&3 || { exec 3<&-; return 1; }
    exec 3<&- 3>&-
    echo "$line" | awk '{print $2}'
}
wait_ready() { # name port pid log path [header]
    local status=""
    for _ in $(seq 1 75); do
        kill -0 "$3" 2>/dev/null || { tail -n 20 "$4" >&2; die "$1 exited during start-up"; }
        status=$(http_status "$2" "$5" "${6:-}" 2>/dev/null || true)
        [[ "$status" == "200" ]] && return 0
        sleep 0.2
    done
    tail -n 20 "$4" >&2
    die "$1 does not answer 200 on $5 (last status '${status:-none}')"
}

if [[ -z "${SKIP_BUILD:-}" ]]; then
    say "building rampart (cargo build --release -p rampart)"
    (cd "$ROOT_DIR" && cargo build --release -p rampart) || die "release build failed"
fi
[[ -x "$RAMPART_BIN" ]] || die "rampart binary $RAMPART_BIN not found"

"$RAMPART_BIN" demo --backend-only --backend "127.0.0.1:$ORIGIN_PORT" >"$WORK/origin.log" 2>&1 &
PIDS+=("$!")
wait_ready origin "$ORIGIN_PORT" "$!" "$WORK/origin.log" /static/1k.json

KEY_SHA=$(printf %s "$API_KEY" | sha256sum | awk '{print $1}')
common() { # waf(bool) headers(bool)
    cat <<TOML
[server]
listen = ["127.0.0.1:$GW_PORT"]
[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token = "bench-admin-token-0123456789"
[log]
level = "warn"
access_log = "off"
[audit]
path = "$WORK/audit.jsonl"
[waf]
enabled = $1
[security_headers]
enabled = $2
[[upstreams]]
name = "origin"
endpoints = ["http://127.0.0.1:$ORIGIN_PORT"]
TOML
}
common false false >"$WORK/off.toml"
cat >>"$WORK/off.toml" <<TOML
[[routes]]
name = "static"
upstream = "origin"
TOML
guard_routes() {
    cat <<TOML
[ip_lists]
deny = ["192.0.2.0/24", "2001:db8::/32"]
[[bans.rules]]
name = "auth_bruteforce"
trigger = "status:401"
threshold = 50
[[auth.api_keys]]
name = "bench"
sha256 = "$KEY_SHA"
[[routes]]
name = "static"
upstream = "origin"
[routes.hygiene]
allowed_methods = ["GET", "POST"]
max_query_params = 20
deny_headers = ["x-debug"]
[routes.auth]
api_key = "header:x-api-key"
[routes.cors]
origins = ["https://app.example.com"]
[[routes.rate_limits]]
name = "per_ip"
rate = "100000000/1s"
key = "ip"
[[routes.rate_limits]]
name = "per_key"
rate = "100000000/1s"
key = "api_key"
TOML
}
{ common false true; guard_routes; } >"$WORK/guard.toml"
{ common true true; guard_routes; } >"$WORK/all.toml"
for v in $VARIANTS; do
    "$RAMPART_BIN" check --config "$WORK/$v.toml" >/dev/null || die "config $v does not validate"
done

declare -A RESULTS
for round in $(seq 1 "$ROUNDS"); do
    for v in $VARIANTS; do
        "$RAMPART_BIN" run --config "$WORK/$v.toml" >"$WORK/$v.$round.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_ready "rampart($v)" "$GW_PORT" "$pid" "$WORK/$v.$round.log" /static/1k.json \
            "x-api-key: $API_KEY"$'\r\n'
        "$RAMPART_BIN" bench -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --warmup "$WARMUP" \
            -H "x-api-key: $API_KEY" --json "$WORK/$v.$round.json" \
            "http://127.0.0.1:$GW_PORT/static/1k.json" >"$WORK/$v.$round.out" 2>&1 ||
            { cat "$WORK/$v.$round.out" >&2; die "bench failed for $v"; }
        rps=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["rps"]))' "$WORK/$v.$round.json" 2>/dev/null ||
            grep -Eo '[0-9.]+ req/s' "$WORK/$v.$round.out" | head -1 | awk '{print int($1)}')
        RESULTS[$v]="${RESULTS[$v]:-} $rps"
        say "round $round $v: $rps req/s"
        stop_pid "$pid"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo "${RESULTS[off]}" | median)
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-6s %12s %8s   %s\n' variant "median rps" "vs off" "rounds"
for v in $VARIANTS; do
    m=$(echo "${RESULTS[$v]}" | median)
    printf '%-6s %12s %7.1f%%   %s\n' "$v" "$m" "$(python3 -c "print(100.0*$m/$base)")" "${RESULTS[$v]}"
done
