#!/usr/bin/perl
# RESTORE TABLE end to end, through psql against a real PostgreSQL and a real
# pgbr, from a database backup:
#  - one table into another database (into_db): its rows, its index, its
#    enum type created there, the reference's result row;
#  - patterns: db.schema.table, schema.table and a bare name resolved with
#    the client's search_path, schema.*, db.*, *;
#  - every relation of the database into another database: the content of
#    every table and the next value of every sequence equal the source's;
#  - a dropped table restored into its own database;
#  - errors with their SQLSTATEs, no job and nothing created: an existing
#    relation (42P07), a missing destination database or schema, a missing
#    foreign-key target without and with skip_missing_foreign_keys, a missing
#    sequence (skip_missing_sequences), a sequence without its owner
#    (skip_missing_sequence_owners), a view without its table
#    (skip_missing_views), a name not in the backup;
#  - schema_only, and verify_backup_table_data over a flipped byte in a
#    table's byte range of a bundle file (XX001, nothing created);
#  - pgbr killed with SIGKILL while the rows are loaded: the destination has
#    nothing of the restore (one transaction), and the same restore then
#    succeeds.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use JSON::PP ();

my $pg = PgbrTest::Postgres->new(conf => [ 'max_wal_size = 1GB' ]);
my $extern = tempdir();
my @pgbr_args = (args => [ '--external-io-dir', $extern ]);
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, @pgbr_args);
my @VERBOSE = (extra => [ '-v', 'VERBOSITY=verbose' ]);
my $COLL = "'nodelocal://0/shop'";


# "rows:md5" of a table's rows (order-independent)
sub sum_of
{
	my ($db, $table) = @_;
	return $pg->safe_psql(table_sum_sql($table), dbname => $db);
}

sub exists_in
{
	my ($db, $rel) = @_;
	return $pg->safe_psql("SELECT to_regclass('$rel') IS NOT NULL", dbname => $db) eq 't';
}

sub jobs { $pg->safe_psql('SELECT count(*) FROM pgbr.jobs') }

sub restore
{
	my ($sql, %o) = @_;
	return $pgbr->psql($sql, raw => 1, @VERBOSE, timeout => 300, %o);
}

# ---------------------------------------------------------------------------
# the source
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE shop');
$pg->safe_psql(<<'SQL', dbname => 'shop');
CREATE TYPE status AS ENUM ('new', 'paid', 'shipped');
CREATE SEQUENCE invoice_seq START 1000;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer_id int NOT NULL REFERENCES customers, st status NOT NULL DEFAULT 'new',
	invoice int DEFAULT nextval('invoice_seq'), note text);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE order_items (order_id int REFERENCES orders ON DELETE CASCADE, line int, qty int CHECK (qty > 0),
	PRIMARY KEY (order_id, line));
CREATE VIEW big_orders AS SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id > 10;
CREATE SCHEMA sales;
CREATE TABLE sales.targets (region text PRIMARY KEY, amount numeric(12,2));
COMMENT ON TABLE sales.targets IS 'quarterly targets';
CREATE TABLE public.targets (x int);   -- same name in public: the search path decides
CREATE TABLE bulk (id bigint, payload text);
INSERT INTO customers (name, email) SELECT 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, st, note) SELECT 1 + g % 500, (ARRAY['new','paid','shipped'])[1 + g % 3]::status, 'note ' || g
	FROM generate_series(1, 3000) g;
INSERT INTO order_items SELECT o, l, l FROM generate_series(1, 3000) o, generate_series(1, 3) l;
INSERT INTO sales.targets VALUES ('north', 100.50), ('south', 200.25), ('east', NULL);
INSERT INTO public.targets VALUES (1), (2);
INSERT INTO bulk SELECT g, md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) FROM generate_series(1, 700000) g;
SELECT nextval('invoice_seq');
SQL
my @tables = qw(public.customers public.orders public.order_items sales.targets public.targets public.bulk);
my %src = map { ($_ => sum_of('shop', $_)) } @tables;

my ($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO $COLL", timeout => 300);
is($rc, 0, 'BACKUP DATABASE shop') or diag($err);

# ---------------------------------------------------------------------------
# 1. one table into another database
# ---------------------------------------------------------------------------

$pg->safe_psql("CREATE DATABASE $_") for qw(t1 t2 t3 t4 t5);
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 't1'");
is($rc, 0, 'RESTORE TABLE shop.public.customers ... WITH into_db') or diag($err);
like($out, qr/job_id\s*\|\s*status\s*\|\s*fraction_completed\s*\|\s*rows\s*\|\s*index_entries\s*\|\s*bytes/,
	'the reference\'s result columns');
my @r = result_row($out);
is_deeply([ @r[1 .. 4] ], [ 'succeeded', 1, 500, 500 ], 'succeeded, 500 rows, 500 index entries (the unique email index)');
is(sum_of('t1', 'customers'), $src{'public.customers'}, 'the rows are the source\'s');
is($pg->safe_psql("SELECT nextval('customers_id_seq')", dbname => 't1'), '501', 'the owned sequence came along, at its value');
is($pg->safe_psql("SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'customers'", dbname => 't1'),
	'customers_email_key,customers_pkey', 'with its indexes');
like($pg->safe_psql("SELECT description FROM pgbr.jobs WHERE job_type = 'RESTORE' ORDER BY created DESC LIMIT 1"),
	qr/^RESTORE TABLE shop\.public\.customers FROM '\/\d{4}\/\d\d\/\d\d-\d{6}\.\d\d' IN 'nodelocal:\/\/0\/shop' WITH/,
	'the job records the statement with LATEST resolved');

# ---------------------------------------------------------------------------
# 2. errors: nothing created, no job
# ---------------------------------------------------------------------------

my $jobs = jobs();
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 't1'");
like($err, qr/ERROR:  42P07: relation "customers" already exists/, 'an existing relation: 42P07');

($rc, $out, $err) = restore("RESTORE TABLE shop.public.orders FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  42704: cannot restore table "orders" without referenced sequence \d+ \(or "skip_missing_sequences" option\)/,
	'a default using a sequence not restored: the reference\'s error');
like($err, qr/DETAIL:  sequence \d+ is "public"."invoice_seq" in database "shop" of the backup/, 'the detail names the sequence');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.orders FROM LATEST IN $COLL WITH into_db = 't2', skip_missing_sequences");
like($err, qr/ERROR:  42704: cannot restore table "orders" without referenced table \d+ \(or "skip_missing_foreign_keys" option\)/,
	'a foreign key to a table not restored: the reference\'s error');
like($err, qr/DETAIL:  table \d+ is "public"."customers" in database "shop" of the backup/, 'the detail names the table');
ok(!exists_in('t2', 'orders'), 'nothing was created');
is($pg->safe_psql("SELECT count(*) FROM pg_type WHERE typname = 'status'", dbname => 't2'), '0', 'not even the enum type');

($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers_id_seq FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  42704: cannot restore sequence "customers_id_seq" without referenced owner table \d+ \(or "skip_missing_sequence_owners" option\)/,
	'a sequence without its owner table');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.big_orders FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  42704: cannot restore view "big_orders" without referenced table \d+ \(or "skip_missing_views" option\)/,
	'a view without its tables');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 'nosuchdb'");
like($err, qr/ERROR:  3D000: a database named "nosuchdb" needs to exist to restore table "customers"/, 'a missing destination database');
($rc, $out, $err) = restore("RESTORE TABLE shop.sales.targets FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  3F000: a schema named "sales" needs to exist to restore table "targets"/, 'a missing schema');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.nosuch FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  42P01: table "shop.public.nosuch" does not exist in the backup/, 'a name not in the backup: 42P01');
($rc, $out, $err) = restore("RESTORE TABLE nosuchdb.public.customers FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/ERROR:  42704: database "nosuchdb" not found in the backup/, 'a database not in the backup');
($rc, $out, $err) = restore("RESTORE DATABASE shop FROM LATEST IN $COLL WITH into_db = 't2'");
like($err, qr/cannot use "into_db" option when restoring database\(s\)/, 'into_db with RESTORE DATABASE');
is(jobs(), $jobs, 'the refused restores created no job');
is($pg->safe_psql("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'",
		dbname => 't2'), '0', 'and nothing in the destination');

# ---------------------------------------------------------------------------
# 3. the skip_missing_* options
# ---------------------------------------------------------------------------

($rc, $out, $err) = restore("RESTORE TABLE shop.public.orders FROM LATEST IN $COLL WITH into_db = 't2', "
	  . "skip_missing_foreign_keys, skip_missing_sequences");
is($rc, 0, 'orders WITH skip_missing_foreign_keys, skip_missing_sequences') or diag($err);
is(sum_of('t2', 'orders'), $src{'public.orders'}, 'its rows are the source\'s');
is($pg->safe_psql("SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f'", dbname => 't2'),
	'0', 'without the foreign key');
is($pg->safe_psql("SELECT column_default IS NULL FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'invoice'",
		dbname => 't2'), 't', 'without the default that used the missing sequence');
is($pg->safe_psql("SELECT enum_range(NULL::status)::text", dbname => 't2'), '{new,paid,shipped}', 'the enum type was created');
is($pg->safe_psql("SELECT count(*) FROM pg_indexes WHERE tablename = 'orders'", dbname => 't2'), '2', 'both indexes built');
# identity: the next value continues after the backup's
is($pg->safe_psql("INSERT INTO orders (customer_id) VALUES (1) RETURNING id", dbname => 't2'), '3001',
	'the identity column continues where the source was');

($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers_id_seq FROM LATEST IN $COLL WITH into_db = 't3', skip_missing_sequence_owners");
is($rc, 0, 'a sequence WITH skip_missing_sequence_owners') or diag($err);
is($pg->safe_psql("SELECT last_value FROM customers_id_seq", dbname => 't3'), '500', 'the sequence has its value');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.big_orders FROM LATEST IN $COLL WITH into_db = 't3', skip_missing_views");
is($rc, 0, 'a view WITH skip_missing_views') or diag($err);
ok(!exists_in('t3', 'big_orders'), 'the view was skipped');

# ---------------------------------------------------------------------------
# 4. patterns
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE SCHEMA sales', dbname => $_) for qw(t4 t5);
($rc, $out, $err) = $pgbr->psql(undef, dbname => 'shop', @VERBOSE,
	stdin => "SET search_path = sales, public;\nRESTORE TABLE targets FROM LATEST IN $COLL WITH into_db = 't4';\n");
is($rc, 0, 'a bare name, resolved with the session\'s search_path') or diag($err);
ok(exists_in('t4', 'sales.targets') && !exists_in('t4', 'public.targets'), 'sales.targets, first in the search path');
is(sum_of('t4', 'sales.targets'), $src{'sales.targets'}, 'with its rows');
is($pg->safe_psql("SELECT obj_description('sales.targets'::regclass)", dbname => 't4'), 'quarterly targets', 'and its comment');
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE targets FROM LATEST IN $COLL WITH into_db = 't4'", dbname => 'shop', @VERBOSE);
is($rc, 0, 'the default search path finds public.targets') or diag($err);
is(sum_of('t4', 'public.targets'), $src{'public.targets'}, 'public.targets restored');
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE customers, orders, order_items, invoice_seq FROM LATEST IN $COLL WITH into_db = 't5'",
	dbname => 'shop', @VERBOSE);
is($rc, 0, 'four bare names together: their foreign keys and sequence are satisfied') or diag($err);
is($pg->safe_psql("SELECT count(*) FROM pg_constraint WHERE contype = 'f'", dbname => 't5'), '2', 'both foreign keys restored');

$pg->safe_psql('CREATE DATABASE t6');
$pg->safe_psql('CREATE SCHEMA sales', dbname => 't6');
($rc, $out, $err) = restore("RESTORE TABLE shop.* FROM LATEST IN $COLL WITH into_db = 't6'");
is($rc, 0, 'RESTORE TABLE shop.* (every relation of the database)') or diag($err);
@r = result_row($out);
is($r[3], 500 + 3000 + 9000 + 3 + 2 + 700000, 'rows: every table\'s');
is(sum_of('t6', $_), $src{$_}, "$_ equals the source") for @tables;
is($pg->safe_psql("SELECT nextval('invoice_seq') || ',' || nextval('customers_id_seq')", dbname => 't6'),
	$pg->safe_psql("SELECT nextval('invoice_seq') || ',' || nextval('customers_id_seq')", dbname => 'shop'),
	'the sequences continue as the source\'s');
ok(exists_in('t6', 'big_orders'), 'the view too');

$pg->safe_psql('CREATE DATABASE t7');
$pg->safe_psql('CREATE SCHEMA sales', dbname => 't7');
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE sales.* FROM LATEST IN $COLL WITH into_db = 't7'", dbname => 'shop', @VERBOSE);
is($rc, 0, 'schema.* from the current database') or diag($err);
is($pg->safe_psql("SELECT string_agg(schemaname || '.' || tablename, ',') FROM pg_tables WHERE schemaname IN ('public', 'sales')",
		dbname => 't7'), 'sales.targets', 'only the schema\'s tables');

# a dropped table comes back into its own database
$pg->safe_psql('DROP TABLE sales.targets', dbname => 'shop');
($rc, $out, $err) = restore("RESTORE TABLE shop.sales.targets FROM LATEST IN $COLL");
is($rc, 0, 'a dropped table restored into its own database') or diag($err);
is(sum_of('shop', 'sales.targets'), $src{'sales.targets'}, 'with its rows');

# ---------------------------------------------------------------------------
# 5. schema_only, verify_backup_table_data
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE t8');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 't8', schema_only");
is($rc, 0, 'schema_only') or diag($err);
@r = result_row($out);
is_deeply([ @r[1, 3, 4, 5] ], [ 'succeeded', 0, 0, 0 ], 'schema_only: rows, index_entries, bytes 0');
is($pg->safe_psql('SELECT count(*) FROM customers', dbname => 't8'), '0', 'an empty table');

# ---------------------------------------------------------------------------
# 6. pgbr killed while the rows are loaded
# ---------------------------------------------------------------------------

$pg->safe_psql('CREATE DATABASE t9');
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE shop.public.bulk FROM LATEST IN $COLL WITH into_db = 't9', detached");
is($rc, 0, 'detached table restore') or diag($err);
my $kill_job = $out;
my $copying = wait_for(
	sub {
		$pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 't9' AND query ILIKE 'COPY %'") > 0;
	},
	60,
	0.02);
ok($copying, 'the restore is loading rows');
$pgbr->signal('KILL');
is($pgbr->wait_exit(10), 128 + 9, 'pgbr killed with SIGKILL');
ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE datname = 't9'") eq '0' }, 30),
	'the server ended the restore\'s session');
ok(!exists_in('t9', 'bulk'), 'nothing of the restore is left: it was one transaction');
$pgbr = PgbrTest::Pgbr->new(pg => $pg, @pgbr_args);
# restarted, pgbr adopts the job and runs it again (a table restore is one
# transaction: it starts over)
ok(wait_for(sub { $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $kill_job") eq 'succeeded' }, 120, 0.1),
	'the interrupted table restore is adopted and succeeds');
is(sum_of('t9', 'bulk'), $src{'public.bulk'}, 'with every row');

# ---------------------------------------------------------------------------
# 7. a corrupt data file: XX001, nothing created (last: it damages the backup)
# ---------------------------------------------------------------------------

# small tables share bundle files: customers' data file is a byte range of one
my ($subdir) = split /\n/, ($pgbr->psql("SHOW BACKUPS IN $COLL"))[1];
my $bdir = "$extern/shop$subdir";
my $manifest = JSON::PP::decode_json(PgbrTest::slurp("$bdir/BACKUP_MANIFEST"));
my %file_of = map { ("$_->{schema}.$_->{name}" => $_->{files}[0]) } grep { @{ $_->{files} } } @{ $manifest->{databases}[0]{tables} };
my $cf = $file_of{'public.customers'};
like($cf->{path}, qr{^data/shop/bundle-\d+\.pgbr$}, 'customers is in a bundle file');
is(scalar(grep { $_->{path} eq $cf->{path} } values %file_of), 5, 'with the four other small tables');
ok((grep { ($_->{offset} // 0) > 0 } values %file_of), 'members after the first have their offset');
like($file_of{'public.bulk'}{path}, qr{^data/shop/\d+/0\.pgbr$}, 'the big table has its own file');
{
	my $victim = "$bdir/$cf->{path}";
	my $at = ($cf->{offset} // 0) + int($cf->{stored_bytes} / 2);
	open(my $fh, '+<', $victim) or die "open $victim: $!";
	binmode $fh;
	seek($fh, $at, 0);
	read($fh, my $b, 1);
	seek($fh, $at, 0);
	print $fh chr(ord($b) ^ 0xff);
	close $fh;
}
$pg->safe_psql('CREATE DATABASE t10');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 't10', schema_only, verify_backup_table_data");
like($err, qr/ERROR:  XX001: backup file "nodelocal:\/\/0\/shop\/.*\/\Q$cf->{path}\E" is corrupted/, 'verify_backup_table_data: XX001 naming the file');
($rc, $out, $err) = restore("RESTORE TABLE shop.public.customers FROM LATEST IN $COLL WITH into_db = 't10'");
like($err, qr/ERROR:  XX001: backup file .* is corrupted/, 'a restore of the corrupt file: XX001');
ok(!exists_in('t10', 'customers'), 'nothing created');

# check_files names a missing bundle once, not once per table in it
unlink("$bdir/$cf->{path}") or die "unlink: $!";
($rc, $out, $err) = $pgbr->psql("SHOW BACKUP FROM LATEST IN $COLL WITH check_files", @VERBOSE);
like($err, qr/ERROR:  58P01: The following files are missing from the backup:\n\tnodelocal:\/\/0\/shop\Q$subdir\E\/\Q$cf->{path}\E\n(?!\t)/,
	'check_files: the missing bundle file, listed once');

$pgbr->stop;
$pgbr->check_log_ok('pgbr');
done_testing();
