#!/usr/bin/env bash
# Starts every Warden service as its own process against PostgreSQL and Redis on loopback:
# token, rbac, key and auth on gRPC ports 50061-50064 (plaintext gRPC health alone on
# 50071-50074, Prometheus /metrics on 9091-9094), the gateway on HTTP 8080 (/metrics there).
# Usage: deploy/split-mode.sh [path/to/warden]   (Ctrl-C stops them all)
set -euo pipefail
WARDEN=${1:-target/release/warden}
export WARDEN_DATABASE_URL=${WARDEN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/warden}
export WARDEN_REDIS_URL=${WARDEN_REDIS_URL:-redis://127.0.0.1:6379}
export WARDEN_TOKEN_ENDPOINTS=http://127.0.0.1:50061
export WARDEN_RBAC_ENDPOINTS=http://127.0.0.1:50062
export WARDEN_KEY_ENDPOINTS=http://127.0.0.1:50063
export WARDEN_AUTH_ENDPOINTS=http://127.0.0.1:50064

db=${WARDEN_DATABASE_URL##*/}
psql "${WARDEN_DATABASE_URL%/*}/postgres" -Atqc "SELECT 1 FROM pg_database WHERE datname='$db'" | grep -q 1 ||
  psql "${WARDEN_DATABASE_URL%/*}/postgres" -qc "CREATE DATABASE \"$db\""
"$WARDEN" migrate

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
n=1
# One request thread each (auth's hashing threads are its own): five processes share this
# host's cores, and spare threads would mostly wake each other (docs/deployment.md).
threads=${WARDEN_WORKER_THREADS:-1}
for service in token rbac key auth; do
  WARDEN_GRPC_ADDR=127.0.0.1:5006$n WARDEN_HEALTH_ADDR=127.0.0.1:5007$n WARDEN_METRICS_ADDR=127.0.0.1:909$n \
    WARDEN_WORKER_THREADS=$threads "$WARDEN" serve --service "$service" & pids+=($!)
  n=$((n + 1))
done
WARDEN_HTTP_ADDR=127.0.0.1:8080 WARDEN_WORKER_THREADS=$threads "$WARDEN" serve --service gateway & pids+=($!)
wait -n
