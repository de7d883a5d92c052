#!/usr/bin/perl
# SHOW BACKUP [SCHEMAS] FROM LATEST|'<subdir>' IN <collection> (and the form
# without FROM, and the deprecated SHOW BACKUP '<backup URL>') on real
# backups taken by BACKUP DATABASE: the reference's columns and wire types
# (also through Describe in the extended protocol), one row per database,
# schema, table and sequence, times printed as the client's session prints
# timestamptz (also in a transaction block); SCHEMAS' create_statement;
# debug_ids; check_files (file_bytes, then missing and wrongly sized files,
# exactly ten and more than ten problems); as_json equal to BACKUP_MANIFEST;
# incremental layers after the full one in chain order; errors: unknown and
# invalid subdirs, a corrupt manifest (XX001), a collection root given as a
# backup, a non-admin on nodelocal (42501), options and forms not
# implemented (0A000).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use File::Copy qw(copy);
use File::Find qw(find);
use File::Path qw(make_path);
use JSON::PP qw(decode_json encode_json);
use Digest::SHA qw(sha256_hex);

my $pg = PgbrTest::Postgres->new;
my $extern = tempdir();
$pg->safe_psql('CREATE DATABASE shop');
$pg->safe_psql(q{CREATE SCHEMA sales;
	CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(12,2));
	INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 1000) g;
	CREATE TABLE sales.orders (id bigint, "order" int, "Note" text);
	INSERT INTO sales.orders SELECT g, g, 'n' FROM generate_series(1, 10) g;
	CREATE SEQUENCE sales.order_seq;
	SELECT nextval('sales.order_seq');}, dbname => 'shop');
$pg->safe_psql('CREATE DATABASE many');
$pg->safe_psql(join('', map { "CREATE TABLE t$_ (a int); INSERT INTO t$_ VALUES ($_);" } 1 .. 12), dbname => 'many');

# --bundle-limit 0: a data file per table, so files can be damaged one by one
# (bundles are checked at the end)
my $pgbr = PgbrTest::Pgbr->new(pg => $pg,
	args => [ '--external-io-dir', $extern, '--admin-role', 'backup_admins', '--bundle-limit', '0' ]);

sub ok_psql
{
	my ($sql, $what, %o) = @_;
	my ($rc, $out, $err) = $pgbr->psql($sql, %o);
	is($rc, 0, $what) or diag($err);
	return $out;
}

# ($sqlstate, $message) of a statement that must fail.
sub psql_error
{
	my ($sql, %o) = @_;
	my ($rc, $out, $err) = $pgbr->psql($sql, extra => [ '-v', 'VERBOSITY=verbose' ], %o);
	return ('', "no error (rc $rc): $out") unless $err =~ /ERROR:\s+([0-9A-Z]{5}):\s+(.*)/s;
	my ($code, $msg) = ($1, $2);
	$msg =~ s/\n(?:DETAIL|HINT|LOCATION):.*//s;
	$msg =~ s/\n\z//;
	return ($code, $msg, $err);
}

sub manifest_of
{
	my ($dir) = @_;
	return decode_json(slurp("$dir/BACKUP_MANIFEST"));
}

ok_psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll'", 'backup of shop');
my $subdir = ok_psql("SHOW BACKUPS IN 'nodelocal://0/coll'", 'SHOW BACKUPS IN');
like($subdir, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, 'one full backup');
my $bdir = "$extern/coll$subdir";
my $m = manifest_of($bdir);
my %tables = map { ("$_->{schema}.$_->{name}" => $_) } @{ $m->{databases}[0]{tables} };
ok($tables{'public.items'} && $tables{'sales.orders'}, 'the manifest has both tables');

# --- the rows ---------------------------------------------------------------------------------
# Times as the session prints them: compare with PostgreSQL's own output for
# the manifest's end_time, under the same settings.
my $utc = { PGTZ => 'UTC' };
my $end = ok_psql("SELECT '$m->{end_time}'::timestamptz", 'end_time as the session prints it', env => $utc);
my $items = $tables{'public.items'};
my $orders = $tables{'sales.orders'};
my $expected = join("\n",
	"||shop|database|full||$end|||f|",
	"shop||public|schema|full||$end|||f|",
	"shop||sales|schema|full||$end|||f|",
	"shop|public|items|table|full||$end|$items->{logical_bytes}|1000|f|",
	"shop|sales|orders|table|full||$end|$orders->{logical_bytes}|10|f|",
	"shop|sales|order_seq|table|full||$end|0|0|f|");
my $latest = ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'", 'SHOW BACKUP FROM LATEST', env => $utc);
is($latest, $expected, 'one row per database, schema, table and sequence');
ok($items->{logical_bytes} > 0, 'size_bytes of items is its logical size');

for my $form ("FROM '$subdir' IN", "FROM '" . substr($subdir, 1) . "' IN", "'$subdir' IN", "'" . substr($subdir, 1) . "/' IN",
	'FROM latest IN', "FROM 'LATEST' IN")
{
	is(ok_psql("SHOW BACKUP $form 'nodelocal://0/coll'", "SHOW BACKUP $form", env => $utc), $expected,
		"SHOW BACKUP $form gives the same rows");
}
is(ok_psql("SHOW BACKUP 'nodelocal://0/coll$subdir'", 'deprecated form', env => $utc), $expected,
	'the deprecated SHOW BACKUP <backup URL> gives the same rows');
is(ok_psql("SHOW BACKUP FROM LATEST IN ('nodelocal://0/coll', 'nodelocal://0/other')", 'locality list', env => $utc),
	$expected, 'with several locality URIs, the first holds the manifests');
is(ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH skip size", 'skip size', env => $utc), $expected,
	'skip size is accepted');

my ($rc, $out, $err) = $pgbr->psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'", raw => 1);
like($out, qr/^\s*database_name\s*\|\s*parent_schema_name\s*\|\s*object_name\s*\|\s*object_type\s*\|\s*backup_type\s*\|\s*start_time\s*\|\s*end_time\s*\|\s*size_bytes\s*\|\s*rows\s*\|\s*is_full_cluster\s*\|\s*regions\s*$/m,
	'the reference columns, in order');
like($out, qr/\(6 rows\)/, 'six rows');

# Times follow the session's TimeZone and DateStyle.
my $script = "SET TimeZone = 'Asia/Kolkata';\nSET DateStyle = 'SQL, DMY';\n"
  . "SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll';\nSELECT '$m->{end_time}'::timestamptz;\n";
($rc, $out, $err) = $pgbr->psql(undef, stdin => $script);
is($rc, 0, 'SHOW BACKUP after SET TimeZone/DateStyle') or diag($err);
my @lines = split /\n/, $out;
my $local_end = $lines[-1];
like($local_end, qr{^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d(\.\d+)? IST$}, "the session prints '$local_end'");
is((split /\|/, $lines[0])[6], $local_end, 'end_time is printed as the session prints timestamptz');

# Inside a transaction block (the times are formatted in it).
($rc, $out, $err) = $pgbr->psql(undef, stdin => "BEGIN;\nSHOW BACKUP FROM LATEST IN 'nodelocal://0/coll';\nCOMMIT;\n",
	env => $utc);
is($rc, 0, 'SHOW BACKUP in a transaction block') or diag($err);
is($out, $expected, 'the same rows in a transaction block');

# --- SCHEMAS, debug_ids ---------------------------------------------------------------------
$out = ok_psql("SHOW BACKUP SCHEMAS FROM LATEST IN 'nodelocal://0/coll'", 'SHOW BACKUP SCHEMAS');
my @creates = map { (split /\|/, $_, -1)[11] } split /\n/, $out;
is_deeply(\@creates,
	[ '', '', '', 'CREATE TABLE public.items (id integer, name text, price numeric(12,2))',
		'CREATE TABLE sales.orders (id bigint, "order" integer, "Note" text)', 'CREATE SEQUENCE sales.order_seq' ],
	'create_statement: NULL for databases and schemas, rebuilt from the manifest with quoted identifiers');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUP SCHEMAS FROM LATEST IN 'nodelocal://0/coll'", raw => 1);
like($out, qr/\|\s*regions\s*\|\s*create_statement\s*$/m, 'create_statement is the last column');

my $items_oid = $pg->safe_psql("SELECT 'items'::regclass::oid", dbname => 'shop');
$out = ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH debug_ids", 'WITH debug_ids');
my @ids = map { [ (split /\|/, $_, -1)[ 1, 3, 5 ] ] } split /\n/, $out;
is_deeply($ids[3], [ '', '', $items_oid ], 'object_id of a table is its oid; the other ids are NULL');
is_deeply($ids[0], [ '', '', '' ], 'no ids for a database');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH debug_ids", raw => 1);
like($out, qr/^\s*database_name\s*\|\s*database_id\s*\|\s*parent_schema_name\s*\|\s*parent_schema_id\s*\|\s*object_name\s*\|\s*object_id\s*\|\s*object_type/m,
	'each id column follows its name column');

# --- check_files success, as_json -------------------------------------------------------------
$out = ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH check_files", 'WITH check_files');
my %file_bytes = map { my @f = split /\|/, $_, -1; ("$f[1].$f[2]" => $f[11]) } split /\n/, $out;
my $sum = 0;
$sum += $_->{stored_bytes} for @{ $items->{files} };
ok($file_bytes{'public.items'} > 0, 'file_bytes of items > 0');
is($file_bytes{'public.items'}, $sum, 'file_bytes = the stored bytes of the table\'s files');
is($file_bytes{'.shop'}, '', 'file_bytes NULL for the database row');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH check_files", raw => 1);
like($out, qr/\|\s*regions\s*\|\s*file_bytes\s*$/m, 'file_bytes is the last column');

$out = ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH as_json", 'WITH as_json');
my $json = eval { decode_json($out) };
ok($json, 'as_json is JSON') or diag($@);
is_deeply($json, $m, 'equal to BACKUP_MANIFEST');
is($out, slurp("$bdir/BACKUP_MANIFEST"), 'byte for byte the manifest as stored');

# --- extended protocol: Describe agrees, $n works -------------------------------------------
my $py = <<'PY';
import sys, psycopg
with psycopg.connect(sys.argv[1]) as c:
    cur = c.execute("SHOW BACKUP SCHEMAS FROM %s IN %s WITH check_files", [sys.argv[2], "nodelocal://0/coll"], prepare=False)
    print(",".join("%s:%d" % (d.name, d.type_code) for d in cur.description))
    rows = cur.fetchall()
    print(len(rows), rows[3][2], rows[3][8], type(rows[3][6]).__name__, rows[3][9])
    cur = c.execute("SHOW BACKUP %s IN %s WITH as_json", [sys.argv[2], "nodelocal://0/coll"], prepare=False)
    print(cur.description[0].name, cur.description[0].type_code, type(cur.fetchone()[0]).__name__)
PY
($rc, $out, $err) = run_cmd([ '/usr/bin/python3', '-c', $py, $pgbr->connstr, $subdir ]);
is($rc, 0, 'psycopg ran SHOW BACKUP with $n') or diag($err);
is($out, "database_name:25,parent_schema_name:25,object_name:25,object_type:25,backup_type:25,start_time:1184,"
	. "end_time:1184,size_bytes:20,rows:20,is_full_cluster:16,regions:25,create_statement:25,file_bytes:20\n"
	. "6 items 1000 datetime False\nmanifest 3802 dict\n", 'wire types as the reference maps them; timestamptz and jsonb parse');

# --- errors ---------------------------------------------------------------------------------
my ($code, $msg) = psql_error("SHOW BACKUP FROM '2020/01/01-000000.00' IN 'nodelocal://0/coll'");
is_deeply([ $code, $msg ], [ '58P01', 'backup "/2020/01/01-000000.00" not found in "nodelocal://0/coll"' ], 'unknown subdir');
($code, $msg) = psql_error("SHOW BACKUP FROM 'nope' IN 'nodelocal://0/coll'");
is_deeply([ $code, $msg ], [ '22023', 'invalid backup subdirectory "nope"' ], 'invalid subdir');
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/empty'");
is_deeply([ $code, $msg ], [ '58P01', 'path does not contain a completed latest backup' ], 'LATEST of an empty location');
my (undef, undef, $full) = psql_error("SHOW BACKUP 'nodelocal://0/coll'");
like($full, qr/ERROR:\s+58P01: no backup found at "nodelocal:\/\/0\/coll"/, 'a collection root is not a backup');
like($full, qr/HINT:\s+The specified path is the root of a backup collection\. Use SHOW BACKUPS IN with this path to list all the backup subdirectories in the collection\. SHOW BACKUP can be used with any of these subdirectories to inspect a backup\./,
	'with the reference\'s hint');
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'", user => 'alice');
is_deeply([ $code, $msg ], [ '42501', 'only users with the admin role are allowed to access the specified nodelocal URI' ],
	'a non-admin may not read nodelocal');
$pg->safe_psql('GRANT backup_admins TO bob');
ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'", 'a member of the admin role may', user => 'bob');
for my $case ([ "SHOW BACKUP FILES FROM LATEST IN 'nodelocal://0/coll'", 'SHOW BACKUP FILES is not implemented yet' ],
	[ "SHOW BACKUP RANGES FROM LATEST IN 'nodelocal://0/coll'", 'SHOW BACKUP RANGES is not implemented yet' ],
	[ "SHOW BACKUP VALIDATE FROM LATEST IN 'nodelocal://0/coll'", 'SHOW BACKUP VALIDATE is not implemented yet' ],
	[ "SHOW BACKUP CONNECTION 'nodelocal://0/coll'", 'SHOW BACKUP CONNECTION is not implemented yet' ],
	[ "SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH privileges", 'SHOW BACKUP WITH privileges is not implemented yet' ],
	[ "SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH encryption_passphrase = 'x'",
		'SHOW BACKUP WITH encryption_passphrase is not implemented yet' ],
	[ "SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH kms = 'aws:///k'", 'SHOW BACKUP WITH kms is not implemented yet' ],
	[ "SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH encryption_info_dir = 'nodelocal://0/inc'",
		'SHOW BACKUP WITH encryption_info_dir is not implemented yet' ])
{
	($code, $msg) = psql_error($case->[0]);
	is_deeply([ $code, $msg ], [ '0A000', $case->[1] ], $case->[1]);
}

# --- incremental layers: after the full one, in chain order ----------------------------------
# pgbr cannot take incrementals yet: make two from the full backup's files,
# as BACKUP will write them (incrementals/<subdir>/<YYYYMMDD>/<HHMMSS.ss>).
sub copy_tree
{
	my ($from, $to) = @_;
	find({ no_chdir => 1, wanted => sub {
		(my $rel = $File::Find::name) =~ s/^\Q$from\E//;
		if (-d $_) { make_path("$to$rel") } else { copy($_, "$to$rel") or die "copy $_: $!" }
	} }, $from);
}

sub write_manifest
{
	my ($dir, $man) = @_;
	my $text = JSON::PP->new->canonical->pretty->encode($man);
	spew("$dir/BACKUP_MANIFEST", $text);
	spew("$dir/BACKUP_MANIFEST.sha256", sha256_hex($text) . "  BACKUP_MANIFEST\n");
}

my $coll2 = "$extern/coll2";
copy_tree($bdir, "$coll2$subdir");
my ($year) = $m->{end_time} =~ /^(\d{4})/;
my @inc_ends = map { sprintf('%04d', $year + $_) . substr($m->{end_time}, 4) } (1, 2);
my ($prev_dir, $prev_end, $prev_lsn) = (substr($subdir, 1), $m->{end_time}, $m->{end_lsn});
for my $inc_end (@inc_ends)
{
	my ($y, $mo, $d, $h, $mi, $s) = $inc_end =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d\.\d\d)/;
	my $rel = "incrementals$subdir/$y$mo$d/$h$mi$s";
	copy_tree($bdir, "$coll2/$rel");
	my $im = manifest_of($bdir);
	@$im{qw(backup_type start_time end_time start_lsn previous)} = ('incremental', $prev_end, $inc_end, $prev_lsn, $prev_dir);
	$_->{rows} = 0 for @{ $im->{databases}[0]{tables} };
	write_manifest("$coll2/$rel", $im);
	($prev_dir, $prev_end) = ($rel, $inc_end);
}
$out = ok_psql("SHOW BACKUP FROM '$subdir' IN 'nodelocal://0/coll2' WITH check_files", 'SHOW BACKUP of a chain', env => $utc);
my @rows = map { [ split /\|/, $_, -1 ] } split /\n/, $out;
is(scalar(@rows), 18, 'six rows per layer, three layers');
my @inc_ends_text = map { ok_psql("SELECT '$_'::timestamptz", 'time text', env => $utc) } @inc_ends;
is_deeply([ map { "$_->[4]|$_->[5]|$_->[6]" } @rows[ 0, 5, 6, 11, 12, 17 ] ],
	[ "full||$end", "full||$end", "incremental|$end|$inc_ends_text[0]", "incremental|$end|$inc_ends_text[0]",
		"incremental|$inc_ends_text[0]|$inc_ends_text[1]", "incremental|$inc_ends_text[0]|$inc_ends_text[1]" ],
	'the full layer first, then each incremental in chain order with start_time = the previous end_time');
is($rows[9][8], '0', 'rows of a table in an incremental layer are that layer\'s');
$out = ok_psql("SHOW BACKUP FROM '$subdir' IN 'nodelocal://0/coll2' WITH as_json", 'as_json of a chain');
is(scalar(() = $out =~ /"format_version"/g), 3, 'as_json: one manifest per layer');

# --- check_files failures --------------------------------------------------------------------
# Another backup to damage (LATEST moves to it; the first stays intact).
ok_psql("BACKUP DATABASE shop INTO 'nodelocal://0/coll'", 'second backup of shop');
my @subdirs = split /\n/, ok_psql("SHOW BACKUPS IN 'nodelocal://0/coll'", 'two backups');
my $sub2 = $subdirs[-1];
isnt($sub2, $subdir, 'a new subdir');
my $b2 = "$extern/coll$sub2";
my $m2 = manifest_of($b2);
my %t2 = map { ("$_->{schema}.$_->{name}" => $_) } @{ $m2->{databases}[0]{tables} };
my $gone = $t2{'public.items'}{files}[0]{path};
my $short = $t2{'sales.orders'}{files}[0]{path};
unlink("$b2/$gone") or die "unlink: $!";
truncate("$b2/$short", $t2{'sales.orders'}{files}[0]{stored_bytes} - 1) or die "truncate: $!";
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll' WITH check_files");
is($code, '58P01', 'check_files failure: 58P01');
is($msg, "The following files are missing from the backup:\n\tnodelocal://0/coll$sub2/$gone\n\tnodelocal://0/coll$sub2/$short",
	'a missing and a truncated file, each on its own line');
ok_psql("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'", 'without check_files the rows are still shown');

ok_psql("BACKUP DATABASE many INTO 'nodelocal://0/many'", 'backup of a database with 12 tables');
my $many_sub = ok_psql("SHOW BACKUPS IN 'nodelocal://0/many'", 'its subdir');
my $mm = manifest_of("$extern/many$many_sub");
my @data = map { $_->{path} } map { @{ $_->{files} } } @{ $mm->{databases}[0]{tables} };
is(scalar(@data), 12, 'twelve data files');
unlink("$extern/many$many_sub/$_") for @data[ 0 .. 9 ];
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/many' WITH check_files");
my @listed = split /\n\t/, $msg;
my $heading = shift @listed;
is($heading, 'The following files are missing from the backup:', 'exactly ten problems: all listed under the usual heading');
is_deeply(\@listed, [ map { "nodelocal://0/many$many_sub/$_" } @data[ 0 .. 9 ] ], 'the ten files, in manifest order');
unlink("$extern/many$many_sub/$_") for @data[ 10, 11 ];
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/many' WITH check_files");
@listed = split /\n\t/, $msg;
$heading = shift @listed;
is($code, '58P01', 'more than ten problems: 58P01');
is($heading, 'Multiple files cannot be read from the backup including:', 'the "Multiple files" heading');
is(scalar(@listed), 10, 'ten files listed');
ok(!(grep { !m{^nodelocal://0/many\Q$many_sub\E/data/} } @listed), 'each a data file of the backup');

# --- a corrupt manifest ----------------------------------------------------------------------
my $text = slurp("$b2/BACKUP_MANIFEST");
substr($text, 10, 1) = substr($text, 10, 1) eq 'a' ? 'b' : 'a';
spew("$b2/BACKUP_MANIFEST", $text);
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'");
is_deeply([ $code, $msg ], [ 'XX001', "backup manifest \"nodelocal://0/coll$sub2/BACKUP_MANIFEST\" is corrupted: checksum mismatch" ],
	'a flipped byte in BACKUP_MANIFEST: XX001');
unlink("$b2/BACKUP_MANIFEST.sha256");
($code, $msg) = psql_error("SHOW BACKUP FROM LATEST IN 'nodelocal://0/coll'");
is($code, '58P01', 'a missing checksum file: 58P01');
is(ok_psql("SHOW BACKUP FROM '$subdir' IN 'nodelocal://0/coll'", 'the first backup', env => $utc), $expected,
	'the first backup is still shown');

$pgbr->stop_ok;
$pg->stop;
done_testing();
