#!/usr/bin/perl
# Restore fidelity: a database using every built-in data type family with
# edge values and most kinds of schema object (regress/t/fixtures/fidelity.sql)
# is backed up through pgbr and restored under a new name; the restored
# database's `pg_dump --schema-only` equals the source's and so does a
# content checksum of every table, partition and materialized view and the
# state of every sequence. The same for a table-level restore into another
# database, and for a whole-server backup restored into a second, fresh
# PostgreSQL (roles come back).
#
# Also: the backup's manifest has every table's row count and every
# sequence's state, its schema archive is the source's schema, and a
# database with a large object is refused (0A000).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use JSON::PP ();

my $fixture = "$FindBin::Bin/fixtures/fidelity.sql";
my $pg = PgbrTest::Postgres->new;
my $extern = tempdir();

$pg->safe_psql('CREATE DATABASE fidelity');
my ($rc, $out, $err) = $pg->psql(undef, dbname => 'fidelity', extra => [ '-f', $fixture ], timeout => 300);
is($rc, 0, 'the fixture loads') or give_up("fidelity.sql does not load: $err");

my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern ]);

# The source, as the restores must reproduce it.
my $src_dump = $pg->schema_dump('fidelity');
my $src_sum = $pg->table_checksums('fidelity');
cmp_ok(scalar(keys %$src_sum), '>=', 55, 'checksums cover the fixture\'s tables, partitions, matviews and sequences');
like($src_sum->{'public.t_toast'}, qr/^3:[0-9a-f]{32}$/, 'a table checksum is rows:md5');
is($src_sum->{'fid.not_populated'}, 'unpopulated', 'a matview WITH NO DATA is reported as unpopulated');
like($src_sum->{'public.city_stats'}, qr/^5:/, 'the populated matview is checksummed');
is($src_sum->{'seq:public.set_not_called'}, '77:false', 'a sequence is last_value:is_called');
is($src_sum->{'public.empty_table'}, '0:', 'an empty table');
is($pg->safe_psql("SELECT octet_length(big_text) > 4000000 AND pg_column_size(big_text) > 2000000 FROM t_toast WHERE id = 1",
		dbname => 'fidelity'), 't', 'the large value is stored out of line, barely compressed');

# Nothing of a failed backup: a database with a large object is refused.
$pg->safe_psql('CREATE DATABASE fidelity_lo');
$pg->safe_psql("CREATE TABLE t (id int); INSERT INTO t VALUES (1); SELECT lo_from_bytea(0, 'a large object')",
	dbname => 'fidelity_lo');
($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE fidelity_lo INTO 'nodelocal://0/lo'", extra => [ '-v', 'VERBOSITY=verbose' ]);
isnt($rc, 0, 'BACKUP of a database with a large object fails');
like($err, qr/ERROR:  0A000: large objects are not supported by pgbr backups yet/, '0A000 and says why');
like($err, qr/DETAIL:  database "fidelity_lo" has large objects/, 'the detail names the database');
my @lo_files = -d "$extern/lo" ? split(/\n/, (run_cmd([ 'find', "$extern/lo", '-type', 'f' ]))[1]) : ();
is_deeply(\@lo_files, [], 'the refused backup leaves no file behind');
$pg->safe_psql('DROP DATABASE fidelity_lo');    # the whole-server backup below must not meet it

# ---------------------------------------------------------------------------
# BACKUP DATABASE
# ---------------------------------------------------------------------------

($rc, $out, $err) = $pgbr->psql("BACKUP DATABASE fidelity INTO 'nodelocal://0/fid'", raw => 1, timeout => 600);
is($rc, 0, 'BACKUP DATABASE fidelity') or give_up("the backup of the fixture fails: $err");
like($out, qr/\|\s*succeeded\s*\|/, 'the backup job succeeded');
my $subdir = $pgbr->safe_psql("SHOW BACKUPS IN 'nodelocal://0/fid'");
like($subdir, qr{^/\d{4}/\d\d/\d\d-\d{6}\.\d\d$}, 'one backup in the collection');
my $bdir = "$extern/fid$subdir";

# The manifest knows every table's rows and every sequence's state.
my $manifest = JSON::PP::decode_json(PgbrTest::slurp("$bdir/BACKUP_MANIFEST") // '{}');
my ($mdb) = grep { $_->{name} eq 'fidelity' } @{ $manifest->{databases} // [] };
ok($mdb, 'the manifest has the database');
my (%m_rows, %src_rows);
for my $t (@{ $mdb->{tables} // [] })
{
	$m_rows{"$t->{schema}.$t->{name}"} = $t->{rows} if $t->{kind} eq 'table';
}
my $plain_tables = $pg->safe_psql(q{SELECT n.nspname || '.' || c.relname FROM pg_class c
	JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'
	AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'}, dbname => 'fidelity');
($src_rows{$_}) = split(/:/, $src_sum->{$_}) for split /\n/, $plain_tables;
is_deeply(\%m_rows, \%src_rows, 'the manifest lists every table (and partition) with its row count')
  or diag(join("\n", PgbrTest::checksum_differences(\%src_rows, \%m_rows)));
my %m_seqs = map { ("seq:$_->{schema}.$_->{name}" => "$_->{last_value}:" . ($_->{is_called} ? 'true' : 'false')) }
  @{ $mdb->{sequences} // [] };
my %src_seqs = map { ($_ => $src_sum->{$_}) } grep { /^seq:/ } keys %$src_sum;
is_deeply(\%m_seqs, \%src_seqs, 'the manifest has every sequence\'s last_value and is_called')
  or diag(join("\n", PgbrTest::checksum_differences(\%src_seqs, \%m_seqs)));

# The backup's schema archive is the source's schema.
my $archive = PgbrTest::archive_schema("$bdir/$mdb->{schema_file}", 'fidelity');
ok($archive eq $src_dump, 'the backup\'s schema archive restores to the source\'s schema')
  or diag(PgbrTest::text_diff($src_dump, $archive, 'fidelity.sql', 'archive.sql'));

# ---------------------------------------------------------------------------
# RESTORE DATABASE ... WITH new_db_name
# ---------------------------------------------------------------------------

($rc, $out, $err) = $pgbr->psql(
	"RESTORE DATABASE fidelity FROM LATEST IN 'nodelocal://0/fid' WITH new_db_name = 'fidelity_restored'",
	raw => 1, timeout => 600);
SKIP:
{
	skip 'database restore not implemented yet', 10 if $rc && $err =~ /not implemented yet/;
	is($rc, 0, 'RESTORE DATABASE ... WITH new_db_name') or diag($err);
	like($out, qr/\|\s*succeeded\s*\|/, 'the restore job succeeded');

	compare_databases($pg, 'fidelity_restored', $src_dump, $src_sum, 'restored database');
	is($pg->safe_psql("SELECT string_agg(n.nspname || '.' || c.relname || '=' || c.relispopulated, ', ' ORDER BY 1)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'm'", dbname => 'fidelity_restored'),
		'fid.not_populated=false, public.city_stats=true', 'the materialized view is populated, the WITH NO DATA one is not');
	is($pg->safe_psql('SELECT count(*) FROM public.city_stats', dbname => 'fidelity_restored'), '5', 'the matview has its rows');

	is($pg->safe_psql("SELECT count(*) FROM audit_log", dbname => 'fidelity_restored'),
		($src_sum->{'public.audit_log'} =~ /^(\d+)/)[0], 'no trigger fired while the rows were loaded');

	# What comes next is the same: every sequence's nextval, identity columns
	# (this advances the source's sequences too; what follows compares with
	# the checksums taken before, or takes a new backup).
	my $next_src = next_values($pg, 'fidelity');
	my $next_dst = next_values($pg, 'fidelity_restored');
	is_deeply($next_dst, $next_src, 'every sequence gives the same next value')
	  or diag(join("\n", PgbrTest::checksum_differences($next_src, $next_dst)));
	my $ident = "INSERT INTO orders (customer) VALUES ('next') RETURNING id;
		INSERT INTO shipments (order_id, line_no) VALUES (NULL, NULL) RETURNING id;
		INSERT INTO fid.accounts (owner) VALUES ('next') RETURNING id;
		INSERT INTO tickets (seat) VALUES ('next') RETURNING id, big, code;
		INSERT INTO measurements (logdate, city) VALUES ('2030-01-01', 'x') RETURNING id;
		REFRESH MATERIALIZED VIEW city_stats";    # a restore refreshes: keep the source's matview fresh too
	is($pg->safe_psql($ident, dbname => 'fidelity_restored'), $pg->safe_psql($ident, dbname => 'fidelity'),
		'identity, serial and default-nextval columns give the same next values');
}

# ---------------------------------------------------------------------------
# RESTORE TABLE ... WITH into_db
# ---------------------------------------------------------------------------

# Tables that need nothing outside public but types: no trigger functions, no
# sequence or collation of another schema. They use enums, domains,
# composites, a range type, identity, a foreign key with cascades,
# inheritance, a dropped column.
my @tables = qw(public.t_numeric public.t_arrays public.t_ranges public.t_user_types public.orders
  public.order_tags public.vehicle public.car public.dropped_cols public.empty_table);
my @table_seqs = qw(public.orders_id_seq);
$pg->safe_psql('CREATE DATABASE fidelity_tables');
($rc, $out, $err) = $pgbr->psql(
	'RESTORE TABLE ' . join(', ', map { "fidelity.$_" } @tables)
	  . " FROM LATEST IN 'nodelocal://0/fid' WITH into_db = 'fidelity_tables'",
	raw => 1, timeout => 600);
{
	is($rc, 0, 'RESTORE TABLE ... WITH into_db') or diag($err);
	like($out, qr/\|\s*succeeded\s*\|/, 'the restore job succeeded');
	# pg_dump orders objects of one kind by name and then by the whole
	# database's dependency graph, which has more objects in the source:
	# compare the entries, not their order
	my $want = sorted_entries($pg->schema_dump('fidelity', tables => \@tables));
	my $got = sorted_entries($pg->schema_dump('fidelity_tables', tables => \@tables));
	ok($got eq $want, 'pg_dump --schema-only of the restored tables is the source\'s (entry by entry)')
	  or diag(PgbrTest::text_diff($want, $got, 'fidelity.sql', 'fidelity_tables.sql'));
	my %want_sum = map { ($_ => $src_sum->{$_}) } @tables, map { "seq:$_" } @table_seqs;
	my $got_sum = $pg->table_checksums('fidelity_tables', tables => \@tables, seqs => \@table_seqs);
	is_deeply($got_sum, \%want_sum, 'every restored table has the source\'s rows, and the identity sequence its state')
	  or diag(join("\n", PgbrTest::checksum_differences(\%want_sum, $got_sum)));
}

# Every relation of the database, into a database that has only the
# schemas (a table restore does not create schemas, as the reference says):
# the types, domains, collation, functions, sequences, views, foreign
# server... they need come along.
$pg->safe_psql('CREATE DATABASE fidelity_all');
$pg->safe_psql('CREATE SCHEMA fid; CREATE SCHEMA "Mixed Case ""Schema"""', dbname => 'fidelity_all');
($rc, $out, $err) = $pgbr->psql("RESTORE TABLE fidelity.* FROM LATEST IN 'nodelocal://0/fid' WITH into_db = 'fidelity_all'",
	raw => 1, timeout => 600);
is($rc, 0, 'RESTORE TABLE fidelity.* ... WITH into_db') or diag($err);
{
	my @every = map { ('-t', $_) } 'public.*', 'fid.*', '"Mixed Case ""Schema"""."*"';
	my $want = sorted_entries($pg->schema_dump('fidelity', args => \@every));
	my $got = sorted_entries($pg->schema_dump('fidelity_all', args => \@every));
	ok($got eq $want, 'pg_dump --schema-only of every restored relation is the source\'s (entry by entry)')
	  or diag(PgbrTest::text_diff($want, $got, 'fidelity.sql', 'fidelity_all.sql'));
	my $got_sum = $pg->table_checksums('fidelity_all');
	is_deeply($got_sum, $src_sum, 'every table, partition, materialized view and sequence has the backup\'s contents')
	  or diag(join("\n", PgbrTest::checksum_differences($src_sum, $got_sum)));
}
$pg->safe_psql('DROP DATABASE fidelity_all');

# ---------------------------------------------------------------------------
# Whole server: BACKUP INTO, RESTORE FROM into a second, fresh PostgreSQL
# ---------------------------------------------------------------------------

($rc, $out, $err) = $pgbr->psql("BACKUP INTO 'nodelocal://0/all'", raw => 1, timeout => 600);
my $server_backup_missing = $rc && $err =~ /not implemented yet/;
my ($pg2, $pgbr2);
if (!$server_backup_missing)
{
	is($rc, 0, 'BACKUP INTO (whole server)') or diag($err);
	$pg2 = PgbrTest::Postgres->new;
	$pgbr2 = PgbrTest::Pgbr->new(pg => $pg2, args => [ '--external-io-dir', $extern ]);
	($rc, $out, $err) = $pgbr2->psql("RESTORE FROM LATEST IN 'nodelocal://0/all'", raw => 1, timeout => 600);
}
SKIP:
{
	skip 'whole-server backup not implemented yet', 4 if $server_backup_missing;
	skip 'whole-server restore not implemented yet', 4 if $rc && $err =~ /not implemented yet/;
	is($rc, 0, 'RESTORE FROM (whole server) into a fresh PostgreSQL') or diag($err);

	my $roles_sql = q{SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
		r.rolreplication, r.rolbypassrls, r.rolconnlimit, r.rolvaliduntil, r.rolpassword,
		(SELECT string_agg(g.rolname, ',' ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_authid g ON g.oid = m.roleid
		  WHERE m.member = r.oid) AS member_of,
		(SELECT string_agg(array_to_string(s.setconfig, ','), ';') FROM pg_db_role_setting s WHERE s.setrole = r.oid) AS settings
		FROM pg_authid r WHERE r.rolname LIKE 'fid%' ORDER BY r.rolname};
	my $roles = $pg->safe_psql($roles_sql);
	is($pg2->safe_psql($roles_sql), $roles, 'the roles came back, with their attributes, passwords, memberships and settings');

	my $dbs_sql = 'SELECT string_agg(datname, \',\' ORDER BY datname) FROM pg_database WHERE NOT datistemplate';
	my $dbs = $pg->safe_psql($dbs_sql);
	is($pg2->safe_psql($dbs_sql), $dbs, "the same databases: $dbs");

	# Every database, pgbr's own schema aside.
	my @diffs;
	for my $db (split /,/, $dbs)
	{
		my $want = $pg->schema_dump($db, args => ['--exclude-schema=pgbr']);
		my $got = eval { $pg2->schema_dump($db, args => ['--exclude-schema=pgbr']) } // "($@)";
		push @diffs, PgbrTest::text_diff($want, $got, "$db.sql", "$db.restored.sql") if $got ne $want;
		my $ws = $pg->table_checksums($db);
		my $gs = eval { $pg2->table_checksums($db) } // {};
		push @diffs, map { "$db: $_" } PgbrTest::checksum_differences($ws, $gs);
	}
	ok(!@diffs, 'every database has the same schema and the same contents on the second server')
	  or diag(join("\n", @diffs));
}

$pgbr2->stop_ok('second pgbr') if $pgbr2;
$pgbr->stop_ok;
done_testing();

# ---------------------------------------------------------------------------

# A failure the rest of the file cannot go on after (not BAIL_OUT: that would
# stop the other test files of the run too).
sub give_up
{
	my ($why) = @_;
	diag($why);
	done_testing();
	exit 1;
}

# Schema and contents of $db equal the source's (3 tests).
sub compare_databases
{
	my ($node, $db, $want_dump, $want_sum, $label) = @_;
	my $dump = $node->schema_dump($db);
	ok($dump eq $want_dump, "$label: pg_dump --schema-only is the source's")
	  or diag(PgbrTest::text_diff($want_dump, $dump, 'fidelity.sql', "$db.sql"));
	my $sum = $node->table_checksums($db);
	is_deeply($sum, $want_sum, "$label: every table, partition, matview and sequence has the source's contents")
	  or diag(join("\n", PgbrTest::checksum_differences($want_sum, $sum)));
	is(scalar(keys %$sum), scalar(keys %$want_sum), "$label: as many relations as the source");
}

# { "schema.seq" => nextval } of every sequence of $db (advances them).
sub next_values
{
	my ($node, $db) = @_;
	my $q = $node->safe_psql(q{SELECT string_agg(format('SELECT %L, nextval(%L)', n.nspname || '.' || c.relname,
			quote_ident(n.nspname) || '.' || quote_ident(c.relname)), ' UNION ALL ' ORDER BY 1)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'S' AND n.nspname NOT IN ('pgbr', 'pg_catalog', 'information_schema')}, dbname => $db);
	my %v;
	for my $l (split /\n/, $node->safe_psql($q, dbname => $db))
	{
		my ($k, $val) = split /\|/, $l, 2;
		$v{$k} = $val;
	}
	return \%v;
}

# The entries of a pg_dump script ("-- Name: ..." header and its SQL),
# sorted.
sub sorted_entries
{
	my ($dump) = @_;
	my @entries = split /(?=^--\n-- Name: )/m, $dump;
	return join('', sort @entries);
}
