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

SUMMARY=

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
# shellcheck source=scripts/lib/local-cluster.sh
source "$ROOT/scripts/lib/local-cluster.sh"

say() { echo "== browser-tests: $*"; }
fail_setup() {
  echo "browser-tests: $*" >&2
  exit 1
}

# Always: stop the cluster, keep its logs on failure, end with the count.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local_cluster_stop "$rc" "$SCREENSHOT_DIR" 40
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

# ---- the launcher (it embeds the UI, so it must be current) and the cluster -------------
local_cluster_build
PORT=${BROWSER_TESTS_PORT:-$(local_cluster_port 7 18080 18380 18680 18980 19280 19580 || true)}
[ -n "$PORT" ] || fail_setup "no free block of ports found"
local_cluster_start browser 7 "$PORT"
DATA=$LC_DATA

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
