#!/usr/bin/perl
# A client that cancels its blocking BACKUP or RESTORE (psql's Ctrl-C: a
# CancelRequest) cancels the job: the statement ends with 57014, the job's
# row says "canceled", and nothing of the job is left: no backup directory
# and LATEST not moved for a backup; no staging database, no destination
# for a database restore; no table for a table restore.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use IPC::Run ();
use Time::HiRes qw(sleep);

my $pg = PgbrTest::Postgres->new(conf => [ 'max_wal_size = 1GB' ]);
my $extern = tempdir();
my $snapdir = tempdir();
chmod 0777, $snapdir;
$pg->safe_psql('CREATE DATABASE big');
$pg->safe_psql("CREATE TABLE t (id bigint PRIMARY KEY, payload text);
	INSERT INTO t SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 1500000) g;",
	dbname => 'big', timeout => 300);
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

my ($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE big INTO 'nodelocal://0/c'", timeout => 300);
is($rc, 0, 'a first backup') or diag($err);
sub latest { join(',', sort(glob("$extern/c/metadata/latest/*")), PgbrTest::slurp("$extern/c/LATEST")) }
my $latest_before = latest();

# psql running one statement in the background; SIGINT makes it send a
# CancelRequest, as Ctrl-C does.
sub start_psql
{
	my ($sql, %o) = @_;
	my %h = (out => '', err => '');
	$h{h} = IPC::Run::start(
		[ pg_bindir() . '/psql', '-X', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d', $pgbr->connstr, '-c', $sql ],
		'<', \undef, '>', \$h{out}, '2>', \$h{err}, IPC::Run::timeout(300));
	return \%h;
}

sub last_job
{
	my ($type) = @_;
	return $pg->safe_psql("SELECT id || ' ' || status FROM pgbr.jobs WHERE job_type = '$type' ORDER BY created DESC LIMIT 1");
}

# ---------------------------------------------------------------------------
# BACKUP: held at its snapshot by the test hook, cancelled, then released
# ---------------------------------------------------------------------------

$pgbr->stop;
{
	local $ENV{PGBR_TEST_SNAPSHOT_DIR} = $snapdir;
	$pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);
}
my $bk = start_psql("BACKUP DATABASE big INTO 'nodelocal://0/c'");
ok(wait_for(sub { -e "$snapdir/big.snapshot" }, 60), 'the backup took its snapshot');
like(last_job('BACKUP'), qr/^\d+ running$/, 'the job is running');
$bk->{h}->signal('INT');
sleep 0.3;
PgbrTest::spew("$snapdir/big.go", '');
$bk->{h}->finish;
like($bk->{err}, qr/ERROR:  57014: canceling statement due to user request/, 'the blocking BACKUP ends with 57014');
my ($bk_id, $bk_status) = split / /, last_job('BACKUP');
is($bk_status, 'canceled', 'the job is canceled');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/c'");
is(scalar(split /\n/, $out), 1, 'SHOW BACKUPS IN still lists one backup');
my @dirs = glob("$extern/c/[0-9]*/*/*");
is(scalar(@dirs), 1, 'the canceled backup left no directory');
is(latest(), $latest_before, 'LATEST did not move');
unlink "$snapdir/big.snapshot", "$snapdir/big.go";

$pgbr->stop;
$pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

# ---------------------------------------------------------------------------
# RESTORE DATABASE: cancelled while the rows are loaded
# ---------------------------------------------------------------------------

my $rs = start_psql("RESTORE DATABASE big FROM LATEST IN 'nodelocal://0/c' WITH new_db_name = 'big2'");
ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname LIKE 'pgbr\\_restore\\_%' AND query ILIKE 'COPY %'") > 0 },
		60, 0.02),
	'the restore is loading rows');
$rs->{h}->signal('INT');
$rs->{h}->finish;
like($rs->{err}, qr/ERROR:  57014: canceling statement due to user request/, 'the blocking RESTORE ends with 57014');
my ($rs_id, $rs_status) = split / /, last_job('RESTORE');
is($rs_status, 'canceled', 'the job is canceled');
is($pg->safe_psql("SELECT count(*) FROM pg_database WHERE datname = 'big2' OR datname LIKE 'pgbr\\_restore\\_%'"), '0',
	'no destination and no staging database left');

# ---------------------------------------------------------------------------
# RESTORE TABLE: cancelled while the rows are loaded, in its transaction
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE dest');
my $rt = start_psql("RESTORE TABLE big.public.t FROM LATEST IN 'nodelocal://0/c' WITH into_db = 'dest'");
ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 'dest' AND query ILIKE 'COPY %'") > 0 }, 60, 0.02),
	'the table restore is loading rows');
$rt->{h}->signal('INT');
$rt->{h}->finish;
like($rt->{err}, qr/ERROR:  57014: canceling statement due to user request/, 'the blocking RESTORE TABLE ends with 57014');
is((split / /, last_job('RESTORE'))[1], 'canceled', 'the job is canceled');
is($pg->safe_psql("SELECT to_regclass('public.t') IS NULL", dbname => 'dest'), 't', 'no table left');

# the same restore, uncancelled, still works
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE big.public.t FROM LATEST IN 'nodelocal://0/c' WITH into_db = 'dest'", timeout => 300);
is($rc, 0, 'the restore succeeds when left alone') or diag($err);
is($pg->safe_psql('SELECT count(*) FROM t', dbname => 'dest'), '1500000', 'every row');

$pgbr->stop;
$pgbr->check_log_ok('pgbr');
done_testing();
