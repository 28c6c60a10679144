#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for tests/server (the team tracking server test).
#
#   eval "$(bash .ci/postgres.sh)"      # what .ci/run does, as root on a fresh Debian machine
#
# Installs the Debian `postgresql` package if no server binaries are there, creates (once) a
# private cluster under $LOSSLAB_PG_ROOT, starts it on 127.0.0.1:$LOSSLAB_PG_PORT as the
# `postgres` user (postgres refuses to run as root), creates a login role + database with a
# random password (CREATEDB, so tests can make a fresh database per test and drop it) and
# prints the one line to eval:
#
#   export LOSSLAB_TEST_POSTGRES_URI='postgresql://losslab_test:<hex>@127.0.0.1:55432/losslab_test'
#
# stdout carries only that line; progress and errors go to stderr. Idempotent: a second run
# reuses the cluster, the running server and the stored password (about 0.2 s). First run
# without the package: apt-get (tens of seconds); with it: initdb + start, about 2 s.
# Run as a normal user it does the same in ~/.cache/losslab-postgres, minus the install.
set -euo pipefail

port=${LOSSLAB_PG_PORT:-55432}
role=losslab_test
db=losslab_test
if [[ $EUID -eq 0 ]]; then
    root=${LOSSLAB_PG_ROOT:-/var/lib/postgresql/losslab-test}
else
    root=${LOSSLAB_PG_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/losslab-postgres}
fi
data=$root/data

log() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- 1. server binaries (the client alone ships psql but no initdb/postgres) -------------
find_bindir() {
    # The newest version: numeric sort, last line (a plain glob would put 9 after 15).
    local d
    printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | while read -r d; do
        if [[ -x $d/initdb && -x $d/pg_ctl ]]; then echo "$d"; fi
    done | tail -n 1
}
bindir=$(find_bindir || true)
if [[ -z $bindir ]]; then
    [[ $EUID -eq 0 ]] || die "no PostgreSQL server in /usr/lib/postgresql/*/bin; run as root to install it"
    log "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's postinst may try to start its own cluster on 5432; without an init system
    # that only prints a warning. We never use that cluster.
    apt-get install -y -qq --no-install-recommends postgresql >&2
    bindir=$(find_bindir || true)
    [[ -n $bindir ]] || die "apt-get installed postgresql but no initdb under /usr/lib/postgresql"
fi
log "using $bindir"

# --- 2. run everything server-side as the postgres user when we are root ------------------
if [[ $EUID -eq 0 ]]; then
    id -u postgres >/dev/null 2>&1 || die "the Debian package should have created user 'postgres'"
    as_pg() { runuser -u postgres -- "$@"; }
    mkdir -p "$root"
    chown postgres:postgres "$root"
else
    as_pg() { "$@"; }
    mkdir -p "$root"
fi
chmod 700 "$root"

# --- 3. the cluster (once) --------------------------------------------------------------
if [[ ! -s $data/PG_VERSION ]]; then
    log "initdb $data"
    # Local socket: peer auth (only the postgres OS user is superuser); TCP: password only.
    as_pg "$bindir/initdb" -D "$data" --auth-local=peer --auth-host=scram-sha-256 \
        --encoding=UTF8 --no-locale --no-sync >/dev/null
    # Loopback only; socket in our own folder (no /var/run/postgresql needed). fsync and
    # friends off: this server holds test data only, and skipping the flushes makes the
    # tracking server's schema migration several times faster on a slow disk.
    as_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF
# --- losslab test server (.ci/postgres.sh) ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$root'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF
fi

# --- 4. start it unless it already runs -------------------------------------------------
if as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    log "server already running"
else
    log "starting server on 127.0.0.1:$port (log: $root/server.log)"
    as_pg "$bindir/pg_ctl" -D "$data" -l "$root/server.log" -w -t 60 start >/dev/null \
        || die "pg_ctl start failed; see $root/server.log"
fi

# --- 5. role + database, password kept so re-runs print the same URI --------------------
pwfile=$root/test-password
if [[ ! -s $pwfile ]]; then
    # 128 random bits as hex: URL-safe, nothing to escape in the URI or in SQL.
    (umask 077 && od -An -tx1 -N16 /dev/urandom | tr -d ' \n' >"$pwfile")
fi
pw=$(<"$pwfile")
[[ $pw =~ ^[0-9a-f]{32}$ ]] || die "$pwfile is corrupt; delete it and re-run"

# The password goes through stdin, never argv (argv is visible to every user in `ps`).
as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$root" -p "$port" -d postgres >/dev/null <<SQL
SELECT format('CREATE ROLE %I LOGIN', '$role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role WITH LOGIN CREATEDB PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$role')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \gexec
SQL

# --- 6. prove the URI works over TCP with the password, then print it --------------------
PGPASSWORD=$pw PGCONNECT_TIMEOUT=10 "$bindir/psql" -X -q -At -h 127.0.0.1 -p "$port" \
    -U "$role" -d "$db" -c 'SELECT 1' >/dev/null || die "cannot log in as $role over TCP"
log "ready: database $db on 127.0.0.1:$port"
printf "export LOSSLAB_TEST_POSTGRES_URI='postgresql://%s:%s@127.0.0.1:%s/%s'\n" \
    "$role" "$pw" "$port" "$db"
