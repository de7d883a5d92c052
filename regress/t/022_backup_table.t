#!/usr/bin/perl
# BACKUP TABLE <pattern> [, ...] INTO <collection> (and the bare-pattern
# form): every pattern form (t, s.t, d.s.t, *, s.*, d.*, d.s.*, the 2-part
# db.t fallback, a schema winning over a database of the same name)
# resolves to the right relations, read back from the BACKUP_MANIFEST
# (targets.given/resolved, tables with their kinds, sequences); the
# client's search_path is honoured; partitions (at every level) and owned
# sequences (serial and identity) join the set; data files only for the
# selected tables, with the right row counts; several databases in one
# backup; large objects do not stop a table backup; SHOW BACKUP reads it;
# RESTORE TABLE of a table backup gives the same rows back; errors with
# SQLSTATEs (42P01, 3D000, 3F000 with its HINT, 25001, 0A000 for
# detached in a transaction as for databases); non-admins: CONNECT, USAGE
# on the schema and SELECT on each named relation (42501 worded as
# PostgreSQL words it, no job row, no files), then the nodelocal 42501.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use JSON::PP qw(decode_json);

my $pg = PgbrTest::Postgres->new;
my $extern = tempdir();

$pg->safe_psql('CREATE DATABASE shop');
$pg->safe_psql('CREATE DATABASE warehouse');
$pg->safe_psql('CREATE DATABASE sales');
$pg->safe_psql(q{
	CREATE TABLE items (id serial PRIMARY KEY, name text);
	CREATE INDEX ON items (name);
	INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, 100) g;
	CREATE TABLE notes (body text);
	INSERT INTO notes VALUES (E'tab\there'), (NULL), ('ünïcode');
	CREATE TABLE "Weird Name" (a int);
	INSERT INTO "Weird Name" VALUES (1), (2);
	CREATE SEQUENCE counter;
	SELECT nextval('counter');
	CREATE SCHEMA other;
	CREATE TABLE other.items (id int);
	INSERT INTO other.items SELECT generate_series(1, 5);
	CREATE SCHEMA sales;
	CREATE TABLE sales.orders (id int, total numeric);
	INSERT INTO sales.orders SELECT g, g * 2 FROM generate_series(1, 10) g;
	CREATE TABLE sales.events (id int GENERATED ALWAYS AS IDENTITY, x int);
	INSERT INTO sales.events (x) SELECT generate_series(1, 7);
	CREATE VIEW sales.v_orders AS SELECT id FROM sales.orders;
	CREATE MATERIALIZED VIEW sales.mv AS SELECT count(*) AS n FROM sales.orders;
	CREATE SCHEMA empty;
	CREATE TABLE measures (d int, v int) PARTITION BY RANGE (d);
	CREATE TABLE measures_1 PARTITION OF measures FOR VALUES FROM (0) TO (100);
	CREATE TABLE measures_2 PARTITION OF measures FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (v);
	CREATE TABLE measures_2a PARTITION OF measures_2 FOR VALUES FROM (MINVALUE) TO (MAXVALUE);
	INSERT INTO measures SELECT g, g FROM generate_series(0, 199) g;
	SELECT lo_create(0);
}, dbname => 'shop');
$pg->safe_psql(q{
	CREATE TABLE stock (sku int, qty int);
	INSERT INTO stock SELECT g, g FROM generate_series(1, 20) g;
	CREATE SCHEMA inv;
	CREATE TABLE inv.bins (id int);
	INSERT INTO inv.bins SELECT generate_series(1, 4);
}, dbname => 'warehouse');
$pg->safe_psql(q{
	CREATE TABLE leads (id int);
	INSERT INTO leads VALUES (1), (2), (3);
}, dbname => 'sales');

my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

# ($sqlstate, $message, $stderr) of a statement that must fail.
sub psql_error
{
	my ($sql, %o) = @_;
	my ($rc, $out, $err) = $pgbr->psql($sql, extra => [ '-v', 'VERBOSITY=verbose' ], %o);
	return ('', "no error (rc $rc): $out", $err) unless $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/s;
	my ($code, $msg) = ($1, $2);
	$msg =~ s/\n(?:DETAIL|HINT|LOCATION):.*//s;
	$msg =~ s/\n\z//;
	return ($code, $msg, $err);
}

my $ncoll = 0;

# Run a BACKUP (its text has COLL where the collection goes) into a new
# collection; returns (the result row as a hash, the backup's directory,
# its decoded manifest).
sub backup_ok
{
	my ($sql, $what, %o) = @_;
	my $coll = 'c' . ++$ncoll;
	$sql =~ s/COLL/'nodelocal:\/\/0\/$coll'/;
	my ($rc, $out, $err) = $pgbr->psql($sql, %o);
	is($rc, 0, "$what: succeeds") or diag($err);
	my ($job, $status, $frac, $rows, $idx, $bytes) = split /\|/, (split /\n/, $out)[-1] // '';
	my ($subdir) = map { s/\n.*//sr } $pgbr->safe_psql("SHOW BACKUPS IN 'nodelocal://0/$coll'");
	my $dir = "$extern/$coll" . ($subdir // '');
	my $m = -f "$dir/BACKUP_MANIFEST" ? decode_json(slurp("$dir/BACKUP_MANIFEST")) : {};
	return ({ job => $job, status => $status, rows => $rows, index_entries => $idx, bytes => $bytes }, $dir, $m, $coll);
}

# "db.schema.name" of every resolved target, sorted.
sub resolved
{
	my ($m) = @_;
	return join ' ', sort map { "$_->{database}.$_->{schema}.$_->{table}" } @{ $m->{targets}{resolved} // [] };
}

# "db.schema.name:kind:rows:files" of every manifest table, and
# "db.schema.name" of every sequence, sorted.
sub contents
{
	my ($m) = @_;
	my @t;
	for my $db (@{ $m->{databases} // [] }) {
		push @t, "$db->{name}.$_->{schema}.$_->{name}:$_->{kind}:$_->{rows}:" . scalar(@{ $_->{files} // [] }) for @{ $db->{tables} };
		push @t, "$db->{name}.$_->{schema}.$_->{name}:seq" for @{ $db->{sequences} };
	}
	return join ' ', sort @t;
}

sub oid_of
{
	my ($db, $rel) = @_;
	return $pg->safe_psql("SELECT '$rel'::regclass::oid", dbname => $db);
}

# The table oids that have data directories under data/<db>/.
# The oids of the tables of database $db that have data files in the
# backup at $dir (small tables share bundle files: the manifest says which
# file and offset), each file present.
sub data_dirs
{
	my ($dir, $db) = @_;
	my $m = JSON::PP::decode_json(slurp("$dir/BACKUP_MANIFEST"));
	my @oids;
	for my $d (grep { $_->{name} eq $db } @{ $m->{databases} })
	{
		for my $t (@{ $d->{tables} })
		{
			next unless @{ $t->{files} // [] };
			next if grep { !-f "$dir/$_->{path}" } @{ $t->{files} };
			push @oids, $t->{oid};
		}
	}
	return join ' ', sort { $a <=> $b } @oids;
}

# --- t: the first schema of the search path -------------------------------------------------------
my ($r, $dir, $m) = backup_ok("BACKUP TABLE items INTO COLL", 'BACKUP TABLE items', dbname => 'shop');
is($r->{status}, 'succeeded', 'blocking form: succeeded');
is($r->{rows}, 100, 'rows: the selected table only');
is($r->{index_entries}, 100, 'index_entries: rows x the secondary index');
is($m->{targets}{kind}, 'tables', 'targets.kind is tables');
is_deeply($m->{targets}{given}, ['items'], 'targets.given: the pattern as written');
is(resolved($m), 'shop.public.items shop.public.items_id_seq', 't: the table and its owned (serial) sequence');
is(contents($m), 'shop.public.items:table:100:1 shop.public.items_id_seq:seq', 'manifest: the table with one data file, its sequence');
is(data_dirs($dir, 'shop'), oid_of('shop', 'items'), 'data files only for the selected table');
ok(-f "$dir/schema/shop.dump", 'the full schema dump is written');
my $toc = `pg_restore -l '$dir/schema/shop.dump' 2>&1`;
like($toc, qr/TABLE public notes/, 'the schema dump is the whole database (it has notes too)');

{
	my $coll = 'c' . ++$ncoll;
	my ($rc, $out, $err) = $pgbr->psql(undef, dbname => 'shop',
		stdin => "SET search_path = other, public;\nBACKUP TABLE items INTO 'nodelocal://0/$coll';\n");
	is($rc, 0, 'SET search_path then BACKUP TABLE items in one session') or diag($err);
	my $subdir = $pgbr->safe_psql("SHOW BACKUPS IN 'nodelocal://0/$coll'");
	$m = decode_json(slurp("$extern/$coll$subdir/BACKUP_MANIFEST"));
	is(resolved($m), 'shop.other.items', 'search_path: other.items, the first schema that has one');
	is(contents($m), 'shop.other.items:table:5:1', 'search_path: 5 rows of other.items');
}

# --- s.t, d.s.t -----------------------------------------------------------------------------------
($r, $dir, $m) = backup_ok("BACKUP TABLE sales.orders INTO COLL", 's.t', dbname => 'shop');
is(resolved($m), 'shop.sales.orders', 's.t: the schema of the current database wins over database sales');
is($r->{rows}, 10, 's.t: 10 rows');

($r, $dir, $m) = backup_ok("BACKUP TABLE shop.sales.events INTO COLL", 'd.s.t', dbname => 'postgres');
is(resolved($m), 'shop.sales.events shop.sales.events_id_seq', 'd.s.t: the table and its identity sequence');
is(contents($m), 'shop.sales.events:table:7:1 shop.sales.events_id_seq:seq', 'd.s.t: 7 rows');

# --- *, s.*, d.*, d.s.*, db.t ----------------------------------------------------------------------
($r, $dir, $m) = backup_ok("BACKUP TABLE * INTO COLL", '*', dbname => 'warehouse');
is(resolved($m), 'warehouse.inv.bins warehouse.public.stock', '*: every relation of the current database');
is($r->{rows}, 24, '*: 24 rows');
is_deeply($m->{targets}{given}, ['*'], '*: given');

($r, $dir, $m) = backup_ok("BACKUP TABLE sales.* INTO COLL", 's.*', dbname => 'shop');
is(resolved($m), 'shop.sales.events shop.sales.events_id_seq shop.sales.mv shop.sales.orders shop.sales.v_orders',
	's.*: the schema of the current database, not database sales');
is(contents($m), 'shop.sales.events:table:7:1 shop.sales.events_id_seq:seq shop.sales.mv:materialized_view:0:0 '
	. 'shop.sales.orders:table:10:1 shop.sales.v_orders:view:0:0', 's.*: views and materialized views without data files');
is(data_dirs($dir, 'shop'), join(' ', sort { $a <=> $b } oid_of('shop', 'sales.events'), oid_of('shop', 'sales.orders')),
	's.*: data files for the two tables only');
is($r->{rows}, 17, 's.*: 17 rows');

($r, $dir, $m) = backup_ok("BACKUP TABLE sales.* INTO COLL", 'd.* (no such schema: a database)', dbname => 'warehouse');
is(resolved($m), 'sales.public.leads', 'd.*: every relation of database sales');
is($r->{rows}, 3, 'd.*: 3 rows');

($r, $dir, $m) = backup_ok("BACKUP TABLE warehouse.* INTO COLL", 'd.* from another database', dbname => 'shop');
is(resolved($m), 'warehouse.inv.bins warehouse.public.stock', 'd.*: every relation of database warehouse');
is(join(' ', map { $_->{name} } @{ $m->{databases} }), 'warehouse', 'd.*: only warehouse is in the backup');

($r, $dir, $m) = backup_ok("BACKUP TABLE warehouse.inv.* INTO COLL", 'd.s.*', dbname => 'shop');
is(resolved($m), 'warehouse.inv.bins', 'd.s.*: schema inv of warehouse');

($r, $dir, $m) = backup_ok("BACKUP TABLE warehouse.stock INTO COLL", 'db.t', dbname => 'shop');
is(resolved($m), 'warehouse.public.stock', 'db.t: no schema warehouse in shop, so warehouse.public.stock');
is($r->{rows}, 20, 'db.t: 20 rows');

# --- partitions, canonical given, several databases, bare patterns ---------------------------------
($r, $dir, $m) = backup_ok("BACKUP TABLE measures INTO COLL", 'partitioned table', dbname => 'shop');
is(resolved($m), 'shop.public.measures shop.public.measures_1 shop.public.measures_2 shop.public.measures_2a',
	'partitions at every level join the set');
is(contents($m), 'shop.public.measures:partitioned_table:0:0 shop.public.measures_1:table:100:1 '
	. 'shop.public.measures_2:partitioned_table:0:0 shop.public.measures_2a:table:100:1',
	'data in the leaf partitions, partitioned tables recorded without files');
is(data_dirs($dir, 'shop'), join(' ', sort { $a <=> $b } oid_of('shop', 'measures_1'), oid_of('shop', 'measures_2a')),
	'data files for the leaves only');
is($r->{rows}, 200, 'partitioned: 200 rows');
my ($parent) = grep { $_->{name} eq 'measures' } @{ $m->{databases}[0]{tables} };
is(join(',', map { $_->{name} } @{ $parent->{columns} }), 'd,v', 'the partitioned table keeps its columns');

($r, $dir, $m) = backup_ok("BACKUP TABLE measures_1 INTO COLL", 'one partition', dbname => 'shop');
is(resolved($m), 'shop.public.measures_1', 'a partition alone: only itself');

($r, $dir, $m) = backup_ok(qq{BACKUP TABLE public."Weird Name", SALES.*, counter, public.items, items INTO COLL}, 'given as written',
	dbname => 'shop');
is_deeply($m->{targets}{given}, [ 'public."Weird Name"', 'sales.*', 'counter', 'public.items', 'items' ],
	'targets.given: canonical text, quoted only where needed');
like(resolved($m), qr/^shop.public.Weird Name shop.public.counter shop.public.items shop.public.items_id_seq shop.sales.events /,
	'a relation named twice is backed up once');
is(scalar(grep { $_->{name} eq 'items' } @{ $m->{databases}[0]{tables} }), 1, 'items once in the manifest');
my ($counter) = grep { $_->{name} eq 'counter' } @{ $m->{databases}[0]{sequences} };
ok($counter && $counter->{last_value} == 1 && $counter->{is_called}, 'a named sequence keeps its value');

($r, $dir, $m) = backup_ok("BACKUP TABLE notes, warehouse.public.stock, sales.public.leads INTO COLL", 'several databases',
	dbname => 'shop');
is(join(' ', map { $_->{name} } @{ $m->{databases} }), 'shop warehouse sales', 'one entry per database, in the order named');
ok(-f "$dir/schema/$_.dump", "schema dump of $_") for qw(shop warehouse sales);
is($r->{rows}, 26, 'several databases: 3 + 20 + 3 rows');
is(resolved($m), 'sales.public.leads shop.public.notes warehouse.public.stock', 'several databases: resolved');

($r, $dir, $m, my $coll) = backup_ok("BACKUP notes INTO COLL", 'bare pattern', dbname => 'shop');
is(resolved($m), 'shop.public.notes', 'bare pattern: BACKUP notes');
is($r->{rows}, 3, 'bare pattern: 3 rows (large objects in the database do not matter)');
is($pg->safe_psql("SELECT description FROM pgbr.jobs WHERE id = $r->{job}"), "BACKUP TABLE notes INTO 'nodelocal://0/$coll'",
	'the job description is the canonical statement');
my ($code, $msg) = psql_error("BACKUP DATABASE shop INTO 'nodelocal://0/lo'");
is($code, '0A000', 'a database backup still refuses large objects');

# SHOW BACKUP reads a table backup (views and partitioned tables have no files).
($r, $dir, $m, $coll) = backup_ok("BACKUP TABLE sales.*, measures INTO COLL", 'for SHOW BACKUP', dbname => 'shop');
my $show = $pgbr->safe_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/$coll' WITH check_files");
like($show, qr/^shop\|sales\|v_orders\|table\|full\|/m, 'SHOW BACKUP lists the view');
like($show, qr/^shop\|public\|measures_2a\|table\|full\|.*\|100\|f\|\|\d+$/m, 'SHOW BACKUP: a partition with its rows and files');
$show = $pgbr->safe_psql("SHOW BACKUP SCHEMAS FROM LATEST IN 'nodelocal://0/$coll'");
like($show, qr/CREATE TABLE public\.measures \(d integer, v integer\)/, 'SHOW BACKUP SCHEMAS: the partitioned table');

# A table backup restores: RESTORE TABLE finds what it holds (the schema dump
# is the whole database's, the data the selected tables'), rows equal.
($r, $dir, $m, $coll) = backup_ok("BACKUP TABLE items, measures, sales.* INTO COLL", 'for RESTORE TABLE', dbname => 'shop');
$pg->safe_psql('CREATE DATABASE restored');
$pg->safe_psql('CREATE SCHEMA sales', dbname => 'restored');
my ($rc, $out, $err) = $pgbr->psql("RESTORE TABLE items, measures, sales.* FROM LATEST IN 'nodelocal://0/$coll' WITH into_db = 'restored'",
	dbname => 'shop');
is($rc, 0, 'RESTORE TABLE from the table backup') or diag($err);
for my $t ('items', 'measures', 'measures_2a', 'sales.orders', 'sales.events', 'sales.v_orders', 'sales.mv') {
	my $sum = "SELECT count(*) || ' ' || md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) FROM $t x";
	is($pg->safe_psql($sum, dbname => 'restored'), $pg->safe_psql($sum, dbname => 'shop'), "restored $t: same rows");
}
is($pg->safe_psql("SELECT nextval('items_id_seq')", dbname => 'restored'), 101, 'the owned sequence came along with its value');
is($pg->safe_psql("SELECT to_regclass('notes') IS NULL", dbname => 'restored'), 't', 'nothing that was not selected');

# WITH detached.
($rc, $out, $err) = $pgbr->psql("BACKUP TABLE items INTO 'nodelocal://0/det' WITH detached", dbname => 'shop');
is($rc, 0, 'detached BACKUP TABLE') or diag($err);
like($out, qr/^\d+$/, 'detached returns the job id');
ok(wait_for(sub { ($pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $out") // '') eq 'succeeded' }, 60),
	'the detached job succeeds');
is($pg->safe_psql("SELECT rows FROM pgbr.jobs WHERE id = $out"), 100, 'and records its rows');

# --- errors ----------------------------------------------------------------------------------------
my $jobs_before = $pg->safe_psql('SELECT count(*) FROM pgbr.jobs');
for my $case (
	[ 'nosuch', '42P01', 'table "nosuch" does not exist' ],
	[ 'sales.nosuch', '42P01', 'table "sales.nosuch" does not exist' ],
	[ 'sales.leads', '42P01', 'table "sales.leads" does not exist' ],
	[ 'nosuch.t', '42P01', 'table "nosuch.t" does not exist' ],
	[ 'warehouse.nosuch', '42P01', 'table "warehouse.nosuch" does not exist' ],
	[ 'warehouse.public.nosuch', '42P01', 'table "warehouse.public.nosuch" does not exist' ],
	[ 'warehouse.nosuch.t', '42P01', 'table "warehouse.nosuch.t" does not exist' ],
	[ 'nosuchdb.public.t', '3D000', 'database "nosuchdb" does not exist' ],
	[ 'nosuchdb.public.*', '3D000', 'database "nosuchdb" does not exist' ],
	[ 'nosuch.*', '3F000', 'schema "nosuch" does not exist' ],
	[ 'warehouse.nosuch.*', '3F000', 'schema "nosuch" does not exist' ],
	[ 'empty.*', '42P01', 'table "empty.*" does not exist' ],
	[ 'items, nosuch', '42P01', 'table "nosuch" does not exist' ],
	[ 'pg_catalog.pg_class', '42P01', 'table "pg_catalog.pg_class" does not exist' ],
	[ 'pg_class', '42P01', 'table "pg_class" does not exist' ],
	[ 'items_pkey', '42P01', 'table "items_pkey" does not exist' ])
{
	my ($pattern, $want_code, $want_msg) = @$case;
	my ($code, $msg, $err) = psql_error("BACKUP TABLE $pattern INTO 'nodelocal://0/err'", dbname => 'shop');
	is("$code $msg", "$want_code $want_msg", "BACKUP TABLE $pattern: $want_code");
	like($err, qr/HINT:\s+There is no schema "nosuch" in database "shop" and no database "nosuch"\./, 'with a HINT')
		if $pattern eq 'nosuch.*';
}
($code, $msg) = psql_error(undef, dbname => 'postgres', stdin => "SET search_path = pgbr;\nBACKUP TABLE jobs INTO 'nodelocal://0/err';\n");
is("$code $msg", '42P01 table "jobs" does not exist', "pgbr's own tables are never backed up");
is($pg->safe_psql('SELECT count(*) FROM pgbr.jobs'), $jobs_before, 'refused table backups create no job');
ok(!-e "$extern/err", 'and write nothing');

($rc, $out, $err) = $pgbr->psql(undef, dbname => 'shop', stdin => "BEGIN;\nBACKUP TABLE items INTO 'nodelocal://0/txn';\nCOMMIT;\n",
	extra => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/25001: BACKUP cannot be used inside a multi-statement transaction without DETACHED option/, '25001 in a transaction');
my @detached_in_txn;
for my $target ('TABLE items', 'DATABASE shop') {
	($rc, $out, $err) = $pgbr->psql(undef, dbname => 'shop', stdin => "BEGIN;\nBACKUP $target INTO 'nodelocal://0/txn' WITH detached;\nCOMMIT;\n",
		extra => [ '-v', 'VERBOSITY=verbose' ]);
	push @detached_in_txn, $err =~ /ERROR:\s+(.*)/ ? $1 : "no error: $out";
}
is($detached_in_txn[0], $detached_in_txn[1], "WITH detached in a transaction: as for databases ($detached_in_txn[1])");

# --- non-admins --------------------------------------------------------------------------------------
$jobs_before = $pg->safe_psql('SELECT count(*) FROM pgbr.jobs');
($code, $msg) = psql_error("BACKUP TABLE items INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for table public.items', 'no SELECT: permission denied for the table');
($code, $msg) = psql_error("BACKUP TABLE counter INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for sequence public.counter', 'no SELECT/USAGE: permission denied for the sequence');
($code, $msg) = psql_error("BACKUP TABLE sales.v_orders INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for schema sales', 'no USAGE on the schema');
$pg->safe_psql('GRANT USAGE ON SCHEMA sales TO alice', dbname => 'shop');
($code, $msg) = psql_error("BACKUP TABLE sales.v_orders INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for view sales.v_orders', 'permission denied for the view');
($code, $msg) = psql_error("BACKUP TABLE sales.mv INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for materialized view sales.mv', 'permission denied for the materialized view');
($code, $msg) = psql_error("BACKUP TABLE nosuch INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42P01 table "nosuch" does not exist', 'a non-admin: unknown table');
$pg->safe_psql('REVOKE CONNECT ON DATABASE warehouse FROM PUBLIC');
($code, $msg) = psql_error("BACKUP TABLE warehouse.public.stock INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code $msg", '42501 permission denied for database warehouse', 'no CONNECT on the database');

$pg->safe_psql('GRANT SELECT ON items TO alice; GRANT SELECT ON sales.orders TO alice', dbname => 'shop');
my ($code2, $msg2, $err2) = psql_error("BACKUP TABLE items, sales.orders INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
my ($code3, $msg3, $err3) = psql_error("BACKUP DATABASE shop INTO 'nodelocal://0/alice'", dbname => 'shop', user => 'alice');
is("$code2 $msg2", '42501 only users with the admin role are allowed to access the specified nodelocal URI',
	'with SELECT (not on the owned sequence): the nodelocal destination is refused');
my ($hint2) = $err2 =~ /HINT:\s+(.*)/;
my ($hint3) = $err3 =~ /HINT:\s+(.*)/;
like($hint2 // '', qr/^Superusers and members of role "\w+" are pgbr admins\.$/, 'with the HINT naming the admin role');
is($hint2, $hint3, 'the same HINT as BACKUP DATABASE');
is($pg->safe_psql('SELECT count(*) FROM pgbr.jobs'), $jobs_before, 'refused non-admin backups create no job');
ok(!-e "$extern/alice", 'and write nothing');

$pgbr->stop_ok;
$pg->stop;
done_testing();
