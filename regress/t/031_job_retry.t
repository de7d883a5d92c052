#!/usr/bin/perl
# A restore that keeps hitting transient errors pauses instead of failing
# (reference 1.7), and RESUME JOB continues it once the cause is gone.
#
# pgbr reaches PostgreSQL through a small TCP relay this test runs. While
# the restore loads, the relay stops accepting connections (the ones open
# stay up: pgbr's catalog connections keep working) and the restore's
# loading sessions are terminated. Every retry then fails to connect
# ("connection refused", class 08): after its attempts (PGBR_TEST_RETRY_MS
# makes each wait short) the job pauses, keeping its staging database.
# Once the relay accepts again, RESUME JOB finishes the restore from its
# checkpoint and the result equals the source.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use IO::Select;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(sleep time);

my $pg = PgbrTest::Postgres->new(conf => [ 'max_wal_size = 1GB' ]);
my $extern = tempdir();

# ---- the relay: a process group; SIGUSR1 closes its listener, SIGUSR2
# opens it again. Each direction of each relayed connection is a process
# of its own (blocking read, then write), so a slow reader never stalls the
# other connections (pgbr's threads wait on each other) ----
my $relay_port = free_port();
my $relay_pid = fork() // die "fork: $!";
if ($relay_pid == 0)
{
	POSIX::setpgid(0, 0);
	my $listen;
	my ($want_closed, $want_open) = (0, 0);
	$SIG{USR1} = sub { $want_closed = 1 };
	$SIG{USR2} = sub { $want_open = 1 };
	$SIG{CHLD} = 'IGNORE';
	my $open = sub {
		$listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $relay_port, Listen => 64, ReuseAddr => 1)
		  or die "relay listen: $!";
	};
	my $pump = sub {
		my ($from, $to) = @_;
		while (1)
		{
			my $n = sysread($from, my $buf, 65536);
			last unless $n;
			my $off = 0;
			while ($off < $n)
			{
				my $w = syswrite($to, $buf, $n - $off, $off);
				POSIX::_exit(0) unless defined $w;
				$off += $w;
			}
		}
		shutdown($to, 1);
		POSIX::_exit(0);
	};
	$open->();
	while (1)
	{
		if ($want_closed && $listen) { close $listen; $listen = undef; $want_closed = 0 }
		if ($want_open && !$listen) { $open->(); $want_open = 0 }
		if (!$listen) { sleep 0.05; next }
		my $sel = IO::Select->new($listen);
		next unless $sel->can_read(0.05);
		my $c = $listen->accept or next;
		my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $pg->port);
		if ($u)
		{
			for my $dir ([ $c, $u ], [ $u, $c ])
			{
				my $pid = fork();
				if (defined $pid && $pid == 0) { close $listen; $pump->(@$dir) }
			}
		}
		close $c;
		close $u if $u;
	}
}

# the relay goes with the test, whatever way the test ends
my $parent = $$;
END { local $?; if ($relay_pid && $$ == $parent) { kill 'KILL', -$relay_pid; waitpid($relay_pid, 0) } }

$ENV{PGBR_TEST_RETRY_MS} = 100;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [
	'--external-io-dir', $extern,
	'--upstream-port', $relay_port,
	'--job-dsn', "host=127.0.0.1 port=$relay_port user=postgres dbname=postgres" ]);

$pg->safe_psql('CREATE DATABASE src');
$pg->safe_psql("CREATE TABLE t (id bigint PRIMARY KEY, payload text);
	INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, 1500000) g;",
	dbname => 'src', timeout => 300);
my $sum_sql = "SELECT count(*) || ':' || md5(string_agg(md5(t::text), '' ORDER BY id)) FROM t";
my $source = $pg->safe_psql($sum_sql, dbname => 'src', timeout => 300);

my ($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE src INTO 'nodelocal://0/c'", timeout => 300);
is($rc, 0, 'a backup through the relay') or diag($err);

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE src FROM LATEST IN 'nodelocal://0/c' WITH new_db_name = 'dst', detached");
is($rc, 0, 'a detached restore') or diag($err);
my $job = $out;
ok(wait_for(sub {
		$pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgbr\\_restore\\_${job}\\_%' AND query ILIKE 'COPY %'") > 0
	}, 120, 0.01), 'the restore is loading rows');

# the upstream becomes unreachable for new connections, and the restore's
# sessions are cut
kill 'USR1', $relay_pid;
sleep 0.3;
$pg->safe_psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname LIKE 'pgbr\\_restore\\_${job}\\_%'");

my $status = '';
ok(wait_for(sub { $status = $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $job"); $status !~ /^(running|pending)$/ }, 120, 0.1),
	'the restore stops retrying');
is($status, 'paused', 'a restore that keeps failing pauses instead of failing');
like($pg->safe_psql("SELECT running_status FROM pgbr.jobs WHERE id = $job"), qr/^paused after errors: .+/,
	'running_status says why');
cmp_ok($pg->safe_psql("SELECT cardinality(execution_errors) FROM pgbr.jobs WHERE id = $job"), '>=', 5,
	'every retried error is in execution_errors');
like($pg->safe_psql("SELECT execution_errors[cardinality(execution_errors)] FROM pgbr.jobs WHERE id = $job"),
	qr/connect|refused|terminat/i, 'the errors are the lost connections');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'pgbr_restore_${job}_0'"), '1',
	'its staging database is kept for RESUME');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'dst'"), '0', 'no destination database');

# the cause is gone: RESUME JOB continues the restore
kill 'USR2', $relay_pid;
sleep 0.3;
($rc, $out, $err) = $pgbr->psql("RESUME JOB $job");
is($rc, 0, 'RESUME JOB') or diag($err);
ok(wait_for(sub { $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $job") eq 'succeeded' }, 300, 0.2),
	'the resumed restore succeeds');
like($pgbr->log_content, qr/database "src" continues in staging "pgbr_restore_${job}_0"/, 'from its checkpoint');
is($pg->safe_psql($sum_sql, dbname => 'dst', timeout => 300), $source, 'the restored table equals the source');

$pgbr->stop_ok;
$pg->stop;
done_testing();
