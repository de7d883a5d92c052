#!/bin/bash
# contrib/bench/bench-incremental.sh - incremental backup benchmark
# (make bench-incremental; docs/incremental.md, docs/performance.md).
#
# Starts a throwaway PostgreSQL (wal_level = logical) and pgbr on 127.0.0.1:
#   pgbench -i -s 50 (BENCH_PGBENCH_SCALE);
#   full backup: BACKUP DATABASE bench INTO ... (timed);
#   changes: pgbench's tpcb-like transactions, as many as 1% of
#            pgbench_accounts' rows (each updates one account, a teller and a
#            branch, and inserts a history row);
#   incremental: BACKUP DATABASE bench INTO LATEST IN ... (timed);
#   restore from the chain (full + incremental) and restore of the full
#            backup alone (AS OF SYSTEM TIME its end), each timed, and the
#            chain's restore compared (row counts and checksums) with the
#            source.
# Prints the times, the sizes and the ratios: incremental time / full time
# (goal <= 0.05), incremental bytes / full bytes, restore-from-chain time /
# restore-from-full time. One run each after an untimed CHECKPOINT; a warm
# OS page cache.
# Environment: PGBR_BIN (default bin/pgbr), BENCH_PGBENCH_SCALE (50),
# BENCH_TMPDIR (/tmp), BENCH_KEEP, PG_BINDIR. As root, PostgreSQL runs as
# user pgtest (PGBR_TEST_PGUSER).
# Exit status: 0 when everything ran (goal met or not); 1 when a step failed
# or the restored database differs from the source.
set -eu
export LC_ALL=C

# shellcheck source=contrib/bench/lib.sh
. "$(dirname "$0")/lib.sh"
SCALE=${BENCH_PGBENCH_SCALE:-50}

case "$SCALE" in *[!0-9]* | '') echo "bench: BENCH_PGBENCH_SCALE must be an integer" >&2; exit 1 ;; esac

T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/pgbr_bench_incr_XXXXXX")
chmod 755 "$T"
mkdir -p "$T/pg" "$T/extio" "$T/log"
pg_owns "$T/pg"
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

PG_PORT=$(free_port)
PGBR_PORT=$(free_port)
while [ "$PGBR_PORT" = "$PG_PORT" ]; do PGBR_PORT=$(free_port); done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
timed() { # name sql -> seconds
    q postgres CHECKPOINT
    local t0=$EPOCHREALTIME
    pgbr_sql "$1" "$2" || { cat "$T/log/$1.err" >&2; die "$1 failed"; }
    secs_since "$t0"
}

echo "bench-incremental: PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), pgbench -s $SCALE, $(nproc) CPUs"
as_pg "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$T/log/initdb.log" 2>&1 || die "initdb failed"
cat >>"$T/pg/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
max_wal_size = 4GB
shared_buffers = 512MB
synchronous_commit = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w start >/dev/null || die "PostgreSQL did not start"
q postgres "CREATE DATABASE bench"
"$PGBIN/pgbench" -q -i -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres bench >"$T/log/pgbench-init.log" 2>&1 \
    || die "pgbench -i failed"
"$PGBR" --listen "127.0.0.1:$PGBR_PORT" --upstream-host 127.0.0.1 --upstream-port "$PG_PORT" \
    --job-dsn "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" --external-io-dir "$T/extio" \
    >"$T/log/pgbr.log" 2>&1 &
PGBR_PID=$!
wait_port "$PGBR_PORT" || die "pgbr did not start"
sleep 0.5

ACCOUNTS=$(q bench "SELECT count(*) FROM pgbench_accounts")
TXNS=$((ACCOUNTS / 100))

FULL_S=$(timed full "BACKUP DATABASE bench INTO 'nodelocal://0/c'")
FULL_DIR=$(find "$T/extio/c" -mindepth 3 -maxdepth 3 -type d -path "$T/extio/c/[0-9]*" | head -1)
FULL_BYTES=$(du -sb "$FULL_DIR" | cut -f1)
FULL_END=$("$PSQL" -X -At -h 127.0.0.1 -p "$PGBR_PORT" -U postgres -d postgres -c "SHOW BACKUP FROM LATEST IN 'nodelocal://0/c'" \
    | awk -F'|' '$4 == "database" && $5 == "full" { print $7 }')

# a slot of the bench's own, to time the server's decoding of the same
# changes: the floor under any logical-decoding incremental
q bench "SELECT pg_create_logical_replication_slot('bench_floor', 'pgoutput')" >/dev/null
PUB=$(q bench "SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgbr%' LIMIT 1")
T0=$EPOCHREALTIME
"$PGBIN/pgbench" -n -c 2 -j 2 -t $((TXNS / 2)) -h 127.0.0.1 -p "$PG_PORT" -U postgres bench >"$T/log/pgbench-run.log" 2>&1 \
    || die "pgbench run failed"
WORK_S=$(secs_since "$T0")
CHANGED=$(q bench "SELECT count(DISTINCT aid) FROM pgbench_history")

q postgres CHECKPOINT
T0=$EPOCHREALTIME
q bench "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('bench_floor', NULL, NULL, 'proto_version', '1', 'publication_names', '$PUB')" >/dev/null
DECODE_S=$(secs_since "$T0")
q bench "SELECT pg_drop_replication_slot('bench_floor')" >/dev/null
INC_S=$(timed incremental "BACKUP DATABASE bench INTO LATEST IN 'nodelocal://0/c'")
INC_BYTES=$(du -sb "$T/extio/c/incrementals" | cut -f1)

CHAIN_S=$(timed restore-chain "RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/c' WITH new_db_name = r_chain")
FULLR_S=$(timed restore-full "RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$FULL_END' WITH new_db_name = r_full")

SUMS='SELECT string_agg(s, $$ $$ ORDER BY s) FROM (
  SELECT $$a$$ || count(*) || md5(string_agg(aid || $$:$$ || abalance, $$,$$ ORDER BY aid)) AS s FROM pgbench_accounts
  UNION ALL SELECT $$b$$ || count(*) || md5(string_agg(bid || $$:$$ || bbalance, $$,$$ ORDER BY bid)) FROM pgbench_branches
  UNION ALL SELECT $$t$$ || count(*) || md5(string_agg(tid || $$:$$ || tbalance, $$,$$ ORDER BY tid)) FROM pgbench_tellers
  UNION ALL SELECT $$h$$ || count(*) || sum(delta) FROM pgbench_history) x'
SRC=$(q bench "$SUMS")
DST=$(q r_chain "$SUMS")
STATUS=0
if [ "$SRC" != "$DST" ]; then
    echo "bench: the database restored from the chain differs from the source" >&2
    STATUS=1
fi

printf '\n%-44s %10s %12s\n' "" "seconds" "MB"
printf '%-44s %10s %12s\n' "full backup" "$FULL_S" "$(mb "$FULL_BYTES")"
printf '%-44s %10s %12s\n' "workload: $TXNS pgbench transactions" "$WORK_S" ""
printf '%-44s %10s %12s\n' "  ($CHANGED distinct accounts changed of $ACCOUNTS)" "" ""
printf '%-44s %10s\n' "floor: the server decoding those changes" "$DECODE_S"
printf '%-44s %10s %12s\n' "incremental backup" "$INC_S" "$(mb "$INC_BYTES")"
printf '%-44s %10s\n' "restore from the full backup alone" "$FULLR_S"
printf '%-44s %10s\n' "restore from the chain (full + incremental)" "$CHAIN_S"
echo
echo "incremental time / full time:           $(ratio "$INC_S" "$FULL_S") (goal <= 0.05)"
echo "decoding floor / full time:             $(ratio "$DECODE_S" "$FULL_S")"
echo "incremental bytes / full bytes:         $(ratio "$INC_BYTES" "$FULL_BYTES")"
echo "restore from chain / restore from full: $(ratio "$CHAIN_S" "$FULLR_S")"
echo "restored chain equals the source:       $([ $STATUS = 0 ] && echo yes || echo NO)"
exit $STATUS
