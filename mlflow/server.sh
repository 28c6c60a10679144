#!/usr/bin/env bash
# The team MLflow tracking server on PostgreSQL: what `make server` runs. See mlflow/README.md.
#
#   export MLFLOW_BACKEND_STORE_URI='postgresql://mlflow:<password>@127.0.0.1:5432/mlflow'
#   make server                                   # http://127.0.0.1:5000, no auth
#   AUTH=1 MLFLOW_ADMIN_PASSWORD=... make server  # HTTP basic auth, admin user created once
#   bash mlflow/server.sh --allowed-hosts mlflow.example.com   # extra args go to mlflow server
#
# Environment (defaults in brackets):
#   MLFLOW_BACKEND_STORE_URI     postgresql:// URI of runs/metrics/params [required]. Read by
#                                `mlflow server` from the environment: never on argv, where
#                                every local user could read its password with `ps`.
#   MLFLOW_ARTIFACTS_DESTINATION where artifacts are stored, proxied to clients by the server
#                                (--serve-artifacts) [<repo>/mlartifacts]
#   HOST [127.0.0.1]  PORT [5000]  SERVER_WORKERS [2]
#   AUTH [0]                     1: --app-name basic-auth, needs MLFLOW_ADMIN_PASSWORD
#   MLFLOW_ADMIN_USERNAME [admin]  MLFLOW_ADMIN_PASSWORD (>= 12 chars, never MLflow's old default)
#   MLFLOW_AUTH_DATABASE_URI     users + permissions store [= MLFLOW_BACKEND_STORE_URI; the
#                                auth tables and their alembic_version_auth table do not clash
#                                with the tracking tables]
#   MLFLOW_AUTH_DEFAULT_PERMISSION  what a user may do on others' experiments [READ]
#   MLFLOW_FLASK_SERVER_SECRET_KEY  CSRF key of the auth app [random per start; set one shared
#                                value when several server processes serve the same team]
#   SERVER_PYTHON [<repo>/.venv/bin/python, else python3]   SERVER_DRY_RUN=1: print, don't start
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")

die() { printf 'mlflow/server.sh: error: %s\n' "$*" >&2; exit 2; }
warn() { printf 'mlflow/server.sh: warning: %s\n' "$*" >&2; }
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

if [[ -n ${SERVER_PYTHON:-} ]]; then
    py=$SERVER_PYTHON
elif [[ -x $repo/.venv/bin/python ]]; then
    py=$repo/.venv/bin/python
else
    py=python3
fi

# --- backend store ----------------------------------------------------------------------
if [[ -z ${MLFLOW_BACKEND_STORE_URI:-} ]]; then
    die "MLFLOW_BACKEND_STORE_URI is not set. The team server keeps runs in PostgreSQL:
  export MLFLOW_BACKEND_STORE_URI='postgresql://<user>:<password>@<host>:5432/<database>'
(for a personal store on this machine use 'make ui' instead; see mlflow/README.md)"
fi
case $MLFLOW_BACKEND_STORE_URI in
    postgresql://* | postgresql+*://*) ;;
    *) die "MLFLOW_BACKEND_STORE_URI must be a postgresql:// URI; got scheme '${MLFLOW_BACKEND_STORE_URI%%:*}'" ;;
esac
export MLFLOW_BACKEND_STORE_URI

# --- network ----------------------------------------------------------------------------
host=${HOST:-127.0.0.1}
port=${PORT:-5000}
workers=${SERVER_WORKERS:-2}
[[ $port =~ ^[0-9]{1,5}$ ]] && ((10#$port >= 1 && 10#$port <= 65535)) || die "PORT must be 1..65535; got '$port'"
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "SERVER_WORKERS must be a positive integer; got '$workers'"
case $host in
    127.* | localhost | ::1) loopback=1 ;;
    *) loopback=0 ;;
esac

# --- basic auth ---------------------------------------------------------------------------
# mlflow.server.auth reads an ini named by MLFLOW_AUTH_CONFIG_PATH (default: the basic_auth.ini
# inside the package, which points at sqlite:///basic_auth.db in the working directory) in the
# server process and again in every worker. The admin credentials come from
# MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD, which take precedence over the ini and are only used to
# create the admin user when the user store has none.
app_args=()
auth_summary=off
case ${AUTH:-0} in
    0) ;;
    1)
        pw=${MLFLOW_ADMIN_PASSWORD:-}
        admin=${MLFLOW_ADMIN_USERNAME:-admin}
        perm=${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}
        [[ -n $pw ]] || die "AUTH=1 needs the admin password in MLFLOW_ADMIN_PASSWORD (unset or empty).
  export MLFLOW_ADMIN_PASSWORD=\"\$(openssl rand -base64 24)\"   # keep it in a password manager"
        # The password older MLflow versions shipped in basic_auth.ini (GHSA-gq3w-7jj3-x7gr).
        [[ $pw != password1234 ]] || die "MLFLOW_ADMIN_PASSWORD is MLflow's well-known default password; choose another"
        ((${#pw} >= 12)) || die "MLFLOW_ADMIN_PASSWORD has ${#pw} characters; MLflow requires at least 12"
        # The name goes into the ini: no spaces, newlines or brackets.
        [[ $admin =~ ^[A-Za-z0-9_.@-]+$ ]] || die "MLFLOW_ADMIN_USERNAME may hold letters, digits and _.@- only; got '$admin'"
        case $perm in
            READ | EDIT | MANAGE | NO_PERMISSIONS) ;;
            *) die "MLFLOW_AUTH_DEFAULT_PERMISSION must be one of READ, EDIT, MANAGE, NO_PERMISSIONS; got '$perm'" ;;
        esac
        # Split the auth DB URI into a password-free URI for the ini and PGPASSWORD, so the
        # generated file holds no secret. The URI travels through the environment, not argv.
        auth_db_uri=${MLFLOW_AUTH_DATABASE_URI:-$MLFLOW_BACKEND_STORE_URI}
        auth_db_nopw='' auth_db_pw=''
        # No traceback on a bad URI: SQLAlchemy's message would echo the password.
        { IFS= read -r auth_db_nopw && IFS= read -r auth_db_pw; } < <(
            AUTH_DB_URI=$auth_db_uri "$py" -c '
import os, sys
try:
    from sqlalchemy.engine import URL, make_url
    url = make_url(os.environ["AUTH_DB_URI"])
except Exception:
    sys.exit(1)
# URL.set(password=None) keeps the password (None means "unchanged"): rebuild without it.
bare = URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
print(bare.render_as_string(hide_password=False))
print(url.password or "")
' 2>/dev/null
        ) || true
        [[ -n $auth_db_nopw ]] || die "cannot parse the auth database URI (MLFLOW_AUTH_DATABASE_URI, default MLFLOW_BACKEND_STORE_URI) with $py; is mlflow installed there ('make venv')?"
        if [[ -n ${auth_db_pw:-} ]]; then
            # libpq falls back to PGPASSWORD only for URIs without a password; the tracking
            # URI keeps its own password, so a different auth DB password is fine.
            export PGPASSWORD=$auth_db_pw
        fi
        ini_dir=$(mktemp -d "${TMPDIR:-/tmp}/losslab-mlflow-auth.XXXXXX") # mode 0700
        ini=$ini_dir/basic_auth.ini
        # `%` must be doubled: configparser interpolates %(name)s (percent-encoded URIs).
        (umask 077 && cat >"$ini" <<EOF
# Generated by mlflow/server.sh for one server start; holds no secret (see PGPASSWORD).
[mlflow]
default_permission = $perm
database_uri = ${auth_db_nopw//%/%%}
admin_username = $admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
        )
        chmod 600 "$ini"
        export MLFLOW_AUTH_CONFIG_PATH=$ini
        export MLFLOW_AUTH_ADMIN_USERNAME=$admin
        export MLFLOW_AUTH_ADMIN_PASSWORD=$pw
        if [[ -z ${MLFLOW_FLASK_SERVER_SECRET_KEY:-} ]]; then
            export MLFLOW_FLASK_SERVER_SECRET_KEY=$(random_hex 32)
        fi
        app_args=(--app-name basic-auth)
        auth_summary="basic-auth, admin user '$admin', default permission $perm (config $ini)"
        ;;
    *) die "AUTH must be 0 or 1; got '${AUTH}'" ;;
esac
if ((!loopback)) && [[ ${AUTH:-0} != 1 ]]; then
    warn "HOST=$host exposes the server beyond this machine WITHOUT authentication; use AUTH=1"
fi

# --- artifacts: stored here, uploaded and downloaded through the server ------------------
artifacts=${MLFLOW_ARTIFACTS_DESTINATION:-$repo/mlartifacts}
if [[ $artifacts != *://* ]]; then
    mkdir -p "$artifacts"
    artifacts=$(cd "$artifacts" && pwd)
fi

# Background jobs (GenAI scorers, trace rollups) are not used by losslab and cost a process.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}

cmd=("$py" -m mlflow server --host "$host" --port "$port" --workers "$workers"
    --serve-artifacts --artifacts-destination "$artifacts" "${app_args[@]}" "$@")

# --- tell people how to use it -------------------------------------------------------------
if ((loopback)); then url_host=$host; else url_host=$(hostname -f 2>/dev/null || hostname); fi
[[ $url_host == *:* ]] && url_host="[$url_host]" # IPv6 literal
url="http://$url_host:$port"
{
    echo "losslab tracking server"
    echo "  url:       $url   (bound to $host)"
    echo "  backend:   ${MLFLOW_BACKEND_STORE_URI%%://*}://... (from MLFLOW_BACKEND_STORE_URI)"
    echo "  artifacts: $artifacts (served through the server)"
    echo "  auth:      $auth_summary"
    echo "Point clients at it:"
    echo "  export MLFLOW_TRACKING_URI=$url"
    if [[ ${AUTH:-0} == 1 ]]; then
        echo "  export MLFLOW_TRACKING_USERNAME=$admin  # or a user the admin created"
        echo "  export MLFLOW_TRACKING_PASSWORD='<that user's password>'"
    fi
} >&2

if [[ ${SERVER_DRY_RUN:-0} == 1 ]]; then
    printf '%q ' "${cmd[@]}"
    echo
    [[ -z ${ini_dir:-} ]] || rm -rf -- "$ini_dir"
    exit 0
fi
# exec: the server becomes this process, so Ctrl-C / SIGTERM reach it (it forwards them to
# its workers) and no shell lingers.
exec "${cmd[@]}"
