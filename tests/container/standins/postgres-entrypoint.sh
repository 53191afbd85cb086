#!/bin/sh
# First start: initdb (UTF8, as the official image: psycopg returns bytes from a SQL_ASCII database) with the
# superuser and password from the environment (POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE), then create
# POSTGRES_DB. As root it drops to the postgres user itself; started as that user (compose's `user: postgres`,
# no capabilities) it runs as it is, like the official image.
set -eu
if [ -n "${POSTGRES_PASSWORD_FILE:-}" ]; then POSTGRES_PASSWORD="$(cat "$POSTGRES_PASSWORD_FILE")"; fi
: "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE}"
USER_NAME="${POSTGRES_USER:-postgres}"
DB_NAME="${POSTGRES_DB:-$USER_NAME}"
if [ "$(id -u)" = 0 ]; then
    as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
else
    as_postgres() { "$@"; }
fi
chmod 700 "$PGDATA"
# podman (4.3) makes the tmpfs compose mounts on /var/run/postgresql root-owned 1755; then the socket goes to /tmp
socket_dir=/var/run/postgresql
if [ ! -w "$socket_dir" ]; then socket_dir=/tmp; fi
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile="$(mktemp)"
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    chown postgres "$pwfile" 2>/dev/null || true
    as_postgres initdb -D "$PGDATA" -U "$USER_NAME" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$socket_dir" -w start >/dev/null
    if [ "$DB_NAME" != "postgres" ]; then
        as_postgres psql -h "$socket_dir" -v ON_ERROR_STOP=1 -U "$USER_NAME" -d postgres -c "CREATE DATABASE \"$DB_NAME\"" >/dev/null
    fi
    as_postgres pg_ctl -D "$PGDATA" -o "-c unix_socket_directories=$socket_dir" -m fast -w stop >/dev/null
fi
if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$socket_dir"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories="$socket_dir"
