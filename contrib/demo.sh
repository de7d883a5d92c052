#!/bin/bash
# contrib/demo.sh start|stop|status - a throwaway PostgreSQL with pgbr in
# front of it, for trying pgbr by hand (make demo / make demo-stop).
#
# State lives in $PGBR_DEMO_DIR (default /tmp/pgbr-demo): the data dir,
# logs, pidfile and the nodelocal:// directory. PostgreSQL listens on
# 127.0.0.1:$PGBR_DEMO_PG_PORT (default 55439), pgbr on
# 127.0.0.1:$PGBR_DEMO_PORT (default 6543). As root, PostgreSQL runs as the
# unprivileged user pgtest (created if missing); pgbr runs as you.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${PGBR_DEMO_DIR:-/tmp/pgbr-demo}
PG_PORT=${PGBR_DEMO_PG_PORT:-55439}
PORT=${PGBR_DEMO_PORT:-6543}
PGBR=${PGBR_BIN:-$ROOT/bin/pgbr}
RUNUSER=${PGBR_TEST_PGUSER:-pgtest}
PGBIN=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
PSQL=$(command -v psql || echo "$PGBIN/psql")
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd "$DIR" && runuser -u "$RUNUSER" -- "$@")
    else
        "$@"
    fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 200); do
        port_busy "$1" && return 0
        sleep 0.1
    done
    return 1
}

pgbr_running() { [ -f "$DIR/pgbr.pid" ] && kill -0 "$(cat "$DIR/pgbr.pid")" 2>/dev/null; }
pg_running() { [ -f "$DIR/pg/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" status >/dev/null 2>&1; }

connect_line() {
    echo
    echo "pgbr demo is running:"
    echo "  connect:   $PSQL 'host=127.0.0.1 port=$PORT user=postgres dbname=postgres'"
    echo "  direct:    $PSQL 'host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres'"
    echo "  pgbr log:  $DIR/pgbr.log"
    echo "  stop:      make demo-stop   (or $0 stop)"
}

# Run one statement through pgbr (in database $2, default postgres); a
# failure stops the demo with the error.
demo_sql() {
    local db=${2:-postgres}
    echo
    echo "\$ psql -d $db -c \"$1\""
    if ! "$PSQL" -X -v ON_ERROR_STOP=1 -d "host=127.0.0.1 port=$PORT user=postgres dbname=$db" -c "$1" 2>&1; then
        echo "demo: the statement failed; pgbr's log is $DIR/pgbr.log" >&2
        exit 1
    fi
}

start() {
    if [ ! -x "$PGBR" ]; then
        echo "demo: $PGBR not found; run make first" >&2
        exit 1
    fi
    if pgbr_running; then
        echo "demo: already running (pid $(cat "$DIR/pgbr.pid"))"
        connect_line
        exit 0
    fi
    if [ -d "$DIR" ]; then
        # Leftovers of an earlier demo that was not stopped cleanly.
        stop >/dev/null 2>&1 || true
    fi
    for p in "$PG_PORT" "$PORT"; do
        if port_busy "$p"; then
            echo "demo: port $p on 127.0.0.1 is in use (set PGBR_DEMO_PORT / PGBR_DEMO_PG_PORT)" >&2
            exit 1
        fi
    done

    mkdir -p "$DIR/pg" "$DIR/extio"
    chmod 755 "$DIR"
    if [ "$(id -u)" = 0 ]; then
        id -u "$RUNUSER" >/dev/null 2>&1 || useradd -m -s /bin/sh "$RUNUSER"
        chown "$RUNUSER" "$DIR/pg"
    fi

    echo "demo: initdb in $DIR/pg/data"
    as_pg "$PGBIN/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1 ||
        { cat "$DIR/initdb.log" >&2; exit 1; }
    as_pg sh -c "cat >> '$DIR/pg/data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$DIR/pg'
wal_level = logical
max_wal_senders = 10
max_replication_slots = 10
fsync = off
full_page_writes = off
EOF
    as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/server.log" -w start >/dev/null ||
        { cat "$DIR/pg/server.log" >&2; exit 1; }

    echo "demo: starting pgbr on 127.0.0.1:$PORT"
    mkdir -p "$DIR/extio"
    nohup "$PGBR" --listen "127.0.0.1:$PORT" --upstream-host 127.0.0.1 --upstream-port "$PG_PORT" \
        --job-dsn "user=postgres" --external-io-dir "$DIR/extio" --pidfile "$DIR/pgbr.pid" \
        </dev/null >>"$DIR/pgbr.log" 2>&1 &
    echo $! >"$DIR/pgbr.launch.pid"
    if ! wait_port "$PORT"; then
        echo "demo: pgbr did not start; its log:" >&2
        cat "$DIR/pgbr.log" >&2
        exit 1
    fi
    [ -f "$DIR/pgbr.pid" ] || cp "$DIR/pgbr.launch.pid" "$DIR/pgbr.pid"

    demo_sql "SELECT version()"
    demo_sql "CREATE DATABASE shop"
    "$PSQL" -X -q -d "host=127.0.0.1 port=$PORT user=postgres dbname=shop" -c \
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
         CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int REFERENCES customers,
                              placed timestamptz NOT NULL, total numeric(12,2), items jsonb);
         CREATE INDEX ON orders (placed);
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 900;
         INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 1000) g;
         INSERT INTO orders (customer_id, placed, total, items)
           SELECT 1 + g % 1000, now() - g * interval '1 minute', (g % 1000) + 0.99,
                  jsonb_build_object('sku', 'sku-' || g % 97, 'qty', 1 + g % 5)
           FROM generate_series(1, 20000) g;" 2>&1 || true
    demo_sql "SELECT count(*) AS orders, sum(total) AS revenue FROM orders" shop
    demo_sql "BACKUP DATABASE shop INTO 'nodelocal://1/demo'"
    demo_sql "SHOW BACKUPS IN 'nodelocal://1/demo'"
    demo_sql "DROP DATABASE shop"
    demo_sql "RESTORE DATABASE shop FROM LATEST IN 'nodelocal://1/demo'"
    demo_sql "SELECT count(*) AS orders, sum(total) AS revenue FROM orders" shop
    demo_sql "SHOW JOBS"
    connect_line
}

stop() {
    local pid
    for f in "$DIR/pgbr.pid" "$DIR/pgbr.launch.pid"; do
        if [ -f "$f" ]; then
            pid=$(cat "$f")
            if kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null || true
                for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    done
    if [ -f "$DIR/pg/data/postmaster.pid" ]; then
        as_pg "$PGBIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$DIR"
    echo "demo: stopped and removed $DIR"
}

status() {
    if pgbr_running; then echo "pgbr: running (pid $(cat "$DIR/pgbr.pid"))"; else echo "pgbr: not running"; fi
    if pg_running; then echo "postgres: running"; else echo "postgres: not running"; fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
