#!/usr/bin/env bash
# bench/compare.sh: Rampart against nginx and Varnish as caching reverse proxies in front of
# the same origin, with identical loads from `rampart bench`, plus the origin on its own.
#
# Loads: {1 KiB, 64 KiB} x {identity, Accept-Encoding: gzip, br} x {cache hit, pass-through miss}.
# Output: one table with req/s, p50, p99, errors and each row's throughput ratio to Rampart.
#
# Everything listens on 127.0.0.1 only; every process started here is stopped by PID on exit
# (trap). Default total run time is about 3.5 minutes plus the first release build.
#
# Environment:
#   DURATION=5s      measured time per load        WARMUP=1s      warm-up per load (fills caches)
#   CONNECTIONS=50   -c for every load             THREADS=2      -t for every load
#   PEERS="origin rampart nginx varnish"           which targets to load (any subset)
#   BASE_PORT=18080  origin; +1 rampart, +2 rampart admin, +3 nginx, +4 varnish
#   RAMPART_BIN=target/release/rampart             SKIP_BUILD=1   do not run cargo build
#   LOADGEN="<cmd>"  load generator command (default: "$RAMPART_BIN bench")
#   KEEP_DIR=1       keep the temp dir (configs, logs, JSON results) for inspection
#   MODES="hit miss"  which cases to run (MODES=hit: cache hits only)
#
# Besides req/s and latency, the table gives each proxy's CPU time per request (user + system,
# of the process and its children, e.g. nginx workers and Varnish's child), read from /proc over
# the measured window (the warm-up is excluded). On a machine where the load generator, origin
# and proxy share the cores, req/s depends on how much CPU the load generator gets; CPU per
# request is what the proxy itself costs.
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PEERS_DIR="$ROOT_DIR/bench/peers"
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-1s}
CONNECTIONS=${CONNECTIONS:-50}
THREADS=${THREADS:-2}
PEERS=${PEERS:-"origin rampart nginx varnish"}
BASE_PORT=${BASE_PORT:-18080}
ORIGIN_PORT=$BASE_PORT
RAMPART_PORT=$((BASE_PORT + 1))
RAMPART_ADMIN_PORT=$((BASE_PORT + 2))
NGINX_PORT=$((BASE_PORT + 3))
VARNISH_PORT=$((BASE_PORT + 4))
RAMPART_BIN=${RAMPART_BIN:-"$ROOT_DIR/target/release/rampart"}
LOADGEN=${LOADGEN:-"$RAMPART_BIN bench"}

die() { echo "compare.sh: error: $*" >&2; exit 1; }
say() { echo "compare.sh: $*" >&2; }

has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

# Seconds in a duration like 5s / 2m / 500ms (rounded up), for the hard per-load timeout.
secs() {
    local v=$1 n
    case $v in
        *ms) n=${v%ms}; [[ $n =~ ^[0-9]+$ ]] && { echo $(( (n + 999) / 1000 )); return; } ;;
        *s) n=${v%s}; [[ $n =~ ^[0-9]+$ ]] && { echo "$n"; return; } ;;
        *m) n=${v%m}; [[ $n =~ ^[0-9]+$ ]] && { echo $(( n * 60 )); return; } ;;
        *) [[ $v =~ ^[0-9]+$ ]] && { echo "$v"; return; } ;;
    esac
    echo 600 # unusual spelling (1m30s): a generous bound
}

# ---------------------------------------------------------------- processes and cleanup
PIDS=()
WORK=$(mktemp -d /tmp/rampart-compare.XXXXXX)
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${KEEP_DIR:-}" ]]; then
        say "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# First status code of GET path on port, via bash's /dev/tcp (no curl needed).
http_status() {
    local port=$1 path=$2 line
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
    IFS= read -r -t 5 line <&3 || { exec 3<&-; return 1; }
    exec 3<&- 3>&-
    echo "$line" | awk '{print $2}'
}

# Waits up to 15 s for a 200 on path; on failure prints the server's log and exits.
wait_ready() {
    local name=$1 port=$2 pid=$3 log=$4 status=""
    for _ in $(seq 1 75); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$name exited during start-up (log above: $log)"
        fi
        status=$(http_status "$port" /1k.json 2>/dev/null || true)
        [[ "$status" == "200" ]] && { say "$name answers on 127.0.0.1:$port"; return 0; }
        sleep 0.2
    done
    tail -n 20 "$log" >&2 || true
    die "$name does not answer 200 on http://127.0.0.1:$port/1k.json (last status: '${status:-none}')"
}

start() { # name log cmd...
    local name=$1 log=$2
    shift 2
    "$@" >"$log" 2>&1 &
    PIDS+=("$!")
    LAST_PID=$!
    PID_OF[$name]=$LAST_PID
    say "started $name (pid $LAST_PID)"
}
declare -A PID_OF

# CPU ticks (utime + stime) used so far by a process and all its descendants.
cpu_ticks() {
    local pid=$1 total=0 child
    [[ -r /proc/$pid/stat ]] || { echo 0; return; }
    # Fields after the ")" of the command name: state is $1, utime $12, stime $13.
    total=$(sed -E 's/.*\) //' "/proc/$pid/stat" | awk '{ print $12 + $13 }')
    for child in $(pgrep -P "$pid" 2>/dev/null); do
        total=$((total + $(cpu_ticks "$child")))
    done
    echo "$total"
}

fill() { # template output
    sed -e "s|@DIR@|$WORK|g" -e "s|@ROOT@|$WORK/www|g" -e "s|@PORT@|$PORT|g" \
        -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" "$1" >"$2"
}

# ---------------------------------------------------------------- prerequisites
install_missing() {
    local pkgs=()
    command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]] || pkgs+=(nginx-light)
    if has_peer varnish; then
        command -v varnishd >/dev/null 2>&1 || [[ -x /usr/sbin/varnishd ]] || pkgs+=(varnish)
    fi
    [[ ${#pkgs[@]} -eq 0 ]] && return 0
    local sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    say "installing ${pkgs[*]} with apt-get"
    $sudo apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null ||
        die "apt-get install ${pkgs[*]} failed"
}
install_missing
export PATH="$PATH:/usr/sbin:/sbin"

for p in $PEERS; do
    case $p in origin | rampart | nginx | varnish) ;; *) die "unknown peer '$p' in PEERS" ;; esac
done
for port in "$ORIGIN_PORT" "$RAMPART_PORT" "$RAMPART_ADMIN_PORT" "$NGINX_PORT" "$VARNISH_PORT"; do
    port_free "$port" || die "port 127.0.0.1:$port is in use (set BASE_PORT)"
done

if [[ -z "${SKIP_BUILD:-}" ]] && { has_peer rampart || [[ "$LOADGEN" == "$RAMPART_BIN bench" ]]; }; then
    say "building rampart (cargo build --release -p rampart)"
    (cd "$ROOT_DIR" && cargo build --release -p rampart) || die "cargo build --release -p rampart failed"
fi
read -r -a LOADGEN_CMD <<<"$LOADGEN"
[[ -x "${LOADGEN_CMD[0]}" ]] || command -v "${LOADGEN_CMD[0]}" >/dev/null ||
    die "load generator '${LOADGEN_CMD[0]}' not found"
if has_peer rampart; then
    [[ -x "$RAMPART_BIN" ]] || die "rampart binary $RAMPART_BIN not found"
fi

# ---------------------------------------------------------------- origin content
mkdir -p "$WORK/www/nocache" "$WORK/origin-tmp" "$WORK/nginx-tmp" "$WORK/nginx-cache" "$WORK/varnish"
make_json() { # bytes -> a valid JSON document of exactly that size (compressible, like real JSON)
    local size=$1 i=0 doc='{"items":[' item
    while :; do
        item=$(printf '{"id":%d,"name":"item-%d","tags":["alpha","beta"],"price":%d.99},' "$i" "$i" "$((i % 97))")
        [[ $((${#doc} + ${#item} + 12)) -gt $size ]] && break
        doc+=$item
        i=$((i + 1))
    done
    doc+='{"id":-1}]}'
    printf '%s%*s' "$doc" $((size - ${#doc})) '' # trailing spaces: still valid JSON
}
make_json 1024 >"$WORK/www/1k.json"
make_json 65536 >"$WORK/www/64k.json"
cp "$WORK/www/1k.json" "$WORK/www/64k.json" "$WORK/www/nocache/"
# nginx workers may run as an unprivileged user: let them read the files and use the dirs.
chmod -R a+rwX "$WORK"

# ---------------------------------------------------------------- servers
PORT=$ORIGIN_PORT fill "$PEERS_DIR/origin.nginx.conf.in" "$WORK/origin.conf"
start origin "$WORK/origin.log" nginx -p "$WORK" -e "$WORK/origin.error.log" -c "$WORK/origin.conf"
wait_ready origin "$ORIGIN_PORT" "$LAST_PID" "$WORK/origin.error.log"

declare -A PORT_OF=([origin]=$ORIGIN_PORT [rampart]=$RAMPART_PORT [nginx]=$NGINX_PORT [varnish]=$VARNISH_PORT)

if has_peer rampart; then
    start rampart "$WORK/rampart.log" "$RAMPART_BIN" run --upstream "http://127.0.0.1:$ORIGIN_PORT" \
        --listen "127.0.0.1:$RAMPART_PORT" --admin "127.0.0.1:$RAMPART_ADMIN_PORT"
    wait_ready rampart "$RAMPART_PORT" "$LAST_PID" "$WORK/rampart.log"
fi
if has_peer nginx; then
    PORT=$NGINX_PORT fill "$PEERS_DIR/nginx-cache.conf.in" "$WORK/nginx-cache.conf"
    start nginx "$WORK/nginx.log" nginx -p "$WORK" -e "$WORK/nginx-cache.error.log" -c "$WORK/nginx-cache.conf"
    wait_ready nginx "$NGINX_PORT" "$LAST_PID" "$WORK/nginx-cache.error.log"
fi
if has_peer varnish; then
    PORT=$VARNISH_PORT fill "$PEERS_DIR/varnish.vcl.in" "$WORK/varnish.vcl"
    start varnish "$WORK/varnish.log" varnishd -F -j none -n "$WORK/varnish" -a "127.0.0.1:$VARNISH_PORT" \
        -T none -f "$WORK/varnish.vcl" -s malloc,256m
    wait_ready varnish "$VARNISH_PORT" "$LAST_PID" "$WORK/varnish.log"
fi

# ---------------------------------------------------------------- loads
limit=$(($(secs "$DURATION") + $(secs "$WARMUP") + 30))
cases=()
for obj in 1k 64k; do
    for enc in identity gzip; do
        for mode in ${MODES:-hit miss}; do
            cases+=("$obj $enc $mode")
        done
    done
done
runs=$((${#cases[@]} * $(wc -w <<<"$PEERS")))
say "running $runs loads of $DURATION (+$WARMUP warm-up), -c $CONNECTIONS -t $THREADS"

json_num() { # file key -> first numeric value of "key"
    grep -m1 "\"$1\": *[0-9]" "$2" | sed -E 's/.*: *([0-9.eE+-]+).*/\1/'
}
json_errors() { # requests that failed or did not get a 200
    awk '
        /"errors": *\{/ { in_err = 1; next }
        in_err && /\}/ { in_err = 0 }
        in_err && /"(connect|timeout|reset|other)": *[0-9]/ { gsub(/[^0-9]/, "", $2); e += $2 }
        /"status_codes": *\{/ { in_st = 1; next }
        in_st && /\}/ { in_st = 0 }
        in_st && /"[0-9]+": *[0-9]/ { code = $1; gsub(/[^0-9]/, "", code); n = $2; gsub(/[^0-9]/, "", n); if (code != "200") e += n }
        END { print e + 0 }' "$1"
}

TICK_US=$((1000000 / $(getconf CLK_TCK)))
declare -A RPS P50 P99 ERRS CPU
for c in "${cases[@]}"; do
    read -r obj enc mode <<<"$c"
    path="/$obj.json"
    [[ $mode == miss ]] && path="/nocache/$obj.json"
    hdr=()
    [[ $enc == gzip ]] && hdr=(-H "Accept-Encoding: gzip, br")
    for peer in $PEERS; do
        out="$WORK/result-$obj-$enc-$mode-$peer.json"
        url="http://127.0.0.1:${PORT_OF[$peer]}$path"
        timeout "$limit" "${LOADGEN_CMD[@]}" -c "$CONNECTIONS" -t "$THREADS" -d "$DURATION" \
            --warmup "$WARMUP" "${hdr[@]}" --json "$out" "$url" >"$out.txt" 2>&1 &
        lg=$!
        sleep "$(secs "$WARMUP")"
        t0=$(cpu_ticks "${PID_OF[$peer]}")
        if ! wait "$lg"; then
            cat "$out.txt" >&2
            die "load against $peer ($url) failed"
        fi
        t1=$(cpu_ticks "${PID_OF[$peer]}")
        key="$c|$peer"
        RPS[$key]=$(json_num rps "$out")
        P50[$key]=$(json_num p50_us "$out")
        P99[$key]=$(json_num p99_us "$out")
        ERRS[$key]=$(json_errors "$out")
        CPU[$key]=$(awk -v t=$((t1 - t0)) -v us="$TICK_US" -v r="${RPS[$key]}" -v d="$(secs "$DURATION")" \
            'BEGIN { if (r > 0) printf "%.1f", t * us / (r * d); else print "n/a" }')
        say "$(printf '%-22s %-8s %10.0f req/s %6s us CPU/req' "$obj $enc $mode" "$peer" "${RPS[$key]}" "${CPU[$key]}")"
    done
done

# ---------------------------------------------------------------- table
echo
echo "rampart bench -c $CONNECTIONS -t $THREADS -d $DURATION --warmup $WARMUP  ($(nproc) cores, $(uname -m))"
printf '%-22s %-8s %12s %10s %10s %8s %10s %12s\n' "case" "target" "req/s" "p50 ms" "p99 ms" "errors" "vs rampart" "CPU us/req"
for c in "${cases[@]}"; do
    for peer in $PEERS; do
        key="$c|$peer"
        ratio="n/a"
        if has_peer rampart; then
            ratio=$(awk -v a="${RPS[$key]}" -v b="${RPS[$c|rampart]}" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }')
        fi
        printf '%-22s %-8s %12.0f %10.3f %10.3f %8s %10s %12s\n' "$c" "$peer" "${RPS[$key]}" \
            "$(awk -v v="${P50[$key]}" 'BEGIN { print v / 1000 }')" \
            "$(awk -v v="${P99[$key]}" 'BEGIN { print v / 1000 }')" "${ERRS[$key]}" "$ratio" "${CPU[$key]}"
    done
done
