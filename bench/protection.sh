#!/usr/bin/env bash
# bench/protection.sh: the cost of Rampart's protection layers on cache hits.
#
# One origin (`rampart demo --backend-only`), one gateway restarted per variant, the same load
# (`rampart bench` on a cacheable 1 KiB object, every request a cache hit):
#   off     WAF off, security headers off, no lists / bans / limits / CORS / hygiene / auth
#   guard   everything but the WAF: global IP deny list, a ban rule, two rate limits (per IP
#           and per API key, high enough never to refuse), CORS, route hygiene, API-key auth
#           (SHA-256 + constant-time compare per request), security headers
#   jwt     guard, with JWT auth (HS256, signature + exp checked per request, `sub` forwarded
#           upstream, rate limit keyed on the `sub` claim) in place of the API key
#   all     guard + the WAF (built-in rules, paranoia 1, block)
#   waf     off + the WAF alone (issue 6's "WAF on vs off on a cache hit"; not in the default set)
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
VARIANTS=${VARIANTS:-"off guard jwt all"}
API_KEY="bench-key-0123456789"
JWT_SECRET="bench-jwt-secret-0123456789abcdef-0123456789"

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
guard_routes() { # auth: apikey | jwt
    local auth=${1:-apikey}
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
[[auth.jwt]]
name = "bench"
algorithms = ["HS256"]
issuers = ["bench"]
[[auth.jwt.keys]]
type = "hmac"
secret = "$JWT_SECRET"
[[routes]]
name = "static"
upstream = "origin"
[routes.hygiene]
allowed_methods = ["GET", "POST"]
max_query_params = 20
deny_headers = ["x-debug"]
$(if [[ $auth == jwt ]]; then
    printf '[routes.auth]\njwt = "bench"\nforward_claims = { sub = "x-user-id" }\n'
else
    printf '[routes.auth]\napi_key = "header:x-api-key"\n'
fi)
[routes.cors]
origins = ["https://app.example.com"]
[[routes.rate_limits]]
name = "per_ip"
rate = "100000000/1s"
key = "ip"
[[routes.rate_limits]]
name = "per_key"
rate = "100000000/1s"
key = "$([[ $auth == jwt ]] && echo jwt_claim:sub || echo api_key)"
TOML
}
{ common true false; printf '[[routes]]\nname = "static"\nupstream = "origin"\n'; } >"$WORK/waf.toml"
{ common false true; guard_routes; } >"$WORK/guard.toml"
{ common false true; guard_routes jwt; } >"$WORK/jwt.toml"
{ common true true; guard_routes; } >"$WORK/all.toml"
for v in $VARIANTS; do
    "$RAMPART_BIN" check --config "$WORK/$v.toml" >/dev/null || die "config $v does not validate"
done

# An HS256 token for the jwt variant: iss "bench", sub "bench-user", valid for a day.
JWT=$(python3 - "$JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"iss": "bench", "sub": "bench-user", "exp": int(time.time()) + 86400}).encode())
sig = hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
print(f"{head}.{body}.{b64(sig)}")
PY
) || die "cannot make the bench JWT (python3 needed)"
auth_header() { # variant
    if [[ $1 == jwt ]]; then echo "authorization: Bearer $JWT"; else echo "x-api-key: $API_KEY"; fi
}

CLK_TCK=$(getconf CLK_TCK)
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, in clock ticks
declare -A RESULTS CPUS
for round in $(seq 1 "$ROUNDS"); do
    for v in $VARIANTS; do
        "$RAMPART_BIN" run --config "$WORK/$v.toml" >"$WORK/$v.$round.log" 2>&1 &
        pid=$!
        PIDS+=("$pid")
        wait_ready "rampart($v)" "$GW_PORT" "$pid" "$WORK/$v.$round.log" /static/1k.json \
            "$(auth_header "$v")"$'\r\n'
        # Warm-up as its own run, so the CPU reading below covers the measured run only.
        "$RAMPART_BIN" bench -t "$THREADS" -c "$CONNECTIONS" -d "$WARMUP" --warmup 0s \
            -H "$(auth_header "$v")" "http://127.0.0.1:$GW_PORT/static/1k.json" >/dev/null 2>&1 ||
            die "warm-up failed for $v"
        cpu0=$(proc_cpu "$pid")
        "$RAMPART_BIN" bench -t "$THREADS" -c "$CONNECTIONS" -d "$DURATION" --warmup 0s \
            -H "$(auth_header "$v")" --json "$WORK/$v.$round.json" \
            "http://127.0.0.1:$GW_PORT/static/1k.json" >"$WORK/$v.$round.out" 2>&1 ||
            { cat "$WORK/$v.$round.out" >&2; die "bench failed for $v"; }
        rps=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["rps"]))' "$WORK/$v.$round.json" 2>/dev/null ||
            grep -Eo '[0-9.]+ req/s' "$WORK/$v.$round.out" | head -1 | awk '{print int($1)}')
        # Gateway CPU per request (user + system), over the warm-up and the measured run.
        cpu=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); n=d["requests"]
print(round((int(sys.argv[3])-int(sys.argv[2]))*1e6/int(sys.argv[4])/n, 1))' \
            "$WORK/$v.$round.json" "$cpu0" "$(proc_cpu "$pid")" "$CLK_TCK" 2>/dev/null || echo "?")
        RESULTS[$v]="${RESULTS[$v]:-} $rps"
        CPUS[$v]="${CPUS[$v]:-} $cpu"
        say "round $round $v: $rps req/s, gateway CPU $cpu us/request"
        stop_pid "$pid"
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
base=$(echo "${RESULTS[off]}" | median)
echo "load: $(uptime | sed 's/.*load average: //')"
printf '%-6s %12s %8s %14s   %s\n' variant "median rps" "vs off" "CPU us/req" "rounds (req/s)"
for v in $VARIANTS; do
    m=$(echo "${RESULTS[$v]}" | median)
    c=$(echo "${CPUS[$v]}" | median)
    printf '%-6s %12s %7.1f%% %14s   %s\n' "$v" "$m" "$(python3 -c "print(100.0*$m/$base)")" "$c" "${RESULTS[$v]}"
done
