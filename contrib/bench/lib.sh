# shellcheck shell=bash
# contrib/bench/lib.sh - what the bench scripts (bench-*.sh in this folder)
# share. Sourced after `set -eu`, never run.
#
# Sourcing it sets
#   ROOT     the repository
#   PGBR     the pgbr binary (PGBR_BIN, default bin/pgbr); exits when missing
#   RUNUSER  who runs PostgreSQL when we are root (PGBR_TEST_PGUSER, pgtest)
#   PGBIN    PostgreSQL's binaries (PG_BINDIR, pg_config --bindir, or
#            Debian's /usr/lib/postgresql/15/bin)
#   PSQL     psql (PGBIN's, else the one on PATH)
#   PGBR_PID empty: the script sets it when it starts pgbr
# and clears libpq's environment (PGHOST, PGPORT, ...), so every connection
# goes where the script says.
#
# The functions use what the script sets: T (its temp dir), PG_PORT and
# PGBR_PORT.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PGBR=${PGBR_BIN:-$ROOT/bin/pgbr}
RUNUSER=${PGBR_TEST_PGUSER:-pgtest}
PGBIN=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)}
[ -x "$PGBIN/initdb" ] || PGBIN=/usr/lib/postgresql/15/bin
PSQL=$PGBIN/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql || echo "$PSQL")
PGBR_PID=
unset PGHOST PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS PGSSLMODE PGPASSWORD

[ -x "$PGBR" ] || { echo "bench: $PGBR not found; run make first" >&2; exit 1; }

die() { echo "bench: $*" >&2; exit 1; }

# As root, PostgreSQL (which refuses root) runs as RUNUSER, created if
# missing, and owns the directories given; otherwise nothing to do.
pg_owns() { # dir...
    [ "$(id -u)" = 0 ] || return 0
    id -u "$RUNUSER" >/dev/null 2>&1 || useradd -m -s /bin/sh "$RUNUSER"
    chown "$RUNUSER" "$@"
}
# Run a command as PostgreSQL's user (in T, which that user can enter).
as_pg() {
    if [ "$(id -u)" = 0 ]; then (cd "$T" && runuser -u "$RUNUSER" -- "$@"); else "$@"; fi
}

# A loopback TCP port nothing listens on.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 12000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}
# Wait up to 30 s for something to listen on a loopback port.
wait_port() { # port
    for _ in $(seq 1 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# The end of a script's cleanup (its EXIT trap): stop pgbr and PostgreSQL,
# then remove T (BENCH_KEEP: keep it and say where it is).
bench_cleanup() {
    set +e
    [ -n "$PGBR_PID" ] && kill -TERM "$PGBR_PID" 2>/dev/null && wait "$PGBR_PID" 2>/dev/null
    [ -f "$T/pg/data/postmaster.pid" ] && as_pg "$PGBIN/pg_ctl" -D "$T/pg/data" -m immediate -w stop >/dev/null 2>&1
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $T"; else rm -rf "$T"; fi
}

# Direct SQL to PostgreSQL, tuples only.
q() { # db sql
    PGOPTIONS='-c client_min_messages=warning' "$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}
# A statement through pgbr; stdout/stderr into $T/log/<name>.out/.err.
pgbr_sql() { # name sql
    "$PSQL" -X -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -h 127.0.0.1 -p "$PGBR_PORT" -U postgres -d postgres \
        -c "$2" >"$T/log/$1.out" 2>"$T/log/$1.err"
}

secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
