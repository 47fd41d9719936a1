#!/usr/bin/env bash
# Failover: how long writes stop after a fault, on a 7-slot local Agenda cluster
# (agenda-local) and, the same way on the same machine, a 7-member etcd cluster (Debian's
# etcd-server 3.4: default 100 ms heartbeat and 1 s election timeout, check-quorum always
# on, and --pre-vote=true as etcd 3.5 and later have by default).
#
# A steady write load (agenda-bench, CONCURRENCY closed-loop writers spread over every
# slot) records the wall-clock time of every acknowledged write; meanwhile this script
# injects, one after the other, with the cluster healthy and settled before each:
#   leader-kill      SIGKILL of the leader's store (agenda-local restarts it; etcd is
#                    restarted by this script at once)          x KILLS
#   leader-stop      SIGTERM of the leader's store: a planned restart (an Agenda store
#                    hands leadership over before it stops, etcd transfers leadership
#                    when it stops), restarted as after a kill  x STOPS
#   leader-freeze    SIGSTOP of the leader's store for FREEZE_S seconds, then SIGCONT
#                                                               x FREEZES
#   follower-kill    SIGKILL of a follower's store              x FOLLOWER_FAULTS
#   follower-freeze  SIGSTOP of a follower for FREEZE_S seconds x FOLLOWER_FAULTS
# and writes `<unix ms> <kind> <target>` lines. `agenda-bench failover` then gives each
# fault's write-unavailability window (the longest stretch without an acknowledgement
# until the next fault; see bench/src/failover.rs) and the script writes the table into
# docs/benchmarks.md between the FAILOVER markers.
#
#   scripts/failover.sh                          # both systems, ~12 minutes
#   SYSTEMS=agenda KILLS=3 FREEZES=3 FOLLOWER_FAULTS=1 NO_DOC=1 scripts/failover.sh
#
# Every wait is bounded; the clusters and the load are stopped on exit whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SYSTEMS=${SYSTEMS:-agenda,etcd}
KILLS=${KILLS:-10}
STOPS=${STOPS:-10}
FREEZES=${FREEZES:-10}
FOLLOWER_FAULTS=${FOLLOWER_FAULTS:-3}
FREEZE_S=${FREEZE_S:-5}
SETTLE_S=${SETTLE_S:-3}
CONCURRENCY=${CONCURRENCY:-8}
OUT=${OUT:-$ROOT/target/failover}
API_BASE=${API_BASE:-18380}   # APIs on API_BASE+1..7, stores +100, agents +200
ETCD_CLIENT_BASE=12380        # etcd clients on +1..7, peers on +101..107
DOC=$ROOT/docs/benchmarks.md

log() { printf '== %s\n' "$*" >&2; }
now_ms() { date +%s%3N; }

if [[ ",$SYSTEMS," == *,etcd,* ]] && ! command -v etcd >/dev/null; then
    log "installing etcd-server"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }

log "building agenda-local and agenda-bench (release)"
cargo build --release --locked -p agenda-local
cargo build --release --locked -p agenda-bench
BIN=$ROOT/target/release

rm -rf "$OUT"
mkdir -p "$OUT"
PIDS=()          # everything to stop on exit
declare -A EPID  # etcd member -> pid
LOAD=""
cleanup() {
    for pid in "${PIDS[@]}" "${EPID[@]}"; do kill -CONT "$pid" 2>/dev/null || true; done
    [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null || true
    for pid in "${PIDS[@]}" "${EPID[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}" "${EPID[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=(); EPID=(); LOAD=""
}
trap cleanup EXIT

# `wait_for WHAT SECONDS CMD...`: run CMD every 0.2 s until it succeeds; fail after SECONDS.
wait_for() {
    local what=$1 deadline=$((SECONDS + $2)); shift 2
    until "$@"; do
        [ $SECONDS -lt $deadline ] || { echo "timed out waiting for $what" >&2; return 1; }
        sleep 0.2
    done
}

# `run_faults SYSTEM`: the fault sequence, with the system's helpers
# (SYSTEM_leader, SYSTEM_follower, SYSTEM_healthy, SYSTEM_pid, SYSTEM_after_kill).
run_faults() {
    local sys=$1 dir=$OUT/$1 target pid
    settle() { wait_for "a healthy $sys cluster" 90 "${sys}_healthy"; sleep "$SETTLE_S"; }
    one() {  # one KIND SELECT
        local kind=$1 select=$2
        settle
        target=$("${sys}_$select") || { echo "no $select found" >&2; return 1; }
        pid=$("${sys}_pid" "$target")
        log "$sys: $kind of member $target (pid $pid)"
        case $kind in
            *-kill)
                echo "$(now_ms) $kind $target" >> "$dir/faults.txt"
                kill -KILL "$pid"
                "${sys}_after_kill" "$target" ;;
            *-stop)
                echo "$(now_ms) $kind $target" >> "$dir/faults.txt"
                kill -TERM "$pid"
                if [ "$sys" = etcd ]; then
                    wait "$pid" 2>/dev/null || true   # our child: reaped here
                else
                    wait_for "member $target to stop" 30 bash -c "! kill -0 $pid 2>/dev/null"
                fi
                "${sys}_after_kill" "$target" ;;
            *-freeze)
                echo "$(now_ms) $kind $target" >> "$dir/faults.txt"
                kill -STOP "$pid"
                sleep "$FREEZE_S"
                kill -CONT "$pid" ;;
        esac
    }
    for _ in $(seq "$KILLS"); do one leader-kill leader; done
    for _ in $(seq "$STOPS"); do one leader-stop leader; done
    for _ in $(seq "$FREEZES"); do one leader-freeze leader; done
    for _ in $(seq "$FOLLOWER_FAULTS"); do one follower-kill follower; done
    for _ in $(seq "$FOLLOWER_FAULTS"); do one follower-freeze follower; done
    settle
}

# `measure SYSTEM READY-PATTERN LOAD-COMMAND...`: start the load, wait for READY-PATTERN
# in its output (if any), let it run 10 s, inject the faults, stop the load.
measure() {
    local sys=$1 dir=$OUT/$1 ready=$2; shift 2
    : > "$dir/faults.txt"
    "$@" --concurrency "$CONCURRENCY" --duration 3600 --timeout 5 --out "$dir" \
        --acks "$dir/acks.txt" --stop-file "$dir/stop" > "$dir/load.log" 2>&1 &
    LOAD=$!
    [ -z "$ready" ] || wait_for "the $sys load to start" 120 grep -q "$ready" "$dir/load.log"
    sleep 10
    run_faults "$sys"
    touch "$dir/stop"
    wait "$LOAD"
    LOAD=""
    cat "$dir/load.log" >&2
}

# --- Agenda ----------------------------------------------------------------------------
TOKEN=""
agenda_status() {
    local k
    for k in $(seq 7); do
        curl -sf --max-time 2 -H "Authorization: Bearer $TOKEN" \
            "http://127.0.0.1:$((API_BASE + k))/api/cluster/status" && return 0
    done
    return 1
}
agenda_healthy() {
    agenda_status | jq -e '([.stores[] | select(.reachable and (.role == "leader" or .role == "follower"))] | length) == 7
        and ([.stores[] | select(.role == "leader")] | length) == 1' >/dev/null
}
agenda_leader() {
    agenda_status | jq -re '[.stores[] | select(.role == "leader")] | max_by(.term) | .slot | ltrimstr("agenda-")'
}
agenda_follower() {
    agenda_status | jq -re '[.stores[] | select(.role == "follower")] | .[0].slot | ltrimstr("agenda-")'
}
agenda_pid() {  # the pid listening on slot $1's store port
    ss -Hltnp "sport = :$((API_BASE + 100 + $1))" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2
}
agenda_after_kill() { :; }  # agenda-local restarts the store

run_agenda() {
    mkdir -p "$OUT/agenda"
    log "starting a 7-slot Agenda cluster (agenda-local, data in $OUT/agenda/data)"
    LOGIN_PER_IP_PER_MINUTE=100000 RUST_LOG=warn \
        "$BIN/agenda-local" --slots 7 --data-dir "$OUT/agenda/data" --api-base-port "$API_BASE" \
        > "$OUT/agenda/agenda-local.out" 2>&1 &
    PIDS+=("$!")
    wait_for "the Agenda cluster" 120 grep -q "ready" "$OUT/agenda/agenda-local.out"
    TOKEN=$(curl -sf -X POST "http://127.0.0.1:$((API_BASE + 1))/register" -H 'content-type: application/json' \
        -d '{"username":"failover-probe","email":"probe@example.org","password":"a long probe password","display_name":"Probe"}' \
        | jq -r .token)
    wait_for "a healthy Agenda cluster" 90 agenda_healthy
    local api
    api=$(seq -s, -f "http://127.0.0.1:%g" $((API_BASE + 1)) $((API_BASE + 7)))
    measure agenda "users ready" "$BIN/agenda-bench" agenda --api "$api" --scenarios create
    cleanup
}

# --- etcd ------------------------------------------------------------------------------
ETCD_CLUSTER=""
for k in $(seq 7); do ETCD_CLUSTER+="${ETCD_CLUSTER:+,}e$k=http://127.0.0.1:$((ETCD_CLIENT_BASE + 100 + k))"; done
start_etcd() {
    local k=$1 c=$((ETCD_CLIENT_BASE + $1)) p=$((ETCD_CLIENT_BASE + 100 + $1))
    etcd --name "e$k" --data-dir "$OUT/etcd/data/e$k" \
        --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "$ETCD_CLUSTER" --initial-cluster-state new --initial-cluster-token agenda-failover \
        --pre-vote=true --logger zap --log-level error >> "$OUT/etcd/etcd-$k.log" 2>&1 &
    EPID[$k]=$!
}
etcd_status() { curl -sf --max-time 1 -X POST "http://127.0.0.1:$((ETCD_CLIENT_BASE + $1))/v3/maintenance/status" -d '{}'; }
etcd_leads() { etcd_status "$1" | jq -e '.header.member_id == .leader' >/dev/null; }
etcd_healthy() {
    local k leaders=0
    for k in $(seq 7); do
        curl -sf --max-time 1 "http://127.0.0.1:$((ETCD_CLIENT_BASE + k))/health" | grep -q '"true"' || return 1
        if etcd_leads "$k"; then leaders=$((leaders + 1)); fi
    done
    [ "$leaders" -eq 1 ]
}
# The first member that leads (etcd_leader) or that answers and does not (etcd_follower).
etcd_leader() {
    local k
    for k in $(seq 7); do etcd_leads "$k" && { echo "$k"; return 0; }; done
    return 1
}
etcd_follower() {
    local k
    for k in $(seq 7); do etcd_status "$k" >/dev/null && ! etcd_leads "$k" && { echo "$k"; return 0; }; done
    return 1
}
etcd_pid() { echo "${EPID[$1]}"; }
etcd_after_kill() { wait "${EPID[$1]}" 2>/dev/null || true; start_etcd "$1"; }

run_etcd() {
    mkdir -p "$OUT/etcd"
    log "starting a 7-member etcd cluster ($(etcd --version | head -1))"
    for k in $(seq 7); do start_etcd "$k"; done
    wait_for "a healthy etcd cluster" 90 etcd_healthy
    local endpoints
    endpoints=$(seq -s, -f "http://127.0.0.1:%g" $((ETCD_CLIENT_BASE + 1)) $((ETCD_CLIENT_BASE + 7)))
    measure etcd "" "$BIN/agenda-bench" etcd --endpoints "$endpoints"
    cleanup
}

# --- run and report --------------------------------------------------------------------
RUNS=()
for sys in ${SYSTEMS//,/ }; do
    "run_$sys"
    RUNS+=("$sys=$OUT/$sys")
done
"$BIN/agenda-bench" failover "${RUNS[@]}" > "$OUT/table.md"
cat "$OUT/table.md"

{
    echo "<!-- FAILOVER by scripts/failover.sh on $(date -u +%Y-%m-%dT%H:%MZ): do not edit by hand -->"
    echo
    echo "Command: \`SYSTEMS=$SYSTEMS KILLS=$KILLS STOPS=$STOPS FREEZES=$FREEZES FOLLOWER_FAULTS=$FOLLOWER_FAULTS FREEZE_S=$FREEZE_S CONCURRENCY=$CONCURRENCY scripts/failover.sh\`"
    echo
    echo "Machine: $(nproc) cores, Linux $(uname -r); $(etcd --version 2>/dev/null | head -1 || echo 'no etcd');"\
         "Agenda at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' (with uncommitted changes)')."
    echo "$CONCURRENCY closed-loop writers over all 7 endpoints; each freeze lasts ${FREEZE_S} s."
    echo
    cat "$OUT/table.md"
    echo
    echo "<!-- END FAILOVER -->"
} > "$OUT/generated.md"

if [ -n "${NO_DOC:-}" ]; then
    log "results in $OUT (docs untouched: NO_DOC is set)"
    exit 0
fi
if grep -q '^<!-- FAILOVER' "$DOC"; then
    awk -v gen="$OUT/generated.md" '
        /^<!-- FAILOVER/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /^<!-- END FAILOVER -->/ { skip = 0; next }
        !skip { print }' "$DOC" > "$OUT/benchmarks.md"
else
    { cat "$DOC"; echo; echo "## Failover"; echo; cat "$OUT/generated.md"; } > "$OUT/benchmarks.md"
fi
cp "$OUT/benchmarks.md" "$DOC"
log "wrote the failover table into $DOC"
