#!/usr/bin/perl
# Jobs under pause, resume, cancel, crash and node loss (docs/operations.md),
# against a real PostgreSQL with a pgbench -s 20 database:
#  - a backup paused with all its files but one written, while writes go
#    on, then resumed: no pgbr connection to the database while it is
#    paused; the resumed run keeps what was read, reads the rest under a
#    new snapshot and takes the changes made meanwhile from the chain's
#    slot; the finished backup restores to exactly what that snapshot saw;
#  - a restore paused while it loads, then resumed: the result equals the
#    backup;
#  - cancel while a backup runs, while a restore loads, while a restore
#    builds its indexes, and of a paused backup: status canceled and
#    nothing left (files, staging databases, slots, publications);
#  - pgbr killed with SIGKILL during a backup: restarted, it adopts the job
#    and finishes it;
#  - two pgbr nodes on one upstream: the node running a backup is killed,
#    the other adopts the job once the lease has run out and finishes it;
#  - PostgreSQL restarted in the middle of a backup: the job retries and
#    succeeds, and says so in execution_errors.
# The PGBR_TEST_SNAPSHOT_DIR hook holds each backup run after its snapshot
# is taken, so the test acts at a known point.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Time::HiRes qw(sleep time);
use IPC::Run ();

my $t_start = time;
my $pg = PgbrTest::Postgres->new(conf => [ 'wal_level = logical', 'max_wal_size = 1GB' ]);
my $extern = tempdir();
my $snapdir = tempdir();
chmod 0777, $snapdir;
$ENV{PGBR_TEST_SNAPSHOT_DIR} = $snapdir;
my $lease = 4;
my @node1 = (args => [ '--external-io-dir', $extern, '--job-lease', $lease, '--node-id', '1' ]);
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, @node1);

$pg->safe_psql('CREATE DATABASE bench');
my ($rc, $out, $err) = run_cmd(
	[ pg_bindir() . '/pgbench', '-i', '-q', '-s', '20', '-h', $pg->host, '-p', $pg->port, '-U', 'postgres', 'bench' ],
	timeout => 300);
is($rc, 0, 'pgbench -i -s 20') or diag($err);
my @tables = qw(pgbench_accounts pgbench_branches pgbench_history pgbench_tellers);


sub parse_sums { return { map { split /\|/, $_, 2 } grep { /\|/ } split /\n/, $_[0] } }

sub sums { my ($db) = @_; return parse_sums($pg->safe_psql(tables_sum_sql(@tables), dbname => $db, timeout => 300)) }

sub job_row { my ($id, $cols) = @_; return $pg->safe_psql("SELECT $cols FROM pgbr.jobs WHERE id = $id") }

sub wait_status
{
	my ($id, $want, $timeout) = @_;
	my $st = '';
	wait_for(sub { $st = job_row($id, 'status'); $st =~ /^(?:$want)$/ }, $timeout // 120, 0.1);
	return $st;
}

sub detached
{
	my ($sql, $what, @opts) = @_;
	my ($rc, $out, $err) = $pgbr->psql("$sql WITH " . join(', ', @opts, 'detached'));
	is($rc, 0, $what) or diag($err);
	return $out;
}

# PAUSE / RESUME / CANCEL JOB, as the reference gives them
sub control
{
	my ($action, $id, $node) = @_;
	my ($rc, $out, $err) = ($node // $pgbr)->psql("$action JOB $id", extra => [ '-v', 'VERBOSITY=verbose' ]);
	is($rc, 0, "$action JOB") or diag($err);
}

# The hook: wait for the run's snapshot, optionally checksum what it sees.
sub held_snapshot
{
	my ($db) = @_;
	ok(wait_for(sub { -s "$snapdir/$db.snapshot" }, 60, 0.05), "the backup run of $db took its snapshot");
	my $s = slurp("$snapdir/$db.snapshot") // '';
	chomp $s;
	return $s;
}

sub snapshot_sums
{
	my ($db, $snapshot) = @_;
	my ($rc, $out, $err) = $pg->psql("BEGIN ISOLATION LEVEL REPEATABLE READ;\nSET TRANSACTION SNAPSHOT '$snapshot';\n"
		  . tables_sum_sql(@tables) . ";\nCOMMIT;", dbname => $db, timeout => 300);
	is($rc, 0, 'checksums under the backup\'s snapshot') or diag($err);
	return parse_sums($out);
}

sub release { my ($db) = @_; spew("$snapdir/$db.go", '') }
sub rearm { my ($db) = @_; unlink "$snapdir/$db.snapshot", "$snapdir/$db.go", "$snapdir/$db.held" }

sub pgbr_sessions
{
	my ($db) = @_;
	return $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' "
		  . "AND application_name LIKE 'pgbr%' AND pid <> pg_backend_pid()");
}

sub stream_objects
{
	my ($id) = @_;
	return $pg->safe_psql("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'pgbr\\_${id}\\_%'")
	  + $pg->safe_psql("SELECT count(*) FROM pg_publication WHERE pubname = 'pgbr_$id'", dbname => 'bench');
}

sub files_under
{
	my ($dir) = @_;
	return 0 unless -d $dir;
	my @f = split /\n/, `find $dir -type f`;
	return scalar @f;
}

sub staging_dbs
{
	return $pg->safe_psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database WHERE datname LIKE 'pgbr\\_restore\\_%'");
}

sub restore_and_compare
{
	my ($coll, $newdb, $want, $what) = @_;
	my ($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/$coll' WITH new_db_name = '$newdb'",
		timeout => 300);
	is($rc, 0, "restore of $coll") or diag($err);
	is_deeply(sums($newdb), $want, $what);
}

my $source = sums('bench');

# ---------------------------------------------------------------------------
# A. pause a backup, write meanwhile, resume
# ---------------------------------------------------------------------------
rearm('bench');
spew("$snapdir/bench.hold", '');
my $job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/paused'", 'a detached backup');
held_snapshot('bench');
release('bench');
ok(wait_for(sub { -e "$snapdir/bench.held" }, 120, 0.05), 'the backup has written all its files but the last');
control('PAUSE', $job);
unlink "$snapdir/bench.hold";
is(wait_status($job, 'paused|succeeded|failed'), 'paused', 'the backup pauses at a chunk boundary');
like(($pgbr->psql("SHOW JOB $job", extra => [ '-A', '-t' ]))[1], qr/\|BACKUP\|.*\|paused\|/, 'SHOW JOB says paused');
like(job_row($job, 'checkpoint::text'), qr/"tables": \[\{/, 'its checkpoint lists the tables it has read');
ok(scalar(glob("$extern/paused/*/*/*/data/bench/*")), 'their files are kept while it is paused');
ok(wait_for(sub { pgbr_sessions('bench') == 0 }, 30, 0.1), 'while paused pgbr has no session (no transaction, no snapshot) in the database');
is(job_row($job, "coalesce(coordinator_id::text, 'none') || ' ' || coalesce(lease_expires::text, 'none')"), 'none none',
	'a paused job has no node and no lease');
($rc, $out, $err) = run_cmd([ pg_bindir() . '/pgbench', '-n', '-c', '2', '-t', '300', '-h', $pg->host, '-p', $pg->port,
	'-U', 'postgres', 'bench' ], timeout => 300);
is($rc, 0, 'pgbench writes while the backup is paused') or diag($err);
rearm('bench');
my $resumed_at = $pg->safe_psql('SELECT now()');
control('RESUME', $job);
my $resumed = held_snapshot('bench');
my $at_resume = snapshot_sums('bench', $resumed);
isnt($at_resume->{pgbench_history}, $source->{pgbench_history}, 'the resumed backup sees the writes made during the pause');
release('bench');
is(wait_status($job, 'succeeded|failed|canceled'), 'succeeded', 'the resumed backup succeeds');
{
	my ($rc, $out, $err) = $pgbr->psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/paused'");
	my ($db_row) = grep { $_->[2] eq 'bench' && $_->[3] eq 'database' } map { [ split /\|/, $_, -1 ] } split /\n/, $out;
	my $end = $db_row ? $db_row->[6] : '';
	is($pg->safe_psql("SELECT '$end'::timestamptz > '$resumed_at'::timestamptz"), 't',
		'SHOW BACKUP: its end_time is the resume point, not the first run\'s start');
}
like($pgbr->log_content, qr/backup job $job: continues in nodelocal:.*: [1-9]\d* tables kept from the last run/s,
	'it continued from its checkpoint, keeping the tables read before the pause');
like($pgbr->log_content, qr/backup job $job: database "bench": \d+ transactions \(\d+ change lines\) from slot/,
	'and took the changes made meanwhile to them from the chain\'s slot');
restore_and_compare('paused', 'bench_paused', $at_resume, 'the resumed backup restores to exactly what its snapshot saw');
$source = sums('bench');

# ---------------------------------------------------------------------------
# B. pause a restore while it loads, resume
# ---------------------------------------------------------------------------
sub wait_staging_query
{
	my ($id, $like, $what) = @_;
	ok(wait_for(sub {
			$pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgbr\\_restore\\_${id}\\_%' "
				  . "AND ($like)") > 0
		}, 60, 0.01), $what);
}

$job = detached("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/paused'", 'a detached restore', "new_db_name = 'bench_r'");
wait_staging_query($job, "query ILIKE 'COPY %'", 'the restore is loading rows');
control('PAUSE', $job);
is(wait_status($job, 'paused|succeeded|failed'), 'paused', 'the restore pauses');
ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgbr\\_restore\\_%' OR datname = 'bench_r'") == 0 }, 30, 0.1),
	'no session in its staging database while paused');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'bench_r'"), '0', 'no destination database while paused');
is(staging_dbs(), "pgbr_restore_${job}_0", 'the staging database waits for the resume');
like(job_row($job, 'checkpoint::text'), qr/"phase": 1/, 'the checkpoint says it was loading');
control('RESUME', $job);
is(wait_status($job, 'succeeded|failed|canceled', 300), 'succeeded', 'the resumed restore succeeds');
like($pgbr->log_content, qr/job $job: RESTORE adopted by node 1 \(status running\).*database "bench" continues in staging "pgbr_restore_${job}_0" \(phase 1 of 4 done\)/s,
	'the resumed restore continued in its staging database');
is_deeply(sums('bench_r'), $at_resume, 'the resumed restore equals the backup');
is(staging_dbs(), '', 'no staging database left');

# ---------------------------------------------------------------------------
# C. cancel at several points
# ---------------------------------------------------------------------------
rearm('bench');
$job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/canceled1'", 'a backup to cancel while it runs');
held_snapshot('bench');
control('CANCEL', $job);
release('bench');
is(wait_status($job, 'canceled|succeeded|failed'), 'canceled', 'the running backup is canceled');
is(files_under("$extern/canceled1"), 0, 'no file of the canceled backup is left');
is(stream_objects($job), 0, 'no slot or publication of the canceled backup is left');

$job = detached("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/paused'", 'a restore to cancel while it loads', "new_db_name = 'bench_c1'");
wait_staging_query($job, "query ILIKE 'COPY %'", 'the restore is loading rows');
control('CANCEL', $job);
is(wait_status($job, 'canceled|succeeded|failed', 300), 'canceled', 'the loading restore is canceled');
is(staging_dbs(), '', 'no staging database left');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'bench_c1'"), '0', 'no destination database');

$job = detached("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/paused'", 'a restore to cancel while it builds indexes', "new_db_name = 'bench_c2'");
wait_staging_query($job, "query ILIKE '%ADD CONSTRAINT%' OR query ILIKE 'CREATE INDEX%'", 'the restore is building its indexes');
control('CANCEL', $job);
is(wait_status($job, 'canceled|succeeded|failed', 300), 'canceled', 'the restore building indexes is canceled');
is(staging_dbs(), '', 'no staging database left');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'bench_c2'"), '0', 'no destination database');

rearm('bench');
# a blocking BACKUP this time: its client learns the job was paused
my ($b_out, $b_err) = ('', '');
my $blocking = IPC::Run::start(
	[ pg_bindir() . '/psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', $pgbr->connstr,
		'-c', "BACKUP DATABASE bench INTO 'nodelocal://0/canceled2'" ],
	'<', \undef, '>', \$b_out, '2>', \$b_err, IPC::Run::timeout(300));
held_snapshot('bench');
$job = $pg->safe_psql("SELECT id FROM pgbr.jobs WHERE job_type = 'BACKUP' AND status = 'running' ORDER BY created DESC LIMIT 1");
like($job, qr/^\d+$/, 'a blocking backup to pause, then cancel');
control('PAUSE', $job);
release('bench');
is(wait_status($job, 'paused|succeeded|failed'), 'paused', 'paused');
$blocking->finish;
like($b_err, qr/ERROR:  55000: job $job was paused before it completed/, 'the blocking statement ends: 55000, the job was paused');
control('CANCEL', $job);
is(wait_status($job, 'canceled|succeeded|failed'), 'canceled', 'the paused backup is canceled');
is(files_under("$extern/canceled2"), 0, 'no file of it is left');
is(stream_objects($job), 0, 'no slot or publication of it is left');

# ---------------------------------------------------------------------------
# D. pgbr killed during a backup, restarted
# ---------------------------------------------------------------------------
rearm('bench');
$job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/killed'", 'a backup to kill pgbr under');
held_snapshot('bench');
$pgbr->signal('KILL');
is($pgbr->wait_exit(10), 128 + 9, 'pgbr killed with SIGKILL');
rearm('bench');
release('bench');
$pgbr = PgbrTest::Pgbr->new(pg => $pg, @node1);
is(wait_status($job, 'succeeded|failed|canceled', 300), 'succeeded', 'restarted, pgbr adopts the backup and finishes it');
like($pgbr->log_content, qr/job $job: BACKUP adopted by node 1/, 'the log says so');
is(stream_objects($job), 2, 'the finished backup keeps one slot and one publication (its chain\'s), not the killed run\'s too');
restore_and_compare('killed', 'bench_killed', $source, 'the adopted backup restores to the source');

# pgbr stopped (SIGTERM) during a backup: the job stops at a chunk boundary,
# keeps what it wrote and waits for a node; restarted, pgbr continues it
rearm('bench');
spew("$snapdir/bench.hold", '');
$job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/sigterm'", 'a backup to stop pgbr under');
held_snapshot('bench');
release('bench');
ok(wait_for(sub { -e "$snapdir/bench.held" }, 120, 0.05), 'it has written all its files but the last');
$pgbr->signal('TERM');
unlink "$snapdir/bench.hold";
is($pgbr->wait_exit(30), 0, 'pgbr exits 0 on SIGTERM with a job running');
like($pgbr->log_content, qr/job $job: stopped for the shutdown; a node adopts it from its checkpoint/, 'the job stopped for the shutdown');
is(job_row($job, 'status'), 'running', 'its row still says running (its lease runs out)');
rearm('bench');
release('bench');
$pgbr = PgbrTest::Pgbr->new(pg => $pg, @node1);
is(wait_status($job, 'succeeded|failed|canceled', 300), 'succeeded', 'restarted, pgbr continues the backup and finishes it');
like($pgbr->log_content, qr/backup job $job: continues in .*: [1-9]\d* tables kept from the last run/s, 'from its checkpoint');
restore_and_compare('sigterm', 'bench_sigterm', $source, 'it restores to the source');

# ---------------------------------------------------------------------------
# E. two nodes on one upstream: the node running a backup is killed
# ---------------------------------------------------------------------------
my $pgbr2 = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern, '--job-lease', $lease, '--node-id', '2' ]);
rearm('bench');
$job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/failover'", 'a backup on node 1');
held_snapshot('bench');
is(job_row($job, 'coordinator_id'), '1', 'node 1 runs it');
$pgbr->signal('KILL');
is($pgbr->wait_exit(10), 128 + 9, 'node 1 killed');
my $killed_at = time;
rearm('bench');
release('bench');
ok(wait_for(sub { job_row($job, 'coordinator_id') eq '2' }, 3 * $lease + 5, 0.1), 'node 2 adopts the job');
my $adopted_after = time - $killed_at;
diag(sprintf('node 2 adopted the job %.1f s after node 1 was killed (lease %d s)', $adopted_after, $lease));
cmp_ok($adopted_after, '<=', $lease + 3, "node 2 took it over within the lease ($lease s) and a tick");
is(wait_status($job, 'succeeded|failed|canceled', 300), 'succeeded', 'node 2 finishes the backup');
like($pgbr2->log_content, qr/job $job: BACKUP adopted by node 2/, 'node 2\'s log says so');
$pgbr = $pgbr2;
restore_and_compare('failover', 'bench_failover', $source, 'the backup node 2 finished restores to the source');

# ---------------------------------------------------------------------------
# F. PostgreSQL restarted in the middle of a backup
# ---------------------------------------------------------------------------
rearm('bench');
$job = detached("BACKUP DATABASE bench INTO 'nodelocal://0/pgrestart'", 'a backup during which PostgreSQL restarts');
held_snapshot('bench');
$pg->restart;
rearm('bench');
release('bench');
is(wait_status($job, 'succeeded|failed|canceled', 300), 'succeeded', 'the backup retries and succeeds');
like(job_row($job, 'array_to_string(execution_errors, \' | \')'), qr/\S/, 'execution_errors says what was retried');
restore_and_compare('pgrestart', 'bench_pgrestart', $source, 'the retried backup restores to the source');

$pgbr->stop_ok;
diag(sprintf('030_job_lifecycle.t took %.1fs', time - $t_start));
$pg->stop;
done_testing();
