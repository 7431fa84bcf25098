#!/usr/bin/env bash
# Real Postgres, Redis, RabbitMQ and an S3 emulator as plain local processes on loopback ports,
# for tests and for running the AppHost in external mode on a machine without Docker.
#
#   eng/services.sh start   install what is missing, start everything, print `export ECI_...` lines
#   eng/services.sh env     print the export lines of the running services
#   eng/services.sh stop    stop everything and delete the state folder
#
# Typical use:  eval "$(eng/services.sh start)"
# State lives in $ECI_SERVICES_DIR (default /tmp/eci-services); ports are fixed and unusual so they
# do not collide with a developer's own servers. Progress goes to stderr, exports to stdout.
set -euo pipefail

DIR="${ECI_SERVICES_DIR:-/tmp/eci-services}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_PORT="${ECI_PG_PORT:-55432}"
REDIS_PORT="${ECI_REDIS_PORT:-56379}"
AMQP_PORT="${ECI_AMQP_PORT:-55672}"
S3_PORT="${ECI_S3_PORT:-59000}"
PG_BIN="/usr/lib/postgresql/15/bin"
PG_PASSWORD="eci-test"
S3_KEY="S3RVER"

log() { echo "services: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_missing() {
  local need=()
  [ -x "$PG_BIN/initdb" ] || need+=(postgresql-15)
  command -v redis-server >/dev/null || need+=(redis-server)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
  command -v bwrap >/dev/null || need+=(bubblewrap)
  dpkg -s libseccomp2 >/dev/null 2>&1 || need+=(libseccomp2)  # the sandboxes' system call filter
  [ -x /usr/bin/python3 ] || need+=(python3)     # hostile-job tests: direct system calls from a step
  dpkg -s python3-cryptography >/dev/null 2>&1 || need+=(python3-cryptography)  # attestation tests: a second DSSE verifier
  command -v strace >/dev/null || need+=(strace) # a step may still trace its own child
  command -v node >/dev/null || need+=(nodejs npm)
  command -v unzip >/dev/null || need+=(unzip)   # eng/kubectl.sh unpacks kubectl with it
  command -v nft >/dev/null || need+=(nftables)  # egress runners' per-job firewall
  command -v ip >/dev/null || need+=(iproute2)
  command -v curl >/dev/null || need+=(curl)
  command -v gcc >/dev/null || command -v clang >/dev/null || need+=(gcc libc6-dev)  # links the native runner agent
  command -v ccache >/dev/null || need+=(ccache)   # the remote build cache used from a job's steps (tests, examples/)
  command -v make >/dev/null || need+=(make)       # examples/ccache-remote.yml
  command -v mmdebstrap >/dev/null || need+=(mmdebstrap)  # eng/images.sh: the images' Debian roots
  command -v umoci >/dev/null || need+=(umoci)            # eng/images.sh: assembles the OCI images
  [ -x /usr/sbin/sshd ] || need+=(openssh-server)         # a private SSH forge for the deploy-key checkout tests
  command -v git-lfs >/dev/null || need+=(git-lfs)        # LFS checkout in runners (runners use this machine's /usr)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    as_root apt-get -o DPkg::Lock::Timeout=300 update -q >&2
    # Debian starts services on install where it can; we run our own copies, so ask it not to.
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=300 install -y -q "${need[@]}" >&2
    as_root rm -f /usr/sbin/policy-rc.d
  fi
  if [ ! -d "$ROOT/eng/s3/node_modules/s3rver" ]; then
    log "installing the S3 emulator (npm s3rver)"
    (cd "$ROOT/eng/s3" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
}

wait_port() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  log "$1 did not open port $2; see $DIR/$1.log"; tail -20 "$DIR/$1.log" >&2 || true
  return 1
}

start_postgres() {
  # Postgres refuses to run as root: its folder belongs to the postgres user when we are root.
  local home="$DIR/postgres"
  if [ ! -d "$home/data" ]; then
    mkdir -p "$home"
    echo "$PG_PASSWORD" >"$home/password"
    [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$home"
    as_pg "$PG_BIN/initdb -D '$home/data' -U postgres --auth=scram-sha-256 --pwfile='$home/password' -E UTF8 --no-locale >'$home/init.log' 2>&1"
  fi
  # Every test fixture has its own database and connection pool, and the suite keeps many alive at once (300 ran out
  # once the GitHub adapter and web UI tests came: "53300 too many clients"); 1000 costs little memory.
  # Tests trade durability for speed; ECI_DURABLE=1 (eng/run.sh) keeps Postgres' defaults, so a crash loses no commit.
  local speed="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [ "${ECI_DURABLE:-}" = 1 ] && speed=""
  as_pg "$PG_BIN/pg_ctl -D '$home/data' -l '$home/postgres.log' -w -o \"-p $PG_PORT -k '$home' -c listen_addresses=127.0.0.1 -c max_connections=1000 $speed\" start" >&2
  wait_port postgres "$PG_PORT" 30
}

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$1"; else sh -c "$1"; fi; }

start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$DIR/redis.pid" --logfile "$DIR/redis.log" --dir "$DIR" >&2
  wait_port redis "$REDIS_PORT" 20
}

start_rabbitmq() {
  mkdir -p "$DIR/rabbitmq"
  # Everything RabbitMQ (and Erlang) writes goes under $DIR; its own epmd on a private port.
  export HOME="$DIR/rabbitmq" RABBITMQ_NODENAME=rabbit@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$AMQP_PORT" RABBITMQ_DIST_PORT=$((AMQP_PORT + 1)) ERL_EPMD_PORT=$((AMQP_PORT + 2)) \
    RABBITMQ_MNESIA_BASE="$DIR/rabbitmq/mnesia" RABBITMQ_LOG_BASE="$DIR/rabbitmq/log" \
    RABBITMQ_PID_FILE="$DIR/rabbitmq/rabbit.pid" RABBITMQ_CONFIG_FILE="$DIR/rabbitmq/rabbitmq" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/rabbitmq/enabled_plugins" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$DIR/rabbitmq/advanced.config" ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  # guest may log in from any address (loopback_users = none): every listener is on loopback.
  # The management API lets each test create a virtual host of its own, so test runs that share
  # this broker never consume each other's messages.
  printf 'loopback_users = none\nlisteners.tcp.default = 127.0.0.1:%s\nmanagement.tcp.ip = 127.0.0.1\nmanagement.tcp.port = %s\n' \
    "$AMQP_PORT" "$((AMQP_PORT + 3))" >"$DIR/rabbitmq/rabbitmq.conf"
  echo '[rabbitmq_management].' >"$DIR/rabbitmq/enabled_plugins"
  echo '[].' >"$DIR/rabbitmq/advanced.config"
  nohup /usr/lib/rabbitmq/bin/rabbitmq-server >"$DIR/rabbitmq.log" 2>&1 &
  echo $! >"$DIR/rabbitmq-launcher.pid"
  /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost wait --timeout 90 "$DIR/rabbitmq/rabbit.pid" >/dev/null 2>&1 \
    || { log "rabbitmq did not start; see $DIR/rabbitmq.log"; tail -30 "$DIR/rabbitmq.log" >&2; return 1; }
  wait_port rabbitmq "$AMQP_PORT" 30
  wait_port rabbitmq "$((AMQP_PORT + 3))" 30
}

start_s3() {
  mkdir -p "$DIR/s3"
  nohup node "$ROOT/eng/s3/node_modules/s3rver/bin/s3rver.js" --address 127.0.0.1 --port "$S3_PORT" \
    --directory "$DIR/s3" --silent >"$DIR/s3.log" 2>&1 &
  echo $! >"$DIR/s3.pid"
  wait_port s3 "$S3_PORT" 20
}

print_env() {
  cat <<EOF
export ECI_POSTGRES='Host=127.0.0.1;Port=$PG_PORT;Username=postgres;Password=$PG_PASSWORD'
export ECI_REDIS='127.0.0.1:$REDIS_PORT'
export ECI_RABBITMQ='amqp://guest:guest@127.0.0.1:$AMQP_PORT/'
export ECI_RABBITMQ_MANAGEMENT='http://127.0.0.1:$((AMQP_PORT + 3))'
export ECI_S3='Endpoint=http://127.0.0.1:$S3_PORT;AccessKey=$S3_KEY;SecretKey=$S3_KEY'
EOF
}

is_up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  install_missing
  mkdir -p "$DIR"
  is_up "$PG_PORT" && log "postgres already running" || start_postgres
  is_up "$REDIS_PORT" && log "redis already running" || start_redis
  is_up "$AMQP_PORT" && log "rabbitmq already running" || start_rabbitmq
  is_up "$S3_PORT" && log "s3 emulator already running" || start_s3
  print_env >"$DIR/env"
  log "all up; state in $DIR"
  print_env
}

kill_pidfile() { [ -f "$1" ] && kill "$(cat "$1")" 2>/dev/null || true; }

stop() {
  [ -d "$DIR" ] || { log "nothing running"; return 0; }
  [ -d "$DIR/postgres/data" ] && { as_pg "$PG_BIN/pg_ctl -D '$DIR/postgres/data' -m immediate stop" >/dev/null 2>&1 || true; }
  kill_pidfile "$DIR/redis.pid"
  kill_pidfile "$DIR/s3.pid"
  if [ -f "$DIR/rabbitmq/rabbit.pid" ]; then
    HOME="$DIR/rabbitmq" ERL_EPMD_PORT=$((AMQP_PORT + 2)) /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit@localhost stop "$DIR/rabbitmq/rabbit.pid" >/dev/null 2>&1 \
      || kill_pidfile "$DIR/rabbitmq/rabbit.pid"
  fi
  kill_pidfile "$DIR/rabbitmq-launcher.pid"
  # epmd outlives the broker: stop the one we started, found by the private port it listens on —
  # never every epmd of this user (another RabbitMQ on this machine may need its own).
  local epmd
  epmd="$(ss -Hltnp "sport = :$((AMQP_PORT + 2))" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)"
  [ -n "$epmd" ] && kill "$epmd" 2>/dev/null || true
  rm -rf "$DIR"
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) [ -f "$DIR/env" ] && cat "$DIR/env" || { log "not running; use start"; exit 1; } ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
