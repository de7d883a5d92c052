#!/usr/bin/perl
# RESTORE DATABASE end to end, through psql against a real PostgreSQL and a
# real pgbr:
#  - a database with tables, indexes, foreign keys, sequences and a view
#    (LATIN1, owned by another role) is backed up and restored under a new
#    name: the reference's result row (rows, index_entries), the content of
#    every table, the objects, the owner and encoding, and the job in SHOW
#    JOBS with its canonical description;
#  - FROM '<subdir>' IN (with and without the leading '/'), WITH detached,
#    two databases in one RESTORE;
#  - schema_only (empty tables, zero counts), verify_backup_table_data
#    (only with schema_only; a corrupt file fails and creates nothing);
#  - errors with their SQLSTATEs: an existing destination (no job), unknown
#    subdir, empty collection, database not in the backup, new_db_name with
#    two databases, into_db, paths outside external-io-dir, a flipped byte in
#    a data file, a deleted data file, a corrupt manifest, a non-admin user;
#    after a failed restore no destination and no staging database is left;
#  - pgbr killed with SIGKILL during a restore: no destination database, and
#    at restart pgbr adopts the job and continues it from its checkpoint in
#    the staging database the killed run left;
#  - consistency under load: pgbench writes while BACKUP runs; the backup's
#    exported snapshot (PGBR_TEST_SNAPSHOT_DIR hook) is checksummed while the
#    backup waits, and the restored database equals that snapshot.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use File::Copy ();
use File::Find ();
use IPC::Run ();
use JSON::PP ();
use Time::HiRes qw(time sleep);

my $t_start = time;
my $pg = PgbrTest::Postgres->new(conf => [ 'max_wal_size = 1GB', 'checkpoint_timeout = 30min' ]);
my $extern = tempdir();
my $snapdir = tempdir();
chmod 0777, $snapdir;

# ---------------------------------------------------------------------------
# helpers (local to this file)
# ---------------------------------------------------------------------------

my @VERBOSE = (extra => [ '-v', 'VERBOSITY=verbose' ]);

# The SELECT giving "table|rows:md5" for each table: md5 over the sorted md5s
# of the rows' text, so it does not depend on the physical order.

sub parse_sums
{
	my ($out) = @_;
	my %h;
	for (split /\n/, $out)
	{
		my ($t, $v) = split /\|/, $_, 2;
		$h{$t} = $v if defined $v;
	}
	return \%h;
}

# The user tables of a database, schema-qualified.
sub user_tables
{
	my ($db) = @_;
	return split /\n/,
	  $pg->safe_psql("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
		  . "WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'pgbr') ORDER BY 1",
		dbname => $db);
}

# table => "rows:md5" for every user table of $db (read directly).
sub content_sums
{
	my ($db) = @_;
	my @t = user_tables($db);
	return {} unless @t;
	return parse_sums($pg->safe_psql(tables_sum_sql(@t), dbname => $db, timeout => 300));
}

# What a database is made of, as text: relations with kind and owner,
# indexes, constraints, sequences' state, the view's definition.
sub object_list
{
	my ($db) = @_;
	return $pg->safe_psql(<<'SQL', dbname => $db);
SELECT string_agg(x, E'\n' ORDER BY x) FROM (
  SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || pg_get_userbyid(c.relowner) AS x
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') AND n.nspname !~ '^pg_toast'
  UNION ALL
  SELECT 'con ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
   WHERE connamespace = 'public'::regnamespace
  UNION ALL
  SELECT 'idx ' || indexdef FROM pg_indexes WHERE schemaname = 'public'
  UNION ALL
  SELECT 'seq ' || schemaname || '.' || sequencename || ' ' || coalesce(last_value::text, 'null') FROM pg_sequences
  UNION ALL
  SELECT 'view ' || viewname || ' ' || definition FROM pg_views WHERE schemaname = 'public') s
SQL
}

# Databases whose name matches a LIKE pattern, comma-separated.
sub dbs_like
{
	my ($pat) = @_;
	return $pg->safe_psql("SELECT coalesce(string_agg(datname, ',' ORDER BY datname), '') FROM pg_database WHERE datname LIKE '$pat'");
}

sub staging_dbs { return dbs_like('pgbr\_restore\_%') }

sub job_count { return $pg->safe_psql('SELECT count(*) FROM pgbr.jobs') }


# Every .pgbr file of a database in a backup directory, largest first.
sub data_files
{
	my ($bdir, $db) = @_;
	my @f;
	File::Find::find(sub { push @f, $File::Find::name if /\.pgbr$/ }, "$bdir/data/$db") if -d "$bdir/data/$db";
	return sort { -s $b <=> -s $a || $a cmp $b } @f;
}

sub flip_byte
{
	my ($file, $offset) = @_;
	open(my $fh, '+<:raw', $file) or die "open $file: $!";
	seek($fh, $offset, 0);
	read($fh, my $c, 1) == 1 or die "read $file at $offset";
	seek($fh, $offset, 0);
	print $fh chr(ord($c) ^ 0x5a);
	close $fh or die "close $file: $!";
}

sub copy_collection
{
	my ($from, $to) = @_;
	my ($rc, $out, $err) = run_cmd([ 'cp', '-a', "$extern/$from", "$extern/$to" ]);
	die "cp -a $from $to: $err" if $rc;
}

sub wait_job
{
	my ($job, $secs) = @_;
	my $st = '';
	wait_for(
		sub {
			$st = $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $job") // '';
			return $st =~ /^(succeeded|failed|canceled)$/;
		},
		$secs // 60,
		0.1);
	return $st;
}

# ---------------------------------------------------------------------------
# sources
# ---------------------------------------------------------------------------

# shop: LATIN1, owned by bob; 4 tables, 3 secondary indexes (one UNIQUE),
# 2 foreign keys, a free-standing sequence and a serial one, a view.
$pg->safe_psql("CREATE DATABASE shop OWNER bob ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
$pg->safe_psql(<<'SQL', dbname => 'shop');
CREATE SEQUENCE order_no START 1000;
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
CREATE TABLE items (id serial PRIMARY KEY, name text, price numeric(10,2));
CREATE INDEX items_name_idx ON items (name);
CREATE TABLE orders (id bigint PRIMARY KEY DEFAULT nextval('order_no'),
                     customer_id int NOT NULL REFERENCES customers,
                     item_id int REFERENCES items (id), qty int CHECK (qty > 0), placed timestamptz);
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE TABLE notes (body text);
ALTER TABLE notes OWNER TO bob;
CREATE VIEW big_orders AS SELECT o.id, c.name, o.qty FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.qty > 5;
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 200) g;
INSERT INTO items (name, price) SELECT 'item ' || g, g * 1.25 FROM generate_series(1, 3000) g;
INSERT INTO orders (customer_id, item_id, qty, placed)
  SELECT 1 + g % 200, 1 + g % 3000, 1 + g % 10, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 2000) g;
INSERT INTO notes VALUES (E'tab\there'), (NULL), ('ünïcode');
SELECT setval('order_no', 5000);
SQL
my $shop_rows = 200 + 3000 + 2000 + 3;
my $shop_index_entries = 200 + 3000 + 2000;    # rows x secondary indexes

# alpha and beta: restored together.
for my $db (qw(alpha beta))
{
	$pg->safe_psql("CREATE DATABASE $db");
	$pg->safe_psql("CREATE TABLE t_$db (id int PRIMARY KEY, v text); INSERT INTO t_$db SELECT g, '$db ' || g FROM generate_series(1, 100) g",
		dbname => $db);
}

# bench: pgbench's tables (1M accounts), written to during its backup and
# big enough that its restore takes a few seconds.
$pg->safe_psql('CREATE DATABASE bench');
my ($rc, $out, $err) = run_cmd(
	[
		pg_bindir() . '/pgbench', '-i', '-q', '-s', '10', '-h', $pg->host, '-p', $pg->port,
		'-U', 'postgres', 'bench'
	],
	timeout => 300);
is($rc, 0, 'pgbench -i -s 10') or diag($err);

# Every backup but bench's goes on at once: the hook waits for <db>.go.
spew("$snapdir/$_.go", '') for qw(shop alpha beta);
$ENV{PGBR_TEST_SNAPSHOT_DIR} = $snapdir;
my @pgbr_args = (args => [ '--external-io-dir', $extern ]);
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, @pgbr_args);

# ---------------------------------------------------------------------------
# 6 (started first, it runs in the background): BACKUP under pgbench load
# ---------------------------------------------------------------------------

my ($pb_out, $pb_err) = ('', '');
my $pgbench = IPC::Run::start(
	[
		pg_bindir() . '/pgbench', '-n', '-T', '15', '-c', '2', '-h', $pg->host, '-p', $pg->port,
		'-U', 'postgres', 'bench'
	],
	'<', \undef, '>', \$pb_out, '2>', \$pb_err, IPC::Run::timeout(120));
ok(wait_for(sub { $pg->safe_psql('SELECT count(*) FROM pgbench_history', dbname => 'bench') > 100 }, 30),
	'pgbench is writing');

($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE bench INTO 'nodelocal://0/bench' WITH detached");
is($rc, 0, 'detached BACKUP of bench under load') or diag($err);
my $bench_job = $out;
ok(wait_for(sub { -f "$snapdir/bench.snapshot" }, 60), 'the backup publishes its snapshot');
my $snapshot = slurp("$snapdir/bench.snapshot") // '';
chomp $snapshot;
like($snapshot, qr/^[0-9A-F]+-[0-9A-F]+-\d+$/, 'an exported snapshot id');
my @bench_tables = qw(pgbench_accounts pgbench_branches pgbench_history pgbench_tellers);
($rc, $out, $err) = $pg->psql(
	"BEGIN ISOLATION LEVEL REPEATABLE READ;\nSET TRANSACTION SNAPSHOT '$snapshot';\n"
	  . tables_sum_sql(map { "public.$_" } @bench_tables) . ";\nCOMMIT;",
	dbname => 'bench', timeout => 300);
is($rc, 0, 'checksums of the tables as the backup\'s snapshot sees them') or diag($err);
my $snap_sums = parse_sums($out);
is(scalar(keys %$snap_sums), 4, 'four pgbench tables checksummed');
spew("$snapdir/bench.go", '');
is(wait_job($bench_job, 120), 'succeeded', 'the backup under load succeeds');
my ($snap_history) = ($snap_sums->{'public.pgbench_history'} // '0:') =~ /^(\d+):/;
my $history_after_backup = $pg->safe_psql('SELECT count(*) FROM pgbench_history', dbname => 'bench');
cmp_ok($history_after_backup, '>', $snap_history, 'pgbench wrote after the snapshot, while the backup ran');
ok($pgbench->pumpable, 'pgbench is still running when the backup has finished');
my $bench_subdir = $pgbr->safe_psql("SHOW BACKUPS IN 'nodelocal://0/bench'");
like($bench_subdir, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, 'one bench backup');

# ---------------------------------------------------------------------------
# 1. happy path
# ---------------------------------------------------------------------------

($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE shop INTO 'nodelocal://0/shop'");
is($rc, 0, 'BACKUP DATABASE shop') or diag($err);
my $shop_subdir = $pgbr->safe_psql("SHOW BACKUPS IN 'nodelocal://0/shop'");
like($shop_subdir, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, 'one shop backup');
my $shop_bdir = "$extern/shop$shop_subdir";
my $shop_manifest = JSON::PP::decode_json(slurp("$shop_bdir/BACKUP_MANIFEST") // '{}');
my $shop_bytes = 0;
$shop_bytes += $_->{raw_bytes} for map { @{ $_->{files} // [] } } map { @{ $_->{tables} // [] } } @{ $shop_manifest->{databases} // [] };
cmp_ok($shop_bytes, '>', 100_000, 'the manifest has the data files\' sizes');
my $src_sums = content_sums('shop');
my $src_objects = object_list('shop');
is(scalar(keys %$src_sums), 4, 'four source tables');

($rc, $out, $err) =
  $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop2'", raw => 1, @VERBOSE);
is($rc, 0, 'RESTORE DATABASE shop ... WITH new_db_name') or diag($err);
like($out, qr/job_id\s*\|\s*status\s*\|\s*fraction_completed\s*\|\s*rows\s*\|\s*index_entries\s*\|\s*bytes/,
	'result columns of the reference');
my @r = result_row($out);
my $shop_job = $r[0];
is($r[1], 'succeeded', 'status succeeded');
is($r[2], '1', 'fraction_completed 1');
is($r[3], $shop_rows, 'rows = the source\'s rows');
is($r[4], $shop_index_entries, 'index_entries = rows x secondary indexes');
is($r[5], $shop_bytes, 'bytes = the logical bytes of the data files');
is_deeply(content_sums('shop2'), $src_sums, 'every table has the same row count and content');
is(object_list('shop2'), $src_objects, 'same relations and owners, indexes, constraints, sequences, view');
is($pg->safe_psql("SELECT pg_get_userbyid(datdba) || ' ' || pg_encoding_to_char(encoding) || ' ' || datcollate || ' ' || datctype "
		  . "FROM pg_database WHERE datname = 'shop2'"),
	'bob LATIN1 C C', 'the restored database has the source\'s owner, encoding and locale');
is($pg->safe_psql("SELECT nextval('order_no'), nextval('items_id_seq')", dbname => 'shop2'), '5001|3001',
	'sequences continue where the source\'s were');
is($pg->safe_psql('SELECT count(*) FROM big_orders', dbname => 'shop2'),
	$pg->safe_psql('SELECT count(*) FROM big_orders', dbname => 'shop'), 'the view works');
($rc, $out, $err) = $pg->psql('INSERT INTO orders (customer_id, qty) VALUES (999999, 1)', dbname => 'shop2', @VERBOSE);
like($err, qr/ERROR:  23503:/, 'the foreign key is enforced in the restored database');
is(staging_dbs(), '', 'no staging database left after a restore');

is($pg->safe_psql("SELECT job_type || ' ' || status || ' ' || coalesce(error, '') FROM pgbr.jobs WHERE id = $shop_job"),
	'RESTORE succeeded ', 'the job is recorded as a succeeded RESTORE');
my $desc = $pg->safe_psql("SELECT description FROM pgbr.jobs WHERE id = $shop_job");
like($desc, qr{^RESTORE DATABASE shop FROM \S+ IN 'nodelocal://0/shop' WITH (OPTIONS \()?new_db_name = 'shop2'\)?$},
	'the description is the canonical statement');
like($desc, qr{^RESTORE DATABASE shop FROM '\Q$shop_subdir\E' IN 'nodelocal://0/shop' WITH (OPTIONS \()?new_db_name = 'shop2'\)?$},
	'canonical description: LATEST resolved to the subdir (reference 1.7)') or diag($desc);
($rc, $out, $err) = $pgbr->psql('SHOW JOBS', raw => 1);
like($out, qr/^\s*$shop_job\s*\|\s*RESTORE\s*\|\s*RESTORE DATABASE shop FROM .*\|\s*succeeded\s*\|/m,
	'SHOW JOBS lists the RESTORE job, succeeded');

# ---------------------------------------------------------------------------
# 2. FROM '<subdir>', detached, two databases
# ---------------------------------------------------------------------------

(my $bare_subdir = $shop_subdir) =~ s{^/}{};
for my $case ([ 'shop_s1', $shop_subdir, 'with a leading /' ], [ 'Shop S2', $bare_subdir, 'without a leading /, into a quoted name' ])
{
	my ($name, $sub, $what) = @$case;
	($rc, $out, $err) =
	  $pgbr->psql("RESTORE DATABASE shop FROM '$sub' IN 'nodelocal://0/shop' WITH new_db_name = '$name'", @VERBOSE);
	is($rc, 0, "RESTORE FROM '<subdir>' $what") or diag($err);
	is_deeply(content_sums($name), $src_sums, "restored from the subdir $what: same content");
}

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop_det', detached",
	raw => 1);
is($rc, 0, 'RESTORE ... WITH detached') or diag($err);
like($out, qr/^\s*job_id\s*\n-+\n\s*\d+\s*\n\(1 row\)/, 'detached returns only the job id');
my ($det_job) = $out =~ /^\s*(\d+)\s*$/m;
is(wait_job($det_job), 'succeeded', 'the detached restore job succeeds');
is($pg->safe_psql("SELECT rows || ' ' || index_entries || ' ' || fraction_completed FROM pgbr.jobs WHERE id = $det_job"),
	"$shop_rows $shop_index_entries 1", 'and records rows, index entries and the fraction completed');
is_deeply(content_sums('shop_det'), $src_sums, 'the detached restore has the same content');

($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE alpha, beta INTO 'nodelocal://0/multi'");
is($rc, 0, 'BACKUP DATABASE alpha, beta') or diag($err);
my %multi_src = (alpha => content_sums('alpha'), beta => content_sums('beta'));
$pg->safe_psql("ALTER DATABASE $_ RENAME TO ${_}_src") for qw(alpha beta);
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE alpha, beta FROM LATEST IN 'nodelocal://0/multi'", raw => 1, @VERBOSE);
is($rc, 0, 'RESTORE DATABASE alpha, beta') or diag($err);
@r = result_row($out);
is($r[1], 'succeeded', 'two databases: succeeded');
is($r[3], 200, 'two databases: the rows of both');
is($r[4], 0, 'two databases: no secondary index');
is_deeply({ alpha => content_sums('alpha'), beta => content_sums('beta') }, \%multi_src, 'both databases restored');

# Two restores racing for the same name: one wins, the other fails with
# 42P04 (at its start or when it publishes) and leaves nothing behind.
my @racers;
for my $i (1, 2)
{
	my %h = (out => '', err => '');
	$h{h} = IPC::Run::start(
		[
			pg_bindir() . '/psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-d',
			$pgbr->connstr, '-c', "RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop_race'"
		],
		'<', \undef, '>', \$h{out}, '2>', \$h{err}, IPC::Run::timeout(120));
	push @racers, \%h;
}
my @race_ok;
for my $h (@racers)
{
	push @race_ok, $h->{h}->finish ? 1 : 0;
}
is(join(',', sort @race_ok), '0,1', 'two restores to the same name: exactly one succeeds')
  or diag(join("\n", map { "$_->{out} $_->{err}" } @racers));
my ($loser) = grep { $_->{err} ne '' } @racers;
# Both may pass restore_prepare's check; the loser's rename then fails on
# pg_database's unique index, reported as 42P04.
like($loser ? $loser->{err} : '', qr/ERROR:  42P04: database "shop_race" already exists/, 'the other fails with 42P04');
is_deeply(content_sums('shop_race'), $src_sums, 'the winner\'s database is complete');
is(staging_dbs(), '', 'the loser leaves no staging database');

# ---------------------------------------------------------------------------
# 3. schema_only, verify_backup_table_data
# ---------------------------------------------------------------------------

($rc, $out, $err) =
  $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop_schema', schema_only",
	raw => 1, @VERBOSE);
is($rc, 0, 'schema_only restore') or diag($err);
@r = result_row($out);
is_deeply([ @r[1, 2, 3, 4, 5] ], [ 'succeeded', 1, 0, 0, 0 ], 'schema_only: succeeded, rows, index_entries and bytes 0');
is_deeply([ user_tables('shop_schema') ], [ user_tables('shop') ], 'schema_only: the tables exist');
is_deeply(content_sums('shop_schema'), { map { $_ => '0:' } keys %$src_sums }, 'schema_only: and are empty');

($rc, $out, $err) = $pgbr->psql(
	"RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop_v', verify_backup_table_data", @VERBOSE);
like($err, qr/ERROR:  22023: to set the verify_backup_table_data option, the schema_only option must be set/,
	'verify_backup_table_data without schema_only: the reference\'s error');

($rc, $out, $err) = $pgbr->psql(
	"RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop_v', schema_only, verify_backup_table_data",
	raw => 1, @VERBOSE);
is($rc, 0, 'schema_only, verify_backup_table_data on an intact backup') or diag($err);
@r = result_row($out);
is_deeply([ @r[1, 3, 4, 5] ], [ 'succeeded', 0, 0, 0 ], 'verify: succeeded with zero counts');
is_deeply(content_sums('shop_v'), { map { $_ => '0:' } keys %$src_sums }, 'verify: the tables are empty');

# A copy of the bench backup with one byte flipped in the middle of the
# largest data file (pgbench_accounts').
copy_collection('bench', 'benchbad');
my @bad_files = data_files("$extern/benchbad$bench_subdir", 'bench');
ok(@bad_files >= 4, 'bench backup has data files') or diag("@bad_files");
my $bad_file = $bad_files[0];
cmp_ok(-s $bad_file, '>', 100_000, 'the largest one is large (pgbench_accounts, zstd)');
flip_byte($bad_file, int((-s $bad_file) / 2));
(my $bad_rel = $bad_file) =~ s{^\Q$extern/benchbad\E}{};

my $jobs_before = job_count();
($rc, $out, $err) = $pgbr->psql(
	"RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/benchbad' WITH new_db_name = 'bench_verify', schema_only, verify_backup_table_data",
	@VERBOSE, timeout => 120);
isnt($rc, 0, 'verify_backup_table_data on a corrupt data file fails');
like($err, qr/ERROR:  XX001: .*\Q$bad_rel\E/, 'XX001 naming the corrupt file');
is(dbs_like('bench\_verify%') . staging_dbs(), '', 'nothing created');

# ---------------------------------------------------------------------------
# 4. errors
# ---------------------------------------------------------------------------

$jobs_before = job_count();
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop'", @VERBOSE);
like($err, qr/ERROR:  42P04: database "shop" already exists/, 'restore over an existing database: 42P04');
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop2'", @VERBOSE);
like($err, qr/ERROR:  42P04: database "shop2" already exists/, 'new_db_name that exists: 42P04');
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'shop2', detached", @VERBOSE);
like($err, qr/ERROR:  42P04: database "shop2" already exists/, 'detached: refused the same way, no job id');
is(job_count(), $jobs_before, 'a restore refused for an existing destination creates no job');

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM '/2001/01/01-000000.00' IN 'nodelocal://0/shop' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr{ERROR:  58P01: backup "/?2001/01/01-000000.00" not found}, 'unknown subdir: 58P01');

mkdir "$extern/emptycoll";
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/emptycoll' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr/ERROR:  58P01: path does not contain a completed latest backup/, 'empty collection');
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/nosuchcoll' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr/ERROR:  58P01: path does not contain a completed latest backup/, 'collection that does not exist');

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE nosuchdb FROM LATEST IN 'nodelocal://0/shop'", @VERBOSE);
like($err, qr/ERROR:  42704: database "nosuchdb" not found in the backup/, 'database not in the backup: 42704');

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE alpha, beta FROM LATEST IN 'nodelocal://0/multi' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr/ERROR:  22023: new_db_name can only be used for RESTORE DATABASE with a single target database/,
	'new_db_name with two databases');
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH into_db = 'shop2'", @VERBOSE);
like($err, qr/ERROR:  22023: cannot use "into_db" option when restoring database\(s\)/, 'into_db with RESTORE DATABASE');

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'file:///etc' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr/ERROR:  42501: storage URL "file:\/\/\/etc" leads outside external_io_dir/, 'file:///etc: 42501');
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/../x' WITH new_db_name = 'x1'", @VERBOSE);
like($err, qr/ERROR:  42501: .*leads outside external_io_dir/, 'nodelocal://0/../x: 42501');

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shop' WITH new_db_name = 'x1'",
	user => 'alice', @VERBOSE);
like($err, qr/ERROR:  42501: only users with the admin role are allowed to access the specified nodelocal URI/,
	'a non-admin user: 42501');
is(job_count(), $jobs_before, 'refused restores create no job');
is(dbs_like('x1'), '', 'and no database');

# A flipped byte in the middle of pgbench_accounts' file: the load fails
# with XX001 naming the file, and nothing is left.
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/benchbad' WITH new_db_name = 'bench_bad'",
	@VERBOSE, timeout => 120);
isnt($rc, 0, 'restore with a flipped byte in a data file fails');
like($err, qr/ERROR:  XX001: backup file "[^"]*\Q$bad_rel\E" is corrupted/, 'XX001 whose message has the file\'s path')
  or diag($err);
is(dbs_like('bench\_bad%'), '', 'no database named like the destination');
is(staging_dbs(), '', 'no staging database');
like($pg->safe_psql("SELECT status || ' ' || error FROM pgbr.jobs WHERE job_type = 'RESTORE' ORDER BY id DESC LIMIT 1"),
	qr/^failed .*corrupted/, 'the job failed with the error');

# A deleted data file.
copy_collection('shop', 'shopmissing');
my @shop_files = data_files("$extern/shopmissing$shop_subdir", 'shop');
my $gone = $shop_files[0];
unlink $gone or die "unlink $gone: $!";
(my $gone_rel = $gone) =~ s{^\Q$extern/shopmissing\E}{};
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shopmissing' WITH new_db_name = 'shop_missing'",
	@VERBOSE);
like($err, qr/ERROR:  58P01: .*\Q$gone_rel\E/, 'a deleted data file: 58P01 naming the file') or diag($err);
is(dbs_like('shop\_missing%') . staging_dbs(), '', 'nothing created');

# A corrupt schema archive.
copy_collection('shop', 'shopbadschema');
my $dump = "$extern/shopbadschema$shop_subdir/schema/shop.dump";
flip_byte($dump, int((-s $dump) / 2));
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shopbadschema' WITH new_db_name = 'shop_bads'",
	@VERBOSE);
like($err, qr{ERROR:  XX001: .*\Q$shop_subdir/schema/shop.dump\E}, 'a corrupt schema archive: XX001 naming it') or diag($err);
is(dbs_like('shop\_bads%') . staging_dbs(), '', 'nothing created');

# A corrupt BACKUP_MANIFEST.
copy_collection('shop', 'shopbadmanifest');
my $mf = "$extern/shopbadmanifest$shop_subdir/BACKUP_MANIFEST";
flip_byte($mf, int((-s $mf) / 2));
$jobs_before = job_count();
($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE shop FROM LATEST IN 'nodelocal://0/shopbadmanifest' WITH new_db_name = 'shop_badm'",
	@VERBOSE);
like($err, qr/ERROR:  XX001: /, 'a corrupt BACKUP_MANIFEST: XX001') or diag($err);
is(dbs_like('shop\_badm%') . staging_dbs(), '', 'nothing created');

# ---------------------------------------------------------------------------
# 6 (end): the restored bench equals the backup's snapshot
# ---------------------------------------------------------------------------

ok($pgbench->finish, 'pgbench ran without error') or diag($pb_err);
like($pb_out, qr/number of transactions actually processed: \d+/, 'pgbench reports its transactions');
my $history_end = $pg->safe_psql('SELECT count(*) FROM pgbench_history', dbname => 'bench');
cmp_ok($history_end, '>', $history_after_backup, 'pgbench kept writing after the backup');

# ---------------------------------------------------------------------------
# 5. pgbr killed during a restore
# ---------------------------------------------------------------------------

($rc, $out, $err) = $pgbr->psql("RESTORE DATABASE bench FROM LATEST IN 'nodelocal://0/bench' WITH new_db_name = 'bench_restored', detached");
is($rc, 0, 'detached restore of bench') or diag($err);
my $kill_job = $out;
my $copying = wait_for(
	sub {
		$pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgbr restore' "
			  . "AND datname LIKE 'pgbr\\_restore\\_${kill_job}\\_%' AND query ILIKE 'COPY %'") > 0;
	},
	30,
	0.02);
ok($copying, 'the restore is loading rows into its staging database');
is(staging_dbs(), "pgbr_restore_${kill_job}_0", 'the staging database is named after the job');
$pgbr->signal('KILL');
is($pgbr->wait_exit(10), 128 + 9, 'pgbr killed with SIGKILL');
$pgbr->check_log_ok('the killed pgbr');
is(dbs_like('bench\_restored'), '', 'no destination database after the kill');

# restarted, pgbr adopts the job it was running and continues it from its
# checkpoint in the staging database the killed run left
$pgbr = PgbrTest::Pgbr->new(pg => $pg, @pgbr_args);
ok(wait_for(sub { $pg->safe_psql("SELECT status FROM pgbr.jobs WHERE id = $kill_job") !~ /^(running|pending)$/ }, 300, 0.2),
	'the interrupted restore ends after the restart');
is($pg->safe_psql("SELECT status || ':' || error FROM pgbr.jobs WHERE id = $kill_job"), 'succeeded:',
	'the restarted pgbr adopted the restore and finished it');
like($pgbr->log_content, qr/job $kill_job: RESTORE adopted by node 1/, 'the log says the job was adopted');
like($pgbr->log_content, qr/database "bench" continues in staging "pgbr_restore_${kill_job}_0"/,
	'it continued in the killed run\'s staging database (its checkpoint)');
my $snap_rows = 0;
$snap_rows += (/^(\d+):/)[0] for values %$snap_sums;
is($pg->safe_psql("SELECT rows FROM pgbr.jobs WHERE id = $kill_job"), $snap_rows, 'rows = the rows the snapshot saw');
my $restored = parse_sums($pg->safe_psql(tables_sum_sql(map { "public.$_" } @bench_tables), dbname => 'bench_restored', timeout => 300));
is_deeply($restored, $snap_sums, 'the restored pgbench tables equal the backup\'s snapshot, under load');
is(staging_dbs(), '', 'no staging database at the end');

$pgbr->stop_ok;
diag(sprintf('021_restore.t took %.1fs', time - $t_start));
$pg->stop;
done_testing();
