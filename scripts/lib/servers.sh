# shellcheck shell=bash
# Throwaway PostgreSQL and MariaDB servers for scripts/test and scripts/bench.
#
# Source this file, then:
#   srv_install_traps                  # stop what this shell started on exit, Ctrl-C, TERM
#   srv_use_servers PG_VAR MYSQL_VAR   # a variable that is set is used; for one that is unset,
#                                      # start a server and export the variable as its URL
#
# Servers listen on 127.0.0.1 on a free port, keep their data, socket and log in a fresh
# `mktemp -d` directory, and are stopped (and the directory removed) by srv_cleanup, which
# touches only the servers this shell started. UPKEEP_TEST_KEEP_SERVERS=1 keeps them running.

SRV_PG_BINDIR=""    # server binaries (initdb, postgres, pg_ctl, psql, pg_isready)
SRV_PG_DIR=""       # temp dir of the PostgreSQL server we started ("" = none)
SRV_PG_PID=""
SRV_PG_PORT=""
SRV_PG_AS=()        # prefix that runs a command as the server's OS user (empty unless root)
SRV_PG_INIT_PID=""  # initdb running in the background
SRV_MY_DIR=""       # temp dir of the MariaDB server we started ("" = none)
SRV_MY_PID=""
SRV_MY_PORT=""
SRV_MY_INIT_PID=""  # mariadb-install-db running in the background
SRV_MY_USER_OPT=()
SRV_APT_UPDATED=0
SRV_WAIT_SECONDS=${SRV_WAIT_SECONDS:-60}

srv_say() { printf '%s\n' "$*"; }
srv_err() { printf '%s\n' "$*" >&2; }

# postgres://user:secret@host/db -> postgres://user:***@host/db
srv_redact() { sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@]*):[^@]*@#\1:***@#' <<<"$1"; }

srv_is_root() { [ "$(id -u)" -eq 0 ]; }

# Print a free TCP port on 127.0.0.1.
srv_free_port() {
  if command -v python3 >/dev/null 2>&1 &&
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null; then
    return 0
  fi
  local port tries
  for tries in $(seq 1 200); do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    # A refused connection means nobody listens there.
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      printf '%s\n' "$port"
      return 0
    fi
  done
  srv_err "no free port found after $tries tries"
  return 1
}

srv_apt_install() {
  if ! srv_is_root; then
    srv_err "missing $*: install it (apt-get install $*) or run as root so this script can"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    srv_err "missing $* and no apt-get to install it with"
    return 1
  fi
  srv_err "installing $* with apt-get"
  if [ "$SRV_APT_UPDATED" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2
    SRV_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2
}

srv_ensure_os_user() {
  id -u "$1" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}

# Wait for pid (a child of this shell) to exit, at most $2 seconds; 1 if it is still running.
srv_wait_exit() {
  local pid=$1 deadline=$((SECONDS + $2)) state
  while kill -0 "$pid" 2>/dev/null; do
    # An exited but unreaped child still answers kill -0; its state is Z.
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)
    [ "$state" = Z ] && break
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
}

srv_kill() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  srv_wait_exit "$pid" 20 && return 0
  kill -KILL "$pid" 2>/dev/null || true
  srv_wait_exit "$pid" 10
}

# ---------------------------------------------------------------------------- PostgreSQL

srv_pg_find_bindir() {
  local dir
  if command -v pg_config >/dev/null 2>&1; then
    dir=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ]; then
      printf '%s\n' "$dir"
      return 0
    fi
  fi
  dir=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/initdb' 2>/dev/null |
    sort -V | tail -n 1)
  [ -n "$dir" ] || return 1
  printf '%s\n' "${dir%/initdb}"
}

srv_pg_bindir() {
  [ -n "$SRV_PG_BINDIR" ] && return 0
  if ! SRV_PG_BINDIR=$(srv_pg_find_bindir); then
    srv_apt_install postgresql || return 1
    SRV_PG_BINDIR=$(srv_pg_find_bindir) || {
      srv_err "postgresql installed but no initdb found under /usr/lib/postgresql/*/bin"
      return 1
    }
  fi
}

# A client binary (psql, pg_isready): PATH first, then the server's bindir.
srv_pg_client() {
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  elif srv_pg_bindir && [ -x "$SRV_PG_BINDIR/$1" ]; then
    printf '%s\n' "$SRV_PG_BINDIR/$1"
  else
    srv_err "no $1 found"
    return 1
  fi
}

# Run initdb in the background, so that MariaDB's install can run meanwhile.
srv_pg_prepare() {
  [ -n "$SRV_PG_DIR" ] && return 0
  srv_pg_bindir || return 1
  SRV_PG_AS=()
  if srv_is_root; then
    # initdb and postgres refuse to run as root.
    srv_ensure_os_user postgres
    SRV_PG_AS=(runuser -u postgres --)
    SRV_PG_DIR=$(mktemp -d /tmp/upkeep-pg.XXXXXX)
    chown postgres: "$SRV_PG_DIR"
  else
    SRV_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-pg.XXXXXX")
  fi
  local dir=$SRV_PG_DIR bin=$SRV_PG_BINDIR
  (
    cd "$dir" || exit 1
    args=(-D "$dir/data" -A trust -U postgres --encoding=UTF8)
    "${SRV_PG_AS[@]}" "$bin/initdb" "${args[@]}" --locale=C.UTF-8 && exit 0
    rm -rf "${dir:?}/data"
    exec "${SRV_PG_AS[@]}" "$bin/initdb" "${args[@]}" --locale=C
  ) >"$dir/initdb.log" 2>&1 </dev/null &
  SRV_PG_INIT_PID=$!
}

srv_pg_start() {
  srv_pg_prepare || return 1
  local dir=$SRV_PG_DIR bin=$SRV_PG_BINDIR rc=0
  wait "$SRV_PG_INIT_PID" || rc=$?
  SRV_PG_INIT_PID=""
  if [ "$rc" -ne 0 ]; then
    srv_err "initdb failed:"
    cat "$dir/initdb.log" >&2
    return 1
  fi
  # One role checks passwords, so that tests can prove a wrong password is refused; every
  # other role is trusted. pg_hba.conf is read top down: this line goes first.
  local hba="$dir/data/pg_hba.conf"
  { printf 'host all upkeep_auth_test 127.0.0.1/32 scram-sha-256\n'; cat "$hba"; } >"$hba.new" &&
    cat "$hba.new" >"$hba" && rm -f "$hba.new"
  SRV_PG_PORT=$(srv_free_port) || return 1
  (cd "$dir" && exec "${SRV_PG_AS[@]}" "$bin/postgres" -D "$dir/data" -p "$SRV_PG_PORT" -k "$dir" \
    -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=200) >"$dir/postgres.log" 2>&1 </dev/null &
  SRV_PG_PID=$!

  local deadline=$((SECONDS + SRV_WAIT_SECONDS))
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$SRV_PG_PORT" -U postgres -d postgres; do
    if ! kill -0 "$SRV_PG_PID" 2>/dev/null; then
      srv_err "PostgreSQL exited before accepting connections on 127.0.0.1:$SRV_PG_PORT; its log:"
      cat "$dir/postgres.log" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      srv_err "PostgreSQL did not accept connections on 127.0.0.1:$SRV_PG_PORT within ${SRV_WAIT_SECONDS}s; its log:"
      cat "$dir/postgres.log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------- MariaDB

# First of the given command names that exists (mariadb-* names, then the old mysql* ones).
srv_which() {
  local name
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then
      command -v "$name"
      return 0
    fi
    if [ -x "/usr/sbin/$name" ]; then
      printf '%s\n' "/usr/sbin/$name"
      return 0
    fi
  done
  return 1
}

srv_my_bins() {
  SRV_MY_INSTALL_DB=$(srv_which mariadb-install-db mysql_install_db) &&
    SRV_MY_SERVER=$(srv_which mariadbd mysqld) &&
    SRV_MY_CLIENT=$(srv_which mariadb mysql) &&
    SRV_MY_ADMIN=$(srv_which mariadb-admin mysqladmin)
}

srv_my_ensure_bins() {
  srv_my_bins && return 0
  srv_apt_install mariadb-server mariadb-client || return 1
  srv_my_bins || {
    srv_err "mariadb-server installed but mariadb-install-db/mariadbd/mariadb/mariadb-admin not found"
    return 1
  }
}

# The MariaDB client (for scripts that talk to a given URL).
srv_my_client() {
  srv_which mariadb mysql && return 0
  srv_my_ensure_bins && printf '%s\n' "$SRV_MY_CLIENT"
}

# Run mariadb-install-db in the background, so that initdb can run meanwhile.
srv_my_prepare() {
  [ -n "$SRV_MY_DIR" ] && return 0
  srv_my_ensure_bins || return 1
  SRV_MY_USER_OPT=()
  srv_is_root && SRV_MY_USER_OPT=(--user=root)
  SRV_MY_DIR=$(mktemp -d "${TMPDIR:-/tmp}/upkeep-my.XXXXXX")
  "$SRV_MY_INSTALL_DB" --no-defaults --datadir="$SRV_MY_DIR/data" \
    --auth-root-authentication-method=normal --skip-test-db "${SRV_MY_USER_OPT[@]}" \
    >"$SRV_MY_DIR/install-db.log" 2>&1 </dev/null &
  SRV_MY_INIT_PID=$!
}

srv_my_start() {
  srv_my_prepare || return 1
  local dir=$SRV_MY_DIR rc=0
  wait "$SRV_MY_INIT_PID" || rc=$?
  SRV_MY_INIT_PID=""
  if [ "$rc" -ne 0 ]; then
    srv_err "mariadb-install-db failed:"
    cat "$dir/install-db.log" >&2
    return 1
  fi
  SRV_MY_PORT=$(srv_free_port) || return 1
  # --no-defaults: never read the system my.cnf (port 3306, the service's socket and datadir).
  # The character set is the one Debian's packaged config sets, which --no-defaults skips.
  "$SRV_MY_SERVER" --no-defaults --datadir="$dir/data" --socket="$dir/mysqld.sock" \
    --pid-file="$dir/mariadbd.pid" --port="$SRV_MY_PORT" --bind-address=127.0.0.1 \
    "${SRV_MY_USER_OPT[@]}" --innodb-flush-log-at-trx-commit=0 --innodb-buffer-pool-size="${SRV_MY_BUFFER_POOL:-256M}" \
    --max-connections=300 --max-allowed-packet=64M --skip-log-bin \
    --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    --log-error="$dir/mariadbd.log" >"$dir/mariadbd.out" 2>&1 </dev/null &
  SRV_MY_PID=$!

  local deadline=$((SECONDS + SRV_WAIT_SECONDS))
  until "$SRV_MY_CLIENT" --no-defaults --protocol=TCP -h 127.0.0.1 -P "$SRV_MY_PORT" -u root \
    -e 'SELECT 1' >/dev/null 2>&1 </dev/null; do
    if ! kill -0 "$SRV_MY_PID" 2>/dev/null; then
      srv_err "MariaDB exited before accepting connections on 127.0.0.1:$SRV_MY_PORT; its log:"
      cat "$dir/mariadbd.out" "$dir/mariadbd.log" >&2 2>/dev/null || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      srv_err "MariaDB did not accept connections on 127.0.0.1:$SRV_MY_PORT within ${SRV_WAIT_SECONDS}s; its log:"
      cat "$dir/mariadbd.out" "$dir/mariadbd.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

# ---------------------------------------------------------------------------- both

# Stop the servers this shell started (both at once), then remove their directories.
srv_stop_all() {
  local pid postmaster=""
  for pid in "$SRV_PG_INIT_PID" "$SRV_MY_INIT_PID"; do
    [ -n "$pid" ] && srv_kill "$pid"
  done
  SRV_PG_INIT_PID="" SRV_MY_INIT_PID=""
  if [ -n "$SRV_PG_PID" ] && kill -0 "$SRV_PG_PID" 2>/dev/null; then
    # SIGINT to the postmaster is pg_ctl's "-m fast". $SRV_PG_PID may be runuser.
    postmaster=$(head -n 1 "$SRV_PG_DIR/data/postmaster.pid" 2>/dev/null || true)
    kill -INT "${postmaster:-$SRV_PG_PID}" 2>/dev/null || kill -TERM "$SRV_PG_PID" 2>/dev/null
  fi
  if [ -n "$SRV_MY_PID" ] && kill -0 "$SRV_MY_PID" 2>/dev/null; then
    kill -TERM "$SRV_MY_PID" 2>/dev/null # mariadbd's normal shutdown
  fi
  if [ -n "$SRV_PG_PID" ] && ! srv_wait_exit "$SRV_PG_PID" 30; then
    srv_err "PostgreSQL (pid ${postmaster:-$SRV_PG_PID}) did not stop; killing it"
    [ -n "$postmaster" ] && kill -KILL "$postmaster" 2>/dev/null
    srv_kill "$SRV_PG_PID"
  fi
  if [ -n "$SRV_MY_PID" ] && ! srv_wait_exit "$SRV_MY_PID" 30; then
    srv_err "MariaDB (pid $SRV_MY_PID) did not stop; killing it"
    srv_kill "$SRV_MY_PID"
  fi
  [ -n "$SRV_PG_DIR" ] && rm -rf "$SRV_PG_DIR"
  [ -n "$SRV_MY_DIR" ] && rm -rf "$SRV_MY_DIR"
  SRV_PG_PID="" SRV_MY_PID="" SRV_PG_DIR="" SRV_MY_DIR=""
}

srv_keep_message() {
  srv_say "UPKEEP_TEST_KEEP_SERVERS=1: the servers keep running."
  if [ -n "$SRV_PG_PID" ]; then
    srv_say "  PostgreSQL (pid $SRV_PG_PID, dir $SRV_PG_DIR):"
    srv_say "    export UPKEEP_TEST_PG_URL=postgres://postgres@127.0.0.1:$SRV_PG_PORT/postgres"
    srv_say "    psql postgres://postgres@127.0.0.1:$SRV_PG_PORT/postgres"
    srv_say "    stop: ${SRV_PG_AS[*]} $SRV_PG_BINDIR/pg_ctl stop -D $SRV_PG_DIR/data -m fast && rm -rf $SRV_PG_DIR"
  fi
  if [ -n "$SRV_MY_PID" ]; then
    srv_say "  MariaDB (pid $SRV_MY_PID, dir $SRV_MY_DIR):"
    srv_say "    export UPKEEP_TEST_MYSQL_URL=mysql://root@127.0.0.1:$SRV_MY_PORT/mysql"
    srv_say "    $SRV_MY_CLIENT --no-defaults --protocol=TCP -h 127.0.0.1 -P $SRV_MY_PORT -u root"
    srv_say "    stop: $SRV_MY_ADMIN --no-defaults --protocol=TCP -h 127.0.0.1 -P $SRV_MY_PORT -u root shutdown && rm -rf $SRV_MY_DIR"
  fi
}

srv_cleanup() {
  set +e
  if [ "${UPKEEP_TEST_KEEP_SERVERS:-0}" = 1 ] && [ -n "$SRV_PG_PID$SRV_MY_PID" ] &&
    [ -z "$SRV_PG_INIT_PID$SRV_MY_INIT_PID" ]; then
    srv_keep_message
    return 0
  fi
  srv_stop_all
}

# srv_install_traps [FN]: on exit run FN (the caller's own cleanup, if any), then srv_cleanup.
srv_install_traps() {
  # shellcheck disable=SC2064 # expand FN now
  trap "${1:+$1 || true;} srv_cleanup" EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# srv_use_servers PG_VAR MYSQL_VAR: for each variable that is unset or empty, start a
# throwaway server and export the variable as its URL; print one line per server.
srv_use_servers() {
  local pg_var=$1 my_var=$2
  # Initialise both data directories in parallel, then start each server.
  if [ -z "${!pg_var:-}" ]; then srv_pg_prepare || return 1; fi
  if [ -z "${!my_var:-}" ]; then srv_my_prepare || return 1; fi

  if [ -n "${!pg_var:-}" ]; then
    srv_say "postgres: $(srv_redact "${!pg_var}") (given in $pg_var)"
  else
    srv_pg_start || return 1
    printf -v "$pg_var" '%s' "postgres://postgres@127.0.0.1:$SRV_PG_PORT/postgres"
    export "${pg_var?}"
    srv_say "postgres: ${!pg_var} (throwaway server started here: $("$SRV_PG_BINDIR/postgres" --version))"
  fi

  if [ -n "${!my_var:-}" ]; then
    srv_say "mysql: $(srv_redact "${!my_var}") (given in $my_var)"
  else
    srv_my_start || return 1
    printf -v "$my_var" '%s' "mysql://root@127.0.0.1:$SRV_MY_PORT/mysql"
    export "${my_var?}"
    srv_say "mysql: ${!my_var} (throwaway server started here: $("$SRV_MY_SERVER" --version))"
  fi
}
