#!/bin/bash
# contrib/bench/bench-backup.sh - backup and restore benchmark (make bench-backup).
#
# Starts a throwaway PostgreSQL and pgbr on 127.0.0.1 and measures, for two
# datasets, each in one run:
#   (a) pgbench     pgbench -i -s 50 (the filler column compresses ~100x, so
#                   it flatters every compressor: shown, not judged);
#   (b) mixed       one table of realistic rows (bigint key, int, bigint, md5
#                   text, timestamptz, numeric(12,2), jsonb), 5 million rows,
#                   compressing about 2-3x: the goals are judged on this one.
# Per dataset:
#   floor           COPY ... TO STDOUT of every table to /dev/null over 2
#                   parallel psql connections (big tables split in two ctid
#                   ranges, so both connections really work);
#   pg_dump -Fc, pg_dump -Fd -j2, pgbr BACKUP DATABASE;
#   pg_restore -j1, -j2 and --single-transaction from the -Fc archive, each
#                   into a new database; the fastest one is the reference;
#   pgbr RESTORE ... WITH new_db_name, then row counts and a row checksum of
#                   every restored table compared with the source.
# and prints times, sizes, pgbr's peak RSS and the ratios of the goals:
#   backup time <= 0.6 x pg_dump -Fd -j2 and <= 1.3 x the floor,
#   backup size <= 0.9 x pg_dump -Fc, restore time <= 0.9 x fastest pg_restore,
#   pgbr peak RSS <= 256 MB.
#
# Method: every measured command runs once, after an untimed warm-up read of
# all the dataset's tables (the floor's COPYs), so all tools read from a warm
# OS page cache (dropping the caches needs root on the host; it would measure
# the disk, not the tools). A CHECKPOINT runs (untimed) before each measured
# command, so no tool pays for the previous one's dirty buffers. Times are
# wall clock of the client command (psql for pgbr, which blocks until the job
# ends). pgbr's peak RSS is its VmHWM, reset (/proc/<pid>/clear_refs) before
# each pgbr statement, cross-checked by polling VmRSS every 50 ms; the polled
# peak of pgbr plus its children (pg_dump, pg_restore) is printed too.
#
# Environment: PGBR_BIN (default bin/pgbr), BENCH_PGBENCH_SCALE (50),
# BENCH_MIXED_ROWS (5000000), BENCH_DATASETS ("pgbench mixed"),
# BENCH_PGBR_WORKERS (pgbr --workers; default: pgbr's own, the CPU count),
# BENCH_FSYNC (on), BENCH_TMPDIR (/tmp), BENCH_KEEP (keep the temp dir),
# PG_BINDIR. As root, PostgreSQL (which refuses root) runs as user pgtest
# (PGBR_TEST_PGUSER); pgbr and the clients run as the caller.
# Exit status: 0 when everything ran (goals met or not, and when RESTORE is
# not implemented yet); 1 when a step failed or a restored table differs.
# shellcheck disable=SC2317  # cleanup and the load functions are called indirectly
set -eu
export LC_ALL=C

# shellcheck source=contrib/bench/lib.sh
. "$(dirname "$0")/lib.sh"
PGBENCH_SCALE=${BENCH_PGBENCH_SCALE:-50}
MIXED_ROWS=${BENCH_MIXED_ROWS:-5000000}
DATASETS=${BENCH_DATASETS:-pgbench mixed}
PGBR_WORKERS=${BENCH_PGBR_WORKERS:-}
FSYNC=${BENCH_FSYNC:-on}

for tool in initdb pg_ctl pg_dump pg_restore pgbench; do
    [ -x "$PGBIN/$tool" ] || { echo "bench: $PGBIN/$tool not found (contrib/install-deps.sh)" >&2; exit 1; }
done
case "$PGBENCH_SCALE$MIXED_ROWS" in
    *[!0-9]*) echo "bench: BENCH_PGBENCH_SCALE and BENCH_MIXED_ROWS must be integers" >&2; exit 1 ;;
esac
for ds in $DATASETS; do
    case "$ds" in
        pgbench | mixed) ;;
        *) echo "bench: unknown dataset \"$ds\" in BENCH_DATASETS (pgbench, mixed)" >&2; exit 1 ;;
    esac
done

T=$(mktemp -d "${BENCH_TMPDIR:-/tmp}/pgbr_bench_backup_XXXXXX")
chmod 755 "$T"
mkdir -p "$T/pg" "$T/extio" "$T/dump" "$T/log" "$T/sql"
pg_owns "$T/pg"

WATCH_PID=
cleanup() {
    set +e
    [ -n "$WATCH_PID" ] && kill "$WATCH_PID" 2>/dev/null && wait "$WATCH_PID" 2>/dev/null
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

FAILED=0
fail() { echo "bench: $*" >&2; FAILED=1; }

PG_PORT=$(free_port)
PGBR_PORT=$(free_port)
while [ "$PGBR_PORT" = "$PG_PORT" ]; do PGBR_PORT=$(free_port); done

dir_bytes() { du -sb "$1" | cut -f1; }

# ---- pgbr memory: VmHWM (reset per statement) and a 50 ms VmRSS poller ----
HWM_RESET=0
rss_watch_start() {
    HWM_RESET=0
    if { echo 5 >"/proc/$PGBR_PID/clear_refs"; } 2>/dev/null; then HWM_RESET=1; fi
    rm -f "$T/rss.stop"
    perl - "$PGBR_PID" "$T/rss.stop" >"$T/rss.out" <<'PERL' &
use strict; use warnings; use Time::HiRes qw(sleep);
my ($pid, $stop) = @ARGV;
my $page_kb = 4;    # RSS in /proc/<pid>/stat is in pages
sub status_kb { my ($p, $k) = @_; open(my $f, '<', "/proc/$p/status") or return 0;
    while (<$f>) { return $1 if /^$k:\s+(\d+)/ } 0 }
# pgbr plus its descendants (pg_dump, pg_restore); no /proc/*/children here
sub tree_kb {
    my (%ppid, %rss);
    opendir(my $d, '/proc') or return 0;
    for my $p (grep { /^\d+$/ } readdir $d) {
        open(my $f, '<', "/proc/$p/stat") or next;
        my $s = <$f> // next;
        $s =~ s/^.*\)\s+//;    # past "pid (comm)"
        my @x = split ' ', $s;
        ($ppid{$p}, $rss{$p}) = ($x[1], $x[21] * $page_kb);
    }
    my ($sum, @q) = (0, $pid);
    my %kids; push @{ $kids{ $ppid{$_} } }, $_ for keys %ppid;
    while (defined(my $p = shift @q)) { $sum += $rss{$p} // 0; push @q, @{ $kids{$p} // [] } }
    $sum;
}
my ($self, $tree, $n) = (0, 0, 0);
while (1) {
    my $done = -e $stop;
    my $r = status_kb($pid, 'VmRSS');
    $self = $r if $r > $self;
    if ($n++ % 2 == 0 || $done) { my $t = tree_kb(); $tree = $t if $t > $tree }
    last if $done;
    sleep 0.05;
}
printf "%d %d %d\n", $self, $tree, status_kb($pid, 'VmHWM');
PERL
    WATCH_PID=$!
}
# Sets PEAK_MB (pgbr itself) and TREE_MB (pgbr + children).
rss_watch_stop() {
    local self tree hwm
    touch "$T/rss.stop"
    wait "$WATCH_PID" || true
    WATCH_PID=
    read -r self tree hwm <"$T/rss.out" || { self=0; tree=0; hwm=0; }
    if [ "$HWM_RESET" = 1 ] && [ "$hwm" -gt "$self" ]; then self=$hwm; fi
    [ "$tree" -ge "$self" ] || tree=$self
    PEAK_MB=$(awk -v k="$self" 'BEGIN { printf "%.1f", k / 1024 }')
    TREE_MB=$(awk -v k="$tree" 'BEGIN { printf "%.1f", k / 1024 }')
}

# ---- servers ----
echo "== setup: PostgreSQL :$PG_PORT, pgbr :$PGBR_PORT, temp dir $T"
as_pg "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$T/log/initdb.log" 2>&1 ||
    { cat "$T/log/initdb.log" >&2; exit 1; }
PG_SETTINGS="shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
maintenance_work_mem = 256MB
fsync = $FSYNC
max_connections = 100"
as_pg sh -c "cat >> '$T/pg/data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$T/pg'
$PG_SETTINGS
EOF
as_pg "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 120 start >/dev/null ||
    { cat "$T/pg/server.log" >&2; exit 1; }

PGBR_ARGS=(--listen "127.0.0.1:$PGBR_PORT" --upstream-host 127.0.0.1 --upstream-port "$PG_PORT"
    --job-dsn "user=postgres" --external-io-dir "$T/extio" --log-level warning)
[ -n "$PGBR_WORKERS" ] && PGBR_ARGS+=(--workers "$PGBR_WORKERS")
"$PGBR" "${PGBR_ARGS[@]}" 2>"$T/log/pgbr.log" </dev/null &
PGBR_PID=$!
wait_port "$PGBR_PORT" || { echo "bench: pgbr did not start" >&2; cat "$T/log/pgbr.log" >&2; exit 1; }

echo "== machine and settings"
echo "  nproc $(nproc), memory $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
echo "  $(q postgres 'SELECT version()')"
echo "  $("$PGBIN/pg_dump" --version), $("$PGBR" --version 2>&1 | head -1)"
echo "  pgbr workers: ${PGBR_WORKERS:-default (CPU count)}; pgbr, PostgreSQL and all clients on this machine, over 127.0.0.1 TCP"
echo "  postgresql.conf: $(echo "$PG_SETTINGS" | tr '\n' ';' | sed 's/;$//; s/;/;  /g')"
[ "$FSYNC" = on ] && echo "  (fsync is on: restores and pgbr's data files pay for real flushes; pg_dump syncs its output too)"
echo "  method: each measured command runs once after an untimed warm-up read of all tables"
echo "          (warm OS page cache) and an untimed CHECKPOINT"

# ---- datasets ----
load_pgbench() { # db
    q postgres "CREATE DATABASE $1" >/dev/null
    "$PGBIN/pgbench" -i -q -s "$PGBENCH_SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$1" >"$T/log/pgbench-init.log" 2>&1 ||
        { cat "$T/log/pgbench-init.log" >&2; die "pgbench -i failed"; }
}

mixed_insert() { # db from to
    q "$1" "INSERT INTO mixed
        SELECT g,
               (random() * 100000)::int,
               (random() * 1e12)::bigint,
               md5(g::text || random()::text),
               timestamptz '2024-01-01 00:00:00+00' + random() * interval '730 days',
               round((random() * 100000)::numeric, 2),
               jsonb_strip_nulls(jsonb_build_object(
                   'customer', (random() * 50000)::int,
                   'status', (ARRAY['new', 'paid', 'shipped', 'delivered', 'returned'])[1 + floor(random() * 5)::int],
                   'qty', 1 + floor(random() * 10)::int,
                   'price', round((random() * 500)::numeric, 2),
                   'coupon', CASE WHEN random() < 0.2 THEN upper(substr(md5(random()::text), 1, 8)) END))
        FROM generate_series($2, $3) g" >/dev/null
}

load_mixed() { # db
    local half=$((MIXED_ROWS / 2)) p1 p2
    q postgres "CREATE DATABASE $1" >/dev/null
    q "$1" "CREATE TABLE mixed (id bigint NOT NULL, a int, b bigint, t text, ts timestamptz, n numeric(12,2), j jsonb)" >/dev/null
    # Two sessions insert one half each: the load takes half the time.
    mixed_insert "$1" 1 "$half" & p1=$!
    mixed_insert "$1" $((half + 1)) "$MIXED_ROWS" & p2=$!
    wait "$p1" || die "loading mixed failed"
    wait "$p2" || die "loading mixed failed"
    q "$1" "ALTER TABLE mixed ADD PRIMARY KEY (id)" >/dev/null
}

# The user tables of a database, largest first: "name|pages".
TABLES_SQL="SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid) / current_setting('block_size')::int
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr')
      AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    ORDER BY 2 DESC, 1"

# Writes $T/sql/<db>.floor1.sql and .floor2.sql: COPY ... TO STDOUT of every
# table, tables of 256 pages or more split into two ctid ranges, the pieces
# dealt largest first to the less loaded connection.
make_floor_sql() { # db
    : >"$T/sql/$1.floor1.sql"
    : >"$T/sql/$1.floor2.sql"
    q "$1" "$TABLES_SQL" | awk -F'|' -v out="$T/sql/$1.floor" '
        { n = $1; p = $2 + 0
          if (p >= 256) { h = int(p / 2)
              add("COPY (SELECT * FROM ONLY " n " WHERE ctid < '\''(" h ",0)'\''::tid) TO STDOUT;", h)
              add("COPY (SELECT * FROM ONLY " n " WHERE ctid >= '\''(" h ",0)'\''::tid) TO STDOUT;", p - h)
          } else add("COPY (SELECT * FROM ONLY " n ") TO STDOUT;", p) }
        function add(s, w) { k++; cmd[k] = s; wt[k] = w }
        END { l[1] = 0; l[2] = 0
              for (i = 1; i <= k; i++) { best = 0
                  for (j = 1; j <= k; j++) if (!used[j] && (best == 0 || wt[j] > wt[best])) best = j
                  used[best] = 1; c = (l[1] <= l[2]) ? 1 : 2; l[c] += wt[best]
                  print cmd[best] > (out c ".sql") } }'
}

run_floor() { # db
    local p1 p2 rc=0
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -f "$T/sql/$1.floor1.sql" >/dev/null & p1=$!
    "$PSQL" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$1" -f "$T/sql/$1.floor2.sql" >/dev/null & p2=$!
    wait "$p1" || rc=1
    wait "$p2" || rc=1
    return $rc
}

# Row count and a row checksum (sum of hashtext of each row's text form) of
# every table of db, one line per table.
table_sums() { # db
    local t
    for t in $(q "$1" "$TABLES_SQL" | cut -d'|' -f1); do
        printf '%s ' "$t"
        q "$1" "SELECT count(*) || ' ' || coalesce(sum(hashtext(x::text)::bigint), 0) FROM ONLY $t x"
    done
}

checkpoint() { q postgres CHECKPOINT >/dev/null; }

recreate_db() { # db
    q postgres "DROP DATABASE IF EXISTS $1" >/dev/null
    q postgres "CREATE DATABASE $1" >/dev/null
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# Prints one ratio line with its goal; $5 is appended (e.g. "not judged").
goal_line() { # label value goal unit-suffix note
    local verdict
    verdict=$(awk -v v="$2" -v g="$3" 'BEGIN { print (v <= g) ? "met" : "MISSED" }')
    printf "  %-44s %8s%-3s goal <= %s%s: %s%s\n" "$1" "$2" "$4" "$3" "$4" "$verdict" "${5:+ ($5)}"
    GOAL_VERDICTS="${GOAL_VERDICTS:-}$verdict "
}

SUMMARY=

bench_dataset() { # name
    local ds=$1 db=bench_$1 coll=$1 judged="" t0 src_rows db_bytes
    local floor_s fc_s fc_b fd_s fd_b br_s br_b br_peak br_tree br_text
    local best_s="" best_name="" s v status err rs_s="" rs_peak rs_tree rs_note=""
    echo
    case "$ds" in
        pgbench) echo "== dataset pgbench: pgbench -i -s $PGBENCH_SCALE (filler compresses ~100x: shown, not judged)" ;;
        mixed) echo "== dataset mixed: $MIXED_ROWS rows of bigint, int, bigint, md5 text, timestamptz, numeric(12,2), jsonb (goals judged here)" ;;
    esac
    [ "$ds" = mixed ] || judged="not judged on this dataset"

    t0=$EPOCHREALTIME
    "load_$ds" "$db"
    q "$db" "VACUUM (ANALYZE)" >/dev/null
    checkpoint
    db_bytes=$(q postgres "SELECT pg_database_size('$db')")
    src_rows=$(q "$db" "SELECT sum(n_live_tup) FROM pg_stat_user_tables")
    echo "  loaded in $(secs_since "$t0") s (+ VACUUM ANALYZE, CHECKPOINT): database $(mb "$db_bytes") MB, ~$src_rows rows"
    table_sums "$db" >"$T/log/$db.sums"
    make_floor_sql "$db"

    # warm-up read (untimed)
    run_floor "$db" || die "warm-up read of $db failed"

    checkpoint
    t0=$EPOCHREALTIME
    run_floor "$db" || die "floor COPY of $db failed"
    floor_s=$(secs_since "$t0")
    echo "  floor (COPY TO STDOUT, 2 connections)  $floor_s s"

    checkpoint
    t0=$EPOCHREALTIME
    "$PGBIN/pg_dump" -Fc -h 127.0.0.1 -p "$PG_PORT" -U postgres -f "$T/dump/$db.dump" "$db" 2>"$T/log/$db.pg_dump_fc.err" ||
        { cat "$T/log/$db.pg_dump_fc.err" >&2; die "pg_dump -Fc failed"; }
    fc_s=$(secs_since "$t0")
    fc_b=$(stat -c %s "$T/dump/$db.dump")
    echo "  pg_dump -Fc                            $fc_s s, $(mb "$fc_b") MB"

    checkpoint
    t0=$EPOCHREALTIME
    "$PGBIN/pg_dump" -Fd -j2 -h 127.0.0.1 -p "$PG_PORT" -U postgres -f "$T/dump/$db.dir" "$db" 2>"$T/log/$db.pg_dump_fd.err" ||
        { cat "$T/log/$db.pg_dump_fd.err" >&2; die "pg_dump -Fd -j2 failed"; }
    fd_s=$(secs_since "$t0")
    fd_b=$(dir_bytes "$T/dump/$db.dir")
    echo "  pg_dump -Fd -j2                        $fd_s s, $(mb "$fd_b") MB"
    rm -rf "$T/dump/$db.dir"

    checkpoint
    rss_watch_start
    t0=$EPOCHREALTIME
    if pgbr_sql "$db.backup" "BACKUP DATABASE $db INTO 'nodelocal://0/$coll'"; then
        br_s=$(secs_since "$t0")
        rss_watch_stop
        br_peak=$PEAK_MB br_tree=$TREE_MB
        br_b=$(dir_bytes "$T/extio/$coll")
        status=$(sed -n '3p' "$T/log/$db.backup.out" | tr -s ' ')
        # job_id | status | fraction_completed | rows | index_entries | bytes (of COPY text)
        br_text=$(echo "$status" | awk -F'|' '{ gsub(/ /, "", $6); print $6 + 0 }')
        echo "  pgbr BACKUP                            $br_s s, $(mb "$br_b") MB, peak RSS $br_peak MB (with children $br_tree MB)"
        echo "    result:$status"
        echo "    COPY text $(mb "$br_text") MB -> $(mb "$br_b") MB backup: $(ratio "$br_text" "$br_b") x" \
            "(pg_dump -Fc: $(ratio "$br_text" "$fc_b") x)"
    else
        rss_watch_stop
        br_s=""
        err=$(grep -m1 'ERROR' "$T/log/$db.backup.err" || head -1 "$T/log/$db.backup.err")
        echo "  pgbr BACKUP                            FAILED ($err)"
        fail "pgbr BACKUP of $db failed: $(cat "$T/log/$db.backup.err")"
        tail -20 "$T/log/pgbr.log" >&2
    fi

    for variant in "-j1" "-j2" "--single-transaction"; do
        recreate_db "${db}_pgr"
        checkpoint
        t0=$EPOCHREALTIME
        if "$PGBIN/pg_restore" $variant -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "${db}_pgr" "$T/dump/$db.dump" \
            2>"$T/log/$db.pg_restore$variant.err"; then
            s=$(secs_since "$t0")
            printf "  %-38s %s s\n" "pg_restore $variant" "$s"
            if [ -z "$best_s" ] || awk -v a="$s" -v b="$best_s" 'BEGIN { exit !(a < b) }'; then
                best_s=$s best_name="pg_restore $variant"
            fi
        else
            printf "  %-38s FAILED\n" "pg_restore $variant"
            fail "pg_restore $variant failed: $(head -5 "$T/log/$db.pg_restore$variant.err")"
        fi
    done
    q postgres "DROP DATABASE IF EXISTS ${db}_pgr" >/dev/null
    [ -n "$best_s" ] && echo "    fastest: $best_name, $best_s s"

    if [ -n "$br_s" ]; then
        q postgres "DROP DATABASE IF EXISTS ${db}_pgbr" >/dev/null
        checkpoint
        rss_watch_start
        t0=$EPOCHREALTIME
        if pgbr_sql "$db.restore" "RESTORE DATABASE $db FROM LATEST IN 'nodelocal://0/$coll' WITH new_db_name = '${db}_pgbr'"; then
            rs_s=$(secs_since "$t0")
            rss_watch_stop
            rs_peak=$PEAK_MB rs_tree=$TREE_MB
            echo "  pgbr RESTORE                           $rs_s s, peak RSS $rs_peak MB (with children $rs_tree MB)"
            table_sums "${db}_pgbr" >"$T/log/${db}_pgbr.sums" || true
            if cmp -s "$T/log/$db.sums" "$T/log/${db}_pgbr.sums"; then
                echo "    verified: row count and row checksum of every table ($(wc -l <"$T/log/$db.sums")) equal the source's"
            else
                echo "    WARNING: the restored tables differ from the source (table, rows, checksum; < source, > restored):"
                diff "$T/log/$db.sums" "$T/log/${db}_pgbr.sums" | sed 's/^/      /'
                fail "pgbr RESTORE of $db: restored data differs from the source"
            fi
            q postgres "DROP DATABASE IF EXISTS ${db}_pgbr" >/dev/null
        else
            rss_watch_stop
            err=$(grep -m1 'ERROR' "$T/log/$db.restore.err" || head -1 "$T/log/$db.restore.err")
            err=${err#ERROR:}
            err=${err#"${err%%[! ]*}"}
            if echo "$err" | grep -q '0A000\|not implemented'; then
                rs_note="not available ($err)"
            else
                rs_note="FAILED ($err)"
                fail "pgbr RESTORE of $db failed: $(cat "$T/log/$db.restore.err")"
            fi
            echo "  pgbr RESTORE: $rs_note"
        fi
    else
        rs_note="skipped (no backup)"
        echo "  pgbr RESTORE: $rs_note"
    fi

    echo
    echo "  -- $ds: results"
    printf "  %-44s %9s %10s\n" "step" "time (s)" "size (MB)"
    printf "  %-44s %9s %10s\n" "floor: COPY TO STDOUT x2" "$floor_s" "-"
    printf "  %-44s %9s %10s\n" "pg_dump -Fc" "$fc_s" "$(mb "$fc_b")"
    printf "  %-44s %9s %10s\n" "pg_dump -Fd -j2" "$fd_s" "$(mb "$fd_b")"
    if [ -n "$br_s" ]; then
        printf "  %-44s %9s %10s   peak RSS %s MB\n" "pgbr BACKUP" "$br_s" "$(mb "$br_b")" "$br_peak"
    else
        printf "  %-44s %9s %10s\n" "pgbr BACKUP" "FAILED" "-"
    fi
    printf "  %-44s %9s %10s\n" "fastest pg_restore (${best_name#pg_restore })" "${best_s:--}" "-"
    if [ -n "$rs_s" ]; then
        printf "  %-44s %9s %10s   peak RSS %s MB\n" "pgbr RESTORE" "$rs_s" "-" "$rs_peak"
    else
        printf "  %-44s %s\n" "pgbr RESTORE" "$rs_note"
    fi
    printf "  %-44s %9s %10s\n" "(database size)" "" "$(mb "$db_bytes")"
    echo "  -- ratios"
    GOAL_VERDICTS=
    if [ -n "$br_s" ]; then
        goal_line "backup time / pg_dump -Fd -j2" "$(ratio "$br_s" "$fd_s")" 0.6 "" "$judged"
        goal_line "backup time / floor" "$(ratio "$br_s" "$floor_s")" 1.3 "" "$judged"
        goal_line "backup size / pg_dump -Fc" "$(ratio "$br_b" "$fc_b")" 0.9 "" "$judged"
        printf "  %-44s %8s\n" "(database size / backup size)" "$(ratio "$db_bytes" "$br_b")"
    else
        echo "  backup ratios: skipped (pgbr BACKUP failed)"
    fi
    if [ -n "$rs_s" ] && [ -n "$best_s" ]; then
        goal_line "restore time / fastest pg_restore" "$(ratio "$rs_s" "$best_s")" 0.9 "" "$judged"
    else
        echo "  restore ratio: skipped (pgbr RESTORE $rs_note)"
    fi
    if [ -n "$br_s" ]; then goal_line "pgbr peak RSS, BACKUP" "$br_peak" 256 " MB" "$judged"; fi
    if [ -n "$rs_s" ]; then goal_line "pgbr peak RSS, RESTORE" "$rs_peak" 256 " MB" "$judged"; fi

    local br_sum="FAILED" rs_sum="$rs_note"
    [ -z "$br_s" ] || br_sum="$br_s s / $(mb "$br_b") MB (peak RSS $br_peak MB)"
    [ -z "$rs_s" ] || rs_sum="$rs_s s (peak RSS $rs_peak MB)"
    SUMMARY="$SUMMARY
  $ds: floor $floor_s s, pg_dump -Fc $fc_s s / $(mb "$fc_b") MB, pg_dump -Fd -j2 $fd_s s,
    pgbr BACKUP $br_sum, $best_name ${best_s:--} s, pgbr RESTORE $rs_sum"
    if [ "$ds" = mixed ]; then
        local met=0 missed=0 v
        for v in $GOAL_VERDICTS; do
            if [ "$v" = met ]; then met=$((met + 1)); else missed=$((missed + 1)); fi
        done
        SUMMARY="$SUMMARY
    goals on mixed: $met met, $missed MISSED"
        [ -n "$rs_s" ] || SUMMARY="$SUMMARY (restore goals not measured: pgbr RESTORE $rs_note)"
    fi
    q postgres "DROP DATABASE $db" >/dev/null
    rm -rf "$T/dump/$db.dump" "$T/extio/$coll"
}

for ds in $DATASETS; do
    bench_dataset "$ds"
done

echo
echo "== summary (indicative: one run each; compare ratios from the same run)$SUMMARY"
exit $FAILED
