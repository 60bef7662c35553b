# shellcheck shell=bash
# PostgreSQL 15 from Debian packages, run as our own cluster (not the Debian one, no pg_ctlcluster):
# data in $BX_STATE/postgres/data, unix socket in $BX_STATE/postgres/run, TCP on 127.0.0.1:$BOXOFFICE_PG_PORT.
# As root the server runs as the `postgres` OS user (initdb refuses root), otherwise as the current user.
# After start: role + database `boxoffice`, Flyway migrations (db/migrations), demo data (db/demo/demo.sql).
BX_PG_BIN="${BOXOFFICE_PG_BIN:-/usr/lib/postgresql/15/bin}"
BX_PG_DIR="$BX_STATE/postgres"
BX_PG_DATA="$BX_PG_DIR/data"
BX_PG_SOCKET_DIR="$BX_PG_DIR/run"
BX_PG_USER=boxoffice
BX_PG_PASSWORD=boxoffice
BX_PG_DB=boxoffice

# _pg_as CMD...: run CMD as the OS user that owns the cluster.
_pg_as() {
  if [[ $(id -u) -eq 0 ]]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# _pg_super_psql ARGS...: psql as the superuser over the unix socket (local connections are `trust`;
# the socket directory is only accessible to the cluster's owner, and root).
_pg_super_psql() {
  "$BX_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BX_PG_SOCKET_DIR" -p "$BOXOFFICE_PG_PORT" \
    -U postgres "$@"
}

# _pg_psql ARGS...: psql as the application role over TCP (how the functions connect).
_pg_psql() {
  PGPASSWORD="$BX_PG_PASSWORD" "$BX_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$BX_HOST" \
    -p "$BOXOFFICE_PG_PORT" -U "$BX_PG_USER" "$@"
}

postgres_install() {
  [[ -x "$BX_PG_BIN/postgres" && -x "$BX_PG_BIN/psql" ]] || bx_apt_install postgresql-15 postgresql-client-15
  [[ -x "$BX_PG_BIN/postgres" ]] || bx_die "PostgreSQL binaries not found in $BX_PG_BIN"
  flyway_install
}

postgres_healthy() {
  "$BX_PG_BIN/pg_isready" -q -h "$BX_HOST" -p "$BOXOFFICE_PG_PORT" -d postgres -t 2
}

# _pg_init: create the cluster once.
_pg_init() {
  local log; log=$(bx_log_file postgres)
  mkdir -p "$BX_PG_DIR" "$BX_PG_SOCKET_DIR"
  touch "$log"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres:postgres "$BX_PG_DIR" "$BX_PG_SOCKET_DIR" "$log"
  fi
  chmod 700 "$BX_PG_SOCKET_DIR"
  [[ -s "$BX_PG_DATA/PG_VERSION" ]] && return 0
  bx_log "initdb $BX_PG_DATA"
  _pg_as "$BX_PG_BIN/initdb" -D "$BX_PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >>"$log" 2>&1 ||
    bx_die "initdb failed; see $log"
  # Settings that depend on the environment (port, paths) live in boxoffice.conf, rewritten on each start.
  _pg_as sh -c "echo \"include_if_exists = 'boxoffice.conf'\" >>'$BX_PG_DATA/postgresql.conf'"
}

# _pg_write_conf: the dev settings (rewritten on every start, so a changed port takes effect).
_pg_write_conf() {
  local conf="$BX_PG_DATA/boxoffice.conf"
  cat >"$conf.tmp" <<EOF
# Written by stack/services/postgres.sh on every start; edit that file, not this one.
listen_addresses = '$BX_HOST'
port = $BOXOFFICE_PG_PORT
unix_socket_directories = '$BX_PG_SOCKET_DIR'
max_connections = 200
shared_buffers = 256MB
timezone = 'UTC'
log_timezone = 'UTC'
log_line_prefix = '%m [%p] %q%u@%d '
log_min_duration_statement = 1000
EOF
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$conf.tmp"
  mv "$conf.tmp" "$conf"
}

postgres_start() {
  _pg_init
  _pg_write_conf
  local log; log=$(bx_log_file postgres)
  # -W: do not let pg_ctl wait; bx_wait below gives the uniform timeout + message.
  _pg_as "$BX_PG_BIN/pg_ctl" start -W -s -D "$BX_PG_DATA" -l "$log" ||
    bx_die "postgres failed to start; see its log: $log"
  bx_wait postgres 60 postgres_healthy
  head -n1 "$BX_PG_DATA/postmaster.pid" >"$(bx_pid_file postgres)"
}

postgres_after_start() {
  _pg_bootstrap
  postgres_migrate_if_needed
  postgres_load_demo
}

# _pg_bootstrap: the application role and database (idempotent).
_pg_bootstrap() {
  _pg_super_psql -d postgres <<SQL || bx_die "could not create role/database $BX_PG_DB; see $(bx_log_file postgres)"
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$BX_PG_USER') THEN
    CREATE ROLE $BX_PG_USER LOGIN CREATEDB PASSWORD '$BX_PG_PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE $BX_PG_DB OWNER $BX_PG_USER'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$BX_PG_DB')\gexec
SQL
}

# postgres_migrate [--database NAME | --url JDBC_URL]: apply db/migrations with Flyway to the local
# `boxoffice` database (or $FLYWAY_URL if set, or the given database/URL). Output goes to the terminal.
# shellcheck disable=SC2120  # called with arguments by `stack/boxo migrate`
postgres_migrate() {
  local url="${FLYWAY_URL:-}"
  while (($#)); do
    case "$1" in
      --database) url="jdbc:postgresql://$BX_HOST:$BOXOFFICE_PG_PORT/$2"; shift 2 ;;
      --database=*) url="jdbc:postgresql://$BX_HOST:$BOXOFFICE_PG_PORT/${1#*=}"; shift ;;
      --url) url="$2"; shift 2 ;;
      --url=*) url="${1#*=}"; shift ;;
      *) bx_die "postgres_migrate: unknown argument $1 (use --database NAME or --url JDBC_URL)" ;;
    esac
  done
  : "${url:=jdbc:postgresql://$BX_HOST:$BOXOFFICE_PG_PORT/$BX_PG_DB}"
  flyway_run -url="$url" -user="${FLYWAY_USER:-$BX_PG_USER}" \
    -password="${FLYWAY_PASSWORD:-$BX_PG_PASSWORD}" \
    -locations="filesystem:$BX_ROOT/db/migrations" \
    -validateMigrationNaming=true -baselineOnMigrate=false -cleanDisabled=true \
    -connectRetries=10 migrate
}

# postgres_migrate_if_needed: run Flyway (a JVM start, ~2 s) only when db/migrations or the database
# changed since the last successful run; the stamp includes the cluster id and database oid, so a
# recreated database is migrated again. Flyway output goes to $BX_LOGS/flyway.log.
postgres_migrate_if_needed() {
  local stamp_file="$BX_PG_DIR/migrations.stamp" log want
  log=$(bx_log_file flyway)
  want=$({
    _pg_super_psql -At -d "$BX_PG_DB" -c \
      "SELECT (SELECT system_identifier FROM pg_control_system()), (SELECT oid FROM pg_database WHERE datname = current_database())"
    find "$BX_ROOT/db/migrations" -maxdepth 1 -type f -printf '%f\n' 2>/dev/null | sort
    find "$BX_ROOT/db/migrations" -maxdepth 1 -type f -exec cat {} + 2>/dev/null
  } | sha256sum | cut -c1-64)
  if [[ -f "$stamp_file" && "$(cat "$stamp_file")" == "$want" ]]; then
    bx_ok "postgres: migrations up to date"
    return 0
  fi
  bx_log "postgres: applying db/migrations with Flyway (log: $log)"
  local out rc=0
  # shellcheck disable=SC2119
  out=$(postgres_migrate 2>&1) || rc=$?
  printf '%s\n' "--- $(date -u +%FT%TZ) migrate $BX_PG_DB" "$out" >>"$log"
  if ((rc != 0)); then
    printf '%s\n' "$out" | grep -v '^\s*at ' | tail -n 20 >&2
    if grep -qi 'checksum mismatch' <<<"$out"; then
      bx_log "an applied migration was edited. Add a new V<n>__*.sql instead; for a throw-away local"
      bx_log "database: stack/boxo down && rm -rf $BX_PG_DIR && stack/boxo up"
    fi
    bx_die "Flyway migration failed; see $log"
  fi
  grep -E 'Successfully applied|is up to date' <<<"$out" | tail -n 1 >&2 || true
  echo "$want" >"$stamp_file"
}

# postgres_load_demo: db/demo/demo.sql (idempotent by construction: ON CONFLICT DO NOTHING).
postgres_load_demo() {
  local demo="$BX_ROOT/db/demo/demo.sql"
  if [[ ! -f "$demo" ]]; then
    bx_log "postgres: no $demo yet, skipping demo data"
    return 0
  fi
  _pg_psql -d "$BX_PG_DB" -f "$demo" >>"$(bx_log_file postgres-demo)" 2>&1 ||
    { tail -n 20 "$(bx_log_file postgres-demo)" >&2; bx_die "loading $demo failed; see $(bx_log_file postgres-demo)"; }
  bx_ok "postgres: demo data loaded"
}

postgres_stop() {
  if [[ -s "$BX_PG_DATA/postmaster.pid" ]]; then
    _pg_as "$BX_PG_BIN/pg_ctl" stop -s -D "$BX_PG_DATA" -m fast -w -t 60 2>/dev/null || true
  fi
  rm -f "$(bx_pid_file postgres)"
}

postgres_status_line() {
  echo "127.0.0.1:$BOXOFFICE_PG_PORT db=$BX_PG_DB data=$BX_PG_DATA log=$(bx_log_file postgres)"
}

postgres_env() {
  echo "export BOXOFFICE_PG_PORT=$BOXOFFICE_PG_PORT"
  echo "export BOXOFFICE_DATABASE_URL=postgresql://$BX_PG_USER:$BX_PG_PASSWORD@$BX_HOST:$BOXOFFICE_PG_PORT/$BX_PG_DB"
}

# postgres_verify [--database NAME | --url URL] [ARGS...]: the invariant checker
# (python -m boxoffice.processes.verify, read-only) against the local `boxoffice` database or the given one.
postgres_verify() {
  local url="" args=()
  while (($#)); do
    case "$1" in
      --database) url="postgresql://$BX_PG_USER:$BX_PG_PASSWORD@$BX_HOST:$BOXOFFICE_PG_PORT/$2"; shift 2 ;;
      --database=*) url="postgresql://$BX_PG_USER:$BX_PG_PASSWORD@$BX_HOST:$BOXOFFICE_PG_PORT/${1#*=}"; shift ;;
      --url) url="$2"; shift 2 ;;
      --url=*) url="${1#*=}"; shift ;;
      *) args+=("$1"); shift ;;
    esac
  done
  : "${url:=postgresql://$BX_PG_USER:$BX_PG_PASSWORD@$BX_HOST:$BOXOFFICE_PG_PORT/$BX_PG_DB}"
  "${BX_VENV:-$BX_ROOT/.venv}/bin/python" -m boxoffice.processes.verify --database-url "$url" "${args[@]}"
}
