#!/usr/bin/env bash
# Create Agenda's three secrets with random values (32 random bytes from /dev/urandom,
# written as 64 hex characters). Nothing is printed and nothing is committed.
#
#   deploy/create-secrets.sh                 # Docker secrets in the current swarm
#   deploy/create-secrets.sh --files DIR     # files for deploy/docker-compose.yml
#
# Secrets (Docker secret name = file name):
#   agenda_cluster_hmac   CLUSTER_HMAC_SECRET_FILE: signs every gRPC call between sidecars
#   agenda_jwt_secret     JWT_SECRET_FILE: signs user tokens
#   agenda_audit_token    AUDIT_API_TOKEN_FILE: X-Audit-Token of GET /api/admin/audit/logs
#
# Existing secrets are kept (a Docker secret in use cannot be replaced; rotating one is a
# procedure, see docs/operations.md), so running this again is harmless.
set -euo pipefail

NAMES=(agenda_cluster_hmac agenda_jwt_secret agenda_audit_token)

random_secret() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

mode=swarm
dir=
case "${1:-}" in
    "") ;;
    --files)
        mode=files
        dir="${2:-}"
        [[ -n "$dir" ]] || usage
        ;;
    -h | --help) usage ;;
    *) usage ;;
esac

if [[ $mode == files ]]; then
    mkdir -p "$dir"
    chmod 0700 "$dir"
    for name in "${NAMES[@]}"; do
        file="$dir/$name"
        if [[ -s "$file" ]]; then
            echo "kept    $file"
            continue
        fi
        (umask 077 && random_secret >"$file")
        # The containers run as nobody (65534) and compose bind-mounts the file as is;
        # the folder (0700) keeps other host users out.
        chmod 0444 "$file"
        echo "created $file"
    done
    exit 0
fi

if [[ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" != true ]]; then
    echo "this Docker engine is not a swarm manager (docker swarm init first)" >&2
    exit 1
fi
for name in "${NAMES[@]}"; do
    if docker secret inspect "$name" >/dev/null 2>&1; then
        echo "kept    secret $name"
        continue
    fi
    random_secret | docker secret create \
        --label org.agenda.created-by=create-secrets.sh "$name" - >/dev/null
    echo "created secret $name"
done
