#!/usr/bin/perl
# Incremental backups and point-in-time restore (docs/incremental.md), all
# through psql against a real PostgreSQL with wal_level = logical:
#
#  - a whole-server full backup WITH revision_history, then three rounds of
#    a mixed workload (inserts; updates of TOASTed and non-TOASTed columns,
#    so the server sends unchanged TOAST values as 'u'; deletes; a key
#    update; TRUNCATE ... RESTART IDENTITY; ADD and DROP COLUMN; a keyless
#    table, whose UPDATE and DELETE must keep working while the chain
#    exists; a table created mid-chain), each followed by an incremental.
#    After each round, with the workload paused, every table's checksum is
#    recorded; RESTORE FROM LATEST and AS OF SYSTEM TIME each layer's end
#    give exactly those states.
#  - three moments inside the rounds (upstream clock, workload paused):
#    RESTORE ... AS OF SYSTEM TIME each moment equals that moment's state,
#    for a database, a table and the whole server (into a second, empty
#    server).
#  - pgbr killed (-9) after a layer is durable and before the slot moves:
#    the next incremental re-reads those changes and skips them; nothing is
#    lost or doubled.
#  - a chain of 48 incrementals restores correctly.
#  - errors: incremental without a full backup; different targets; AOST
#    outside the chain and between layers without revision history; a
#    dropped slot.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Time::HiRes qw(sleep);
use IPC::Run ();

my $pg = PgbrTest::Postgres->new(conf => [ 'wal_level = logical', 'max_wal_size = 1GB' ]);
my $extern = tempdir();
my $advdir = tempdir();
chmod 0777, $advdir;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

sub up { my ($sql, %o) = @_; return $pg->safe_psql($sql, dbname => 'shop', %o) }

sub via
{
	my ($sql, %o) = @_;
	my ($rc, $out, $err) = $pgbr->psql($sql, extra => [ '-v', 'VERBOSITY=verbose' ], timeout => 300, %o);
	return ($rc, $out, $err);
}

sub ok_via
{
	my ($sql, $what, %o) = @_;
	my ($rc, $out, $err) = via($sql, %o);
	is($rc, 0, $what) or diag($err);
	return $out;
}

# table => "rows:md5 of the sorted row texts" for every user table of $db.
sub sums
{
	my ($node, $db, @only) = @_;
	my @tables = split /\n/, $node->safe_psql(
		"SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
		  . "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgbr') ORDER BY 1", dbname => $db);
	@tables = grep { my $t = $_; grep { $_ eq $t } @only } @tables if @only;
	my %s;
	for my $t (@tables)
	{
		$s{$t} = $node->safe_psql(table_sum_sql($t), dbname => $db);
	}
	$s{'sequence items_id_seq'} = $node->safe_psql('SELECT last_value FROM items_id_seq', dbname => $db)
	  if !@only && $node->safe_psql("SELECT to_regclass('items_id_seq') IS NOT NULL", dbname => $db) eq 't';
	return \%s;
}

sub same_state
{
	my ($db, $want, $what, $node, @only) = @_;
	my $got = sums($node // $pg, $db, @only);
	is_deeply($got, $want, $what) or diag(explain({ got => $got, want => $want }));
}

# SHOW BACKUP FROM LATEST IN $coll as a list of hashes.
my @SB_COLS = qw(database_name parent_schema_name object_name object_type backup_type start_time end_time size_bytes rows
  is_full_cluster regions);
sub show_backup
{
	my ($coll) = @_;
	my ($rc, $out, $err) = via("SHOW BACKUP FROM LATEST IN '$coll'");
	die "SHOW BACKUP: $err" if $rc;
	my @rows;
	for my $line (split /\n/, $out)
	{
		my @f = split /\|/, $line, -1;
		push @rows, { map { $SB_COLS[$_] => $f[$_] } 0 .. $#SB_COLS };
	}
	return @rows;
}

# The upstream's clock, a moment no transaction commits at.
sub moment
{
	sleep 0.05;
	my $t = $pg->safe_psql("SELECT clock_timestamp()::timestamptz(6)::text");
	sleep 0.05;
	return $t;
}

# ---------------------------------------------------------------------------
# the database and the full backup
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE shop');
up(<<'SQL');
CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL, note text, big text);
INSERT INTO accounts SELECT g, g * 10, 'n' || g,
  CASE WHEN g % 10 = 0 THEN (SELECT string_agg(md5(random()::text || g || i), '') FROM generate_series(1, 150) i) END
  FROM generate_series(1, 2000) g;
CREATE TABLE items (id serial PRIMARY KEY, name text);
INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 300) g;
CREATE TABLE kv (k text PRIMARY KEY, v int, w text);
INSERT INTO kv SELECT 'k' || g, g, 'w' || g FROM generate_series(1, 200) g;
CREATE TABLE logs (x int, msg text);
INSERT INTO logs SELECT g, 'log ' || g FROM generate_series(1, 500) g;
CREATE TABLE child (id int PRIMARY KEY, account int REFERENCES accounts ON DELETE CASCADE, qty int);
INSERT INTO child SELECT g, g, g FROM generate_series(1, 100) g;
SQL
is(up("SELECT count(*) FROM pg_class WHERE relname = 'accounts' AND reltoastrelid <> 0"), 1, 'accounts has a TOAST table');
is(up("SELECT pg_relation_size(reltoastrelid) > 0 FROM pg_class WHERE relname = 'accounts'"), 't', 'its big values are stored out of line');

my %state;     # label => sums
$state{full} = sums($pg, 'shop');
ok_via("BACKUP INTO 'nodelocal://0/c' WITH revision_history", 'whole-server full backup with revision history');
my $pub = up("SELECT pubname FROM pg_publication WHERE pubname LIKE 'pgbr\\_%'");
like($pub, qr/^pgbr_\d+$/, 'the chain has a publication');
is(up("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_publication_tables WHERE pubname = '$pub'"),
	'accounts,child,items,kv', 'the publication holds the tables with a primary key only');
like(up("SELECT slot_name || ' ' || plugin FROM pg_replication_slots WHERE database = 'shop'"), qr/^pgbr_\d+_\d+ pgoutput$/,
	'the chain has a pgoutput slot in the database');

like($pg->safe_psql("SELECT job_id || ' ' || database || ' ' || (wal_held_bytes >= 0) || ' ' || (full_backup <> '') "
	  . "FROM pgbr.change_streams WHERE database = 'shop'"), qr/^\d+ shop true true$/,
	'pgbr.change_streams shows the chain\'s slot, its full backup and the WAL it holds');

# ---------------------------------------------------------------------------
# three rounds of changes, each followed by an incremental
# ---------------------------------------------------------------------------

my %moment;
# round 1
up(<<'SQL');
UPDATE accounts SET balance = balance + 1 WHERE id % 10 = 0;          -- big unchanged: sent as 'u'
UPDATE accounts SET note = 'changed ' || id WHERE id BETWEEN 100 AND 150;
DELETE FROM accounts WHERE id BETWEEN 1900 AND 1950;                 -- cascades to nothing
INSERT INTO accounts SELECT g, 0, 'new', NULL FROM generate_series(3000, 3100) g;
SQL
# the keyless table: application writes keep working while a chain exists
for my $stmt ("UPDATE logs SET msg = 'updated' WHERE x < 50", "DELETE FROM logs WHERE x BETWEEN 400 AND 420",
	"INSERT INTO logs VALUES (9999, 'late')")
{
	my ($rc, $out, $err) = $pg->psql($stmt, dbname => 'shop');
	is($rc, 0, "application write on the keyless table works: $stmt") or diag($err);
}
$moment{m1} = moment();
$state{m1} = sums($pg, 'shop');
up(<<'SQL');
UPDATE kv SET k = 'renamed-' || k WHERE v <= 5;                        -- key update
BEGIN;
UPDATE accounts SET big = repeat('Z', 5000) || id WHERE id = 20;        -- a TOASTed column itself
UPDATE accounts SET balance = -1 WHERE id = 21;
COMMIT;
DELETE FROM accounts WHERE id = 30;                                     -- child rows cascade
SQL
$state{inc1} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH revision_history", 'incremental 1');

# round 2: DDL
up(<<'SQL');
ALTER TABLE accounts ADD COLUMN extra int DEFAULT 7;
UPDATE accounts SET extra = id WHERE id < 10;
ALTER TABLE kv DROP COLUMN v;
UPDATE kv SET w = 'w2' WHERE k LIKE 'k1%';
TRUNCATE items RESTART IDENTITY;
INSERT INTO items (name) SELECT 'again ' || g FROM generate_series(1, 40) g;
SQL
$moment{m2} = moment();
$state{m2} = sums($pg, 'shop');
up(<<'SQL');
DELETE FROM items WHERE id > 30;
INSERT INTO logs VALUES (10000, 'round 2');
UPDATE accounts SET note = NULL WHERE id BETWEEN 500 AND 600;
SQL
$state{inc2} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH revision_history", 'incremental 2 (after ADD and DROP COLUMN)');

# round 3: a new table, more changes; child loses its primary key (the next
# layer takes it out of the publication and copies it whole)
up(<<'SQL');
ALTER TABLE child DROP CONSTRAINT child_pkey;
CREATE TABLE fresh (id int PRIMARY KEY, v text);
INSERT INTO fresh SELECT g, 'f' || g FROM generate_series(1, 50) g;
UPDATE accounts SET balance = balance * 2 WHERE id % 7 = 0;
SQL
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH revision_history", 'incremental 3 (a new table joins the stream)');
up(<<'SQL');
UPDATE fresh SET v = 'f2' WHERE id < 10;
DELETE FROM accounts WHERE id BETWEEN 2000 AND 3005;
SQL
is(up("SELECT count(*) FROM pg_publication_tables WHERE tablename = 'child'"), 0,
	'a table that lost its primary key left the publication at the incremental');
{
	my ($rc3, $o3, $e3) = $pg->psql("UPDATE child SET qty = qty + 1 WHERE id < 5", dbname => 'shop');
	is($rc3, 0, 'and the application can UPDATE it') or diag($e3);
}
$moment{m3} = moment();
$state{m3} = sums($pg, 'shop');
up("UPDATE fresh SET v = 'f3' WHERE id = 1; INSERT INTO kv VALUES ('late', 'x')");
$state{inc4} = sums($pg, 'shop');
ok_via("BACKUP INTO LATEST IN 'nodelocal://0/c' WITH revision_history", 'incremental 4');

# ---------------------------------------------------------------------------
# SHOW BACKUP: the layers
# ---------------------------------------------------------------------------

my @sb = show_backup('nodelocal://0/c');
my @layers = map { [ $_->{backup_type}, $_->{start_time} eq '' ? 't' : 'f', $_->{end_time} ] }
  grep { $_->{object_type} eq 'database' && $_->{object_name} eq 'shop' } @sb;
is(scalar(@layers), 5, 'five layers: the full backup and four incrementals');
is_deeply([ map { "$_->[0] $_->[1]" } @layers ], [ 'full t', map { 'incremental f' } 1 .. 4 ],
	'backup_type full then incremental; start_time NULL only for the full');
my ($rc, $out, $err) = via("SHOW BACKUPS IN 'nodelocal://0/c'");
is(scalar(split /\n/, $out), 1, 'SHOW BACKUPS IN lists the full backup only');
my ($acc) = grep { $_->{object_name} eq 'accounts' && $_->{backup_type} eq 'incremental' } @sb;
ok($acc && $acc->{rows} > 0, 'the first layer counts its changes to accounts (' . ($acc ? $acc->{rows} : 'none') . ')');

# ---------------------------------------------------------------------------
# restores: LATEST, each layer's end, and moments inside layers
# ---------------------------------------------------------------------------

ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' WITH new_db_name = r_latest", 'RESTORE FROM LATEST');
same_state('r_latest', $state{inc4}, 'the chain restores the newest state');
my @incs = qw(full inc1 inc2 inc3 inc4);
$state{inc3} = undef;   # not recorded (the table created in round 3 had changes after it)
for my $k (1 .. 2)
{
	my $t = $layers[$k][2];
	ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$t' WITH new_db_name = r_inc$k",
		"RESTORE AS OF SYSTEM TIME the end of incremental $k");
	same_state("r_inc$k", $state{"inc$k"}, "the state at the end of incremental $k");
}
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$layers[0][2]' WITH new_db_name = r_full",
	'RESTORE AS OF SYSTEM TIME the full backup\'s end');
same_state('r_full', $state{full}, 'the state of the full backup');

for my $m (qw(m1 m2 m3))
{
	ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$moment{$m}' WITH new_db_name = r_$m",
		"RESTORE DATABASE AS OF SYSTEM TIME moment $m");
	# keyless tables are copied whole at each layer's end: inside a layer
	# they are as of the layer before (docs/incremental.md)
	my %want = %{ $state{$m} };
	my $got = sums($pg, "r_$m");
	delete $want{'public.logs'};
	delete $got->{'public.logs'};
	if ($m eq 'm3')
	{
		# child has no key since round 3: copied whole, like logs
		delete $want{'public.child'};
		delete $got->{'public.child'};
	}
	is_deeply($got, \%want, "database at moment $m") or diag(explain({ got => $got, want => \%want }));
}

# a table, into another database
$pg->safe_psql('CREATE DATABASE tdb');
ok_via("RESTORE TABLE shop.public.accounts, shop.public.child FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$moment{m2}' "
	  . "WITH into_db = 'tdb'", 'RESTORE TABLE AS OF SYSTEM TIME moment m2');
same_state('tdb', { map { $_ => $state{m2}{$_} } qw(public.accounts public.child) }, 'the tables at moment m2');

# the whole server, into an empty second server
my $pg2 = PgbrTest::Postgres->new(conf => [ 'wal_level = logical' ]);
my $pgbr2 = PgbrTest::Pgbr->new(pg => $pg2, args => [ '--external-io-dir', $extern ]);
($rc, $out, $err) = $pgbr2->psql("RESTORE FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '$moment{m3}'", timeout => 300);
is($rc, 0, 'whole-server RESTORE AS OF SYSTEM TIME moment m3') or diag($err);
{
	my %want = %{ $state{m3} };
	my $got = sums($pg2, 'shop');
	delete @want{qw(public.logs public.child)};
	delete @{$got}{qw(public.logs public.child)};
	is_deeply($got, \%want, 'the whole server at moment m3') or diag(explain({ got => $got, want => \%want }));
}
is($pg2->safe_psql("SELECT count(*) FROM pg_publication", dbname => 'shop'), 0, 'no pgbr publication restored');
$pgbr2->stop;
$pg2->stop;

# ---------------------------------------------------------------------------
# AOST errors
# ---------------------------------------------------------------------------

($rc, $out, $err) = via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '2001-01-01' WITH new_db_name = x");
like($err, qr/22023: invalid RESTORE timestamp: BACKUP for requested time only has revision history from/,
	'AOST before the chain: revision history starts at the full backup');
($rc, $out, $err) = via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/c' AS OF SYSTEM TIME '2999-01-01' WITH new_db_name = x");
like($err, qr/22023: invalid RESTORE timestamp: supplied backups do not cover requested time/, 'AOST after the chain');

# ---------------------------------------------------------------------------
# a chain without revision history; kill -9 before the slot moves
# ---------------------------------------------------------------------------

ok_via("BACKUP DATABASE shop INTO 'nodelocal://0/d'", 'a database chain without revision history');
up("UPDATE accounts SET balance = 1 WHERE id < 100; INSERT INTO items (name) VALUES ('d1')");
$pgbr->stop;
{
	local $ENV{PGBR_TEST_ADVANCE_DIR} = $advdir;
	$pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);
}
my $h = IPC::Run::start([ pg_bindir() . '/psql', '-X', '-d', $pgbr->connstr, '-c',
		"BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/d'" ], '<', \undef, '>', \my $o1, '2>', \my $e1);
ok(wait_for(sub { -e "$advdir/advance.wait" }, 120), 'the incremental is durable and waits before moving the slot');
my $slot_before = up("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name LIKE 'pgbr%' ORDER BY slot_name DESC LIMIT 1");
$pgbr->signal('KILL');
$h->finish;
$pgbr->wait_exit(10);
unlink "$advdir/advance.wait";
my $killed_job = $pg->safe_psql("SELECT id FROM pgbr.jobs WHERE job_type = 'BACKUP' ORDER BY created DESC LIMIT 1");
$pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);
# restarted, pgbr adopts the killed job: its layer is complete, so the job
# only moves the slot and succeeds
ok(wait_for(sub { $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $killed_job") eq 'succeeded' }, 60, 0.1),
	'the killed incremental is adopted at restart and succeeds');
like($pgbr->log_content, qr/backup job $killed_job: .* was complete already; only its slots move/,
	'its layer was kept, not written again');
up("UPDATE accounts SET balance = 2 WHERE id < 50; DELETE FROM items WHERE name = 'd1'; INSERT INTO items (name) VALUES ('d2')");
my $killed_state = sums($pg, 'shop');
ok_via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/d'", 'the next incremental after the kill');
like($pgbr->log_content, qr/\d+ transactions \(\d+ change lines\)/, 'it read the change stream');
ok_via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/d' WITH new_db_name = r_killed", 'restore the chain');
same_state('r_killed', $killed_state, 'nothing lost, nothing applied twice after the kill');

# without revision history: only layer end times
my ($d_end) = map { $_->{end_time} } grep { $_->{object_type} eq 'database' } show_backup('nodelocal://0/d');
my $between = $pg->safe_psql("SELECT ('$d_end'::timestamptz + interval '1 millisecond')::text");
($rc, $out, $err) = via("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/d' AS OF SYSTEM TIME '$between' WITH new_db_name = x");
like($err, qr/22023: invalid RESTORE timestamp: restoring to arbitrary time requires that BACKUP for requested time be created with 'revision_history' option\. nearest BACKUP times are .* or /,
	'AOST between layers without revision history');

# ---------------------------------------------------------------------------
# errors: no full backup, other targets, a dropped slot
# ---------------------------------------------------------------------------

($rc, $out, $err) = via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/none'");
like($err, qr/58P01: path does not contain a completed latest backup/, 'INTO LATEST without a full backup');
($rc, $out, $err) = via("BACKUP DATABASE shop INTO '2020/01/01-000000.00' IN 'nodelocal://0/d'");
like($err, qr/No full backup exists in "2020\/01\/01-000000\.00" to append an incremental backup to/, 'INTO a subdir without a full backup');
$pg->safe_psql('CREATE DATABASE other');
($rc, $out, $err) = via("BACKUP DATABASE other INTO LATEST IN 'nodelocal://0/d'");
like($err, qr/previous backup does not contain the complete database "other"/, 'different targets');
my $dslot = up("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE 'pgbr%' ORDER BY slot_name DESC LIMIT 1");
$pg->safe_psql("SELECT pg_drop_replication_slot('$dslot')");
($rc, $out, $err) = via("BACKUP DATABASE shop INTO LATEST IN 'nodelocal://0/d'");
like($err, qr/55000: the change stream of backup chain ".*" is broken: replication slot "$dslot" does not exist/,
	'a dropped slot breaks the chain');
like($err, qr/HINT:  Take a new full backup/, 'and says a full backup is needed');

# ---------------------------------------------------------------------------
# 48 incrementals
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE small');
$pg->safe_psql('CREATE TABLE s (id int PRIMARY KEY, v int); INSERT INTO s SELECT g, 0 FROM generate_series(1, 100) g',
	dbname => 'small');
ok_via("BACKUP DATABASE small INTO 'nodelocal://0/s48'", 'full backup of a small database');
my $fails = 0;
for my $i (1 .. 48)
{
	$pg->safe_psql("UPDATE s SET v = v + $i WHERE id % 48 = $i % 48; INSERT INTO s VALUES (1000 + $i, $i); "
		  . "DELETE FROM s WHERE id = $i", dbname => 'small');
	my ($rc2, $o2, $e2) = via("BACKUP DATABASE small INTO LATEST IN 'nodelocal://0/s48'");
	$fails++ if $rc2;
	diag($e2) if $rc2;
}
is($fails, 0, '48 incrementals');
my $want48 = sums($pg, 'small');
ok_via("RESTORE DATABASE small FROM LATEST IN 'nodelocal://0/s48' WITH new_db_name = r48", 'restore the 48-layer chain');
same_state('r48', $want48, 'the 48-layer chain restores the newest state');

# ---------------------------------------------------------------------------
# the same through a driver: psycopg 3 (extended protocol, $n parameters)
# ---------------------------------------------------------------------------

SKIP:
{
	my $python = '/usr/bin/python3';
	my ($prc) = run_cmd([ $python, '-c', 'import psycopg' ]);
	skip 'python3-psycopg is not installed', 3 if $prc;
	$pg->safe_psql("UPDATE s SET v = -1 WHERE id = 7", dbname => 'small');
	my $want = sums($pg, 'small');
	my $script = <<'PY';
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    row = conn.execute("BACKUP DATABASE small INTO LATEST IN %s", ("nodelocal://0/s48",)).fetchone()
    print("backup", row[1])
    ends = [r[6] for r in conn.execute("SHOW BACKUP FROM LATEST IN %s", ("nodelocal://0/s48",)).fetchall()
            if r[3] == "database"]
    print("layers", len(ends))
    row = conn.execute("RESTORE DATABASE small FROM LATEST IN %s AS OF SYSTEM TIME %s WITH new_db_name = rpy",
                       ("nodelocal://0/s48", str(ends[-1]))).fetchone()
    print("restore", row[1])
PY
	my ($rc2, $o2, $e2) = run_cmd([ $python, '-c', $script, $pgbr->connstr ]);
	is($rc2, 0, 'psycopg: incremental BACKUP and RESTORE AS OF SYSTEM TIME $2') or diag($e2);
	is($o2, "backup succeeded\nlayers 50\nrestore succeeded\n", 'psycopg: both succeeded, 50 layers');
	same_state('rpy', $want, 'psycopg: the restored database');
}

$pgbr->stop;
done_testing();
