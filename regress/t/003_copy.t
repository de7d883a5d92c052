#!/usr/bin/perl
# COPY through pgbr: text, CSV and binary, in and out, with the data equal
# on both sides (what was sent, what PostgreSQL stored, what comes back
# through pgbr and directly); COPY errors, CopyFail, COPY in a rolled-back
# transaction, and a larger transfer.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Digest::MD5 qw(md5_hex);

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);

$pg->safe_psql('CREATE TABLE c (id int PRIMARY KEY, t text, b bytea, n int[]); CREATE TABLE c2 (LIKE c)');

# Canonical COPY text rows (what COPY TO prints), with escapes, NULLs,
# UTF-8 and bytea.
my @rows;
for my $i (1 .. 50000)
{
	my $t = $i % 7 == 0 ? '\N' : "row $i\\ttab\\nnewline\\\\backslash \x{c3}\x{a9}t\x{c3}\x{a9} \"q\" 'a' ;" . ('z' x ($i % 50));
	my $b = $i % 11 == 0 ? '\N' : '\\\\x' . unpack('H*', pack('N', $i) . chr($i % 256));
	my $n = $i % 13 == 0 ? '\N' : "{$i," . ($i * 2) . ",NULL}";
	push @rows, "$i\t$t\t$b\t$n\n";
}
my $data = join('', @rows);

# --- text COPY in ------------------------------------------------------------
my ($rc, $out, $err) = $pgbr->psql('COPY c FROM STDIN', stdin => $data);
is($rc, 0, 'COPY FROM STDIN through pgbr') or diag($err);
is($pg->safe_psql('SELECT count(*) FROM c'), '50000', 'all rows stored');

# --- text COPY out -------------------------------------------------------
my ($rc1, $via_pgbr) = $pgbr->psql('COPY (SELECT * FROM c ORDER BY id) TO STDOUT');
my ($rc2, $direct) = $pg->psql('COPY (SELECT * FROM c ORDER BY id) TO STDOUT');
is($rc1, 0, 'COPY TO STDOUT through pgbr');
ok($via_pgbr eq $direct, 'COPY TO output through pgbr equals direct output');
ok("$via_pgbr\n" eq $data, 'COPY TO output equals the data sent in');
is(md5_hex("$via_pgbr\n"), md5_hex($data), 'md5 of the round trip');

# --- CSV with header both ways ------------------------------------------------
($rc, my $csv) = $pgbr->psql('COPY c TO STDOUT (FORMAT csv, HEADER)');
is($rc, 0, 'CSV out');
my ($rc_d, $csv_d) = $pg->psql('COPY c TO STDOUT (FORMAT csv, HEADER)');
ok($csv eq $csv_d, 'CSV through pgbr equals direct');
($rc, $out, $err) = $pgbr->psql('COPY c2 FROM STDIN (FORMAT csv, HEADER)', stdin => "$csv\n");
is($rc, 0, 'CSV in') or diag($err);
is($pg->safe_psql('SELECT count(*) FROM (SELECT * FROM c EXCEPT ALL SELECT * FROM c2) x'), '0', 'CSV round trip: same rows');
is($pg->safe_psql('SELECT count(*) FROM c2'), '50000', 'CSV round trip: same count');

# --- binary both ways ---------------------------------------------------------
{
	my @cmd = (pg_bindir() . '/psql', '-X', '-q', '-c', 'COPY c TO STDOUT (FORMAT binary)');
	my ($r1, $bin_pgbr) = run_cmd([ @cmd, '-d', $pgbr->connstr ]);
	my ($r2, $bin_direct) = run_cmd([ @cmd, '-d', $pg->connstr ]);
	is($r1, 0, 'binary COPY out through pgbr');
	ok(length($bin_pgbr) > 1000 && $bin_pgbr eq $bin_direct, 'binary COPY out equals direct (' . length($bin_pgbr) . ' bytes)');
	$pg->safe_psql('TRUNCATE c2');
	($rc, $out, $err) = run_cmd([ pg_bindir() . '/psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $pgbr->connstr,
			'-c', 'COPY c2 FROM STDIN (FORMAT binary)' ], stdin => $bin_pgbr);
	is($rc, 0, 'binary COPY in through pgbr') or diag($err);
	is($pg->safe_psql('SELECT count(*) FROM (SELECT * FROM c EXCEPT ALL SELECT * FROM c2) x') . '/' . $pg->safe_psql('SELECT count(*) FROM c2'),
		'0/50000', 'binary round trip: same rows');
}

# --- \copy (psql's client-side copy, same protocol) -----------------------------
{
	my $dir = tempdir();
	($rc, $out, $err) = $pgbr->psql("\\copy (SELECT * FROM c ORDER BY id) TO '$dir/c.txt'");
	is($rc, 0, '\copy to file');
	is(md5_hex(slurp("$dir/c.txt")), md5_hex($data), '\copy file equals the data');
}

# --- errors -----------------------------------------------------------------------
$pg->safe_psql('TRUNCATE c2');
($rc, $out, $err) = $pgbr->psql('COPY c2 FROM STDIN', stdin => "1\ta\t\\N\t\\N\nnot_a_number\tb\t\\N\t\\N\n3\tc\t\\N\t\\N\n");
isnt($rc, 0, 'bad COPY data fails');
like($err, qr/invalid input syntax for type integer: "not_a_number"\nCONTEXT:  COPY c2, line 2/, 'COPY error with line context');
is($pg->safe_psql('SELECT count(*) FROM c2'), '0', 'failed COPY stored nothing');

($rc, $out, $err) = $pgbr->psql(undef, stdin => "BEGIN;\nCOPY c2 FROM STDIN;\n1\tx\t\\N\t\\N\n\\.\nSELECT count(*) FROM c2;\nROLLBACK;\nSELECT count(*) FROM c2;\n");
is($rc, 0, 'COPY inside a transaction');
is($out, "1\n0", 'COPY inside a rolled back transaction is undone');

# CopyFail from the client, then the session goes on.
{
	my $c = $pgbr->raw_connect;
	$c->startup;
	$c->query('COPY c2 FROM STDIN');
	my $m = $c->read_msg;
	is($m && $m->{type}, 'G', 'CopyInResponse');
	$c->send_msg('d', "100\tx\t\\N\t\\N\n");
	$c->send_msg('f', "client gave up\0");
	my $r = PgbrTest::Raw::summarize($c->read_until_ready);
	is($r->{error}{C}, '57014', 'CopyFail -> 57014');
	like($r->{error}{M} // '', qr/client gave up/, 'CopyFail message relayed');
	is($r->{status}, 'I', 'idle after CopyFail');
	# CopyData split into many small messages, some splitting rows.
	$c->query('COPY c2 FROM STDIN');
	$m = $c->read_msg;
	is($m && $m->{type}, 'G', 'second CopyInResponse');
	my $chunk = join('', map { "$_\tsmall\t\\N\t{$_}\n" } 1 .. 1000);
	$c->send_msg('d', $_) for unpack('(a7)*', $chunk);
	$c->send_msg('c');
	$r = PgbrTest::Raw::summarize($c->read_until_ready);
	is_deeply($r->{tags}, ['COPY 1000'], 'COPY of 1000 rows sent in 7-byte CopyData messages');
	$r = $c->simple_query("SELECT sum(id), count(*) FROM c2 WHERE t = 'small'");
	is_deeply($r->{rows}, [ [ 500500, 1000 ] ], 'rows from small CopyData messages stored right');
	$c->close;
}

# --- a larger transfer (~40 MB each way) ------------------------------------------
{
	$pg->safe_psql("CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 12) AS t FROM generate_series(1, 100000) g");
	my ($r1, $o1) = $pgbr->psql('COPY big TO STDOUT', timeout => 300);
	my ($r2, $o2) = $pg->psql('COPY big TO STDOUT', timeout => 300);
	is($r1, 0, 'large COPY out');
	is(md5_hex($o1), md5_hex($o2), 'large COPY out equals direct (' . length($o1) . ' bytes)');
	$pg->safe_psql('CREATE TABLE big2 (LIKE big)');
	($rc, $out, $err) = $pgbr->psql('COPY big2 FROM STDIN', stdin => "$o1\n", timeout => 300);
	is($rc, 0, 'large COPY in') or diag($err);
	is($pg->safe_psql("SELECT md5(string_agg(id || t, ',' ORDER BY id)) FROM big2"),
		$pg->safe_psql("SELECT md5(string_agg(id || t, ',' ORDER BY id)) FROM big"), 'large COPY in stored the same data');
}

$pgbr->stop_ok;
done_testing();
