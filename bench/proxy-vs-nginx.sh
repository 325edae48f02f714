#!/usr/bin/env bash
# bench/proxy-vs-nginx.sh: Rampart's pass-through proxy against nginx proxy_pass (keep-alive to
# the upstream), and against the origin directly, with the same load tool (wrk) and settings.
# One command; everything on 127.0.0.1; every process started here is stopped by PID on exit.
#
# Targets (all served by one origin: `rampart demo --backend-only`, GET /static/1k.json, 1024 B):
#   origin       the origin directly
#   rampart      rampart run --upstream <origin>, RAMPART_LOG__ACCESS_LOG=off and
#                RAMPART_CACHE__ENABLED=false (pass-through: the cache layer is not in the stack)
#   rampart-log  the same with the access log written to a file
#   rampart-cache  (not in the default TARGETS) cache on, i.e. cache hits, for comparison only
#   nginx        nginx proxy_pass, bench/peers/nginx-proxy-pass.conf, worker_processes 2
#   nginx-auto   the same with worker_processes auto
#   nginx-hdrs   (not in the default TARGETS) nginx, worker_processes 2, also sending upstream the
#                request headers Rampart adds (X-Request-Id, X-Forwarded-*, Forwarded, Via)
# Runs are interleaved (each round runs every target once, in a rotated order) so that noise
# from other processes on the machine hits all targets alike; the summary gives per target the
# median req/s, p50 and p99 over the rounds, the ratio to nginx, and the server CPU time per
# request (proxy process, and the origin's share), which is less sensitive to machine load.
#
# Environment:
#   RAMPART=target/release/rampart   the binary (cargo build --release -p rampart)
#   ROUNDS=3  DURATION=15s  THREADS=2  CONNS="64 16"  WARMUP=2s
#   TARGETS="origin rampart rampart-log nginx nginx-auto"
#   BASE_PORT=18080  ports: rampart BASE, origin BASE+1, rampart-log BASE+2, nginx BASE+3,
#                    nginx-auto BASE+4, rampart-cache BASE+5, nginx-hdrs BASE+6; admin ports ADMIN_PORT=19901, +1, +2
#   CACHE_ENABLED=false  value of RAMPART_CACHE__ENABLED for rampart and rampart-log; set it
#                    empty for binaries older than commit 015d457, which have no [cache] section
#   KEEP=1           keep the work directory (wrk outputs, logs) instead of deleting it
# Worst-case duration: (warm-ups + ROUNDS x targets x CONNS) x DURATION, ~8.5 min by default.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RAMPART=${RAMPART:-"$ROOT_DIR/target/release/rampart"}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-2s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-"64 16"}
TARGETS=${TARGETS:-"origin rampart rampart-log nginx nginx-auto"}
BASE_PORT=${BASE_PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-19901}
KEEP=${KEEP:-0}
CACHE_ENABLED=${CACHE_ENABLED-false}
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "proxy-vs-nginx.sh: error: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk is not installed (apt-get install -y wrk)"
command -v nginx >/dev/null || die "nginx is not installed (apt-get install -y nginx-light)"
command -v curl >/dev/null || die "curl is not installed"
[[ -x "$RAMPART" ]] || die "$RAMPART not found (cargo build --release -p rampart, or set RAMPART=)"

declare -A PORT=(
    [rampart]=$BASE_PORT [origin]=$((BASE_PORT + 1)) [rampart-log]=$((BASE_PORT + 2))
    [nginx]=$((BASE_PORT + 3)) [nginx-auto]=$((BASE_PORT + 4)) [rampart-cache]=$((BASE_PORT + 5))
    [nginx-hdrs]=$((BASE_PORT + 6))
)
for t in $TARGETS; do [[ -n "${PORT[$t]:-}" ]] || die "unknown target $t"; done
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "${PORT[@]}" "$ADMIN_PORT" $((ADMIN_PORT + 1)) $((ADMIN_PORT + 2)); do
    port_busy "$p" && die "127.0.0.1:$p is already in use (set BASE_PORT= / ADMIN_PORT=)"
done

WORK=$(mktemp -d /tmp/rampart-proxy-bench.XXXXXX)
declare -A PID=()
cleanup() {
    local p
    for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PID[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ "$KEEP" == 1 ]]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # port name
    for _ in $(seq 1 100); do port_busy "$1" && return 0; sleep 0.1; done
    die "$2 did not start on 127.0.0.1:$1 (see $WORK/*.log)"
}
ORIGIN="127.0.0.1:${PORT[origin]}"

# --- start the servers -------------------------------------------------------------------------
"$RAMPART" demo --backend-only --backend "$ORIGIN" >"$WORK/origin.log" 2>&1 &
PID[origin]=$!
wait_port "${PORT[origin]}" origin

start_rampart() { # name port admin access_log cache_enabled
    local vars=(RAMPART_LOG__ACCESS_LOG="$4")
    [[ -n "$5" ]] && vars+=(RAMPART_CACHE__ENABLED="$5")
    env "${vars[@]}" "$RAMPART" run --upstream "http://$ORIGIN" \
        --listen "127.0.0.1:$2" --admin "127.0.0.1:$3" >"$WORK/$1.log" 2>&1 &
    PID[$1]=$!
    wait_port "$2" "$1"
}
FWD_HEADERS='proxy_set_header Host $http_host; proxy_set_header X-Request-Id $request_id;'
FWD_HEADERS+=' proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;'
FWD_HEADERS+=' proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $http_host;'
FWD_HEADERS+=' proxy_set_header Forwarded "for=$remote_addr;host=\\"$http_host\\";proto=$scheme";'
FWD_HEADERS+=' proxy_set_header Via "1.1 nginx";'
start_nginx() { # name port workers [forward-headers]
    mkdir -p "$WORK/nginx-tmp"
    local fwd=${4:-}
    fwd=${fwd//&/\\&}
    sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$2|g" -e "s|@UPSTREAM@|$ORIGIN|g" \
        -e "s|@WORKERS@|$3|g" -e "s|@FORWARD_HEADERS@|$fwd|" \
        "$ROOT_DIR/bench/peers/nginx-proxy-pass.conf" >"$WORK/$1.conf"
    nginx -p "$WORK" -e "$WORK/$1.error.log" -c "$WORK/$1.conf" >"$WORK/$1.log" 2>&1 &
    PID[$1]=$!
    wait_port "$2" "$1"
}
for t in $TARGETS; do
    case $t in
        rampart) start_rampart rampart "${PORT[rampart]}" "$ADMIN_PORT" off "$CACHE_ENABLED" ;;
        rampart-log) start_rampart rampart-log "${PORT[rampart-log]}" $((ADMIN_PORT + 1)) "$WORK/access.log" "$CACHE_ENABLED" ;;
        rampart-cache) start_rampart rampart-cache "${PORT[rampart-cache]}" $((ADMIN_PORT + 2)) off true ;;
        nginx) start_nginx nginx "${PORT[nginx]}" 2 ;;
        nginx-auto) start_nginx nginx-auto "${PORT[nginx-auto]}" auto ;;
        nginx-hdrs) start_nginx nginx-hdrs "${PORT[nginx-hdrs]}" 2 "$FWD_HEADERS" ;;
    esac
done

url() { echo "http://127.0.0.1:${PORT[$1]}/static/1k.json"; }
for t in $TARGETS; do # every target must answer 200 with the 1024-byte body
    read -r code size < <(curl -s -o /dev/null -w '%{http_code} %{size_download}\n' "$(url "$t")")
    [[ "$code" == 200 && "$size" == 1024 ]] || die "$t answered $code with $size bytes"
    # pass-through targets must not answer from a cache (Cache-Status: ...; hit)
    if [[ "$t" != rampart-cache ]] && curl -s -D - -o /dev/null "$(url "$t")" | grep -qi '^cache-status:.*hit'; then
        die "$t answered from a cache; it is meant to be pass-through"
    fi
done

# --- measurement helpers -----------------------------------------------------------------------
pids_of() { # target -> the PIDs whose CPU time counts for it (nginx: master + workers)
    local p=${PID[$1]}
    echo "$p"
    [[ "$1" == nginx* ]] && ps -o pid= --ppid "$p" | tr -d ' '
    return 0
}
cpu_ticks() { # pids... -> utime+stime in clock ticks, summed
    local p sum=0 s
    for p in "$@"; do
        s=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || s=0
        sum=$((sum + ${s:-0}))
    done
    echo "$sum"
}
to_ms() { # wrk latency (e.g. 812.00us, 1.20ms, 1.01s) -> ms
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}
HZ=$(getconf CLK_TCK)
RESULTS="$WORK/results.txt" # c target round load1 rps p50 p99 proxy_us origin_us errors
: >"$RESULTS"
run_one() { # target c round
    local t=$1 c=$2 r=$3 load out px0 px1 or0 or1 rps req p50 p99 err proxy_us origin_us
    load=$(cut -d' ' -f1 /proc/loadavg)
    mapfile -t ppids < <(pids_of "$t")
    px0=$(cpu_ticks "${ppids[@]}"); or0=$(cpu_ticks "${PID[origin]}")
    out="$WORK/wrk-$t-c$c-r$r.txt"
    wrk -t"$THREADS" -c"$c" -d"$DURATION" --latency "$(url "$t")" >"$out"
    px1=$(cpu_ticks "${ppids[@]}"); or1=$(cpu_ticks "${PID[origin]}")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$out")
    req=$(awk '/requests in/ {print $1}' "$out")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
    err=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' "$out")
    if [[ "$t" == origin ]]; then proxy_us=-; else
        proxy_us=$(awk -v d=$((px1 - px0)) -v n="$req" -v hz="$HZ" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    fi
    origin_us=$(awk -v d=$((or1 - or0)) -v n="$req" -v hz="$HZ" 'BEGIN {printf "%.1f", d / hz * 1e6 / n}')
    echo "$c $t $r $load $rps $p50 $p99 $proxy_us $origin_us ${err:+ERR}" >>"$RESULTS"
    printf '%-4s %-13s %-3s %6s %10s %9s %9s %9s %9s %s\n' "$c" "$t" "$r" "$load" "$rps" \
        "$p50" "$p99" "$proxy_us" "$origin_us" "$err"
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m }'; }

# --- run ---------------------------------------------------------------------------------------
read -r -a TLIST <<<"$TARGETS"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(uname -r)"
echo "nginx $(nginx -v 2>&1 | cut -d/ -f2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2), $("$RAMPART" --version)"
echo "uptime before: $(uptime)"
echo "wrk -t$THREADS -c{$CONNS} -d$DURATION --latency <target>/static/1k.json, $ROUNDS interleaved rounds"
for t in "${TLIST[@]}"; do wrk -t"$THREADS" -c64 -d"$WARMUP" "$(url "$t")" >/dev/null; done
printf '%-4s %-13s %-3s %6s %10s %9s %9s %9s %9s\n' "-c" target rnd load1 "req/s" "p50 ms" "p99 ms" \
    "proxy us" "orig us"
for c in $CONNS; do
    for r in $(seq 1 "$ROUNDS"); do
        n=${#TLIST[@]}
        for i in $(seq 0 $((n - 1))); do run_one "${TLIST[$(((i + r - 1) % n))]}" "$c" "$r"; done
    done
done
echo "uptime after: $(uptime)"

# --- summary -----------------------------------------------------------------------------------
echo
echo "Summary (median over $ROUNDS rounds; ratio = target / nginx; CPU = server CPU time per request)"
printf '| %-3s | %-13s | %8s | %7s | %7s | %11s | %11s | %12s | %11s | %-11s |\n' -c target "req/s" \
    "p50 ms" "p99 ms" "req/s ratio" "p99 ratio" "proxy CPU us" "orig CPU us" "load1 range"
printf '|%s|\n' "-----|---------------|----------|---------|---------|-------------|-------------|--------------|-------------|-------------"
for c in $CONNS; do
    declare -A M_RPS=() M_P99=()
    for t in "${TLIST[@]}"; do
        M_RPS[$t]=$(median $(awk -v c="$c" -v t="$t" '$1 == c && $2 == t {print $5}' "$RESULTS"))
        M_P99[$t]=$(median $(awk -v c="$c" -v t="$t" '$1 == c && $2 == t {print $7}' "$RESULTS"))
    done
    for t in "${TLIST[@]}"; do
        col() { awk -v c="$c" -v t="$t" -v k="$1" '$1 == c && $2 == t {print $k}' "$RESULTS"; }
        p50=$(median $(col 6))
        pcpu=$(median $(col 8 | grep -v -- -)); ocpu=$(median $(col 9))
        loads=$(col 4 | sort -g | awk 'NR == 1 {a = $1} {b = $1} END {print a "-" b}')
        if [[ -n "${M_RPS[nginx]:-}" ]]; then
            rr=$(awk -v a="${M_RPS[$t]}" -v b="${M_RPS[nginx]}" 'BEGIN {printf "%.2f", a / b}')
            pr=$(awk -v a="${M_P99[$t]}" -v b="${M_P99[nginx]}" 'BEGIN {printf "%.2f", a / b}')
        else rr=-; pr=-; fi
        [[ "$t" == origin ]] && pcpu=-
        printf '| %-3s | %-13s | %8.0f | %7.2f | %7.2f | %11s | %11s | %12s | %11s | %-11s |\n' "$c" "$t" \
            "${M_RPS[$t]}" "$p50" "${M_P99[$t]}" "$rr" "$pr" "${pcpu:--}" "$ocpu" "$loads"
    done
    unset M_RPS M_P99
done
grep -q ERR "$RESULTS" && echo "WARNING: some runs had non-2xx responses or socket errors (see above)"
if [[ -f "$WORK/access.log" ]]; then
    echo "rampart-log access log: $(wc -l <"$WORK/access.log") lines, $(du -h "$WORK/access.log" | cut -f1)," \
        "e.g. $(head -c 300 "$WORK/access.log" | head -1)"
fi
for t in "${TLIST[@]}"; do # anything unexpected in the servers' own logs
    f="$WORK/$t.log"; grep -qiE "warn|error|panic" "$f" && { echo "$t log (warnings):"; grep -iE "warn|error|panic" "$f" | tail -3; }
done
exit 0
