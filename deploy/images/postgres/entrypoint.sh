#!/bin/sh
# Initialises $PGDATA on first start (user $POSTGRES_USER with the password
# from $POSTGRES_PASSWORD_FILE or $POSTGRES_PASSWORD, database $POSTGRES_DB),
# then runs the server as user postgres, listening on every address. Any
# other command (psql, pg_isready, ...) runs as it is, as the official
# image's entrypoint does.
set -eu

case "${1:-postgres}" in
  -*) set -- postgres "$@" ;;
  postgres) ;;
  *) exec "$@" ;;
esac
shift  # "postgres": its flags follow

if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  chown postgres:postgres "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then
    # Like the official image: the file's first line is the password.
    head -n 1 "$POSTGRES_PASSWORD_FILE" | tr -d '\r\n' >"$pwfile"
  elif [ -n "${POSTGRES_PASSWORD:-}" ]; then
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
  fi
  if [ ! -s "$pwfile" ]; then
    echo "spinnet-postgres: set POSTGRES_PASSWORD_FILE or POSTGRES_PASSWORD" >&2
    exit 1
  fi
  initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >>"$PGDATA/postgresql.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\"" |
      postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "spinnet-postgres: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

exec postgres -D "$PGDATA" "$@"
