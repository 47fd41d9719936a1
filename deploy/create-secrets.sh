#!/usr/bin/env bash
# Create Agenda's secrets: three random values (32 random bytes from /dev/urandom, written
# as 64 hex characters) and the cluster's certificates (a CA and one certificate per
# sidecar role, issued with rcgen by `agenda-local certs`). Nothing is printed and
# nothing is committed.
#
#   deploy/create-secrets.sh                 # Docker secrets in the current swarm
#   deploy/create-secrets.sh --files DIR     # files for deploy/docker-compose.yml
#
# Secrets (Docker secret name = file name):
#   agenda_cluster_hmac     CLUSTER_HMAC_SECRET_FILE: signs every gRPC call between sidecars
#   agenda_jwt_secret       JWT_SECRET_FILE: signs user tokens
#   agenda_audit_token      AUDIT_API_TOKEN_FILE: X-Audit-Token of GET /api/admin/audit/logs
#   agenda_cluster_ca       CLUSTER_TLS_CA_FILE: the cluster CA (every sidecar)
#   agenda_<role>_cert      CLUSTER_TLS_CERT_FILE of the store, api and discovery services
#   agenda_<role>_key       CLUSTER_TLS_KEY_FILE of the same
#
# The CA's private key never becomes a secret: it stays in AGENDA_PKI_DIR (default
# ./agenda-pki, mode 0700) on the machine that ran this script, for issuing certificates
# later (rotation, docs/operations.md). Keep that folder offline.
#
# Existing secrets are kept (a Docker secret in use cannot be replaced; rotating one is a
# procedure, see docs/operations.md), so running this again is harmless. The certificate
# generator is `agenda-local` (AGENDA_LOCAL_BIN, else a built one under target/, else
# `cargo run --release -p agenda-local`).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
RANDOM_NAMES=(agenda_cluster_hmac agenda_jwt_secret agenda_audit_token)
TLS_NAMES=(agenda_cluster_ca agenda_store_cert agenda_store_key agenda_api_cert agenda_api_key
    agenda_discovery_cert agenda_discovery_key)

random_secret() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

usage() {
    sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
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

# The certificate generator.
agenda_local() {
    if [[ -n "${AGENDA_LOCAL_BIN:-}" ]]; then
        "$AGENDA_LOCAL_BIN" "$@"
        return
    fi
    local target="${CARGO_TARGET_DIR:-$ROOT/target}" candidate
    for candidate in "$target/x86_64-unknown-linux-gnu/release/agenda-local" \
        "$target/release/agenda-local" "$target/debug/agenda-local"; do
        if [[ -x "$candidate" ]]; then
            "$candidate" "$@"
            return
        fi
    done
    (cd "$ROOT" && cargo run -q --release -p agenda-local -- "$@")
}

# Issue the CA (kept in AGENDA_PKI_DIR) and one certificate per role into it; prints the
# folder. Reuses the CA already there.
issue_certificates() {
    local pki="${AGENDA_PKI_DIR:-$PWD/agenda-pki}"
    mkdir -p "$pki"
    chmod 0700 "$pki"
    agenda_local certs --out "$pki" >/dev/null
    echo "$pki"
}

# The file holding the value of secret $1 in the certificate folder $2.
tls_file() {
    local name=$1 pki=$2
    case "$name" in
        agenda_cluster_ca) echo "$pki/ca-bundle.crt" ;;
        agenda_*_cert) local role=${name#agenda_}; echo "$pki/${role%_cert}.crt" ;;
        agenda_*_key) local role=${name#agenda_}; echo "$pki/${role%_key}.key" ;;
    esac
}

if [[ $mode == files ]]; then
    mkdir -p "$dir"
    chmod 0700 "$dir"
    for name in "${RANDOM_NAMES[@]}"; do
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
    missing=0
    for name in "${TLS_NAMES[@]}"; do
        [[ -s "$dir/$name" ]] || missing=1
    done
    if [[ $missing == 0 ]]; then
        echo "kept    the certificates in $dir"
        exit 0
    fi
    pki="$(AGENDA_PKI_DIR="${AGENDA_PKI_DIR:-$dir/pki}" issue_certificates)"
    for name in "${TLS_NAMES[@]}"; do
        install -m 0444 "$(tls_file "$name" "$pki")" "$dir/$name"
        echo "created $dir/$name"
    done
    exit 0
fi

if [[ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" != true ]]; then
    echo "this Docker engine is not a swarm manager (docker swarm init first)" >&2
    exit 1
fi
for name in "${RANDOM_NAMES[@]}"; do
    if docker secret inspect "$name" >/dev/null 2>&1; then
        echo "kept    secret $name"
        continue
    fi
    random_secret | docker secret create \
        --label org.agenda.created-by=create-secrets.sh "$name" - >/dev/null
    echo "created secret $name"
done
present=0
for name in "${TLS_NAMES[@]}"; do
    docker secret inspect "$name" >/dev/null 2>&1 && present=$((present + 1))
done
if [[ $present == "${#TLS_NAMES[@]}" ]]; then
    echo "kept    the certificate secrets"
    exit 0
fi
if [[ $present != 0 ]]; then
    echo "only $present of the ${#TLS_NAMES[@]} certificate secrets exist; remove them or follow the rotation procedure in docs/operations.md" >&2
    exit 1
fi
pki="$(issue_certificates)"
for name in "${TLS_NAMES[@]}"; do
    docker secret create --label org.agenda.created-by=create-secrets.sh "$name" "$(tls_file "$name" "$pki")" >/dev/null
    echo "created secret $name"
done
echo "the CA's private key is in $pki/ca.key: keep it offline, it issues cluster certificates"
