#!/usr/bin/env bash
# Contract tests: the OpenAPI document the API serves (`/api/openapi.json`) checked against
# the API itself by schemathesis — every check, schema-valid and schema-violating data,
# stateful sequences — on a local 3-slot cluster started with the launcher
# (deploy/agenda-local).
#
#   bash scripts/contract-tests.sh
#
# Installs schemathesis (pinned) into target/contract-venv when missing, builds the
# launcher (a no-op when current), starts the cluster on free ports with its own data in a
# temporary folder, registers a user over HTTP for a bearer token (and a peer who gives it a
# group, a group appointment and an invitation to answer), runs schemathesis and always
# stops the cluster. About a minute. Fails on any 5xx, any response that breaks the document
# (status, content type, headers, body), any schema-valid request the server refuses, any
# schema-violating request it accepts, and the other checks of `--checks all`.
#
# Nothing is excluded: every operation is tested. The test user cannot be locked out by
# fuzzed requests — `PUT /api/me/password` and changing the username or e-mail need the
# current password, which the fuzzer does not know (it gets 403) — and the token stays
# valid for the run.
#
# What schemathesis cannot know is told to it here, each narrowly:
#  - 412 is an acceptable answer to a schema-valid request: `If-Match` and
#    `X-Agenda-Min-Revision` are preconditions on stored state (a stale version, a
#    revision no store has reached), not on the request's shape.
#  - Refusals of rules the document states in words because no JSON Schema keyword can
#    (see its description): an end after its start, at most 31 (appointment) or 366
#    (range) days, instants 1970–9999 in UTC, an e-mail of at most 254 bytes, ranks in a
#    non-hierarchical group, and an `Idempotency-Key` reused for a different request. The
#    hook below drops exactly those 422s, recognised by the problem's `code`, `field` and
#    `detail` (and, for the e-mail, by measuring the value sent); any other refusal fails.
#    Dropped failures are counted in schemathesis' summary and listed by reason after it.
#  - A `GET /ws` handshake the server accepts (101) turns the connection into a WebSocket;
#    the hook closes it, else schemathesis' HTTP client would send its next request there.
#  - The per-IP rate limits are raised (LOGIN_PER_IP_PER_MINUTE, LOGIN_FREE_FAILURES,
#    FEED_FAILURES_PER_IP_PER_MINUTE, passed through by the launcher) so a flood of fuzzed
#    logins, registrations and feed URLs from one address is served instead of answered
#    429 (which would not fail, but test nothing).
#
# Environment: CONTRACT_TESTS_EXAMPLES (examples per operation and phase, default 25),
# CONTRACT_TESTS_TIMEOUT (hard bound in seconds on the schemathesis run, default 300),
# CONTRACT_TESTS_SEED (reproduce a run), CONTRACT_TESTS_PORT (API base port; slot k
# listens on it + k; default: a free block from 21080), CONTRACT_REPORT_DIR (JUnit report,
# default ci-artifacts/contract), AGENDA_LOCAL (launcher binary, skips the build),
# KEEP_DATA=1 (keep the cluster's data and logs).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SCHEMATHESIS_VERSION=4.32.5
EXAMPLES=${CONTRACT_TESTS_EXAMPLES:-25}
TIMEOUT=${CONTRACT_TESTS_TIMEOUT:-300}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/contract-venv
REPORT_DIR=${CONTRACT_REPORT_DIR:-$ROOT/ci-artifacts/contract}
PYTHON=${PYTHON:-python3}

# shellcheck source=scripts/lib/local-cluster.sh
source "$ROOT/scripts/lib/local-cluster.sh"

say() { echo "== contract-tests: $*"; }
fail_setup() {
  echo "contract-tests: $*" >&2
  exit 1
}

# Always: stop the cluster, show its logs' tail on failure.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local_cluster_stop "$rc" "$REPORT_DIR" 20
  if [ "$rc" -eq 0 ]; then say "passed"; else say "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- schemathesis, pinned, in its own virtualenv (idempotent) --------------------------
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  say "installing schemathesis==$SCHEMATHESIS_VERSION into $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV" || fail_setup "could not create a virtualenv (python3-venv missing?)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || fail_setup "could not install schemathesis==$SCHEMATHESIS_VERSION"
fi
say "$("$VENV/bin/schemathesis" --version)"

# ---- the launcher and the cluster ------------------------------------------------------
local_cluster_build
SLOTS=3
PORT=${CONTRACT_TESTS_PORT:-$(local_cluster_port "$SLOTS" 21080 21380 21680 21980 22280 22580 || true)}
[ -n "$PORT" ] || fail_setup "no free block of ports found"
API=http://127.0.0.1:$((PORT + 1))
LOGIN_PER_IP_PER_MINUTE=1000000 LOGIN_FREE_FAILURES=1000000 FEED_FAILURES_PER_IP_PER_MINUTE=1000000 \
  local_cluster_start contract "$SLOTS" "$PORT"
DATA=$LC_DATA

# ---- a user and its token, and some state to reach ----------------------------------
# Besides the test user, a peer who shares a group with it (and has a group appointment
# there waiting for the test user's answer) and who invites it to a second group (an
# invitation waiting for an answer): so the answers, invitations and notifications the
# document describes are actually served, not only 404s.
TOKEN=$("$PYTHON" - "$API" <<'EOF'
import json, secrets, sys, urllib.request
from datetime import datetime, timedelta, timezone

API = sys.argv[1]


def call(method, path, body=None, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(API + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.load(reply)


def register(prefix):
    name = f"{prefix}-{secrets.token_hex(4)}"
    body = {"username": name, "email": f"{name}@example.org", "password": secrets.token_urlsafe(24)}
    session = call("POST", "/register", body)
    return session["user"]["id"], session["token"]


me, token = register("contract")
_, peer = register("peer")
shared = call("POST", "/api/groups", {"name": "Seed: shared", "group_type": "hierarchical"}, peer)["id"]
call("POST", f"/api/groups/{shared}/members", {"user_id": me, "rank": 10}, peer)
call("POST", f"/api/groups/{shared}/join", None, token)
# Within the agenda's default range (the next 7 days), so listings show it.
start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)
call("POST", "/api/appointments", {
    "title": "Seed: group meeting", "group_id": shared,
    "start_time": start.isoformat(), "end_time": (start + timedelta(hours=1)).isoformat(),
}, peer)
pending = call("POST", "/api/groups", {"name": "Seed: invited", "group_type": "non_hierarchical"}, peer)["id"]
call("POST", f"/api/groups/{pending}/members", {"user_id": me}, peer)
print(token)
EOF
) || fail_setup "could not register the test user and seed its state"
AUDIT_TOKEN=$(tr -d '[:space:]' <"$DATA/secrets/audit_token")
say "registered a test user (and a peer sharing a group with it)"

# ---- schemathesis' configuration and hook ----------------------------------------------
WORK=$DATA/schemathesis
mkdir -p "$WORK" "$REPORT_DIR"
cat >"$WORK/schemathesis.toml" <<'EOF'
# The default list, plus 412: a precondition on stored state (see the script's header).
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]

# `GET /ws` answers a handshake with 101 Switching Protocols, which is neither an error
# nor a refusal.
[[operations]]
include-operation-id = "open_websocket"
checks.not_a_server_error.expected-statuses = ["101", "2xx", "3xx", "4xx"]
checks.positive_data_acceptance.expected-statuses = ["101", "2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]
EOF
cat >"$WORK/contract_hooks.py" <<'EOF'
"""Drop the refusals of schema-valid requests that the document explains in words, and
keep the HTTP client off connections a WebSocket handshake took over."""

import atexit
import collections
import json

import schemathesis

# (field, part of the detail) of the rules no JSON Schema keyword can state.
STATED_IN_WORDS = [
    ("start", "must be between 1970 and 9999"),
    ("end", "must be between 1970 and 9999"),
    ("end", "must be after start"),
    ("end", "may last at most 31 days"),
    ("end", "may span at most 366 days"),
    ("rank", "non-hierarchical groups have no ranks"),
]
MAX_EMAIL_BYTES = 254
dropped = collections.Counter()


def _email_too_long(case):
    email = case.body.get("email") if isinstance(case.body, dict) else None
    return isinstance(email, str) and len(email.strip().encode()) > MAX_EMAIL_BYTES


def _explained(case, problem):
    """Why the document allows this refusal of a schema-valid request, or None."""
    code, field, detail = problem.get("code"), problem.get("field"), problem.get("detail") or ""
    if code == "idempotency_mismatch":
        return "Idempotency-Key reused for another request"
    if code != "validation_failed":
        return None
    for f, part in STATED_IN_WORDS:
        if field == f and part in detail:
            return f"{f}: {part}"
    if field == "email" and _email_too_long(case):
        return f"email: over {MAX_EMAIL_BYTES} bytes"
    return None


@schemathesis.hook
def filter_failure(context, failure, case, response):
    if failure.code != "ST202" or response.status_code != 422:
        return True
    try:
        problem = json.loads(response.content)
    except ValueError:
        return True
    reason = _explained(case, problem) if isinstance(problem, dict) else None
    if reason is None:
        return True
    dropped[reason] += 1
    return False


def _forget_upgraded_connection(response, *args, **kwargs):
    """After a 101 the connection speaks WebSocket: never send another HTTP request on it."""
    raw = getattr(response, "raw", None)
    if response.status_code == 101 and raw is not None and raw.connection is not None:
        raw.connection.close()


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.path == "/ws":
        kwargs.setdefault("hooks", {"response": [_forget_upgraded_connection]})


@atexit.register
def _report():
    if dropped:
        print("contract-tests: refusals of schema-valid requests explained by the document:")
        for reason, count in dropped.most_common():
            print(f"  {count:5}  {reason}")
EOF

# ---- the run ---------------------------------------------------------------------------
seed=()
[ -n "${CONTRACT_TESTS_SEED:-}" ] && seed=(--seed "$CONTRACT_TESTS_SEED")
say "schemathesis run $API/api/openapi.json (--checks all, $EXAMPLES examples per operation, at most ${TIMEOUT}s)"
set +e
# From $WORK, where schemathesis keeps its crash cache (.schemathesis/) with the cluster data.
cd "$WORK"
PYTHONPATH=$WORK SCHEMATHESIS_HOOKS=contract_hooks timeout --kill-after=15 "$TIMEOUT" \
  "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$API/api/openapi.json" \
  --checks all \
  --max-examples "$EXAMPLES" \
  --header "Authorization: Bearer $TOKEN" \
  --header "X-Audit-Token: $AUDIT_TOKEN" \
  --request-timeout 30 \
  --generation-database none \
  --report junit --report-junit-path "$REPORT_DIR/junit.xml" \
  --no-color \
  "${seed[@]}"
rc=$?
set -e
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "contract-tests: the schemathesis run exceeded ${TIMEOUT} s" >&2
fi
exit "$rc"
