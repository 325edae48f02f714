#!/usr/bin/env bash
# bench/cg-wrk-vs-bench.sh: the CPU cost per request of `rampart bench` against wrk, measured
# in a way that does not depend on machine load:
#
#   * user-space instructions per request, counted by valgrind's callgrind (the same binary and
#     inputs give nearly the same count whatever else runs on the machine);
#   * system calls per request, counted by `strace -c -f`.
#
# Both generators load the same trivial server (nginx serving a 1 KiB file, the origin config
# of bench/peers/, or `rampart demo --backend-only` with SERVER=demo) with the same -c/-t.
# Startup is taken out by difference: each generator runs twice under callgrind, a short and a
# long run, and the figure is (Ir_long - Ir_short) / (requests_long - requests_short), the
# marginal cost of one more request. (wrk has no request-count option and its Lua `response()`
# hook would add cost to every request, so wrk runs for SHORT_D and LONG_D; rampart bench runs
# -n SHORT_N and -n LONG_N.) Under callgrind the generator is ~50x slower than the server, so
# the server is never the bottleneck.
#
# Environment:
#   BENCH="<cmd>"   the generator (default: target/release/rampart bench)
#   CONNS=10 THREADS=1          -c / -t for both tools
#   SHORT_N=200 LONG_N=20000    rampart bench -n for the two callgrind runs
#   SHORT_D=1s LONG_D=8s        wrk -d for the two callgrind runs
#   STRACE_N=50000 STRACE_D=5s  the strace runs (rampart bench -n, wrk -d)
#   SERVER=nginx|demo  PORT=18190   RAMPART=target/release/rampart (for SERVER=demo)
#   KEEP=1           keep the callgrind files (callgrind_annotate them for the profiles)
set -euo pipefail

ROOT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=${BENCH:-"$ROOT_DIR/target/release/rampart bench"}
RAMPART=${RAMPART:-"$ROOT_DIR/target/release/rampart"}
CONNS=${CONNS:-10}
THREADS=${THREADS:-1}
SHORT_N=${SHORT_N:-200}
LONG_N=${LONG_N:-20000}
SHORT_D=${SHORT_D:-1s}
LONG_D=${LONG_D:-8s}
STRACE_N=${STRACE_N:-50000}
STRACE_D=${STRACE_D:-5s}
SERVER=${SERVER:-nginx}
PORT=${PORT:-18190}
KEEP=${KEEP:-0}
export PATH="$PATH:/usr/sbin:/sbin"

die() { echo "cg-wrk-vs-bench.sh: error: $*" >&2; exit 1; }
for t in valgrind strace wrk; do
    command -v "$t" >/dev/null || die "$t is not installed (apt-get install -y $t)"
done
read -r -a BENCH_CMD <<<"$BENCH"
[[ -x "${BENCH_CMD[0]}" ]] || die "load generator ${BENCH_CMD[0]} not found (cargo build --release -p rampart)"

WORK=$(mktemp -d /tmp/rampart-cg.XXXXXX)
SRV_PID=""
cleanup() {
    if [[ -n "$SRV_PID" ]]; then
        kill -TERM "$SRV_PID" 2>/dev/null || true
        wait "$SRV_PID" 2>/dev/null || true
    fi
    if [[ $KEEP == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ $SERVER == demo ]]; then
    [[ -x "$RAMPART" ]] || die "$RAMPART not found"
    "$RAMPART" demo --backend-only --backend "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
    SRV_PID=$!
    URL="http://127.0.0.1:$PORT/static/1k.json"
else
    command -v nginx >/dev/null || die "nginx is not installed (apt-get install -y nginx-light)"
    mkdir -p "$WORK/www" "$WORK/origin-tmp"
    head -c 1024 /dev/zero | tr '\0' 'x' >"$WORK/www/1k.json"
    sed -e "s|@DIR@|$WORK|g" -e "s|@ROOT@|$WORK/www|g" -e "s|@PORT@|$PORT|g" \
        "$ROOT_DIR/bench/peers/origin.nginx.conf.in" >"$WORK/nginx.conf"
    chmod -R a+rwX "$WORK"
    nginx -p "$WORK" -e "$WORK/error.log" -c "$WORK/nginx.conf" >"$WORK/server.log" 2>&1 &
    SRV_PID=$!
    URL="http://127.0.0.1:$PORT/1k.json"
fi
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || die "the server did not start (see $WORK)"

wrk_requests() { awk '/requests in/ {print $1}' "$1"; }
bench_requests() { grep -m1 '"responses"' "$1" | sed -E 's/.*: *([0-9]+).*/\1/'; }

# callgrind NAME CMD... -> total instructions (all threads)
callgrind() {
    local name=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$name" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err" || die "$name failed (see $WORK/$name.err)"
    awk '/^summary:|^totals:/ {print $2; exit}' "$WORK/cg.$name"
}
# strace_calls NAME CMD... -> system calls (all threads), per-syscall table in $WORK/st.NAME
strace_calls() {
    local name=$1
    shift
    strace -f -c -o "$WORK/st.$name" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" ||
        die "$name failed (see $WORK/$name.err)"
    awk '$NF == "total" {print $4}' "$WORK/st.$name"
}
# top_calls NAME REQUESTS -> "name x.xx, ..." system calls per request (>= 0.01)
top_calls() {
    awk -v n="$2" '$1 ~ /^[0-9.]+$/ && $NF != "total" {
        c = $4 / n
        if (c >= 0.01) { printf "%s%s %.2f", sep, $NF, c; sep = ", " }
    }' "$WORK/st.$1"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "server: $SERVER, $URL (1 KiB); both generators -c $CONNS -t $THREADS"

ir_ws=$(callgrind wrk-short wrk -t"$THREADS" -c"$CONNS" -d"$SHORT_D" "$URL")
n_ws=$(wrk_requests "$WORK/wrk-short.out")
ir_wl=$(callgrind wrk-long wrk -t"$THREADS" -c"$CONNS" -d"$LONG_D" "$URL")
n_wl=$(wrk_requests "$WORK/wrk-long.out")
ir_bs=$(callgrind bench-short "${BENCH_CMD[@]}" -t"$THREADS" -c"$CONNS" -n"$SHORT_N" --json "$WORK/bs.json" "$URL")
n_bs=$(bench_requests "$WORK/bs.json")
ir_bl=$(callgrind bench-long "${BENCH_CMD[@]}" -t"$THREADS" -c"$CONNS" -n"$LONG_N" --json "$WORK/bl.json" "$URL")
n_bl=$(bench_requests "$WORK/bl.json")

sc_w=$(strace_calls wrk-strace wrk -t"$THREADS" -c"$CONNS" -d"$STRACE_D" "$URL")
n_sw=$(wrk_requests "$WORK/wrk-strace.out")
sc_b=$(strace_calls bench-strace "${BENCH_CMD[@]}" -t"$THREADS" -c"$CONNS" -n"$STRACE_N" --json "$WORK/bst.json" "$URL")
n_sb=$(bench_requests "$WORK/bst.json")

per() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { printf "%.0f", (b - a) / (d - c) }'; }
ir_w=$(per "$ir_ws" "$ir_wl" "$n_ws" "$n_wl")
ir_b=$(per "$ir_bs" "$ir_bl" "$n_bs" "$n_bl")
printf '%-14s %22s %20s %18s  %s\n' "tool" "instructions/request" "(runs: requests)" "syscalls/request" "syscalls per request by name"
printf '%-14s %22s %20s %18.2f  %s\n' "wrk" "$ir_w" "($n_ws, $n_wl)" "$(awk -v a="$sc_w" -v n="$n_sw" 'BEGIN{print a/n}')" "$(top_calls wrk-strace "$n_sw")"
printf '%-14s %22s %20s %18.2f  %s\n' "rampart bench" "$ir_b" "($n_bs, $n_bl)" "$(awk -v a="$sc_b" -v n="$n_sb" 'BEGIN{print a/n}')" "$(top_calls bench-strace "$n_sb")"
echo "ratio rampart bench / wrk: instructions $(awk -v a="$ir_b" -v b="$ir_w" 'BEGIN{printf "%.2f", a/b}'), syscalls $(awk -v a="$sc_b" -v n="$n_sb" -v c="$sc_w" -v m="$n_sw" 'BEGIN{printf "%.2f", (a/n)/(c/m)}')"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
