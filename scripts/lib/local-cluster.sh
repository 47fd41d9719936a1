# A local cluster for the scripts that test against one (browser-tests.sh,
# contract-tests.sh): build the launcher, find a free block of ports, start it, stop it and
# everything it started. Sourced, not run. The caller defines `say` and `fail_setup`, and
# sets PYTHON and TARGET.
#
# State, for the caller's cleanup: LC_BIN, LC_DATA, LC_LOG, LC_PID.

LC_BIN=
LC_DATA=
LC_LOG=
LC_PID=

# Build the debug launcher (or take $AGENDA_LOCAL) into LC_BIN.
local_cluster_build() {
  LC_BIN=${AGENDA_LOCAL:-}
  if [ -z "$LC_BIN" ]; then
    say "cargo build -p agenda-local"
    cargo build -p agenda-local --locked --quiet || fail_setup "cargo build -p agenda-local failed"
    LC_BIN=$TARGET/debug/agenda-local
  fi
  [ -x "$LC_BIN" ] || fail_setup "no launcher at $LC_BIN"
}

# `local_cluster_port SLOTS CANDIDATE...`: the first base port P whose block (slot k uses
# P+k for its API, P+100+k for its store, P+200+k for its agent) is free.
local_cluster_port() {
  local slots=$1 candidate
  shift
  for candidate in "$@"; do
    if "$PYTHON" - "$candidate" "$slots" <<'EOF'
import socket, sys
base, slots = int(sys.argv[1]), int(sys.argv[2])
for off in [o + k for o in (0, 100, 200) for k in range(1, slots + 1)]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", base + off))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
    then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

# `local_cluster_start NAME SLOTS PORT [DATA]`: start SLOTS slots on PORT's block with data
# in DATA (default: a fresh temporary folder), and wait (at most 180 s) for "ready". The
# caller's environment passes through to the launcher (e.g. raised per-IP limits).
local_cluster_start() {
  local name=$1 slots=$2 port=$3
  LC_DATA=${4:-$(mktemp -d "${TMPDIR:-/tmp}/agenda-$name-XXXXXX")}
  LC_LOG=$LC_DATA/launcher.log
  say "starting $slots slots on 127.0.0.1:$((port + 1))..$((port + slots)) (data in $LC_DATA)"
  "$LC_BIN" --slots "$slots" --data-dir "$LC_DATA" --api-base-port "$port" >"$LC_LOG" 2>&1 &
  LC_PID=$!
  local deadline=$((SECONDS + 180))
  until grep -q "agenda-local: ready" "$LC_LOG" 2>/dev/null; do
    kill -0 "$LC_PID" 2>/dev/null || fail_setup "the launcher exited: $(tail -n 20 "$LC_LOG")"
    [ "$SECONDS" -lt "$deadline" ] || fail_setup "the cluster was not ready within 180 s"
    sleep 0.5
  done
  say "$(grep -m 1 "agenda-local: ready" "$LC_LOG")"
}

# `local_cluster_stop RC LOGS_TO TAIL`: stop the launcher (SIGTERM, SIGKILL after 20 s) and
# any child that outlived it; when RC is not 0, print the launcher log's last TAIL lines
# and copy the cluster's logs into LOGS_TO/cluster-logs. Deletes the data unless
# KEEP_DATA=1.
local_cluster_stop() {
  local rc=$1 logs_to=$2 tail_lines=$3 p
  if [ -n "$LC_PID" ] && kill -0 "$LC_PID" 2>/dev/null; then
    say "stopping the cluster (pid $LC_PID)"
    kill -TERM "$LC_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$LC_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$LC_PID" 2>/dev/null; then
      say "the launcher did not stop within 20 s; killing it"
      kill -KILL "$LC_PID" 2>/dev/null || true
    fi
    wait "$LC_PID" 2>/dev/null || true
  fi
  [ -n "$LC_DATA" ] || return 0
  # Children of this cluster that outlived the launcher (their DATA_DIR is under ours).
  for p in $(pgrep -f "agenda-local __child" 2>/dev/null || true); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "^DATA_DIR=$LC_DATA/"; then
      kill -CONT "$p" 2>/dev/null || true
      kill -KILL "$p" 2>/dev/null || true
    fi
  done
  if [ "$rc" -ne 0 ] && [ -f "$LC_LOG" ]; then
    echo "---- launcher log (tail)" >&2
    tail -n "$tail_lines" "$LC_LOG" >&2 || true
    mkdir -p "$logs_to" && cp -r "$LC_DATA/logs" "$logs_to/cluster-logs" 2>/dev/null || true
  fi
  if [ "${KEEP_DATA:-0}" = 1 ]; then say "data kept in $LC_DATA"; else rm -rf "$LC_DATA"; fi
}
