#!/bin/sh
# The entrypoint of the PostgreSQL stand-in: what the official image does with
# POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB on an empty data directory, then the
# server in the foreground, listening on every address with password authentication.
set -eu
PGDATA=/var/lib/postgresql/data
bin=$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)
mkdir -p "$PGDATA" /var/run/postgresql
chown -R postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
  chown postgres /tmp/pwfile
  su postgres -s /bin/sh -c "$bin/initdb -D $PGDATA -U $POSTGRES_USER --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256" >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  su postgres -s /bin/sh -c "$bin/pg_ctl -D $PGDATA -w -o '-c listen_addresses=' start" >/dev/null
  su postgres -s /bin/sh -c "$bin/createdb -U $POSTGRES_USER $POSTGRES_DB"
  su postgres -s /bin/sh -c "$bin/pg_ctl -D $PGDATA -w stop" >/dev/null
fi
exec su postgres -s /bin/sh -c "exec $bin/postgres -D $PGDATA -c listen_addresses='*'"
