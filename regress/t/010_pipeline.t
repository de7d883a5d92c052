#!/usr/bin/perl
# Extended-protocol pipelines mixing forwarded and local (SHOW JOB) messages
# over a raw socket: responses stay in order, named statements and portals of
# both kinds interleave, an error skips everything up to Sync (and nothing
# after the error reaches the database), Flush delivers without Sync,
# explicit transactions span Syncs, and a long pipeline keeps its order.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);
ok($pgbr->wait_catalog, 'pgbr created pgbr.jobs at start') or do { diag('no pgbr.jobs: the rest of this file needs it'); done_testing(); exit 1 };
$pg->safe_psql(<<'SQL');
INSERT INTO pgbr.jobs (id, job_type, status, description, user_name, created, started)
VALUES (4001, 'BACKUP', 'running', 'one', 'postgres', now(), now()),
       (4002, 'BACKUP', 'running', 'two', 'postgres', now() - '1 min'::interval, now() - '1 min'::interval);
CREATE TABLE pl (a int);
CREATE TABLE zero (a int);
INSERT INTO zero VALUES (0);
SQL

# Each section starts on a fresh connection, so that a section that leaves
# the protocol out of step does not fail the ones after it.
my $c;
sub fresh
{
	$c->close if $c;
	$c = $pgbr->raw_connect;
	$c->startup;
}
sub run { return PgbrTest::Raw::summarize($c->read_until_ready(30)) }
sub vals { my ($r) = @_; return [ map { $_->[0] } @{ $r->{rows} } ] }
# Rows of pl; each section starts with an empty table.
sub pl_rows { return $pg->safe_psql('SELECT coalesce(string_agg(a::text, \',\' ORDER BY a), \'\') FROM pl') }

# --- forwarded, ours, forwarded under one Sync -------------------------------------------
fresh();
$c->extended('SELECT 1');
$c->extended('SHOW JOBS');
$c->extended('SELECT 2');
$c->sync;
my $r = run();
is($r->{types}, '12DC12DDC12DCZ', 'responses in order: forwarded, SHOW JOBS, forwarded');
is_deeply(vals($r), [ 1, 4001, 4002, 2 ], 'row values in order');
is_deeply($r->{tags}, [ 'SELECT 1', 'SHOW JOBS 2', 'SELECT 1' ], 'command tags in order');
is($r->{status}, 'I', 'idle');

# --- named statements and portals of both kinds, interleaved -----------------------
fresh();
$c->parse('s_fwd', 'SELECT $1::int + 1');
$c->parse('s_ours', 'SHOW JOB $1');
$c->describe('S', 's_fwd');
$c->describe('S', 's_ours');
$c->bind('p_fwd', 's_fwd', ['41']);
$c->bind('p_ours', 's_ours', ['4002']);
$c->describe('P', 'p_ours');
$c->execute('p_ours');
$c->describe('P', 'p_fwd');
$c->execute('p_fwd');
$c->sync;
$r = run();
is($r->{types}, '11tTtT22TDCTDCZ', 'interleaved named statements/portals: message order');
is_deeply(vals($r), [ 4002, 42 ], 'each portal returns its own rows');
$c->bind('', 's_ours', ['4001']);
$c->execute('');
$c->bind('', 's_fwd', ['9']);
$c->execute('');
$c->sync;
is_deeply(vals(run()), [ 4001, 10 ], 'named statements reusable after Sync');
$c->close_stmt('S', 's_ours');
$c->close_stmt('S', 's_fwd');
$c->sync;
is(run()->{types}, '33Z', 'Close of both statements');
$c->bind('', 's_ours', ['4001']);
$c->execute('');
$c->sync;
$r = run();
is($r->{error}{C}, '26000', 'closed local statement no longer exists');

# --- error in the middle (forwarded) skips to Sync ----------------------------------
fresh();
$c->extended('SELECT 1');
$c->extended('SELECT 1/a FROM zero');
$c->extended('SHOW JOBS');
$c->extended('INSERT INTO pl VALUES (1)');
$c->sync;
$r = run();
is($r->{types}, '12DC12EZ', 'forwarded error: the rest is skipped up to Sync');
is($r->{error}{C}, '22012', 'division_by_zero');
is($r->{status}, 'I', 'idle after Sync');
is(pl_rows(), '', 'the INSERT after the error did not run');

# --- error in the middle (ours) skips forwarded messages to Sync --------------------------
fresh();
$c->extended('SELECT 1');
$c->extended("BACKUP INTO 'nodelocal://1/x'");
$c->extended('INSERT INTO pl VALUES (2)');
$c->extended('SELECT 3');
$c->sync;
$r = run();
like($r->{types}, qr/^12DC(12E|1E)Z$/, 'our error: the rest is skipped up to Sync') or diag($r->{types});
is($r->{error}{C}, '0A000', 'not implemented error');
is(pl_rows(), '', 'the forwarded INSERT after our error did not run');
is($r->{status}, 'I', 'idle after Sync');

fresh();
$pg->safe_psql('TRUNCATE pl');
# PostgreSQL runs everything up to Sync as one implicit transaction: an error
# rolls back what ran before it in the same batch.
$c->extended('INSERT INTO pl VALUES (3)');
$c->extended("BACKUP INTO 'nodelocal://1/x'");
$c->sync;
$r = run();
is($r->{error}{C}, '0A000', 'INSERT then our error in one batch');
is(pl_rows(), '', 'the INSERT before our error in the same batch was rolled back');
$pg->safe_psql('TRUNCATE pl');
$c->extended('INSERT INTO pl VALUES (4)');
$c->extended('SELECT 1/a FROM zero');
$c->sync;
run();
is(pl_rows(), '', 'same with a forwarded error (PostgreSQL behaviour)');

fresh();
$pg->safe_psql('TRUNCATE pl');
# Syntax error of ours at Parse.
$c->extended('BACKUP INTO');
$c->extended('INSERT INTO pl VALUES (5)');
$c->sync;
$r = run();
is($r->{types}, 'EZ', 'syntax error at Parse: everything up to Sync skipped');
is_deeply([ $r->{error}{C}, $r->{error}{P} ], [ '42601', '12' ], 'syntax error with position');
is(pl_rows(), '', 'INSERT after the syntax error did not run');

# --- two batches in one write -------------------------------------------------------------
fresh();
$c->extended('SELECT 1/a FROM zero');
$c->sync;
$c->extended('SHOW JOB $1', ['4001']);
$c->sync;
$c->extended("BACKUP INTO 'nodelocal://1/x'");
$c->sync;
$c->extended('SELECT 5');
$c->sync;
my @all;
push @all, run() for 1 .. 4;
is(join('|', map { $_->{types} } @all), '12EZ|12DCZ|' . $all[2]{types} . '|12DCZ', 'four batches, each answered after its own Sync');
is_deeply([ map { @{ vals($_) } } @all ], [ 4001, 5 ], 'rows of the good batches');
like($all[2]{types}, qr/^(12E|1E)Z$/, 'third batch: our error');

# --- Flush delivers without Sync ----------------------------------------------------------
fresh();
$c->extended('SHOW JOB $1', ['4001']);
$c->flush;
my @m;
while (my $m = $c->read_msg(5)) { push @m, $m; last if $m->{type} eq 'C' }
is(PgbrTest::Raw::summarize(@m)->{types}, '12DC', 'local statement answered on Flush, before Sync');
$c->extended('SELECT 6');
$c->flush;
@m = ();
while (my $m = $c->read_msg(5)) { push @m, $m; last if $m->{type} eq 'C' }
is(PgbrTest::Raw::summarize(@m)->{types}, '12DC', 'forwarded statement answered on Flush');
$c->sync;
is(run()->{types}, 'Z', 'then Sync gives ReadyForQuery only');

# --- explicit transaction across batches --------------------------------------------------
fresh();
$pg->safe_psql('TRUNCATE pl');
$c->extended('BEGIN');
$c->extended('INSERT INTO pl VALUES (7)');
$c->extended('SHOW JOBS');
$c->sync;
$r = run();
is($r->{status}, 'T', 'in a transaction block after BEGIN + INSERT + SHOW JOBS');
$c->extended('SHOW JOB $1', ['4002']);
$c->extended('COMMIT');
$c->sync;
$r = run();
is_deeply([ $r->{types}, $r->{status} ], [ '12DC12CZ', 'I' ], 'SHOW JOB then COMMIT');
is(pl_rows(), '7', 'the transaction committed');

# --- a long pipeline keeps its order ----------------------------------------------------
fresh();
{
	my @want;
	for my $i (1 .. 300)
	{
		if ($i % 3 == 0) { $c->extended('SHOW JOB $1', [ $i % 2 ? '4001' : '4002' ]); push @want, $i % 2 ? 4001 : 4002 }
		else { $c->extended("SELECT $i"); push @want, $i }
	}
	$c->sync;
	$r = run();
	is(scalar(@{ $r->{rows} }), 300, '300 results in one pipeline');
	is_deeply(vals($r), \@want, 'all 300 in order');
}

is($c->simple_query('SELECT 1')->{rows}[0][0], '1', 'session in sync at the end');
$c->close;
$pgbr->stop_ok;
done_testing();
