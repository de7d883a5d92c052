#!/usr/bin/perl
# WITH incremental_location (reference 1.3, 2.4, 3.3, 4.2, 21.1), through psql
# against a real PostgreSQL with wal_level = logical:
#
#  - a whole-server chain whose layers go to another location X: the layers
#    are X/<full>/<YYYYMMDD>/<HHMMSS.ss>, nothing in the collection's
#    incrementals/; the job description keeps the option. SHOW BACKUP lists
#    them only WITH incremental_location. RESTORE (database, table, whole
#    server, AS OF SYSTEM TIME a layer's end) WITH the option equals the
#    recorded checksums; without it, the full backup's state (the layers in
#    X are not seen). An incremental without the option cannot see them and
#    refuses (its slot is past the newest layer it sees).
#  - one chain mixing the default place and X: default layer, then two in X.
#    With the option the chain restores whole; without, up to the default
#    layer. A layer moved by hand from X into the collection is found where
#    it is; a chain with a layer missing before it refuses to restore past
#    the gap (58P01) but restores up to it AS OF SYSTEM TIME.
#  - incremental_location equal to the collection: the v21.2 layout inside
#    the full backup's directory, continued without the option.
#  - errors: 58P01 for a location or collection without the chain's full,
#    the count mismatch (22023), locality-aware lists (0A000), non-admins and
#    nodelocal as the location (42501), the deprecated SHOW BACKUP form.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use File::Find ();
use File::Path qw(make_path);
use File::Basename qw(dirname);
use File::Copy qw(copy);

my $pg = PgbrTest::Postgres->new(conf => [ 'wal_level = logical', 'max_wal_size = 1GB' ]);
my $extern = tempdir();
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

sub up { my ($sql, %o) = @_; return $pg->safe_psql($sql, dbname => 'shop', %o) }

sub via
{
	my ($sql, %o) = @_;
	return $pgbr->psql($sql, extra => [ '-v', 'VERBOSITY=verbose' ], timeout => 300, %o);
}

sub ok_via
{
	my ($sql, $what, %o) = @_;
	my ($rc, $out, $err) = via($sql, %o);
	is($rc, 0, $what) or diag($err);
	return $out;
}

# The SQLSTATE and message of a failing statement.
sub fails
{
	my ($sql, %o) = @_;
	my ($rc, $out, $err) = via($sql, %o);
	return ('', "succeeded: $out") if $rc == 0;
	my ($code, $msg) = $err =~ /ERROR:\s+([0-9A-Z]{5}): (.*)/;
	return ($code // '', $msg // $err, $err);
}

# Every table's "rows:md5" and every sequence of $db (PgbrTest's
# table_checksums), restricted to @only tables when given.
sub sums
{
	my ($node, $db, @only) = @_;
	return $node->table_checksums($db, @only ? (tables => \@only) : ());
}

sub same_state
{
	my ($db, $want, $what, $node, @only) = @_;
	my @diff = PgbrTest::checksum_differences(sums($node // $pg, $db, @only), $want);
	is(scalar(@diff), 0, $what) or diag(join("\n", @diff));
}

# The layers SHOW BACKUP lists for database shop: [backup_type, end_time].
sub layers
{
	my ($sql) = @_;
	my ($rc, $out, $err) = via($sql);
	die "$sql: $err" if $rc;
	my @l;
	for my $line (split /\n/, $out)
	{
		my @f = split /\|/, $line, -1;
		push @l, [ $f[4], $f[6] ] if $f[2] eq 'shop' && $f[3] eq 'database';
	}
	return @l;
}

# The BACKUP_MANIFEST files under a directory of $extern, relative to it.
sub manifests
{
	my ($dir) = @_;
	my $root = "$extern/$dir";
	my @m;
	return () unless -d $root;
	File::Find::find(sub { push @m, substr($File::Find::name, length($root) + 1) if $_ eq 'BACKUP_MANIFEST' }, $root);
	my @sorted = sort @m;
	return @sorted;
}

my $round = 0;
sub workload
{
	$round++;
	up(<<"SQL");
UPDATE accounts SET balance = balance + $round WHERE id % 7 = $round % 7;
DELETE FROM accounts WHERE id BETWEEN $round * 20 AND $round * 20 + 5;
INSERT INTO accounts SELECT g, $round, 'round $round' FROM generate_series(10000 + $round * 100, 10000 + $round * 100 + 30) g;
INSERT INTO items (name) SELECT 'r$round ' || g FROM generate_series(1, 5) g;
UPDATE logs SET msg = 'round $round' WHERE x % 10 = $round;
INSERT INTO logs VALUES ($round, 'log $round');
SQL
}

$pg->safe_psql('CREATE DATABASE shop');
up(<<'SQL');
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text);
INSERT INTO accounts SELECT g, g * 10, 'n' || g FROM generate_series(1, 1000) g;
CREATE TABLE items (id serial PRIMARY KEY, name text);
INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 100) g;
CREATE TABLE logs (x int, msg text);
INSERT INTO logs SELECT g, 'log ' || g FROM generate_series(1, 200) g;
SQL

# ---------------------------------------------------------------------------
# a whole-server chain with its layers in X
# ---------------------------------------------------------------------------

my %state;
$state{full} = sums($pg, 'shop');
ok_via("BACKUP INTO 'nodelocal://0/c'", 'whole-server full backup');
my ($full) = split /\n/, ok_via("SHOW BACKUPS IN 'nodelocal://0/c'", 'SHOW BACKUPS IN');
like($full, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, "the full backup's subdir");
(my $fullrel = $full) =~ s{^/}{};

workload();
$state{x1} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x'",
	'incremental 1 into incremental_location X');
my @xm = manifests('x');
is(scalar(@xm), 1, 'X holds one layer');
like($xm[0] // '', qr{^\Q$fullrel\E/\d{8}/\d{6}\.\d\d/BACKUP_MANIFEST$}, 'at X/<full subdir>/<YYYYMMDD>/<HHMMSS.ss>');
is_deeply([ manifests('c/incrementals') ], [], "nothing in the collection's incrementals/");
is_deeply([ manifests('c') ], [ "$fullrel/BACKUP_MANIFEST" ], 'the collection holds the full backup only');
like($pg->safe_psql("SELECT description FROM pgbr.jobs WHERE job_type = 'BACKUP' ORDER BY created DESC LIMIT 1"),
	qr/INTO LATEST IN 'nodelocal:\/\/0\/c' WITH incremental_location = 'nodelocal:\/\/0\/x'/,
	'the job description keeps the option');

workload();
$state{x2} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x'",
	'incremental 2 into X, on top of layer 1 there');
@xm = manifests('x');
is(scalar(@xm), 2, 'X holds two layers');

# an incremental without the option does not see the layers in X: its slot
# is past the newest layer it sees, so it refuses instead of losing changes
workload();
my ($code, $msg, $full_err) = fails("BACKUP INTO LATEST IN 'nodelocal://0/c'");
is($code, '55000', 'an incremental that does not look in X: 55000');
like($msg, qr/^backup chain "\Q$full\E" has a layer newer than "\Q$fullrel\E" that this backup does not see/,
	'it says a newer layer exists');
like($full_err, qr/HINT:\s+Give the incremental_location/, 'and hints at the option');
is_deeply([ manifests('c/incrementals') ], [], 'and wrote nothing');
$state{x3} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x'",
	'incremental 3 into X, with the option again');

# SHOW BACKUP
my @plain = layers("SHOW BACKUP FROM LATEST IN 'nodelocal://0/c'");
is_deeply([ map { $_->[0] } @plain ], ['full'], 'SHOW BACKUP without the option: the full backup only');
my @withx = layers("SHOW BACKUP FROM LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x'");
is_deeply([ map { $_->[0] } @withx ], [ 'full', 'incremental', 'incremental', 'incremental' ],
	'SHOW BACKUP WITH incremental_location: the layers in X too');
my @withx2 = layers("SHOW BACKUP '$full' IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x', check_files");
is(scalar(@withx2), 4, 'SHOW BACKUP <subdir> ... WITH incremental_location, check_files: every file is there');

# RESTORE
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x', "
	  . "new_db_name = r_x", 'RESTORE DATABASE WITH incremental_location');
same_state('r_x', $state{x3}, 'the chain with its layers in X restores the newest state');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' WITH new_db_name = r_nox", 'RESTORE without the option');
same_state('r_nox', $state{full}, "without the option: the full backup's state (the layers in X are not seen)");
ok_via("RESTORE DATABASE shop FROM '$full' IN 'nodelocal://0/c' AS OF SYSTEM TIME '$withx[1][1]' "
	  . "WITH incremental_location = 'nodelocal://0/x', new_db_name = r_x1", 'RESTORE AS OF SYSTEM TIME the end of layer 1');
same_state('r_x1', $state{x1}, 'the state at the end of layer 1');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$withx[2][1]' "
	  . "WITH incremental_location = 'nodelocal://0/x', new_db_name = r_x2", 'RESTORE AS OF SYSTEM TIME the end of layer 2');
same_state('r_x2', $state{x2}, 'the state at the end of layer 2');
($code, $msg) = fails("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$withx[2][1]' "
	  . "WITH new_db_name = r_bad");
is($code, '22023', 'AS OF SYSTEM TIME a layer in X without the option: the chain seen does not cover it');
$pg->safe_psql('CREATE DATABASE tdb');
ok_via("RESTORE TABLE shop.public.accounts, shop.public.logs FROM LATEST IN 'nodelocal://0/c' "
	  . "WITH incremental_location = 'nodelocal://0/x', into_db = 'tdb'", 'RESTORE TABLE WITH incremental_location');
same_state('tdb', { map { $_ => $state{x3}{$_} } qw(public.accounts public.logs) }, 'the tables restored', $pg,
	qw(public.accounts public.logs));

# the whole server, into an empty second server
{
	my $pg2 = PgbrTest::Postgres->new();
	my $pgbr2 = PgbrTest::Pgbr->new(pg => $pg2, args => [ '--external-io-dir', $extern ]);
	my ($rc, $out, $err) = $pgbr2->psql("RESTORE FROM LATEST IN 'nodelocal://0/c' WITH incremental_location = 'nodelocal://0/x'",
		timeout => 300);
	is($rc, 0, 'whole-server RESTORE WITH incremental_location') or diag($err);
	same_state('shop', $state{x3}, 'the whole server: shop as at the last layer', $pg2);
	$pgbr2->stop;
	$pg2->stop;
}

# ---------------------------------------------------------------------------
# one chain in two places: the default one, then X
# ---------------------------------------------------------------------------

ok_via("BACKUP DATABASE shop INTO 'nodelocal://0/m'", 'chain m: full backup');
my ($mfull) = split /\n/, ok_via("SHOW BACKUPS IN 'nodelocal://0/m'", 'SHOW BACKUPS IN m');
workload();
$state{m1} = sums($pg, 'shop');
ok_via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/m'", 'chain m: layer 1 in the default place');
workload();
$state{m2} = sums($pg, 'shop');
ok_via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/m' WITH incremental_location = 'nodelocal://0/mx'",
	'chain m: layer 2 in X, on top of the default layer');
workload();
$state{m3} = sums($pg, 'shop');
ok_via("BACKUP DATABASE shop INTO '$mfull' IN 'nodelocal://0/m' WITH incremental_location = 'nodelocal://0/mx'",
	'chain m: layer 3 in X (INTO <subdir> IN)');
is(scalar(manifests('m/incrementals')) . ' ' . scalar(manifests('mx')), '1 2', 'one layer in incrementals/, two in X');
my @m = layers("SHOW BACKUP FROM LATEST IN 'nodelocal://0/m' WITH incremental_location = 'nodelocal://0/mx'");
is(scalar(@m), 4, 'SHOW BACKUP with the option: the full backup and three layers');
is(scalar(layers("SHOW BACKUP FROM LATEST IN 'nodelocal://0/m'")), 2, 'without: the full backup and the default layer');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/m' WITH incremental_location = 'nodelocal://0/mx', "
	  . "new_db_name = r_m", 'RESTORE the mixed chain WITH incremental_location');
same_state('r_m', $state{m3}, 'the mixed chain restores the newest state');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/m' WITH new_db_name = r_m_nox", 'RESTORE it without the option');
same_state('r_m_nox', $state{m1}, 'without the option: up to the default layer');

# layer 3 moved by hand from X into the collection's incrementals/
my ($m3) = (manifests('mx'))[-1];
$m3 =~ s{/BACKUP_MANIFEST$}{};
make_path(dirname("$extern/m/incrementals/$m3"));
ok(rename("$extern/mx/$m3", "$extern/m/incrementals/$m3"), 'layer 3 moved from X into incrementals/');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/m' WITH incremental_location = 'nodelocal://0/mx', "
	  . "new_db_name = r_m_moved", 'RESTORE WITH incremental_location after the move');
same_state('r_m_moved', $state{m3}, 'each layer is found where it is');
($code, $msg, $full_err) = fails("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/m' WITH new_db_name = r_m_gap");
is($code, '58P01', 'without the option, layer 2 is missing before layer 3: 58P01');
like($msg, qr/^backup chain ".*" is incomplete: the layer before "incrementals\/\Q$m3\E" is not in the locations given/,
	'the chain is incomplete');
like($full_err, qr/HINT:\s+Give the incremental_location/, 'with a hint');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/m' AS OF SYSTEM TIME '$m[1][1]' WITH new_db_name = r_m_before",
	'AS OF SYSTEM TIME before the gap: restorable');
same_state('r_m_before', $state{m1}, 'the state at the end of the default layer');

# ---------------------------------------------------------------------------
# incremental_location = the collection: the v21.2 layout
# ---------------------------------------------------------------------------

ok_via("BACKUP DATABASE shop INTO 'nodelocal://0/v' WITH incremental_location = 'nodelocal://0/vx'",
	'chain v: full backup (incremental_location has no effect on a full backup)');
ok(!-e "$extern/vx", 'nothing written to the location');
my ($vfull) = split /\n/, ok_via("SHOW BACKUPS IN 'nodelocal://0/v'", 'SHOW BACKUPS IN v');
(my $vrel = $vfull) =~ s{^/}{};
workload();
ok_via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/v' WITH incremental_location = 'nodelocal://0/v/'",
	'chain v: layer 1 WITH incremental_location = the collection');
workload();
$state{v2} = sums($pg, 'shop');
ok_via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/v'", 'chain v: layer 2 without the option');
my @vm = manifests('v');
is(scalar(@vm), 3, 'the collection holds the full backup and two layers');
is(scalar(grep { m{^\Q$vrel\E/\d{8}/\d{6}\.\d\d/BACKUP_MANIFEST$} } @vm), 2,
	'both layers inside the full backup\'s directory (v21.2 layout), the second one continuing it');
is_deeply([ manifests('v/incrementals') ], [], 'nothing in incrementals/');
is(ok_via("SHOW BACKUPS IN 'nodelocal://0/v'", 'SHOW BACKUPS IN v'), $vfull, 'SHOW BACKUPS IN lists the full backup only');
is(scalar(layers("SHOW BACKUP FROM LATEST IN 'nodelocal://0/v'")), 3, 'SHOW BACKUP lists the v21.2 layers without the option');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/v' WITH new_db_name = r_v", 'RESTORE the v21.2 chain');
same_state('r_v', $state{v2}, 'the v21.2 chain restores the newest state');

# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

my $nofull = 'path does not contain a completed latest backup';
is_deeply([ (fails("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/none' WITH incremental_location = 'nodelocal://0/x'"))[0, 1] ],
	[ '58P01', $nofull ], 'INTO LATEST of an empty collection WITH incremental_location: 58P01');
is_deeply([ (fails("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/x'"))[0, 1] ], [ '58P01', $nofull ],
	'the location holds layers but no full backup: 58P01');
is_deeply([ (fails("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/x' WITH new_db_name = z"))[0, 1] ],
	[ '58P01', $nofull ], 'RESTORE from the location alone: 58P01');
# a collection whose LATEST names a full backup that is not there
make_path("$extern/nofull/metadata/latest");
for my $f (glob("$extern/c/metadata/latest/*"), "$extern/c/LATEST")
{
	(my $rel = $f) =~ s{^\Q$extern/c/\E}{};
	copy($f, "$extern/nofull/$rel") or die "copy $f: $!";
}
($code, $msg, $full_err) = fails("BACKUP INTO LATEST IN 'nodelocal://0/nofull' WITH incremental_location = 'nodelocal://0/x'");
is_deeply([ $code, $msg ], [ '58P01', $nofull ], 'the chain of the location misses its full backup: 58P01');
like($full_err, qr/DETAIL:\s+The LATEST file of "nodelocal:\/\/0\/nofull" names "\Q$full\E", which holds no BACKUP_MANIFEST/,
	'the detail names the missing full backup');
is(scalar(manifests('x')), 3, 'the refused backups wrote nothing to X');

my $count = 'the incremental_location option must contain the same number of locality aware URIs as the full backup destination';
is_deeply([ (fails("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH incremental_location = ('nodelocal://0/x', 'nodelocal://0/y')"))[0, 1] ],
	[ '22023', $count ], 'BACKUP: two locations for one destination: 22023');
is_deeply([ (fails("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' WITH incremental_location = ('nodelocal://0/x', 'nodelocal://0/y')"))[0, 1] ],
	[ '22023', $count ], 'RESTORE: the same');
is_deeply([ (fails("SHOW BACKUP FROM LATEST IN 'nodelocal://0/c' WITH incremental_location = ('nodelocal://0/x', 'nodelocal://0/y')"))[0, 1] ],
	[ '22023', $count ], 'SHOW BACKUP: the same');
is_deeply([ (fails("BACKUP INTO LATEST IN ('nodelocal://0/c?COCKROACH_LOCALITY=default', 'nodelocal://0/c2?COCKROACH_LOCALITY=region%3Dus') "
	  . "WITH incremental_location = ('nodelocal://0/x?COCKROACH_LOCALITY=default', 'nodelocal://0/x2?COCKROACH_LOCALITY=region%3Dus')"))[0, 1] ],
	[ '0A000', 'locality-aware BACKUP is not implemented yet' ], 'locality-aware lists of the same length: not implemented yet');
is_deeply([ (fails("SHOW BACKUP 'nodelocal://0/c/$fullrel' WITH incremental_location = 'nodelocal://0/x'"))[0] ], ['0A000'],
	'the deprecated SHOW BACKUP <url> form WITH incremental_location: not implemented yet');

# a non-admin: the location is checked like the collection (an s3 collection
# passes that check, the nodelocal location does not)
# alice: a login role of the test server, not an admin
my $denied = 'only users with the admin role are allowed to access the specified nodelocal URI';
for my $sql ("BACKUP DATABASE shop INTO LATEST IN 's3://bucket/c' WITH incremental_location = 'nodelocal://0/x'",
	"RESTORE DATABASE shop FROM LATEST IN 's3://bucket/c' WITH incremental_location = 'nodelocal://0/x', new_db_name = z",
	"SHOW BACKUP FROM LATEST IN 's3://bucket/c' WITH incremental_location = 'nodelocal://0/x'")
{
	is_deeply([ (fails($sql, user => 'alice'))[0, 1] ], [ '42501', $denied ], "non-admin, nodelocal location: $sql");
}
is_deeply([ (fails("SHOW BACKUP FROM LATEST IN 's3://bucket/c' WITH incremental_location = 'file://$extern/x'", user => 'alice'))[0] ],
	['42501'], 'non-admin, file:// location: 42501');

$pgbr->stop;
done_testing();
