#!/usr/bin/perl
# BACKUP DATABASE ... INTO through psql: the blocking form returns the
# reference's row (rows = the database's rows), the backup appears in SHOW
# BACKUPS IN and as a succeeded job in SHOW JOBS with its redacted canonical
# description; WITH detached returns the job id at once and the job finishes;
# errors: unknown database (no job created), a user without SELECT (42501, no
# job), transaction block without detached (25001), forms not built yet (0A000).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $extern = tempdir();
$pg->safe_psql('CREATE DATABASE shop');
$pg->safe_psql("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric); CREATE INDEX ON items (name);
	INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 5000) g;
	CREATE TABLE notes (body text); INSERT INTO notes VALUES (E'tab\\there'), (NULL), ('ünïcode');", dbname => 'shop');
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

my ($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll'", raw => 1);
is($rc, 0, 'blocking BACKUP DATABASE') or diag($err);
like($out, qr/job_id\s*\|\s*status\s*\|\s*fraction_completed\s*\|\s*rows\s*\|\s*index_entries\s*\|\s*bytes/, 'result columns of the reference');
like($out, qr/\|\s*succeeded\s*\|\s*1\s*\|\s*5003\s*\|\s*5000\s*\|\s*\d+/, 'succeeded, 5003 rows, 5000 index entries (one secondary index)');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'");
like($out, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, 'the backup is listed by SHOW BACKUPS IN');
my $subdir = $out;
ok(-f "$extern/coll$subdir/BACKUP_MANIFEST", 'BACKUP_MANIFEST written');
ok(-f "$extern/coll$subdir/schema/shop.dump", 'schema dump written');
ok(-d "$extern/coll/metadata/latest", 'LATEST written');

($rc, $out, $err) = $pgbr->psql("SELECT status, description, fraction_completed, rows FROM pgbr.jobs WHERE job_type = 'BACKUP'");
($rc, $out, $err) = $pgbr->psql('SHOW JOBS', raw => 1);
like($out, qr/BACKUP\s*\|\s*BACKUP DATABASE shop INTO 'nodelocal:\/\/0\/coll'/, 'SHOW JOBS shows the canonical description');
like($out, qr/\|\s*succeeded\s*\|/, 'the job succeeded');

($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll' WITH detached");
is($rc, 0, 'detached BACKUP') or diag($err);
like($out, qr/^\d+$/, 'detached returns only the job id');
my $job = $out;
ok(wait_for(sub { ($pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $job") // '') eq 'succeeded' }, 60), 'the detached job succeeds');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'");
is(scalar(split /\n/, $out), 2, 'two full backups in the collection');

my $jobs_before = $pg->safe_psql('SELECT count(*) FROM pgbr.jobs');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE nosuchdb INTO 'nodelocal://0/coll'");
like($err, qr/database "nosuchdb" does not exist/, 'unknown database');
$pg->safe_psql('GRANT CONNECT ON DATABASE shop TO alice');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/alice'", user => 'alice');
like($err, qr/only users with the admin role are allowed to access the specified nodelocal URI/, 'a non-admin cannot write to nodelocal');
is($pg->safe_psql('SELECT count(*) FROM pgbr.jobs'), $jobs_before, 'refused backups create no job');
ok(!-e "$extern/alice", 'and write nothing');

($rc, $out, $err) = $pgbr->psql(undef, stdin => "BEGIN;\nBACKUP DATABASE shop INTO 'nodelocal://0/coll';\nCOMMIT;\n");
like($err, qr/BACKUP cannot be used inside a multi-statement transaction without DETACHED option/, '25001 in a transaction');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll' WITH encryption_passphrase = 'pw'");
like($err, qr/BACKUP with encryption or EXECUTION LOCALITY is not implemented yet/,
	'encryption not yet');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop TO 'nodelocal://0/coll'");
like($err, qr/BACKUP \.\.\. TO is not implemented yet/, 'BACKUP TO not yet');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll' AS OF SYSTEM TIME '-10s'");
like($err, qr/AS OF SYSTEM TIME is not supported/, 'AS OF SYSTEM TIME refused');

# A job of this node without the request pgbr keeps to run it again (a row
# written by hand, or by an older pgbr): at restart it is failed, saying why.
$pg->safe_psql("INSERT INTO pgbr.jobs (id, job_type, status, user_name, coordinator_id) VALUES (42, 'BACKUP', 'running', 'postgres', 1)");
$pgbr->stop_ok;
my $pgbr2 = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);
ok(PgbrTest::wait_for(sub { $pg->safe_psql('SELECT status FROM pgbr.jobs WHERE id = 42') eq 'failed' }, 30, 0.1),
	'an interrupted job that cannot be adopted is marked failed at restart');
like($pg->safe_psql('SELECT error FROM pgbr.jobs WHERE id = 42'), qr/did not keep what is needed to resume it/, 'and says why');

$pgbr2->stop_ok;
$pg->stop;
done_testing();
