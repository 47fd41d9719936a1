#!/usr/bin/env bash
# Browser tests of the web UI: headless Chromium (Debian's package) driven by Selenium,
# against a real 7-slot cluster started with the local launcher (deploy/agenda-local).
#
#   bash scripts/browser-tests.sh
#
# Installs what it needs when missing (chromium, chromium-driver, selenium), builds the
# launcher (a no-op when current), starts the cluster on 127.0.0.1, runs
# tests/browser/test_ui.py and always stops the cluster. Screenshots go to
# ci-artifacts/screenshots/ (the week view is also copied to docs/screenshots/week.png).
# Exits non-zero on any failure; the closing line is `N passed, N failed`.
#
# Environment: BROWSER_TESTS_TIMEOUT (seconds for the test run, default 900),
# BROWSER_TESTS_PORT (API base port; slot k listens on it + k; default: a free block from
# 18080), SCREENSHOT_DIR, AGENDA_LOCAL (launcher binary, skips the build), KEEP_DATA=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TIMEOUT=${BROWSER_TESTS_TIMEOUT:-900}
PYTHON=${PYTHON:-python3}
export SCREENSHOT_DIR=${SCREENSHOT_DIR:-$ROOT/ci-artifacts/screenshots}
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
# Selenium Manager must never try to download a driver or a browser.
export SE_OFFLINE=true

DATA=
LOG=
LAUNCHER_PID=
SUMMARY=

say() { echo "== browser-tests: $*"; }
fail_setup() {
  echo "browser-tests: $*" >&2
  exit 1
}

# Always: stop the cluster, keep its logs on failure, end with the count.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$LAUNCHER_PID" ] && kill -0 "$LAUNCHER_PID" 2>/dev/null; then
    say "stopping the cluster (pid $LAUNCHER_PID)"
    kill -TERM "$LAUNCHER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$LAUNCHER_PID" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$LAUNCHER_PID" 2>/dev/null; then
      echo "browser-tests: the launcher did not stop within 20 s; killing it" >&2
      kill -KILL "$LAUNCHER_PID" 2>/dev/null || true
    fi
    wait "$LAUNCHER_PID" 2>/dev/null || true
  fi
  if [ -n "$DATA" ]; then
    # Children of this cluster that outlived the launcher (their DATA_DIR is under ours).
    for p in $(pgrep -f "agenda-local __child" 2>/dev/null || true); do
      if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -q "^DATA_DIR=$DATA/"; then
        kill -CONT "$p" 2>/dev/null || true
        kill -KILL "$p" 2>/dev/null || true
      fi
    done
    if [ "$rc" -ne 0 ] && [ -f "$LOG" ]; then
      echo "---- launcher log (tail)" >&2
      tail -n 40 "$LOG" >&2 || true
      mkdir -p "$SCREENSHOT_DIR" && cp -r "$DATA/logs" "$SCREENSHOT_DIR/cluster-logs" 2>/dev/null || true
    fi
    if [ "${KEEP_DATA:-0}" = 1 ]; then say "data kept in $DATA"; else rm -rf "$DATA"; fi
  fi
  # A setup failure (or a run cut short) counts as one failed test.
  if [ -z "$SUMMARY" ] || { [ "$rc" -ne 0 ] && [[ "$SUMMARY" == *" 0 failed" ]]; }; then
    SUMMARY="0 passed, 1 failed"
  fi
  echo "$SUMMARY"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- dependencies (idempotent) ---------------------------------------------------------
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}
if [ ! -x "$CHROMIUM" ] || [ ! -x "$CHROMEDRIVER" ]; then
  say "installing chromium and chromium-driver (apt)"
  as_root apt-get update -qq || fail_setup "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core >/dev/null || fail_setup "could not install chromium"
fi
if ! "$PYTHON" -c 'import selenium' 2>/dev/null; then
  say "installing selenium (pip)"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check selenium \
    || "$PYTHON" -m pip install --quiet --disable-pip-version-check --break-system-packages selenium \
    || fail_setup "could not install selenium"
fi
say "$("$CHROMIUM" --version 2>/dev/null | head -n 1); $("$CHROMEDRIVER" --version | head -n 1); selenium $("$PYTHON" -c 'import selenium; print(selenium.__version__)')"

# ---- the launcher (it embeds the UI, so it must be current) ----------------------------
BIN=${AGENDA_LOCAL:-}
if [ -z "$BIN" ]; then
  say "cargo build -p agenda-local"
  cargo build -p agenda-local --locked --quiet || fail_setup "cargo build -p agenda-local failed"
  BIN=${CARGO_TARGET_DIR:-$ROOT/target}/debug/agenda-local
fi
[ -x "$BIN" ] || fail_setup "no launcher at $BIN"

# ---- ports: slot k uses P+k (API), P+100+k (store), P+200+k (discovery) ---------------
port_block_free() {
  "$PYTHON" - "$1" <<'EOF'
import socket, sys
base = int(sys.argv[1])
for off in [k for k in range(1, 8)] + [100 + k for k in range(1, 8)] + [200 + k for k in range(1, 8)]:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", base + off))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}
PORT=${BROWSER_TESTS_PORT:-}
if [ -z "$PORT" ]; then
  for candidate in 18080 18380 18680 18980 19280 19580; do
    if port_block_free "$candidate"; then PORT=$candidate; break; fi
  done
fi
[ -n "$PORT" ] || fail_setup "no free block of ports found"

# ---- the cluster -----------------------------------------------------------------------
DATA=$(mktemp -d "${TMPDIR:-/tmp}/agenda-browser-XXXXXX")
LOG=$DATA/launcher.log
say "starting 7 slots on 127.0.0.1:$((PORT + 1))..$((PORT + 7)) (data in $DATA)"
"$BIN" --slots 7 --data-dir "$DATA" --api-base-port "$PORT" >"$LOG" 2>&1 &
LAUNCHER_PID=$!
deadline=$((SECONDS + 180))
until grep -q "agenda-local: ready" "$LOG" 2>/dev/null; do
  kill -0 "$LAUNCHER_PID" 2>/dev/null || fail_setup "the launcher exited: $(tail -n 20 "$LOG")"
  [ "$SECONDS" -lt "$deadline" ] || fail_setup "the cluster was not ready within 180 s"
  sleep 0.5
done
say "$(grep -m 1 "agenda-local: ready" "$LOG")"

# ---- the tests -------------------------------------------------------------------------
mkdir -p "$SCREENSHOT_DIR"
rm -f "$SCREENSHOT_DIR"/*.png
rm -rf "$SCREENSHOT_DIR/cluster-logs"
export AGENDA_BASE_PORT=$PORT AGENDA_DATA_DIR=$DATA
RESULTS=$DATA/results.txt
set +e
timeout --kill-after=15 "$TIMEOUT" "$PYTHON" -u tests/browser/test_ui.py 2>&1 | tee "$RESULTS"
rc=${PIPESTATUS[0]}
set -e
SUMMARY=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$RESULTS" | tail -n 1 || true)
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "browser-tests: the test run exceeded ${TIMEOUT} s" >&2
fi
say "screenshots in $SCREENSHOT_DIR:"
ls -1 "$SCREENSHOT_DIR"/*.png 2>/dev/null | sed 's/^/  /' || true
exit "$rc"
