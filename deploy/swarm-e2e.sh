#!/usr/bin/env bash
# End-to-end test of the real Docker Swarm stack (DESIGN §9–10), as CI runs it:
#
#   1. start dockerd if needed, build the images (docker/build-images.sh)
#   2. `docker swarm init` if this engine is in no swarm (and leave it at the end)
#   3. random secrets, deploy docker-stack.yml + docker-stack.ci.yml, wait for 21 healthy
#   4. client container on agenda_net: wait-healthy, then the smoke story
#   5. kill the leader's store container while a writer writes through every slot: the
#      others elect a new leader, no request fails, and Swarm restarts that slot with its
#      volume (same Raft id)
#   6. `docker service update --force` on api while a writer writes: no failed request
#   7. the same on store (stop-first, one slot at a time: each leader hands leadership
#      over before it stops): no failed request, every acknowledged write still there
#   8. `docker service scale` of api 7 -> 14 -> 3 (and back to 7) while a writer writes
#      through api-1..api-14: no failed request, every one of the 14 APIs acknowledged
#      writes (the extra ones found the stores through discovery), the extras are ready
#   9. backup and restore: a marker user, an online backup inside a store task
#      (`consensus-svc admin backup`, then `verify`), a second marker after it; the stack
#      and its volumes removed; the backup restored into a fresh agenda-store-1 volume
#      (`admin restore`) and the stack deployed again: seven voters, the first marker
#      logs in and finds its appointment, the second does not exist
#  10. remove the stack, its volumes and secrets; leave the swarm if we created it
#
# Cleanup runs on success, failure and timeout (trap). The whole run is bounded by
# SWARM_E2E_TIMEOUT seconds (the release build included) and each phase by its own
# deadline. Needs the docker CLI with `docker stack config` (23.0+) and GNU timeout.
#
# Environment:
#   SWARM_E2E_TIMEOUT   overall limit in seconds (default 1800; a cold release build
#                       takes 6 to 10 of those minutes on 2 cores, the Docker part 2.5)
#   SKIP_BUILD=1        reuse the images already built (agenda/*:$AGENDA_TAG)
#   SKIP_CARGO=1        build the images from the binaries already in target/
#   AGENDA_TAG          image tag (default dev)
#   SWARM_E2E_KEEP=1    leave the stack running at the end (debugging)
#   SWARM_E2E_RESET=1   remove leftovers of an earlier stack named agenda (volumes
#                       agenda-store-*, agenda-discovery-*, agenda-backups-*) before
#                       starting; implied when CI=true. Without it the script refuses
#                       to touch them.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOTAL_TIMEOUT="${SWARM_E2E_TIMEOUT:-1800}"

# Re-run under `timeout`: on expiry the whole process group gets SIGTERM, the trap below
# cleans up, and SIGKILL follows only if the cleanup itself hangs.
if [[ -z "${SWARM_E2E_INNER:-}" ]]; then
    export SWARM_E2E_INNER=1
    exec timeout --kill-after=180 "$TOTAL_TIMEOUT" bash "$0" "$@"
fi

STACK=agenda
NET=agenda_net
SLOTS=7
TAG="${AGENDA_TAG:-dev}"
PREFIX="${AGENDA_IMAGE_PREFIX:-agenda}"
CLIENT_IMAGE="$PREFIX/e2e-client:$TAG"
SECRETS=(agenda_cluster_hmac agenda_jwt_secret agenda_audit_token agenda_cluster_ca
    agenda_store_cert agenda_store_key agenda_api_cert agenda_api_key agenda_discovery_cert
    agenda_discovery_key)
WORK="$(mktemp -d /tmp/swarm-e2e.XXXXXX)"
RUN_ID="$$"
T0=$SECONDS
PHASE_T0=$SECONDS
PHASE=start
TIMINGS=()
CREATED_SWARM=0
CREATED_SECRETS=()
DEPLOYED=0
RESULT=1

log() { printf '[swarm-e2e %4ds] %s\n' "$((SECONDS - T0))" "$*"; }

phase() {
    if [[ $PHASE != start ]]; then
        TIMINGS+=("$(printf '%-34s %4ds' "$PHASE" "$((SECONDS - PHASE_T0))")")
    fi
    PHASE="$1"
    PHASE_T0=$SECONDS
    log "=== $PHASE"
}

fail() {
    log "FAILED in phase '$PHASE': $*"
    exit 1
}

# client NAME ARGS...: run the e2e client on the overlay (it bounds its own run time).
client() {
    local name="agenda-e2e-$1-$RUN_ID"
    shift
    docker run --rm --name "$name" --network "$NET" "$CLIENT_IMAGE" "$@"
}

# start_writer NAME ARGS...: a writer container in the background.
start_writer() {
    local name="agenda-e2e-$1-$RUN_ID"
    shift
    docker run -d --name "$name" --network "$NET" "$CLIENT_IMAGE" writer "$@" >/dev/null
    echo "$name"
}

# finish_writer NAME STOP: stop it (SIGTERM makes it finish and verify) or wait for its
# own end, print its output, fail unless it exited 0.
finish_writer() {
    local name=$1 stop=$2 code
    if [[ $stop == stop ]]; then
        docker stop -t 120 "$name" >/dev/null
    fi
    code=$(timeout --foreground 180 docker wait "$name" || echo timeout)
    docker logs "$name" 2>&1 | sed 's/^/    /'
    docker rm -f "$name" >/dev/null 2>&1 || true
    [[ $code == 0 ]] || fail "writer $name exited with $code"
}

# task_container SERVICE SLOT: the running container of that slot, if any.
task_container() {
    docker ps --filter "label=com.docker.swarm.service.name=${STACK}_$1" \
        --format '{{.ID}} {{.Label "com.docker.swarm.task.name"}}' |
        awk -v p="${STACK}_$1.$2." 'index($2, p) == 1 { print $1; exit }'
}

stack_volumes() {
    docker volume ls -q | grep -E '^agenda-(store|discovery|backups)-[0-9]+$' || true
}

diagnostics() {
    log "--- diagnostics"
    for svc in store discovery api; do
        docker service ps --no-trunc --format '{{.Name}} {{.CurrentState}} {{.Error}}' \
            "${STACK}_$svc" 2>/dev/null | head -30 | sed 's/^/    /'
    done
    for svc in store discovery api; do
        log "last log lines of ${STACK}_$svc"
        timeout --foreground 20 docker service logs --no-task-ids --tail 6 "${STACK}_$svc" 2>&1 |
            cut -c1-300 | tail -42 | sed 's/^/    /'
    done
}

cleanup() {
    local code=$?
    set +e
    trap - EXIT INT TERM ERR
    if [[ $RESULT != 0 && $code == 0 ]]; then
        code=1
    fi
    if [[ $code != 0 && $DEPLOYED == 1 ]]; then
        diagnostics
    fi
    phase cleanup
    docker ps -aq --filter "name=agenda-e2e-.*-$RUN_ID" | xargs -r docker rm -f >/dev/null 2>&1
    if [[ "${SWARM_E2E_KEEP:-0}" == 1 ]]; then
        log "SWARM_E2E_KEEP=1: the stack, its volumes, secrets and the swarm are left running"
    else
        remove_stack
        for s in "${CREATED_SECRETS[@]}"; do
            docker secret rm "$s" >/dev/null 2>&1
        done
        if [[ $CREATED_SWARM == 1 ]]; then
            log "leaving the swarm this script created"
            docker swarm leave --force >/dev/null 2>&1
        fi
    fi
    rm -rf "$WORK"
    phase done
    log "phase timings:"
    printf '    %s\n' "${TIMINGS[@]}"
    if [[ $code == 0 ]]; then
        log "SWARM END-TO-END PASSED in $((SECONDS - T0))s"
    else
        log "SWARM END-TO-END FAILED (exit $code) after $((SECONDS - T0))s"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR
trap 'log "interrupted"; exit 124' INT TERM

# Remove the stack and wait until its containers, network and volumes are gone.
remove_stack() {
    local deadline
    if docker service ls -q --filter "label=com.docker.stack.namespace=$STACK" | grep -q .; then
        log "docker stack rm $STACK"
        docker stack rm "$STACK" >/dev/null
    fi
    deadline=$((SECONDS + 90))
    while docker ps -aq --filter "label=com.docker.stack.namespace=$STACK" | grep -q . ||
        docker network inspect "$NET" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then
            log "the stack's containers or network are still there after 90s"
            break
        fi
        sleep 1
    done
    deadline=$((SECONDS + 30))
    while [[ -n "$(stack_volumes)" ]]; do
        stack_volumes | xargs -r docker volume rm >/dev/null 2>&1
        if ((SECONDS > deadline)); then
            log "volumes left behind: $(stack_volumes | tr '\n' ' ')"
            break
        fi
        [[ -z "$(stack_volumes)" ]] || sleep 1
    done
}

# Deploy (or deploy again) the merged stack file.
deploy_stack() {
    AGENDA_STORE_IMAGE="$PREFIX/store:$TAG" AGENDA_API_IMAGE="$PREFIX/api:$TAG" \
        AGENDA_DISCOVERY_IMAGE="$PREFIX/discovery:$TAG" \
        docker stack deploy --resolve-image never -c "$WORK/stack.yml" "$STACK" 2>&1 | sed 's/^/    /'
}

# Wait until the three services run 7 tasks each and every container is healthy.
wait_all_healthy() {
    local deadline=$((SECONDS + 240)) running healthy full
    while :; do
        running=$(docker service ls --filter "label=com.docker.stack.namespace=$STACK" \
            --format '{{.Name}} {{.Replicas}}' | sort | tr '\n' ' ')
        healthy=$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK" --filter health=healthy | wc -l)
        full=$(grep -o "$SLOTS/$SLOTS" <<<"$running" | wc -l || true)
        if [[ $full == 3 && $healthy -ge $((3 * SLOTS)) ]]; then
            log "all running and healthy: $running"
            break
        fi
        if ((SECONDS > deadline)); then
            fail "not healthy after 240s: $running($healthy healthy containers)"
        fi
        if (((SECONDS - PHASE_T0) % 15 == 0)); then
            log "waiting: $running($healthy healthy)"
        fi
        sleep 1
    done
}

# rolling_update SERVICE TIMEOUT WHAT: `docker service update --force` of the service and
# wait until Swarm reports this update completed (fail if it pauses or rolls back).
rolling_update() {
    local service="${STACK}_$1" timeout=$2 what=$3 previous state deadline
    update_status() {
        docker service inspect -f "{{if .UpdateStatus}}{{.UpdateStatus.$1}}{{end}}" "$service"
    }
    previous=$(update_status StartedAt)
    docker service update --force --detach=true "$service" >/dev/null
    log "docker service update --force $service ($what)"
    deadline=$((SECONDS + timeout))
    while :; do
        state=$(update_status State)
        if [[ "$(update_status StartedAt)" != "$previous" ]]; then
            case $state in
                completed) break ;;
                paused | rollback_*) fail "the $1 update ended in state '$state'" ;;
            esac
        fi
        ((SECONDS < deadline)) || fail "the $1 update did not complete within ${timeout}s (state '$state')"
        sleep 1
    done
}

# wait_api_tasks N: exactly N api containers run, all healthy.
wait_api_tasks() {
    local want=$1 deadline=$((SECONDS + 180)) running healthy
    while :; do
        running=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_api" | wc -l)
        healthy=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK}_api" \
            --filter health=healthy | wc -l)
        if [[ $running == "$want" && $healthy == "$want" ]]; then
            log "$want api tasks running and healthy: $(api_hosts)"
            break
        fi
        ((SECONDS < deadline)) || fail "api: $running running, $healthy healthy after 180s (want $want)"
        sleep 1
    done
}

# The running api tasks as a client --api list (api-N:8080 by slot).
api_hosts() {
    docker ps --filter "label=com.docker.swarm.service.name=${STACK}_api" \
        --format '{{.Label "com.docker.swarm.task.name"}}' |
        sed -n "s/^${STACK}_api\.\([0-9]*\)\..*/\1/p" | sort -n | sed 's/.*/api-&:8080/' | paste -sd, -
}

# -----------------------------------------------------------------------------------------
phase "docker engine"
command -v docker >/dev/null || fail "no docker command on this machine"
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || fail "the Docker engine is not running and dockerd is not installed"
    log "starting dockerd (log: /tmp/dockerd.log); it is left running"
    # Its own session: the timeout's signal to this script's process group must not
    # stop the engine the cleanup needs.
    setsid dockerd >/tmp/dockerd.log 2>&1 </dev/null &
    deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "dockerd did not answer within 60s (see /tmp/dockerd.log)"
        sleep 1
    done
fi
log "engine $(docker version --format '{{.Server.Version}}'), storage $(docker info --format '{{.Driver}}')"

phase "build images"
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
    for i in store api discovery e2e-client; do
        docker image inspect "$PREFIX/$i:$TAG" >/dev/null || fail "SKIP_BUILD=1 but $PREFIX/$i:$TAG is missing"
    done
    log "reusing the existing images"
else
    AGENDA_TAG="$TAG" AGENDA_IMAGE_PREFIX="$PREFIX" "$ROOT/docker/build-images.sh"
fi

phase "swarm"
state="$(docker info --format '{{.Swarm.LocalNodeState}}')"
if [[ $state == inactive ]]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    CREATED_SWARM=1
    log "swarm initialised (will leave it at the end)"
else
    [[ "$(docker info --format '{{.Swarm.ControlAvailable}}')" == true ]] ||
        fail "this engine is in a swarm ($state) but not a manager"
    log "using the existing swarm ($state)"
fi
leftovers="$(docker service ls -q --filter "label=com.docker.stack.namespace=$STACK")$(stack_volumes)"
if [[ -n $leftovers ]] || docker network inspect "$NET" >/dev/null 2>&1; then
    if [[ "${SWARM_E2E_RESET:-0}" == 1 || "${CI:-}" == true ]]; then
        log "removing leftovers of an earlier '$STACK' stack"
        remove_stack
    else
        fail "a '$STACK' stack, the $NET network or agenda-* volumes already exist; remove them or set SWARM_E2E_RESET=1"
    fi
fi
for s in "${SECRETS[@]}"; do
    docker secret inspect "$s" >/dev/null 2>&1 || CREATED_SECRETS+=("$s")
done
# The CA key of this run stays in the run's temporary folder and goes with it.
AGENDA_PKI_DIR="$WORK/pki" "$ROOT/deploy/create-secrets.sh" | sed 's/^/    /'

phase "deploy stack"
docker stack config --help >/dev/null 2>&1 || fail "this Docker CLI has no 'docker stack config' (needs 23.0 or later)"
# An override cannot remove the api's ingress port, and Swarm refuses ingress ports with
# dnsrr: deploy the merged file with that block stripped (see docker-stack.ci.yml).
docker stack config -c "$ROOT/deploy/docker-stack.yml" -c "$ROOT/deploy/docker-stack.ci.yml" \
    >"$WORK/merged.yml"
awk '
    /^[^ ]/ { top = $1 }
    top == "services:" && /^  [^ ]/ { service = $1 }
    top == "services:" && service == "api:" && /^    ports:/ { skipping = 1; next }
    skipping && /^      / { next }
    { skipping = 0; print }
' "$WORK/merged.yml" >"$WORK/stack.yml"
! grep -q 'published:' "$WORK/stack.yml" || fail "could not strip the published port"
deploy_stack
DEPLOYED=1

phase "wait for 21 healthy tasks"
wait_all_healthy

phase "client: wait-healthy"
client wait-healthy wait-healthy --voters "$SLOTS" --timeout 180 || fail "the cluster did not become healthy"

phase "client: smoke story"
client smoke smoke --timeout 120 || fail "smoke story"

phase "kill the leader's store"
leader_line="$(client leader leader --timeout 60)" || fail "no leader"
log "$leader_line"
leader_slot=$(sed -n 's/.*leader_slot=\([0-9]*\).*/\1/p' <<<"$leader_line")
leader_raft_id=$(sed -n 's/.*leader_raft_id=\([0-9]*\).*/\1/p' <<<"$leader_line")
[[ -n $leader_slot && -n $leader_raft_id ]] || fail "cannot parse '$leader_line'"
victim=$(task_container store "$leader_slot")
[[ -n $victim ]] || fail "no running container for ${STACK}_store slot $leader_slot"
volume=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$victim")
log "leader: slot $leader_slot, Raft id $leader_raft_id, container $victim, volume $volume"
writer=$(start_writer kill --duration 35 --concurrency 4)
log "writer $writer started; killing the leader in 5s"
sleep 5
docker kill "$victim" >/dev/null
killed_at=$SECONDS
log "docker kill $victim"
deadline=$((SECONDS + 150))
while :; do
    replacement=$(task_container store "$leader_slot")
    if [[ -n $replacement && $replacement != "$victim" ]] &&
        [[ "$(docker inspect -f '{{.State.Health.Status}}' "$replacement" 2>/dev/null)" == healthy ]]; then
        break
    fi
    ((SECONDS < deadline)) || fail "Swarm did not restart store slot $leader_slot within 150s"
    sleep 1
done
new_volume=$(docker inspect -f '{{range .Mounts}}{{if eq .Destination "/data"}}{{.Name}}{{end}}{{end}}' "$replacement")
log "Swarm restarted slot $leader_slot as $replacement in $((SECONDS - killed_at))s (volume $new_volume)"
[[ $new_volume == "$volume" ]] || fail "the new task mounted $new_volume instead of $volume"
log "waiting for the writer (it runs 35s)"
finish_writer "$writer" wait
client check-slot check-slot --slot "$leader_slot" --raft-id "$leader_raft_id" --timeout 90 ||
    fail "slot $leader_slot did not rejoin as Raft id $leader_raft_id"
leader_line="$(client leader-after leader --timeout 30)" || fail "no leader after the kill"
log "now $leader_line"
new_leader=$(sed -n 's/.*leader_raft_id=\([0-9]*\).*/\1/p' <<<"$leader_line")
[[ $new_leader != "$leader_raft_id" ]] ||
    fail "no failover: the killed leader is leader again (it came back before the others elected one)"

phase "rolling update of api under load"
writer=$(start_writer roll --duration 600 --concurrency 4)
log "writer $writer started"
sleep 3
before=$(docker service ps -q --filter desired-state=running "${STACK}_api" | sort | tr '\n' ' ')
rolling_update api 300 "one slot at a time, start-first"
after=$(docker service ps -q --filter desired-state=running "${STACK}_api" | sort | tr '\n' ' ')
replaced=$(comm -12 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | grep -c . || true)
[[ $replaced == 0 ]] || fail "$replaced api tasks were not replaced"
log "update completed in $((SECONDS - PHASE_T0))s; every api task replaced; stopping the writer"
sleep 3
finish_writer "$writer" stop
client final-health wait-healthy --voters "$SLOTS" --timeout 60 || fail "unhealthy after the update"

phase "rolling update of store under load"
writer=$(start_writer store-roll --duration 900 --concurrency 4)
log "writer $writer started"
sleep 3
rolling_update store 600 "one slot at a time, stop-first; leaders hand over"
log "store update completed in $((SECONDS - PHASE_T0))s; stopping the writer"
sleep 3
finish_writer "$writer" stop
client final-health-2 wait-healthy --voters "$SLOTS" --timeout 60 || fail "unhealthy after the store update"

phase "scale api 7 -> 14 -> 3 -> 7 under load"
# The writer names api-1..api-14 from the start: a name that does not resolve (yet, or
# any more) is a transport error the client retries on the next API, as a load balancer
# would. --every-api: each of the 14 must have acknowledged writes.
all_apis=$(seq 1 14 | sed 's/.*/api-&:8080/' | paste -sd, -)
writer=$(start_writer scale --duration 900 --concurrency 4 --every-api --api "$all_apis")
log "writer $writer started (api-1..api-14)"
sleep 3
docker service scale --detach=true "${STACK}_api=14" >/dev/null
log "docker service scale ${STACK}_api=14"
wait_api_tasks 14
client extra-apis wait-healthy --api "$(seq 8 14 | sed 's/.*/api-&:8080/' | paste -sd, -)" \
    --voters "$SLOTS" --timeout 90 || fail "the extra APIs api-8..api-14 are not ready"
log "api-8..api-14 ready (they found the stores through discovery); writing through all 14 for 10s"
sleep 10
docker service scale --detach=true "${STACK}_api=3" >/dev/null
log "docker service scale ${STACK}_api=3"
wait_api_tasks 3
sleep 5
finish_writer "$writer" stop
client after-scale-in wait-healthy --api "$(api_hosts)" --voters "$SLOTS" --timeout 60 ||
    fail "the remaining APIs are not healthy"
docker service scale --detach=true "${STACK}_api=7" >/dev/null
log "docker service scale ${STACK}_api=7"
wait_api_tasks 7
client after-scale-back wait-healthy --api "$(api_hosts)" --voters "$SLOTS" --timeout 90 ||
    fail "unhealthy after scaling back to 7"

phase "backup and restore round trip"
before_user="e2e-before-backup-$RUN_ID"
after_user="e2e-after-backup-$RUN_ID"
client mark-before mark --api "$(api_hosts)" --user "$before_user" || fail "could not write the first marker"
task=$(task_container store 1)
[[ -n $task ]] || fail "no running container for ${STACK}_store slot 1"
if ! docker exec "$task" /consensus-svc admin backup --out /backups/e2e.backup 2>&1 | sed 's/^/    /'; then
    fail "admin backup failed"
fi
if ! docker exec "$task" /consensus-svc admin verify /backups/e2e.backup 2>&1 | sed 's/^/    /'; then
    fail "admin verify failed"
fi
docker cp "$task:/backups/e2e.backup" "$WORK/e2e.backup" >/dev/null || fail "could not copy the backup out"
log "backup of $(stat -c %s "$WORK/e2e.backup") bytes copied out of $task"
client mark-after mark --api "$(api_hosts)" --user "$after_user" || fail "could not write the second marker"
remove_stack
[[ -z "$(stack_volumes)" ]] || fail "the old volumes are still there: $(stack_volumes | tr '\n' ' ')"
# The image runs as uid 65534: it must be able to read the file.
chmod 755 "$WORK"
chmod 644 "$WORK/e2e.backup"
if ! docker run --rm -v agenda-store-1:/data -v "$WORK:/backup:ro" "$PREFIX/store:$TAG" \
    admin restore --from /backup/e2e.backup --data-dir /data --slot agenda-1 --advertise store-1:7000 2>&1 |
    sed 's/^/    /'; then
    fail "admin restore failed"
fi
log "restored into agenda-store-1; deploying the stack again (slots 2-7 start empty)"
deploy_stack
wait_all_healthy
client restored-health wait-healthy --voters "$SLOTS" --timeout 180 || fail "the restored cluster is not healthy"
client check-before check-mark --user "$before_user" --timeout 60 ||
    fail "the user written before the backup is not in the restored cluster"
client check-after check-mark --user "$after_user" --absent --timeout 60 ||
    fail "the user written after the backup is in the restored cluster"

RESULT=0
