#!/usr/bin/env bash
# A PostgreSQL server on loopback for multi-worker Optuna studies (tests, or trying
# `tune.storage=postgresql+psycopg://musweep:musweep@127.0.0.1:5432/musweep` on one machine).
# Debian's postgresql package; needs root; idempotent. Returns once the server accepts
# connections (and fails if it does not within 60 s).
set -euo pipefail

if ! command -v pg_lsclusters >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
cluster=$(pg_lsclusters -h | awk 'NR==1 {print $2}')
pg_lsclusters -h | awk 'NR==1 {print $4}' | grep -q online || pg_ctlcluster "$version" "$cluster" start
port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')
for _ in $(seq 1 60); do  # "online" is not "accepting connections": wait for the latter
    pg_isready -q -h 127.0.0.1 -p "$port" && break
    sleep 1
done
if ! pg_isready -q -h 127.0.0.1 -p "$port"; then
    echo "PostgreSQL did not accept connections on 127.0.0.1:$port; see /var/log/postgresql/" >&2
    exit 1
fi

psql_() { runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 "$@"; }
psql_ -tc "SELECT 1 FROM pg_roles WHERE rolname='musweep'" | grep -q 1 \
    || psql_ -c "CREATE ROLE musweep LOGIN PASSWORD 'musweep'"
psql_ -tc "SELECT 1 FROM pg_database WHERE datname='musweep'" | grep -q 1 \
    || psql_ -c "CREATE DATABASE musweep OWNER musweep"
echo "postgresql+psycopg://musweep:musweep@127.0.0.1:$port/musweep"
