#!/usr/bin/perl
# Forwarded traffic through pgbr with psql and the raw protocol: queries,
# multi-statement strings, errors, transactions, startup parameters,
# notices, LISTEN/NOTIFY, large rows and result sets, Unix socket, many
# concurrent clients.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, unix_socket => 1);

# --- plain queries ---------------------------------------------------------
is($pgbr->safe_psql('SELECT 1'), '1', 'SELECT 1 through pgbr');
is($pgbr->safe_psql("SELECT current_user || '/' || current_database()"), 'postgres/postgres', 'user and database relayed');
is($pgbr->safe_psql("SELECT string_agg(g::text, ',') FROM generate_series(1,5) g"), '1,2,3,4,5', 'aggregate');
is($pgbr->safe_psql('SELECT 1; SELECT 2; SELECT 3'), "1\n2\n3", 'three statements in one simple query');
is($pgbr->safe_psql("SELECT 'a;b', \$\$x;y\$\$, E'c\\'d'"), "a;b|x;y|c'd", 'semicolons and quotes inside literals');
is($pgbr->safe_psql("SELECT /* SHOW JOBS; BACKUP */ 42 -- BACKUP\n"), '42', 'our keywords inside comments are forwarded');
is($pgbr->safe_psql("SELECT 'SHOW JOBS', 'BACKUP INTO x'"), 'SHOW JOBS|BACKUP INTO x', 'our keywords inside strings are forwarded');
is($pgbr->safe_psql('CREATE TABLE backup (jobs int); INSERT INTO backup VALUES (7); SELECT jobs FROM backup'),
	'7', 'identifiers named like our keywords are forwarded');
is($pgbr->safe_psql('SHOW server_version_num') >= 150000 ? 'ok' : 'bad', 'ok', 'SHOW of a PostgreSQL setting is forwarded');

# The server's identity reaches the client unchanged.
my $direct_ver = $pg->safe_psql('SHOW server_version');
is($pgbr->safe_psql('SHOW server_version'), $direct_ver, 'server_version as upstream');

# --- errors ------------------------------------------------------------------
my ($rc, $out, $err) = $pgbr->psql('SELECT 1/0');
isnt($rc, 0, 'division by zero fails');
like($err, qr/ERROR:  division by zero/, 'upstream error text relayed');
($rc, $out, $err) = $pgbr->psql('SELEC 1');
like($err, qr/syntax error at or near "SELEC".*\nLINE 1: SELEC 1\n\s+\^/s, 'forwarded syntax error keeps position');
($rc, $out, $err) = $pgbr->psql('SELECT 1', dbname => 'no_such_db');
isnt($rc, 0, 'unknown database fails');
like($err, qr/database "no_such_db" does not exist/, 'unknown database error relayed');
($rc, $out, $err) = $pgbr->psql('SELECT 1', user => 'no_such_role');
like($err, qr/role "no_such_role" does not exist/, 'unknown role error relayed');

# --- one session: errors, transactions, session state ---------------------
my $script = <<'SQL';
\set ON_ERROR_STOP 0
CREATE TABLE t1 (id int PRIMARY KEY, v text);
SELECT 1/0;
SELECT 'after error';
BEGIN;
INSERT INTO t1 VALUES (1, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO t1 VALUES (2, 'committed');
SAVEPOINT s1;
INSERT INTO t1 VALUES (2, 'duplicate');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO t1 VALUES (3, 'after savepoint');
COMMIT;
BEGIN;
SELECT 1/0;
SELECT 'ignored';
COMMIT;
SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM t1;
SET application_name = 'changed_in_session';
SHOW application_name;
PREPARE p1(int) AS SELECT $1 * 2;
EXECUTE p1(21);
CREATE TEMP TABLE tt AS SELECT 5 AS x;
SELECT x FROM tt;
SQL
($rc, $out, $err) = $pgbr->psql(undef, stdin => $script);
is($rc, 0, 'script runs');
is($out, "after error\n2:committed,3:after savepoint\nchanged_in_session\n42\n5", 'session state kept across statements');
like($err, qr/division by zero.*duplicate key.*division by zero.*current transaction is aborted/s,
	'errors in the session in order');
is($pg->safe_psql('SELECT count(*) FROM t1'), '2', 'direct sees committed rows only');

# --- startup parameters relayed --------------------------------------------
is($pgbr->safe_psql('SHOW application_name', conn => { application_name => 'my app' }), 'my app', 'application_name relayed');
is($pgbr->safe_psql('SHOW search_path', env => { PGOPTIONS => '-c search_path=foo,public' }),
	'foo,public', 'options startup parameter relayed');
is($pgbr->safe_psql('SHOW DateStyle', env => { PGDATESTYLE => 'Postgres, MDY' }), 'Postgres, MDY', 'datestyle startup parameter relayed');
is($pgbr->safe_psql('SHOW TimeZone', env => { PGTZ => 'PST8PDT' }), 'PST8PDT', 'timezone startup parameter relayed');
like($pgbr->safe_psql("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
		conn => { application_name => 'seen_upstream' }), qr/^seen_upstream$/, 'upstream backend has the application_name');

# --- notices -------------------------------------------------------------------
($rc, $out, $err) = $pgbr->psql(q{DO $$ BEGIN RAISE NOTICE 'hello from %', 'plpgsql'; RAISE WARNING 'careful'; END $$; SELECT 'done'});
is($rc, 0, 'DO block runs');
is($out, 'done', 'result after notices');
like($err, qr/NOTICE:  hello from plpgsql\n.*WARNING:  careful/s, 'notice and warning relayed in order');

# --- LISTEN/NOTIFY across sessions (raw protocol) -----------------------------
{
	my $listener = $pgbr->raw_connect;
	$listener->startup;
	my $r = $listener->simple_query('LISTEN pgbr_chan');
	is_deeply($r->{tags}, ['LISTEN'], 'LISTEN through pgbr');
	is($pgbr->safe_psql(q{NOTIFY pgbr_chan, 'payload 1'; SELECT pg_notify('pgbr_chan', 'payload 2')}), '', 'NOTIFY from another session');
	my @got;
	while (@got < 2)
	{
		my $m = $listener->read_msg(10) or last;
		push @got, $m if $m->{type} eq 'A';
	}
	my $s = PgbrTest::Raw::summarize(@got);
	is_deeply([ map { "$_->{channel}:$_->{payload}" } @{ $s->{notifications} } ],
		[ 'pgbr_chan:payload 1', 'pgbr_chan:payload 2' ], 'asynchronous notifications delivered while idle');
	$r = $listener->simple_query('SELECT 1');
	is_deeply($r->{rows}, [ [1] ], 'listener session still works');
	$listener->close;
}
($rc, $out, $err) = $pgbr->psql(q{LISTEN c2; NOTIFY c2, 'self'; SELECT 1});
like($out, qr/Asynchronous notification "c2" with payload "self" received/, 'psql sees its own notification');

# --- large values and result sets ------------------------------------------
my $len = $pgbr->safe_psql("SELECT length(repeat('x', 20*1024*1024))");
is($len, 20 * 1024 * 1024, 'length computed upstream');
($rc, $out, $err) = $pgbr->psql("SELECT repeat('abcdefgh', 4*1024*1024)");    # 32 MiB row
is($rc, 0, '32 MiB row returned');
is(length($out), 32 * 1024 * 1024, '32 MiB row arrives whole');
is($out eq ('abcdefgh' x (4 * 1024 * 1024)) ? 'same' : 'differs', 'same', '32 MiB row content intact');
my $big_in = 'y' x (8 * 1024 * 1024);
($rc, $out, $err) = $pgbr->psql(undef, stdin => "SELECT length('$big_in'), md5('$big_in');\n");
is($out, (8 * 1024 * 1024) . '|' . $pg->safe_psql("SELECT md5(repeat('y', 8*1024*1024))"), '8 MiB query text sent whole');
($rc, $out, $err) = $pgbr->psql('SELECT g, md5(g::text) FROM generate_series(1, 200000) g');
my @lines = split /\n/, $out;
is(scalar @lines, 200000, '200000 rows');
is($lines[-1], '200000|' . $pg->safe_psql("SELECT md5('200000')"), 'last row intact');

# --- Unix socket listener ----------------------------------------------------
($rc, $out, $err) = PgbrTest::run_psql("host=" . $pgbr->sockdir . " port=" . $pgbr->port . " user=postgres dbname=postgres", 'SELECT 7');
is($rc, 0, 'psql over the pgbr Unix socket') or diag($err);
is($out, '7', 'result over the pgbr Unix socket');

# --- many concurrent clients ------------------------------------------------
{
	my @h;
	for my $i (1 .. 20)
	{
		my ($o, $e) = ('', '');
		my @cmd = (pg_bindir() . '/psql', '-X', '-A', '-t', '-q', '-d', $pgbr->connstr,
			'-c', "SELECT pg_sleep(0.5), $i");
		push @h, [ IPC::Run::start(\@cmd, '<', \undef, '>', \$o, '2>', \$e, IPC::Run::timeout(60)), \$o, \$e, $i ];
	}
	my $good = 0;
	for my $x (@h)
	{
		eval { $x->[0]->finish };
		$good++ if ${ $x->[1] } =~ /^\|$x->[3]$/m;
		diag(${ $x->[2] }) if ${ $x->[2] };
	}
	is($good, 20, '20 concurrent clients all get their own answer');
}

# --- the upstream connection goes away --------------------------------------
{
	my $c = $pgbr->raw_connect;
	$c->startup;
	my $pid = $c->simple_query('SELECT pg_backend_pid()')->{rows}[0][0];
	$pg->safe_psql("SELECT pg_terminate_backend($pid)");
	my @m = $c->read_until_ready(10);
	my $s = PgbrTest::Raw::summarize(@m);
	ok(!@m || ($s->{error} && $s->{error}{S} eq 'FATAL'), 'terminated backend: client gets FATAL or is closed')
	  or diag(explain $s);
	ok($c->wait_closed(10), 'client connection closed after its backend died');
	is($pgbr->safe_psql('SELECT 2'), '2', 'pgbr still serves new clients');
}

$pgbr->stop_ok;
done_testing();
