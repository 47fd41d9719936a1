#!/usr/bin/env bash
# The benchmark: a 7-slot local Agenda cluster (agenda-local, SQLite synchronous=FULL, so
# every acknowledged write is fsynced on a majority) and a 7-member etcd cluster (Debian's
# etcd-server, fsync on by default), both on loopback, driven one after the other by the
# same client (agenda-bench) at the same concurrencies. Writes the figures, the chart and
# the memory of every sidecar into docs/benchmarks.md (between the GENERATED markers; the
# analysis around them is written by people).
#
#   scripts/bench.sh                       # everything, ~12 minutes
#   CONCURRENCY=1,8 DURATION=5 scripts/bench.sh   # a quick look
#   SCENARIOS=read,push CONCURRENCY=64 DURATION=5 NO_DOC=1 scripts/bench.sh
#   NO_DOC=1 scripts/bench.sh              # leave docs/ alone (results in target/bench)
#
# SCENARIOS picks the Agenda scenarios (create, read, mixed, push); etcd always runs `put`,
# and `range` (linearizable reads, to set against Agenda's) whenever `read` is picked.
# `push` runs once, with PUSH_WRITERS writers and PUSH_LISTENERS WebSocket listeners of its
# own, whatever CONCURRENCY says; late notifications are awaited PUSH_GRACE seconds.
#
# Every run is bounded (DURATION seconds, MAX_REQUESTS requests); the clusters are stopped
# on exit whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CONCURRENCY=${CONCURRENCY:-1,8,64,256}
DURATION=${DURATION:-15}
MAX_REQUESTS=${MAX_REQUESTS:-1000000}
SCENARIOS=${SCENARIOS:-create,read,mixed,push}
MIX=${MIX:-create=50,read=40,group=10}
PUSH_WRITERS=${PUSH_WRITERS:-64}
PUSH_LISTENERS=${PUSH_LISTENERS:-256}
PUSH_GRACE=${PUSH_GRACE:-5}
OUT=${OUT:-$ROOT/target/bench}
API_BASE=${API_BASE:-18380}   # APIs on API_BASE+1..7, stores +100, agents +200
ETCD_CLIENT_BASE=12380        # etcd clients on +1..7, peers on +101..107
DOC=$ROOT/docs/benchmarks.md
CHART=docs/benchmarks.png

log() { printf '== %s\n' "$*" >&2; }

# Whether the comma-separated list $1 holds $2.
has() { [[ ",$1," == *",$2,"* ]]; }
ETCD_SCENARIOS=put
if has "$SCENARIOS" read; then ETCD_SCENARIOS+=,range; fi

# --- tools -----------------------------------------------------------------------------
need_pkgs=()
command -v etcd >/dev/null || need_pkgs+=(etcd-server)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_pkgs+=(fonts-dejavu-core)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    log "installing ${need_pkgs[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

log "building agenda-local and agenda-bench (release)"
# Two builds, not one with both -p: together they unify features differently and would
# rebuild the whole workspace a second time.
cargo build --release --locked -p agenda-local
cargo build --release --locked -p agenda-bench
BIN=$ROOT/target/release

rm -rf "$OUT"
mkdir -p "$OUT/results"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    PIDS=()
}
trap cleanup EXIT

# --- memory ----------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# `label pid` lines of the processes to watch, in $OUT/procs.
agenda_procs() {
    local launcher=$1
    ps --ppid "$launcher" -o pid=,args= | awk '{ for (i = 1; i <= NF; i++) if ($i == "__child") { print $(i + 1), $1 } }'
}

# Sample every watched process once a second until $OUT/stop-sampling appears or 30 min
# pass; keep each one's peak in $1.
sample_peaks() {
    local out=$1 deadline=$((SECONDS + 1800))
    declare -A peak=()
    while [ ! -e "$OUT/stop-sampling" ] && [ $SECONDS -lt $deadline ]; do
        while read -r label pid; do
            local v; v=$(rss_kib "$pid")
            [ "${v:-0}" -gt "${peak[$pid]:-0}" ] && peak[$pid]=$v
        done < "$OUT/procs"
        sleep 1
    done
    while read -r label pid; do echo "$label $pid ${peak[$pid]:-0}"; done < "$OUT/procs" > "$out"
}

snapshot() { while read -r label pid; do echo "$label $pid $(rss_kib "$pid")"; done < "$OUT/procs" > "$1"; }

# "label min–max MiB" per label from `label pid kib` lines.
summarise_rss() {
    awk '{ v = $3 / 1024; if (!($1 in min) || v < min[$1]) min[$1] = v; if (v > max[$1]) max[$1] = v; n[$1]++ }
         END { for (l in n) printf "%s %d %.1f %.1f\n", l, n[l], min[l], max[l] }' "$1" | sort
}

# --- Agenda ----------------------------------------------------------------------------
log "starting a 7-slot Agenda cluster (agenda-local, data in $OUT/agenda-data)"
# Every benchmark user registers from 127.0.0.1: lift the per-IP registration budget.
LOGIN_PER_IP_PER_MINUTE=100000 RUST_LOG=warn \
    "$BIN/agenda-local" --slots 7 --data-dir "$OUT/agenda-data" --api-base-port "$API_BASE" \
    > "$OUT/agenda-local.out" 2>&1 &
LAUNCHER=$!
PIDS+=("$LAUNCHER")
for _ in $(seq 120); do
    grep -q "ready" "$OUT/agenda-local.out" && break
    kill -0 "$LAUNCHER" 2>/dev/null || { cat "$OUT/agenda-local.out"; exit 1; }
    sleep 1
done
grep -q "ready" "$OUT/agenda-local.out" || { echo "the cluster did not get ready" >&2; exit 1; }
agenda_procs "$LAUNCHER" > "$OUT/procs"
sleep 5   # let start-up settle before the idle reading
snapshot "$OUT/agenda-idle.rss"

API=$(seq -s, -f "http://127.0.0.1:%g" $((API_BASE + 1)) $((API_BASE + 7)))
rm -f "$OUT/stop-sampling"
sample_peaks "$OUT/agenda-peak.rss" &
SAMPLER=$!
log "agenda: scenarios $SCENARIOS at $CONCURRENCY users, ${DURATION}s each"
"$BIN/agenda-bench" agenda --api "$API" --out "$OUT/results" --scenarios "$SCENARIOS" --mix "$MIX" \
    --push-writers "$PUSH_WRITERS" --push-listeners "$PUSH_LISTENERS" --push-grace "$PUSH_GRACE" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --max-requests "$MAX_REQUESTS" 2>&1 | tee "$OUT/agenda.log"
touch "$OUT/stop-sampling"
wait "$SAMPLER"
snapshot "$OUT/agenda-after.rss"
cleanup

# --- etcd ------------------------------------------------------------------------------
log "starting a 7-member etcd cluster ($(etcd --version | head -1))"
CLUSTER=""
for k in $(seq 7); do
    CLUSTER+="${CLUSTER:+,}e$k=http://127.0.0.1:$((ETCD_CLIENT_BASE + 100 + k))"
done
: > "$OUT/procs"
for k in $(seq 7); do
    c=$((ETCD_CLIENT_BASE + k)); p=$((ETCD_CLIENT_BASE + 100 + k))
    etcd --name "e$k" --data-dir "$OUT/etcd-data/e$k" \
        --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c" \
        --listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
        --initial-cluster "$CLUSTER" --initial-cluster-state new --initial-cluster-token agenda-bench \
        --logger zap --log-level error > "$OUT/etcd-$k.log" 2>&1 &
    PIDS+=("$!")
    echo "etcd $!" >> "$OUT/procs"
done
ENDPOINTS=$(seq -s, -f "http://127.0.0.1:%g" $((ETCD_CLIENT_BASE + 1)) $((ETCD_CLIENT_BASE + 7)))
for _ in $(seq 60); do
    healthy=0
    for e in ${ENDPOINTS//,/ }; do
        curl -sf "$e/health" | grep -q '"true"' && healthy=$((healthy + 1))
    done
    [ "$healthy" -eq 7 ] && break
    sleep 1
done
[ "$healthy" -eq 7 ] || { echo "etcd did not become healthy" >&2; tail "$OUT"/etcd-*.log >&2; exit 1; }
sleep 5
snapshot "$OUT/etcd-idle.rss"
rm -f "$OUT/stop-sampling"
sample_peaks "$OUT/etcd-peak.rss" &
SAMPLER=$!
log "etcd: scenarios $ETCD_SCENARIOS at $CONCURRENCY users, ${DURATION}s each"
"$BIN/agenda-bench" etcd --endpoints "$ENDPOINTS" --out "$OUT/results" --scenarios "$ETCD_SCENARIOS" \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --max-requests "$MAX_REQUESTS" 2>&1 | tee "$OUT/etcd.log"
touch "$OUT/stop-sampling"
wait "$SAMPLER"
cleanup

# --- report ----------------------------------------------------------------------------
RESULTS=()
for s in ${SCENARIOS//,/ }; do RESULTS+=("$OUT/results/agenda-$s.json"); done
for s in ${ETCD_SCENARIOS//,/ }; do RESULTS+=("$OUT/results/etcd-$s.json"); done
"$BIN/agenda-bench" chart --out "$OUT/benchmarks.png" "${RESULTS[@]}"

{
    echo "<!-- GENERATED by scripts/bench.sh on $(date -u +%Y-%m-%dT%H:%MZ): do not edit by hand -->"
    echo
    push_settings=""
    if has "$SCENARIOS" push; then
        push_settings=" PUSH_WRITERS=$PUSH_WRITERS PUSH_LISTENERS=$PUSH_LISTENERS PUSH_GRACE=$PUSH_GRACE"
    fi
    echo "Command: \`CONCURRENCY=$CONCURRENCY DURATION=$DURATION SCENARIOS=$SCENARIOS MIX=$MIX$push_settings scripts/bench.sh\`"
    echo
    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)),"\
         "$(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r),"\
         "data on $(df -h "$OUT" | awk 'NR == 2 {print $1}'); $(etcd --version | head -1);"\
         "Agenda at commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' (with uncommitted changes)')."
    echo "Load generator, both clusters and their 21 (Agenda) or 7 (etcd) processes share the machine."
    echo
    echo "![throughput and latency against concurrency]($(basename "$CHART"))"
    echo
    "$BIN/agenda-bench" report "${RESULTS[@]}"
    echo "### Memory (resident set size, MiB)"
    echo
    echo "| process | count | idle (min–max) | after the runs (min–max) | peak under load (min–max) |"
    echo "|---|---:|---:|---:|---:|"
    join <(summarise_rss "$OUT/agenda-idle.rss") <(summarise_rss "$OUT/agenda-after.rss") \
        | join - <(summarise_rss "$OUT/agenda-peak.rss") \
        | awk '{ printf "| agenda %s | %d | %.1f–%.1f | %.1f–%.1f | %.1f–%.1f |\n", $1, $2, $3, $4, $6, $7, $9, $10 }'
    join <(summarise_rss "$OUT/etcd-idle.rss") <(summarise_rss "$OUT/etcd-peak.rss") \
        | awk '{ printf "| %s | %d | %.1f–%.1f | – | %.1f–%.1f |\n", $1, $2, $3, $4, $6, $7 }'
    echo
    echo "<!-- END GENERATED -->"
} > "$OUT/generated.md"

if [ -n "${NO_DOC:-}" ]; then
    log "results in $OUT (docs untouched: NO_DOC is set)"
    exit 0
fi
cp "$OUT/benchmarks.png" "$ROOT/$CHART"
if [ -f "$DOC" ] && grep -q '^<!-- GENERATED' "$DOC"; then
    awk -v gen="$OUT/generated.md" '
        /^<!-- GENERATED/ { while ((getline line < gen) > 0) print line; skip = 1; next }
        /^<!-- END GENERATED -->/ { skip = 0; next }
        !skip { print }' "$DOC" > "$OUT/benchmarks.md"
else
    { echo "# Benchmarks"; echo; cat "$OUT/generated.md"; } > "$OUT/benchmarks.md"
fi
cp "$OUT/benchmarks.md" "$DOC"
log "wrote $DOC and $CHART"
