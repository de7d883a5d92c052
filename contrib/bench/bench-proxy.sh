#!/bin/bash
# contrib/bench/bench-proxy.sh - proxy overhead benchmark (make bench-proxy).
#
# Starts a throwaway PostgreSQL, PgBouncer (session pooling) and pgbr on
# 127.0.0.1, loads pgbench data, then runs the same read-only pgbench
#   pgbench -S -c 8 -j 2 -T 20
# directly, through PgBouncer and through pgbr, and prints TPS and the ratios
# pgbr/PgBouncer and pgbr/direct. Then opens 1000 idle client connections
# through pgbr (and through PgBouncer, for comparison) from one process and
# prints the proxies' resident memory (RSS) with them open.
#
# Environment: PGBR_BIN (default bin/pgbr), BENCH_SECONDS (20),
# BENCH_CLIENTS (8), BENCH_SCALE (10), BENCH_IDLE (1000), PG_BINDIR.
# As root, PostgreSQL and PgBouncer (both refuse root) run as user pgtest.
set -eu

# shellcheck source=contrib/bench/lib.sh
. "$(dirname "$0")/lib.sh"
SECS=${BENCH_SECONDS:-20}
CLIENTS=${BENCH_CLIENTS:-8}
SCALE=${BENCH_SCALE:-10}
IDLE=${BENCH_IDLE:-1000}
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

[ -x "$PGBOUNCER" ] || { echo "bench: pgbouncer not installed (contrib/install-deps.sh)" >&2; exit 1; }

T=$(mktemp -d /tmp/pgbr_bench_XXXXXX)
chmod 755 "$T"
mkdir -p "$T/pg" "$T/pgb"
pg_owns "$T/pg" "$T/pgb"

cleanup() {
    set +e
    [ -f "$T/pgb/pgbouncer.pid" ] && kill -TERM "$(cat "$T/pgb/pgbouncer.pid")" 2>/dev/null
    bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PG_PORT=$(free_port)
PGB_PORT=$(free_port)
PGBR_PORT=$(free_port)

echo "== setup: PostgreSQL :$PG_PORT, PgBouncer :$PGB_PORT, pgbr :$PGBR_PORT (scale $SCALE)"
as_pg "$PGBIN/initdb" -D "$T/pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync >"$T/initdb.log" 2>&1 ||
    { cat "$T/initdb.log" >&2; exit 1; }
as_pg sh -c "cat >> '$T/pg/data/postgresql.conf'" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$T/pg'
max_connections = $((IDLE + 200))
shared_buffers = 256MB
fsync = off
full_page_writes = off
synchronous_commit = off
EOF
as_pg "$PGBIN/pg_ctl" -D "$T/pg/data" -l "$T/pg/server.log" -w -t 120 start >/dev/null ||
    { cat "$T/pg/server.log" >&2; exit 1; }

as_pg sh -c "cat > '$T/pgb/pgbouncer.ini'" <<EOF
[databases]
* = host=127.0.0.1 port=$PG_PORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $T/pgb/userlist.txt
pool_mode = session
max_client_conn = $((IDLE + 100))
default_pool_size = $((CLIENTS + 4))
logfile = $T/pgb/pgbouncer.log
pidfile = $T/pgb/pgbouncer.pid
ignore_startup_parameters = extra_float_digits,options
EOF
as_pg sh -c "echo '\"postgres\" \"\"' > '$T/pgb/userlist.txt'"
as_pg "$PGBOUNCER" -d "$T/pgb/pgbouncer.ini"
wait_port "$PGB_PORT" || { echo "bench: pgbouncer did not start" >&2; cat "$T/pgb/pgbouncer.log" >&2; exit 1; }

"$PGBR" --listen "127.0.0.1:$PGBR_PORT" --upstream-host 127.0.0.1 --upstream-port "$PG_PORT" \
    --job-dsn "user=postgres" --log-level warning 2>"$T/pgbr.log" </dev/null &
PGBR_PID=$!
wait_port "$PGBR_PORT" || { echo "bench: pgbr did not start" >&2; cat "$T/pgbr.log" >&2; exit 1; }

"$PGBIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U postgres postgres >"$T/init.log" 2>&1 ||
    { cat "$T/init.log" >&2; exit 1; }

run_bench() { # name port
    local out tps lat
    out=$("$PGBIN/pgbench" -n -S -c "$CLIENTS" -j 2 -T "$SECS" -h 127.0.0.1 -p "$2" -U postgres postgres 2>&1) || {
        echo "bench: pgbench against $1 failed:" >&2
        echo "$out" >&2
        exit 1
    }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    lat=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' | head -1)
    printf "  %-10s %10.0f tps   latency %s ms\n" "$1" "$tps" "$lat" >&2
    echo "$tps"
}

echo "== pgbench -S -c $CLIENTS -j 2 -T $SECS (each target in turn)"
TPS_DIRECT=$(run_bench direct "$PG_PORT")
TPS_PGB=$(run_bench pgbouncer "$PGB_PORT")
TPS_PGBR=$(run_bench pgbr "$PGBR_PORT")
awk -v a="$TPS_PGBR" -v b="$TPS_PGB" -v c="$TPS_DIRECT" 'BEGIN {
    printf "  ratio pgbr/PgBouncer = %.3f\n  ratio pgbr/direct    = %.3f\n", a / b, a / c }'

# RSS of a proxy with $IDLE idle clients, opened in parallel from one process
# (raw protocol startup, trust auth) and held until measured.
idle_rss() { # name port pid
    perl - "$2" "$3" "$IDLE" <<'PERL'
use strict; use warnings;
use IO::Socket::INET; use IO::Select; use Time::HiRes qw(time sleep);
my ($port, $pid, $n) = @ARGV;
sub rss { open(my $f, '<', "/proc/$pid/status") or return -1; while (<$f>) { return $1 if /^VmRSS:\s+(\d+)/ } -1 }
my $before = rss();
my $body = pack('N', 196608) . "user\0postgres\0database\0postgres\0application_name\0idle\0\0";
my $startup = pack('N', 4 + length $body) . $body;
my (@socks, %buf, %done);
my $t0 = time;
for (1 .. $n) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 30)
      or die "connect $_: $!\n";
    syswrite($s, $startup);
    push @socks, $s;
    $buf{$s} = '';
}
my $sel = IO::Select->new(@socks);
my ($ok, $bad) = (0, 0);
my $deadline = time + 300;
while ($ok + $bad < $n && time < $deadline) {
    for my $s ($sel->can_read(1)) {
        my $r = sysread($s, $buf{$s}, 65536, length $buf{$s});
        if (!$r) { $bad++; $sel->remove($s); next }
        while (length($buf{$s}) >= 5) {
            my ($t, $len) = unpack('a1 N', $buf{$s});
            last if length($buf{$s}) < 1 + $len;
            substr($buf{$s}, 0, 1 + $len) = '';
            if ($t eq 'Z') { $ok++; $sel->remove($s); last }
            if ($t eq 'E') { $bad++; $sel->remove($s); last }
        }
    }
}
my $secs = time - $t0;
sleep 1;
my $after = rss();
printf "%d %d %d %d %.1f\n", $before, $after, $ok, $bad, $secs;
syswrite($_, "X\0\0\0\4") for @socks;
close $_ for @socks;
PERL
}

echo "== $IDLE idle client connections (opened in parallel, trust auth)"
PGB_PID=$(cat "$T/pgb/pgbouncer.pid")
for target in "pgbr $PGBR_PORT $PGBR_PID" "pgbouncer $PGB_PORT $PGB_PID"; do
    set -- $target
    read -r before after ok bad secs < <(idle_rss "$1" "$2" "$3")
    printf "  %-10s RSS %6d kB idle -> %7d kB with %d connected (%d failed, %.1f s to connect): %.1f kB per client\n" \
        "$1" "$before" "$after" "$ok" "$bad" "$secs" "$(awk -v a="$after" -v b="$before" -v n="$ok" 'BEGIN { print (n ? (a - b) / n : 0) }')"
    if [ "$1" = pgbr ]; then PGBR_RSS=$after; fi
    sleep 2
done

echo "== summary"
printf "  TPS direct %.0f, PgBouncer %.0f, pgbr %.0f; pgbr/PgBouncer %s, pgbr/direct %s; pgbr RSS with %d idle clients: %d kB\n" \
    "$TPS_DIRECT" "$TPS_PGB" "$TPS_PGBR" \
    "$(awk -v a="$TPS_PGBR" -v b="$TPS_PGB" 'BEGIN { printf "%.3f", a / b }')" \
    "$(awk -v a="$TPS_PGBR" -v b="$TPS_DIRECT" 'BEGIN { printf "%.3f", a / b }')" "$IDLE" "${PGBR_RSS:-0}"
