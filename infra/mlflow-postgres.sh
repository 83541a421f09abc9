#!/usr/bin/env bash
# An MLflow tracking server on a PostgreSQL backend store, both listening on 127.0.0.1 only:
#   infra/mlflow-postgres.sh start     # prints the tracking URI: export MLFLOW_TRACKING_URI=<it>
#   infra/mlflow-postgres.sh status
#   infra/mlflow-postgres.sh stop
# PostgreSQL is Debian's (`apt-get install postgresql` when missing and running as root). The cluster, the
# logs, the artifact store and a state file live under $MLFLOW_PG_HOME (default $LAKEHOUSE_HOME/mlflow-postgres).
# Settings (environment): LAKEHOUSE_HOME (./lakehouse-data), MLFLOW_PG_HOME, MLFLOW_PG_DATA (the cluster,
# default $MLFLOW_PG_HOME/pgdata), MLFLOW_PORT and MLFLOW_PG_PORT (default: free ports), PG_BINDIR
# (default: the newest /usr/lib/postgresql/*/bin), MLFLOW_PG_OS_USER (the server's OS user when run as root:
# postgres), PYTHON (the venv's python, which has mlflow and psycopg2).
# Credentials: the `mlflow` role logs in over TCP with a random password (scram-sha-256) kept in a 0600
# pgpass file that MLflow reads through PGPASSFILE: it is never on a command line, in the URI or in a log.
# The superuser is reachable only through the cluster's Unix socket (peer authentication).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
lake_home="${LAKEHOUSE_HOME:-$PWD/lakehouse-data}"
home="${MLFLOW_PG_HOME:-$lake_home/mlflow-postgres}"
pgdata="${MLFLOW_PG_DATA:-$home/pgdata}"
state="$home/state.env"
pgpass="$home/pgpass"
artifacts="$home/artifacts"
role=mlflow
database=mlflow

die() { echo "mlflow-postgres: $*" >&2; exit 1; }
say() { echo "mlflow-postgres: $*" >&2; }

pg_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local dir
  # Debian keeps each major version's binaries off PATH, in /usr/lib/postgresql/<major>/bin: the newest wins.
  for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5 -n -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return; }
  done
  command -v initdb >/dev/null 2>&1 && dirname "$(readlink -f "$(command -v initdb)")"
}

ensure_postgres() {
  bindir="$(pg_bindir || true)"
  if [ -z "$bindir" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing Debian's postgresql (apt-get)"
      if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }; then
        die "apt-get install postgresql failed"
      fi
      bindir="$(pg_bindir || true)"
    fi
    [ -n "$bindir" ] || die "PostgreSQL is not installed: run 'apt-get install postgresql' as root (or set PG_BINDIR)"
  fi
  psql="$bindir/psql"
  [ -x "$psql" ] || psql="$(command -v psql || true)"
  [ -n "$psql" ] || die "psql not found next to $bindir/initdb"
}

# PostgreSQL refuses to run as root: as root, the cluster belongs to an unprivileged OS user.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi
}

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

load_state() {
  [ -f "$state" ] || return 1
  # shellcheck disable=SC1090
  . "$state"
}

mlflow_alive() { [ -n "${MLFLOW_PID:-}" ] && kill -0 "$MLFLOW_PID" 2>/dev/null; }

healthy() {
  "$python" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).status == 200 else 1)
except OSError:
    sys.exit(1)' "http://127.0.0.1:$1"
}

init_cluster() {
  pg_user="${MLFLOW_PG_OS_USER:-postgres}"
  [ "$(id -u)" = 0 ] && { id "$pg_user" >/dev/null 2>&1 || die "OS user $pg_user does not exist (set MLFLOW_PG_OS_USER)"; }
  [ "$(id -u)" = 0 ] || pg_user="$(id -un)"
  mkdir -p "$home" "$artifacts" "$pgdata"
  chmod 700 "$home" "$pgdata"
  if [ "$(id -u)" = 0 ]; then
    chown "$pg_user" "$pgdata"
    chmod 711 "$home"  # the cluster's user passes through (to pgdata), lists nothing
  fi
  as_pg test -w "$pgdata" \
    || die "the $pg_user user cannot reach $pgdata (a parent directory is private): set MLFLOW_PG_DATA to a directory it can reach"
  # The Unix socket lives in the data directory (private to the cluster's user); its path has a length limit.
  [ "${#pgdata}" -lt 90 ] || die "MLFLOW_PG_DATA=$pgdata is too long for a Unix socket path: choose a shorter one"
  if [ ! -f "$pgdata/PG_VERSION" ]; then
    say "initdb $pgdata (superuser $pg_user, peer on the socket; scram-sha-256 on 127.0.0.1)"
    as_pg "$bindir/initdb" -D "$pgdata" --no-locale -E UTF8 --auth-local=peer --auth-host=scram-sha-256 >/dev/null
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$pgdata'"
      echo "unix_socket_permissions = 0700"
      echo "password_encryption = 'scram-sha-256'"
    } | as_pg tee -a "$pgdata/postgresql.conf" >/dev/null
  fi
}

credentials() {
  # A random password for the role, kept only in the 0600 pgpass file (libpq reads it via PGPASSFILE).
  local password=""
  if [ -f "$pgpass" ]; then IFS=: read -r _ _ _ _ password < "$pgpass"; fi
  if [ -z "$password" ]; then
    password="$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
    (umask 077 && printf '127.0.0.1:*:%s:%s:%s\n' "$database" "$role" "$password" > "$pgpass")
  fi
  chmod 600 "$pgpass"
  # SQL on stdin (printf is a builtin: no process sees the password in its arguments); statement logging
  # off for this session, so a failing statement is not written to the server log either.
  printf '%s\n' \
    "SET log_statement = 'none'; SET log_min_error_statement = 'panic';" \
    "SELECT 'CREATE ROLE $role LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$role')\\gexec" \
    "ALTER ROLE $role WITH LOGIN PASSWORD '$password';" \
    "SELECT 'CREATE DATABASE $database OWNER $role' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$database')\\gexec" \
    | as_pg "$psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdata" -p "$pg_port" -d postgres >/dev/null
}

start() {
  if load_state && mlflow_alive && healthy "$MLFLOW_PORT"; then
    say "already running"
    echo "http://127.0.0.1:$MLFLOW_PORT"
    return
  fi
  "$python" -c 'import mlflow, psycopg' 2>/dev/null \
    || die "$python cannot import mlflow and psycopg: run 'make setup' (or set PYTHON to an interpreter that can)"
  ensure_postgres
  init_cluster
  pg_port="${MLFLOW_PG_PORT:-$(free_port)}"
  port="${MLFLOW_PORT:-$(free_port)}"
  if ! as_pg "$bindir/pg_ctl" -D "$pgdata" status >/dev/null 2>&1; then
    as_pg "$bindir/pg_ctl" -D "$pgdata" -l "$pgdata/postgres.log" -o "-p $pg_port" -w -t 60 start >/dev/null \
      || die "PostgreSQL did not start; see $pgdata/postgres.log"
  else
    pg_port="$(as_pg sed -n 4p "$pgdata/postmaster.pid")"
  fi
  credentials
  backend="postgresql://$role@127.0.0.1:$pg_port/$database"
  say "backend store $backend (password from PGPASSFILE=$pgpass), artifacts $artifacts"
  # Its own session (process group), so stop ends the server's workers with it.
  PGPASSFILE="$pgpass" setsid "$python" -m mlflow server --backend-store-uri "$backend" \
    --artifacts-destination "$artifacts" --host 127.0.0.1 --port "$port" --workers 1 \
    > "$home/mlflow.log" 2>&1 < /dev/null &
  MLFLOW_PID=$!
  printf 'MLFLOW_PID=%s\nMLFLOW_PORT=%s\nPG_PORT=%s\nPGDATA_DIR=%q\nPG_BINDIR_USED=%q\nPG_OS_USER=%s\n' \
    "$MLFLOW_PID" "$port" "$pg_port" "$pgdata" "$bindir" "$pg_user" > "$state"
  local deadline=$((SECONDS + ${MLFLOW_START_TIMEOUT:-180}))
  until healthy "$port"; do
    if ! mlflow_alive || [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$home/mlflow.log" >&2 || true
      stop >/dev/null 2>&1 || true
      die "the MLflow server did not answer on 127.0.0.1:$port; log: $home/mlflow.log"
    fi
    sleep 1
  done
  echo "http://127.0.0.1:$port"
}

stop() {
  if ! load_state; then say "not running (no $state)"; return; fi
  if mlflow_alive; then
    kill -TERM -- "-$MLFLOW_PID" 2>/dev/null || kill -TERM "$MLFLOW_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do mlflow_alive || break; sleep 0.5; done
    mlflow_alive && { kill -KILL -- "-$MLFLOW_PID" 2>/dev/null || true; }
  fi
  pg_user="$PG_OS_USER"
  if as_pg "$PG_BINDIR_USED/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1; then
    as_pg "$PG_BINDIR_USED/pg_ctl" -D "$PGDATA_DIR" -m fast -w -t 60 stop >/dev/null
  fi
  rm -f "$state"
  say "stopped"
}

status() {
  load_state || { echo "not running"; return 3; }
  pg_user="$PG_OS_USER"
  local pg=down mlflow=down
  as_pg "$PG_BINDIR_USED/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1 && pg=up
  mlflow_alive && healthy "$MLFLOW_PORT" && mlflow=up
  # shellcheck disable=SC2153  # PG_PORT comes from the state file
  echo "mlflow http://127.0.0.1:$MLFLOW_PORT $mlflow (pid $MLFLOW_PID); postgresql 127.0.0.1:$PG_PORT $pg"
  [ "$pg" = up ] && [ "$mlflow" = up ]
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|status|stop" >&2; exit 2 ;;
esac
