#!/usr/bin/env bash
# Runs the whole system on this machine without Docker: real Postgres, Redis, RabbitMQ and an S3
# emulator as local processes (eng/services.sh), and the Aspire AppHost in external-services mode
# with its dashboard. Stop with Ctrl+C; `eng/services.sh stop` stops the services too.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Durable Postgres: what runs here is meant to keep its jobs across a crash (tests run it without fsync).
eval "$(ECI_DURABLE=1 eng/services.sh start)"

# One database per service, created once.
pg() { PGPASSWORD=eci-test psql -h 127.0.0.1 -p "${ECI_PG_PORT:-55432}" -U postgres -tAq "$@"; }
for db in intakedb provisionerdb secretsdb cachedb; do
  [ "$(pg -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" = 1 ] || pg -c "CREATE DATABASE $db" >/dev/null
  export "ConnectionStrings__$db=$ECI_POSTGRES;Database=$db"
done
export ConnectionStrings__redis="$ECI_REDIS" ConnectionStrings__rabbitmq="$ECI_RABBITMQ" ConnectionStrings__minio="$ECI_S3"
export Infrastructure__Mode=External

# A stable first admin key for this machine, kept beside the services' state.
key_file="${ECI_SERVICES_DIR:-/tmp/eci-services}/admin-key"
[ -f "$key_file" ] || echo "eci_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')" >"$key_file"
export EphemeralCI__BootstrapAdminKey="$(cat "$key_file")"
echo "EphemeralCI admin API key (also in $key_file): $EphemeralCI__BootstrapAdminKey"
echo "The intake API and the dashboard URLs follow below (dashboard login link in the log)."

exec dotnet run --project AppHost --launch-profile http
