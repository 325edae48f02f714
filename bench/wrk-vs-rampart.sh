#!/usr/bin/env bash
# bench/wrk-vs-rampart.sh: the load generator against wrk, side by side, on the same trivial
# server (nginx serving a 1 KiB static file from the origin config in bench/peers/, on
# 127.0.0.1), with the same -c/-t. Runs are interleaved (wrk, rampart, rampart, wrk, ...) so
# that noise from other processes hits both alike; prints the median and best req/s of each,
# and the CPU time each generator used per request.
#
# Environment:
#   BENCH="<cmd>"     the generator (default: target/release/rampart bench)
#   ROUNDS=5          runs per tool and -c value     DURATION=5s    per run
#   CONNS="10 50 200" -c values                      THREADS=2      -t for both tools
#   PORT=18180        nginx port (127.0.0.1)
#   PIN=1             pin nginx to CPU 0 and the generator (-t 1) to CPU 1 with taskset, so
#                     the server is the bottleneck and each generator must simply keep up
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-"$ROOT_DIR/target/release/rampart bench"}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5s}
CONNS=${CONNS:-"10 50 200"}
THREADS=${THREADS:-2}
PORT=${PORT:-18180}
PIN=${PIN:-}
SRV_PREFIX=()
GEN_PREFIX=()
if [[ -n "$PIN" ]]; then
    command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
    SRV_PREFIX=(taskset -c 0)
    GEN_PREFIX=(taskset -c 1)
    THREADS=1
fi
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "wrk-vs-rampart.sh: error: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is not installed (apt-get install -y wrk)"
command -v nginx >/dev/null || die "nginx is not installed (apt-get install -y nginx-light)"
read -r -a BENCH_CMD <<<"$BENCH"
[[ -x "${BENCH_CMD[0]}" ]] || die "load generator ${BENCH_CMD[0]} not found (cargo build --release -p rampart)"

WORK=$(mktemp -d /tmp/rampart-wrk.XXXXXX)
NGINX_PID=""
cleanup() {
    if [[ -n "$NGINX_PID" ]]; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/www" "$WORK/origin-tmp"
head -c 1024 /dev/zero | tr '\0' 'x' >"$WORK/www/1k.json"
sed -e "s|@DIR@|$WORK|g" -e "s|@ROOT@|$WORK/www|g" -e "s|@PORT@|$PORT|g" \
    "$ROOT_DIR/bench/peers/origin.nginx.conf.in" >"$WORK/nginx.conf"
chmod -R a+rwX "$WORK"
${SRV_PREFIX[@]+"${SRV_PREFIX[@]}"} nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
NGINX_PID=$!
URL="http://127.0.0.1:$PORT/1k.json"
for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "nginx did not start (see $WORK/error.log)"

TIMEFORMAT="%U %S"
run_wrk() { # c -> "rps cpu_seconds requests"
    local out cpu
    cpu=$( { time ${GEN_PREFIX[@]+"${GEN_PREFIX[@]}"} wrk -t"$THREADS" -c"$1" -d"$DURATION" "$URL" >"$WORK/wrk.txt"; } 2>&1 )
    out=$(cat "$WORK/wrk.txt")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '{print $1 + $2}' <<<"$cpu") $(awk '/requests in/ {print $1}' <<<"$out")"
}
run_bench() {
    local cpu
    cpu=$( { time ${GEN_PREFIX[@]+"${GEN_PREFIX[@]}"} "${BENCH_CMD[@]}" -t"$THREADS" -c"$1" -d"$DURATION" --json "$WORK/b.json" "$URL" >/dev/null; } 2>&1 )
    local rps req
    rps=$(grep -m1 '"rps"' "$WORK/b.json" | sed -E 's/.*: *([0-9.]+).*/\1/')
    req=$(grep -m1 '"responses"' "$WORK/b.json" | sed -E 's/.*: *([0-9]+).*/\1/')
    echo "$rps $(awk '{print $1 + $2}' <<<"$cpu") $req"
}
stats() { # values... -> "median best"
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.0f %.0f", m, v[NR]}'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: nginx $(nginx -v 2>&1 | cut -d/ -f2), $URL (1 KiB), -t $THREADS, $ROUNDS interleaved rounds of $DURATION${PIN:+, pinned: nginx on cpu 0, generator on cpu 1}"
printf '%-6s %-14s %12s %12s %16s\n' "-c" "tool" "median req/s" "best req/s" "cpu us/request"
for c in $CONNS; do
    w_rps=() b_rps=() w_cpu=0 b_cpu=0 w_req=0 b_req=0
    for r in $(seq 1 "$ROUNDS"); do
        if (( r % 2 )); then
            read -r rps cpu req < <(run_wrk "$c"); w_rps+=("$rps"); w_cpu=$(awk -v a="$w_cpu" -v b="$cpu" 'BEGIN{print a+b}'); w_req=$((w_req + req))
            read -r rps cpu req < <(run_bench "$c"); b_rps+=("$rps"); b_cpu=$(awk -v a="$b_cpu" -v b="$cpu" 'BEGIN{print a+b}'); b_req=$((b_req + req))
        else
            read -r rps cpu req < <(run_bench "$c"); b_rps+=("$rps"); b_cpu=$(awk -v a="$b_cpu" -v b="$cpu" 'BEGIN{print a+b}'); b_req=$((b_req + req))
            read -r rps cpu req < <(run_wrk "$c"); w_rps+=("$rps"); w_cpu=$(awk -v a="$w_cpu" -v b="$cpu" 'BEGIN{print a+b}'); w_req=$((w_req + req))
        fi
    done
    read -r wm wb <<<"$(stats "${w_rps[@]}")"
    read -r bm bb <<<"$(stats "${b_rps[@]}")"
    printf '%-6s %-14s %12s %12s %16.2f\n' "$c" "wrk" "$wm" "$wb" "$(awk -v c="$w_cpu" -v n="$w_req" 'BEGIN{print c * 1e6 / n}')"
    printf '%-6s %-14s %12s %12s %16.2f\n' "$c" "rampart bench" "$bm" "$bb" "$(awk -v c="$b_cpu" -v n="$b_req" 'BEGIN{print c * 1e6 / n}')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
