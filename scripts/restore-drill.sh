#!/usr/bin/env bash
# Backup and restore drill on the local launcher, with the operator's tool (CI runs it):
#
#   1. a 7-slot cluster; alice registers; `agenda-admin --discovery … status` shows every
#      slot's agent alive and API ready;
#   2. `agenda-admin backup` from a follower while it runs; bob registers afterwards;
#   3. `agenda-admin verify`; the cluster is stopped and its data deleted;
#   4. `agenda-admin restore` seeds slot 1 of an empty data folder; the launcher starts on
#      it: slot 1's store leads the new cluster and the six empty stores join it;
#   5. every store applies the backup's revision, seven voters, a new cluster id; alice
#      signs in with her password, bob (written after the backup) does not exist;
#   6. `agenda-admin leader transfer --to agenda-3` moves leadership there.
#
# Exit 0 on success, 1 when the drill fails, 2 when it could not be set up.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PYTHON=${PYTHON:-python3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/agenda-drill-XXXXXX")

say() { printf '== restore-drill: %s\n' "$*" >&2; }
fail_setup() { say "setup failed: $*"; exit 2; }
fail() { say "FAILED: $*"; RC=1; exit 1; }

# shellcheck source=lib/local-cluster.sh
. "$ROOT/scripts/lib/local-cluster.sh"

RC=0
cleanup() {
  local rc=$?
  [ "$RC" -ne 0 ] && rc=$RC
  local_cluster_stop "$rc" "$WORK" 60
  if [ "$rc" -ne 0 ]; then say "work files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

local_cluster_build
say "cargo build --bin agenda-admin"
cargo build -p consensus-svc --bin agenda-admin --locked --quiet || fail_setup "cargo build agenda-admin failed"
ADMIN=$TARGET/debug/agenda-admin
PORT=$(local_cluster_port 7 18580 18680 18780 18880 18980) || fail_setup "no free block of ports"
API=http://127.0.0.1:$((PORT + 1))
STORE1=127.0.0.1:$((PORT + 101))
DISCOVERY1=127.0.0.1:$((PORT + 201))

# `admin DATA ARGS...`: agenda-admin with the cluster credentials the launcher made in DATA.
admin() {
  local data=$1
  shift
  CLUSTER_HMAC_SECRET_FILE=$data/secrets/cluster_hmac \
    CLUSTER_TLS_CA_FILE=$data/pki/ca.crt \
    CLUSTER_TLS_CERT_FILE=$data/pki/slot-1-store.crt \
    CLUSTER_TLS_KEY_FILE=$data/pki/slot-1-store.key \
    AGENDA_STORE=$STORE1 "$ADMIN" "$@"
}

# `post PATH JSON`: the HTTP status of a POST to the first API.
post() {
  curl -s -o "$WORK/last-body" -w '%{http_code}' -X POST "$API$1" -H 'content-type: application/json' -d "$2"
}

register() {
  post /register "{\"username\":\"$1\",\"email\":\"$1@example.org\",\"password\":\"correct horse $1\",\"display_name\":\"$1\"}"
}

login() {
  post /login "{\"login\":\"$1\",\"password\":\"correct horse $1\"}"
}

json() { "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

say "--- the original cluster"
local_cluster_start drill-a 7 "$PORT"
A_DATA=$LC_DATA
code=$(register alice); [ "$code" = 201 ] || fail "alice could not register ($code): $(cat "$WORK/last-body")"
# With the slot's agent, status also shows every slot's agent and API.
deadline=$((SECONDS + 60))
until admin "$A_DATA" --discovery "$DISCOVERY1" --json status > "$WORK/status.json" 2>/dev/null \
  && json "len(d['slots']) == 7 and all(s['agent'] == 'alive' and s['api_ready'] and not s['store_alarms'] for s in d['slots'])" < "$WORK/status.json" | grep -q True; do
  [ "$SECONDS" -lt "$deadline" ] || { cat "$WORK/status.json"; fail "status does not show 7 slots with live agents and ready APIs"; }
  sleep 1
done
admin "$A_DATA" --discovery "$DISCOVERY1" status
OLD_ID=$(admin "$A_DATA" --json status | json 'next(r["status"]["cluster_id"] for r in d["stores"] if r["status"] and r["status"].get("cluster_id"))')

say "--- online backup from a follower"
admin "$A_DATA" --json backup --out "$WORK/agenda.backup" > "$WORK/backup.json" || fail "backup failed"
REVISION=$(json 'd["revision"]' < "$WORK/backup.json")
FROM=$(json 'd["node"]' < "$WORK/backup.json")
say "backup at revision $REVISION from $FROM of cluster $OLD_ID"
code=$(register bob); [ "$code" = 201 ] || fail "bob could not register ($code)"
admin "$A_DATA" verify "$WORK/agenda.backup" || fail "the backup does not verify"

say "--- the cluster is gone"
local_cluster_stop 0 "$WORK" 0
LC_PID=

say "--- restore slot 1, start the launcher on it"
B_DATA=$WORK/restored
# Restore works offline: it needs the file, not the cluster's credentials.
"$ADMIN" restore --from "$WORK/agenda.backup" --data-dir "$B_DATA/slot-1/store" \
  --slot agenda-1 --advertise "$STORE1" || fail "restore failed"
local_cluster_start drill-b 7 "$PORT" "$B_DATA"

deadline=$((SECONDS + 180))
until admin "$B_DATA" --json status > "$WORK/status.json" 2>/dev/null \
  && json "sum(1 for r in d['stores'] if r['status'] and (r['status']['applied_index'] or 0) >= $REVISION) == 7 and sum(1 for m in next(r['status'] for r in d['stores'] if r['status'] and r['status']['role'] == 'leader')['members'] if m['voter']) == 7" < "$WORK/status.json" | grep -q True; do
  [ "$SECONDS" -lt "$deadline" ] || { admin "$B_DATA" status || true; fail "the restored cluster did not grow to 7 caught-up voters in 180 s"; }
  sleep 2
done
admin "$B_DATA" status
NEW_ID=$(json 'next(r["status"]["cluster_id"] for r in d["stores"] if r["status"] and r["status"].get("cluster_id"))' < "$WORK/status.json")
[ "$NEW_ID" != "$OLD_ID" ] || fail "the restored cluster kept the old cluster id"

code=$(login alice); [ "$code" = 200 ] || fail "alice cannot sign in after the restore ($code): $(cat "$WORK/last-body")"

say "--- leader transfer to slot 3, with the tool"
admin "$B_DATA" leader transfer --to agenda-3 || fail "leader transfer failed"
admin "$B_DATA" --json status > "$WORK/status.json"
LEADER=$(json 'next(r["status"]["node_name"] for r in d["stores"] if r["status"] and r["status"]["role"] == "leader")' < "$WORK/status.json")
[ "$LEADER" = agenda-3 ] || fail "after the transfer $LEADER leads, not agenda-3"
code=$(login bob); [ "$code" = 401 ] || fail "bob, written after the backup, signs in ($code)"
say "OK: revision $REVISION restored into cluster $NEW_ID; 7 voters; alice signs in, bob does not exist; leadership handed to agenda-3"
