#!/usr/bin/perl
# The pgoutput decoder (src/cdc/decode.c) against a real PostgreSQL: tables
# with a primary key (and an enum column, so the server sends 'Y'), REPLICA
# IDENTITY FULL, a TOASTed column left untouched by an update, a schema,
# table and columns with spaces, quotes, a tab, a newline, a backslash and
# UTF-8 in their names, and one table outside the publication; a logical slot
# (pgoutput) and a workload of inserts, updates (also of the key), deletes,
# truncates (with CASCADE / RESTART IDENTITY), a multi-statement transaction,
# an ALTER TABLE ADD COLUMN followed by more changes, a change under a
# replication origin (the server sends 'O') and logical messages ('M').
#
# Every row of pg_logical_slot_peek_binary_changes(..., 'proto_version',
# '1', ...) goes through build/unit/cdc_decode_tool; the change lines must
# equal the expected ones exactly, with relids replaced by table names and
# LSNs, times and xids by placeholders (checked separately: B's final LSN is
# its C's commit LSN, commit LSNs grow, times are now). Also: the tool's
# counters; logical messages change nothing; R lines re-emitted after each
# new change file; a cut real message is XX001.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Time::HiRes ();

my $unit_dir = $ENV{PGBR_UNIT_DIR};
plan skip_all => 'PGBR_UNIT_DIR is not set' unless $unit_dir && -x "$unit_dir/cdc_decode_tool";
my $tool = "$unit_dir/cdc_decode_tool";

# The server's defaults (PgbrTest) already have wal_level = logical,
# max_replication_slots = 10 and synchronous_commit = on (logical decoding
# only sees flushed WAL).
my $pg = PgbrTest::Postgres->new(conf => [ 'wal_level = logical', 'synchronous_commit = on' ]);
my $DB = 'cdc';
$pg->safe_psql("CREATE DATABASE $DB");

sub qi { my ($s) = @_; $s =~ s/"/""/g; return qq{"$s"} }

# The odd names, as bytes (no `use utf8`: the file's UTF-8 bytes are the names).
my $odd_schema = 'odd schema ü';
my $odd_table = qq{we"ird\ttab ü};
my $odd_col1 = 'col\back';
my $odd_col2 = "new\nline";
my $odd = qi($odd_schema) . '.' . qi($odd_table);

# A psql script, one transaction per statement unless BEGIN/COMMIT.
sub run_script
{
	my ($script, $what) = @_;
	my ($rc, $out, $err) = $pg->psql(undef, dbname => $DB, stdin => $script);
	is($rc, 0, $what) or diag($err);
}

run_script(<<"SQL", 'tables, publication and slot created');
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TABLE t_pk (id int PRIMARY KEY, v text, m mood);
CREATE TABLE t_full (a int, b text);
ALTER TABLE t_full REPLICA IDENTITY FULL;
CREATE TABLE t_toast (id int PRIMARY KEY, big text, n int);
ALTER TABLE t_toast ALTER COLUMN big SET STORAGE EXTERNAL;
CREATE SCHEMA @{[ qi($odd_schema) ]};
CREATE TABLE $odd (@{[ qi($odd_col1) ]} int PRIMARY KEY, @{[ qi($odd_col2) ]} text);
CREATE TABLE t_nopub (x int);
CREATE PUBLICATION p FOR TABLE t_pk, t_full, t_toast, $odd;
SELECT pg_create_logical_replication_slot('s', 'pgoutput');
SELECT pg_replication_origin_create('o1');
SQL

my $t_start_us = int(Time::HiRes::time() * 1e6);
my $big = join('', map { sprintf('%04d', $_) } 1 .. 1500);    # 6000 bytes, stored out of line

run_script(<<"SQL", 'workload ran');
INSERT INTO t_pk VALUES (1, 'one', 'happy'), (2, E'tab\\there\\nnewline \\\\ backslash \\r ü', NULL);
INSERT INTO t_pk VALUES (3, '\\N', 'sad');
UPDATE t_pk SET v = 'uno' WHERE id = 1;
UPDATE t_pk SET id = 10 WHERE id = 2;
DELETE FROM t_pk WHERE id = 3;
INSERT INTO t_full VALUES (1, 'a'), (2, NULL);
UPDATE t_full SET b = 'b' WHERE a = 1;
DELETE FROM t_full WHERE a = 2;
INSERT INTO t_toast VALUES (1, '$big', 1);
UPDATE t_toast SET n = 2 WHERE id = 1;
BEGIN;
INSERT INTO $odd VALUES (1, E'x\\\\y');
UPDATE $odd SET @{[ qi($odd_col2) ]} = '' WHERE @{[ qi($odd_col1) ]} = 1;
DELETE FROM $odd WHERE @{[ qi($odd_col1) ]} = 1;
SELECT pg_logical_emit_message(true, 'pfx', 'in a transaction');
COMMIT;
SELECT pg_logical_emit_message(false, 'pfx', 'outside');
INSERT INTO t_nopub VALUES (1);
INSERT INTO t_full VALUES (3, 'c');
TRUNCATE t_full;
INSERT INTO t_full VALUES (4, 'd');
TRUNCATE t_toast, t_full RESTART IDENTITY CASCADE;
ALTER TABLE t_pk ADD COLUMN c int DEFAULT 7;
INSERT INTO t_pk VALUES (20, 'after ddl', 'happy');
UPDATE t_pk SET c = NULL WHERE id = 1;
SELECT pg_replication_origin_session_setup('o1');
INSERT INTO t_pk VALUES (30, 'from an origin', NULL, 8);
SQL

# relid -> name, for the comparison
my %name_of;
for my $t ([ 'public', 't_pk' ], [ 'public', 't_full' ], [ 'public', 't_toast' ], [ $odd_schema, $odd_table ])
{
	my $oid = $pg->safe_psql("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		  . "WHERE n.nspname = \$q\$$t->[0]\$q\$ AND c.relname = \$q\$$t->[1]\$q\$", dbname => $DB);
	like($oid, qr/^\d+$/, "oid of $t->[1]");
	$name_of{$oid} = $t->[1] eq $odd_table ? 'odd' : $t->[1];
}

sub peek
{
	my (@opts) = @_;
	my $o = join('', map { ", '$_'" } 'proto_version', '1', 'publication_names', 'p', @opts);
	my ($rc, $out, $err) = $pg->psql("SELECT lsn, encode(data, 'hex') FROM pg_logical_slot_peek_binary_changes('s', NULL, NULL$o)",
		dbname => $DB, extra => [ '-F', "\t" ]);
	die "peek failed: $err" if $rc;
	return $out . "\n";
}

sub decode
{
	my ($input) = @_;
	my ($rc, $out, $err) = run_cmd([$tool], stdin => $input);
	return ($rc, $out, $err);
}

my $rows = peek();
my @types = map { /^\S+\t(..)/ ? chr(hex($1)) : '?' } grep { length } split /\n/, $rows;
my %seen_type = map { $_ => 1 } @types;
ok($seen_type{$_}, "the server sent a '$_' message") for qw(B R Y I U D T C O);
my $n_r_msgs = grep { $_ eq 'R' } @types;

my ($rc, $out, $err) = decode($rows);
is($rc, 0, 'the tool decoded every message') or diag($err);
my @lines = split /\n/, $out, -1;
is(pop(@lines), '', 'output ends with LF');

# Normalise: relids -> names, LSNs/times/xids -> placeholders (checked here).
my (@got, @commit_lsns);
my ($bad_lsn, $bad_time, $bad_pair) = (0, 0, 0);
my $t_end_us = int(Time::HiRes::time() * 1e6);
my $final_lsn;
sub lsn_num { my ($hi, $lo) = split m{/}, $_[0]; return hex($hi) * 2**32 + hex($lo) }
sub lsn_ok { return $_[0] =~ m{^[0-9A-F]{1,8}/[0-9A-F]{1,8}$} }
sub time_ok { return $_[0] =~ /^\d+$/ && $_[0] >= $t_start_us - 60e6 && $_[0] <= $t_end_us + 60e6 }
sub relname { return '<' . ($name_of{ $_[0] } // "unknown relid $_[0]") . '>' }
for my $l (@lines)
{
	my @f = split /\t/, $l, -1;
	if ($f[0] eq 'B')
	{
		$bad_lsn++ unless lsn_ok($f[1]);
		$bad_time++ unless time_ok($f[2]);
		$bad_lsn++ unless $f[3] =~ /^\d+$/;
		$final_lsn = $f[1];
		@f = ('B', '<lsn>', '<time>', '<xid>');
	}
	elsif ($f[0] eq 'C')
	{
		$bad_lsn++ unless lsn_ok($f[1]) && lsn_ok($f[2]) && lsn_num($f[2]) > lsn_num($f[1]);
		$bad_time++ unless time_ok($f[3]);
		$bad_pair++ unless defined $final_lsn && $final_lsn eq $f[1];
		push @commit_lsns, $f[1];
		@f = ('C', '<lsn>', '<lsn>', '<time>');
	}
	elsif ($f[0] =~ /^[RIUD]$/)
	{
		$f[1] = relname($f[1]);
	}
	elsif ($f[0] eq 'T')
	{
		$f[$_] = relname($f[$_]) for 3 .. $#f;
	}
	push @got, join("\t", @f);
}
is($bad_lsn, 0, 'LSNs are pg_lsn text, xids numbers, end LSN after commit LSN');
is($bad_time, 0, 'commit times are Unix-epoch microseconds of now');
is($bad_pair, 0, "each C's commit LSN is its B's final LSN");
my @sorted = sort { lsn_num($a) <=> lsn_num($b) } @commit_lsns;
is_deeply(\@commit_lsns, \@sorted, 'transactions in commit order');

# PostgreSQL 15 sends nothing for a transaction without published changes
# (t_nopub, ALTER TABLE); older servers send an empty B/C pair: drop those.
my @txns;
for (my $i = 0; $i < @got; $i++)
{
	if ($got[$i] =~ /^B\t/ && $i + 1 < @got && $got[ $i + 1 ] =~ /^C\t/) { $i++; next }
	push @txns, $got[$i];
}

my $B = "B\t<lsn>\t<time>\t<xid>";
my $C = "C\t<lsn>\t<lsn>\t<time>";
my $R_pk = "R\t<t_pk>\tpublic\tt_pk\td\t3\tk\tid\t-\tv\t-\tm";
my $R_full = "R\t<t_full>\tpublic\tt_full\tf\t2\tk\ta\tk\tb";
my $R_toast = "R\t<t_toast>\tpublic\tt_toast\td\t3\tk\tid\t-\tbig\t-\tn";
my $R_odd = "R\t<odd>\todd schema ü\twe\"ird\\ttab ü\td\t2\tk\tcol\\\\back\t-\tnew\\nline";
my @expected = (
	$B, $R_pk, "I\t<t_pk>\t1\tone\thappy", "I\t<t_pk>\t2\ttab\\there\\nnewline \\\\ backslash \\r ü\t\\N", $C,
	$B, "I\t<t_pk>\t3\t\\\\N\tsad", $C,
	$B, "U\t<t_pk>\t-\t1\tuno\thappy", $C,
	$B, "U\t<t_pk>\tK\t2\t\\N\t\\N\t10\ttab\\there\\nnewline \\\\ backslash \\r ü\t\\N", $C,
	$B, "D\t<t_pk>\tK\t3\t\\N\t\\N", $C,
	$B, $R_full, "I\t<t_full>\t1\ta", "I\t<t_full>\t2\t\\N", $C,
	$B, "U\t<t_full>\tO\t1\ta\t1\tb", $C,
	$B, "D\t<t_full>\tO\t2\t\\N", $C,
	$B, $R_toast, "I\t<t_toast>\t1\t$big\t1", $C,
	$B, "U\t<t_toast>\t-\t1\t\\U\t2", $C,
	$B, $R_odd, "I\t<odd>\t1\tx\\\\y", "U\t<odd>\t-\t1\t", "D\t<odd>\tK\t1\t\\N", $C,
	$B, "I\t<t_full>\t3\tc", $C,
	$B, "T\t0\t1\t<t_full>", $C,
	$B, "I\t<t_full>\t4\td", $C,
	$B, "T\t3\t2\t<t_toast>\t<t_full>", $C,
	$B, "R\t<t_pk>\tpublic\tt_pk\td\t4\tk\tid\t-\tv\t-\tm\t-\tc", "I\t<t_pk>\t20\tafter ddl\thappy\t7", $C,
	$B, "U\t<t_pk>\t-\t1\tuno\thappy\t\\N", $C,
	$B, "I\t<t_pk>\t30\tfrom an origin\t\\N\t8", $C,
);
is_deeply(\@txns, \@expected, 'change lines are exactly the expected ones')
  or diag(join("\n", map { "got: $_" } @txns));

my $n_txn = grep { /^C\t/ } @lines;
my $n_changes = grep { /^[IUDT]\t/ } @lines;
my ($stats_last) = $err =~ /last_commit_lsn=(\S+)/;
like($err, qr/^stats transactions=$n_txn changes=$n_changes last_commit_lsn=\S+ last_commit_time_us=\d+$/m,
	"counters: $n_txn transactions, $n_changes changes");
is($stats_last, $commit_lsns[-1], 'counters: last commit LSN is the last C line\'s');
# The server describes a relation again after an invalidation (TRUNCATE,
# ALTER TABLE); only the changed description (ALTER) gives a new R line.
my $n_r_lines = grep { /^R\t/ } @lines;
cmp_ok($n_r_msgs, '>', $n_r_lines, "identical 'R' messages again ($n_r_msgs) give no new R line ($n_r_lines)");

# Logical messages ('M', transactional and not) are decoded and left out.
my $with_messages = peek('messages', 'true');
my $n_m = grep { /^\S+\t4d/ } split /\n/, $with_messages;
is($n_m, 2, 'with messages = true the server sent 2 logical messages');
my ($rc2, $out2, $err2) = decode($with_messages);
is($rc2, 0, 'decoded with messages') or diag($err2);
is($out2, $out, 'logical messages change no line');

# A new change file before every transaction: R lines again in each, before
# the relation's first change; without the R lines the output is the same.
my $split_input = join('', map { (/^\S+\t42/ ? "--new-file\n" : '') . "$_\n" } split /\n/, $rows);
my ($rc3, $out3, $err3) = decode($split_input);
is($rc3, 0, 'decoded with a new file per transaction') or diag($err3);
my ($missing, %described) = (0);
for my $l (split /\n/, $out3)
{
	my @f = split /\t/, $l;
	if ($f[0] eq 'B') { %described = () }
	elsif ($f[0] eq 'R') { $described{ $f[1] } = 1 }
	elsif ($f[0] =~ /^[IUD]$/) { $missing++ unless $described{ $f[1] } }
	elsif ($f[0] eq 'T') { $missing++ for grep { !$described{$_} } @f[ 3 .. $#f ] }
}
is($missing, 0, 'every change in a new file comes after its relation\'s R line');
my $r_lines = () = $out3 =~ /^R\t/mg;
cmp_ok($r_lines, '>', scalar(grep { /^R\t/ } @lines), 'more R lines than in one file');
is(join("\n", grep { !/^R\t/ } split /\n/, $out3), join("\n", grep { !/^R\t/ } @lines),
	'the same lines apart from R lines');

# A real message cut short is XX001, after the lines before it.
my @rowlist = split /\n/, $rows;
my ($first_i) = grep { $rowlist[$_] =~ /^\S+\t49/ } 0 .. $#rowlist;
my $cut = join("\n", @rowlist[ 0 .. $first_i - 1 ]) . "\n" . substr($rowlist[$first_i], 0, -6) . "\n";
my ($rc4, $out4, $err4) = decode($cut);
is($rc4, 1, 'a cut insert message fails');
like($err4, qr{^ERROR: XX001 logical decoding message at [0-9A-F]+/[0-9A-F]+ is malformed: truncated column value}m,
	'with XX001 "logical decoding message at <lsn> is malformed"');

$pg->safe_psql("SELECT pg_drop_replication_slot('s')", dbname => $DB);
$pg->stop;
done_testing();
