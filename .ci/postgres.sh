#!/usr/bin/env bash
# Start a throwaway PostgreSQL server (Debian's `postgresql` package) for the run-store tests
# and print the export line of its URL: eval "$(.ci/postgres.sh)".
# Usage: .ci/postgres.sh [DIR] [PORT]   (as root it runs the server as the postgres user)
set -euo pipefail
DIR="${1:-$(mktemp -d /tmp/greenai-pg.XXXXXX)}"
mkdir -p "$DIR"
PORT="${2:-54329}"
BIN="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin"
AS=()
if [ "$(id -u)" -eq 0 ]; then
    AS=(runuser -u postgres --)
    chown postgres "$DIR"
fi
echo greenai > "$DIR/pw"
chmod 644 "$DIR/pw"
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U greenai --pwfile="$DIR/pw" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 >"$DIR/initdb.log" 2>&1
# A port another server holds makes this one exit at start: try the next few.
for _ in 1 2 3 4 5 6 7 8; do
    if "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off" \
        start >/dev/null 2>&1; then
        break
    fi
    PORT=$((PORT + 1))
done
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
echo "export GREENAI_TEST_POSTGRES=postgresql://greenai:greenai@127.0.0.1:$PORT/postgres"
echo "export GREENAI_TEST_POSTGRES_DIR=$DIR"
