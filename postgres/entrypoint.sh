#!/bin/sh
# Start PostgreSQL for one application role and database. On the first start (no cluster in
# PGDATA yet) make the cluster; on every start set that role's password from the mounted file,
# so the Secret stays the one source of truth (rotate: change the Secret, restart the pod).
#
# Environment: PGDATA (the image sets it; on the volume), POSTGRES_USER and POSTGRES_DB (the
# role and database, also the names app_b's URL uses), POSTGRES_PASSWORD_FILE (a Secret file).
# Logins over TCP: only that role, to that database, with a SCRAM password. The superuser
# "postgres" has no password and logs in only over the local socket as the OS user postgres
# (`kubectl exec ... -- psql`).
set -eu

say() { echo "postgres-entrypoint: $*" >&2; }
: "${PGDATA:?}" "${POSTGRES_USER:?}" "${POSTGRES_DB:?}" "${POSTGRES_PASSWORD_FILE:?}"
for name in "$POSTGRES_USER" "$POSTGRES_DB"; do
  # Identifiers go into SQL below: plain lowercase names only.
  case $name in
    [a-z_]*[!a-z0-9_]* | [!a-z_]*) say "invalid name '$name' (want [a-z_][a-z0-9_]*)"; exit 2 ;;
  esac
done
[ -s "$POSTGRES_PASSWORD_FILE" ] || { say "$POSTGRES_PASSWORD_FILE is missing or empty"; exit 2; }
# A SQL string literal (standard_conforming_strings: only ' needs doubling); no newline in it.
password=$(tr -d '\n' <"$POSTGRES_PASSWORD_FILE" | sed "s/'/''/g")

# Single-user mode: the server is not listening yet, nothing can connect meanwhile. An SQL
# error ends it with a non-zero status only with exit_on_error.
single_user() {
  postgres --single -D "$1" -c listen_addresses='' -c exit_on_error=on -c log_checkpoints=off \
    postgres >/dev/null
}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # Built beside PGDATA and renamed into place, so a pod killed half-way starts over cleanly
  # instead of finding a cluster without its role.
  staging=$PGDATA.initdb
  rm -rf "$staging"
  say "no cluster in $PGDATA: initdb"
  initdb --pgdata="$staging" --username=postgres --encoding=UTF8 --locale=C.UTF-8 \
    --auth=reject >/dev/null
  # Replaces initdb's rules (first match wins): every other login is refused.
  printf '%s\n' "local all postgres peer" \
    "host $POSTGRES_DB $POSTGRES_USER all scram-sha-256" >"$staging/pg_hba.conf"
  printf '%s\n' "CREATE ROLE \"$POSTGRES_USER\" LOGIN;" \
    "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" | single_user "$staging"
  mv "$staging" "$PGDATA"
fi
printf '%s\n' "ALTER ROLE \"$POSTGRES_USER\" PASSWORD '$password';" | single_user "$PGDATA"
unset password
say "starting PostgreSQL $(postgres --version | awk '{print $3}') on port 5432"
exec postgres -D "$PGDATA" -c listen_addresses='*'
