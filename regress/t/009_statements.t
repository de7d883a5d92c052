#!/usr/bin/perl
# Our statements over the raw protocol, where every field can be checked:
# SHOW JOBS / SHOW JOB / SHOW JOBS <select> (columns, types, tags, order,
# visibility per user and admin role), syntax errors with positions, a query
# mixing ours with forwarded statements, "not implemented yet", 25001 in a
# transaction block, 25P02 in a failed one, transaction status across
# forwarded and local statements, and the extended protocol with $n.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--admin-role', 'backup_admins' ]);

my $long = 'BACKUP DATABASE d INTO ' . ("'nodelocal://1/" . ('x' x 150) . "'");
(my $long_sql = $long) =~ s/'/''/g;
ok($pgbr->wait_catalog, 'pgbr created pgbr.jobs at start') or do { diag('no pgbr.jobs: the rest of this file needs it'); done_testing(); exit 1 };
$pg->safe_psql(<<"SQL");
INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, created, started, finished, modified, fraction_completed, error, coordinator_id, running_status)
VALUES
 (2001, 'BACKUP',  'running',   '$long_sql', 'BACKUP INTO \$1', 'postgres', now() - '10 min'::interval, now() - '9 min'::interval, NULL, now(), 0.5, '', 1, 'exporting'),
 (2002, 'BACKUP',  'succeeded', 'alice backup', '', 'alice', now() - '3 h'::interval, now() - '3 h'::interval, now() - '1 h'::interval, now(), 1, '', 1, NULL),
 (2003, 'RESTORE', 'failed',    'bob restore', '', 'bob', now() - '4 h'::interval, now() - '4 h'::interval, now() - '2 h'::interval, now(), 0.1, 'boom', 1, NULL),
 (2004, 'BACKUP',  'succeeded', 'alice old backup', '', 'alice', now() - '3 days'::interval, now() - '3 days'::interval, now() - '2 days'::interval, now() - '2 days'::interval, 1, '', 1, NULL),
 (2005, 'BACKUP',  'pending',   'bob pending', '', 'bob', now() - '5 min'::interval, NULL, NULL, now(), 0, '', NULL, NULL);
SQL

my @COLS = qw(job_id job_type description statement user_name status running_status created started finished modified
  fraction_completed error coordinator_id trace_id execution_errors);
my @TYPES = (20, 25, 25, 25, 25, 25, 25, 1184, 1184, 1184, 1184, 701, 25, 20, 20, 1009);

my %conn;
sub conn_as
{
	my ($user) = @_;
	return $conn{$user} //= do { my $c = $pgbr->raw_connect; $c->startup(params => { user => $user }); $c };
}
sub q_as { my ($user, $sql) = @_; return conn_as($user)->simple_query($sql) }
sub ids { my ($r) = @_; return [ map { $_->[0] } @{ $r->{rows} } ] }

# --- SHOW JOBS ----------------------------------------------------------------
my $r = q_as('postgres', 'SHOW JOBS');
ok(!$r->{error}, 'SHOW JOBS runs') or diag(explain $r->{error});
is_deeply($r->{columns}, \@COLS, 'SHOW JOBS column names');
is_deeply($r->{coltypes}, \@TYPES, 'SHOW JOBS column types');
is_deeply(ids($r), [ 2001, 2005, 2002, 2003 ], 'listing: running, pending, then finished newest first; old job hidden');
is_deeply($r->{tags}, ['SHOW JOBS 4'], 'tag SHOW JOBS 4');
is($r->{types}, 'TDDDDCZ', 'message sequence of SHOW JOBS');
is($r->{status}, 'I', 'idle after SHOW JOBS');
my ($j2001) = grep { $_->[0] == 2001 } @{ $r->{rows} };
is(length($j2001->[2]), 100, 'listing truncates the description to 100 characters');
is($j2001->[3], 'BACKUP INTO $1', 'statement column');
is($j2001->[4], 'postgres', 'user_name column');
is($j2001->[5], 'running', 'status column');
is($j2001->[6], 'exporting', 'running_status column');
like($j2001->[7], qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/, 'created printed as the session prints timestamptz (ISO, UTC)');
is($j2001->[9], undef, 'finished is NULL');
is($j2001->[11], '0.5', 'fraction_completed');
is($j2001->[13], '1', 'coordinator_id');
is($j2001->[14], undef, 'trace_id NULL');
is($j2001->[15], '{}', 'execution_errors empty array');

$r = q_as('postgres', 'SHOW JOB 2001');
is_deeply(ids($r), [2001], 'SHOW JOB 2001');
is($r->{rows}[0][2], $long, 'SHOW JOB shows the full description');
is_deeply($r->{tags}, ['SHOW JOBS 1'], 'SHOW JOB tag');
is_deeply(ids(q_as('postgres', 'SHOW JOB 2004')), [2004], 'SHOW JOB shows an old job by id');
$r = q_as('postgres', 'SHOW JOB 999999');
is_deeply([ ids($r), $r->{tags} ], [ [], ['SHOW JOBS 0'] ], 'SHOW JOB of an unknown id: no rows, tag SHOW JOBS 0');
is_deeply(ids(q_as('postgres', 'SHOW JOBS SELECT 2003 UNION ALL SELECT 2002')), [ 2002, 2003 ], 'SHOW JOBS <select> in display order');
is_deeply(ids(q_as('postgres', "SHOW JOBS SELECT id FROM pgbr.jobs WHERE user_name = 'bob'")), [ 2005, 2003 ],
	'SHOW JOBS <select> from the jobs table');
is_deeply(ids(q_as('postgres', "/* leading comment */ show jobs;")), [ 2001, 2005, 2002, 2003 ], 'lower case, comment and semicolon');

# Timestamps follow the session's DateStyle and TimeZone.
{
	my $c = $pgbr->raw_connect;
	$c->startup(params => { DateStyle => 'Postgres, MDY', TimeZone => 'PST8PDT' });
	my $ts = $c->simple_query('SHOW JOB 2004')->{rows}[0][7];
	my $direct = $pg->safe_psql("SET DateStyle = 'Postgres, MDY'; SET TimeZone = 'PST8PDT'; SELECT created FROM pgbr.jobs WHERE id = 2004");
	is($ts, $direct, 'SHOW JOB prints timestamps in the session DateStyle/TimeZone');
	my $r = $c->simple_query("SET TimeZone = 'Asia/Tokyo'; SET DateStyle = 'ISO'");
	$ts = $c->simple_query('SHOW JOB 2004')->{rows}[0][7];
	$direct = $pg->safe_psql("SET DateStyle = 'ISO'; SET TimeZone = 'Asia/Tokyo'; SELECT created FROM pgbr.jobs WHERE id = 2004");
	is($ts, $direct, 'SHOW JOB follows SET TimeZone / DateStyle made in the session');
	$c->close;
}

# --- visibility -----------------------------------------------------------------
is_deeply(ids(q_as('alice', 'SHOW JOBS')), [2002], 'alice sees only her recent job');
is_deeply(ids(q_as('alice', 'SHOW JOB 2004')), [2004], 'alice sees her old job by id');
is_deeply(ids(q_as('alice', 'SHOW JOB 2003')), [], "alice does not see bob's job by id");
is_deeply(ids(q_as('alice', 'SHOW JOBS SELECT 2003 UNION ALL SELECT 2002')), [2002], "alice's SHOW JOBS <select> is filtered");
is_deeply(ids(q_as('bob', 'SHOW JOBS')), [ 2005, 2003 ], 'bob sees only his jobs');
is_deeply(ids(q_as('carol', 'SHOW JOBS')), [ 2001, 2005, 2002, 2003 ], 'carol (member of --admin-role) sees all jobs');

# --- syntax errors and their positions ------------------------------------------------
sub syntax_error_ok
{
	my ($sql, $msg, $pos_of, $name) = @_;
	my $r = q_as('postgres', $sql);
	my $e = $r->{error} // {};
	my $want_pos;
	if (defined $pos_of)
	{
		# Position in characters, 1-based, like PostgreSQL; 'END' = end of input.
		my $chars = $sql;
		utf8::decode($chars);
		$want_pos = $pos_of eq 'END' ? length($chars) + 1 : index($chars, $pos_of) + 1;
	}
	subtest $name => sub {
		is($e->{C}, '42601', 'SQLSTATE 42601');
		is($e->{S}, 'ERROR', 'severity ERROR');
		is($e->{M}, $msg, 'message');
		is($e->{P}, $want_pos, 'position') if defined $want_pos;
		is(scalar(@{ $r->{errors} }), 1, 'exactly one error');
		is($r->{types}, 'EZ', 'nothing but the error');
		is($r->{status}, 'I', 'idle after the error');
	};
}

syntax_error_ok('BACKUP INTO', 'syntax error at end of input', 'END', 'BACKUP INTO: end of input');
syntax_error_ok("BACKUP INTO 'nodelocal://1/x' WITH bogus_option", 'syntax error at or near "bogus_option"', 'bogus_option',
	'unknown BACKUP option');
syntax_error_ok("  \n/* c */ BACKUP INTO 'nodelocal://1/x'\n   WITH\n  bogus_option", 'syntax error at or near "bogus_option"', 'bogus_option',
	'position counts leading space, comments and newlines');
syntax_error_ok("BACKUP INTO 'nodelocal://1/é€ü' WITH bogus_option", 'syntax error at or near "bogus_option"', 'bogus_option',
	'position counts characters, not bytes');
syntax_error_ok("RESTORE FROM LATEST IN 'nodelocal://1/x' WITH bogus_option", 'syntax error at or near "bogus_option"', 'bogus_option',
	'unknown RESTORE option');
syntax_error_ok('SHOW JOBS 42', 'syntax error at or near "42"', '42', 'SHOW JOBS followed by a number');
syntax_error_ok("SHOW JOBS; BACKUP INTO", 'syntax error at end of input', 'END', 'error in the second statement: position in the whole string');
syntax_error_ok("BACKUP INTO 'nodelocal://1/x' WITH detached, detached", 'detached option specified multiple times', undef,
	'repeated option');

# --- a query mixing ours with forwarded statements ------------------------------------
for my $sql ('CREATE TABLE mixed1 (a int); SHOW JOBS', 'SHOW JOBS; CREATE TABLE mixed1 (a int)',
	"INSERT INTO pgbr.jobs (id, job_type, user_name) VALUES (3001, 'BACKUP', 'postgres'); BACKUP INTO 'nodelocal://1/x' WITH detached")
{
	my $r = q_as('postgres', $sql);
	subtest "mixed: $sql" => sub {
		is(scalar(@{ $r->{errors} }), 1, 'one error');
		is($r->{types}, 'EZ', 'nothing executed, nothing returned');
		is($r->{status}, 'I', 'idle');
		ok($r->{error}{C} && $r->{error}{M}, 'error has SQLSTATE and message: ' . join(' ', map { $_ // '' } $r->{error}{C}, $r->{error}{M}));
	};
}
is($pg->safe_psql("SELECT to_regclass('mixed1') IS NULL"), 't', 'mixed query created no table');
is($pg->safe_psql('SELECT count(*) FROM pgbr.jobs WHERE id = 3001'), '0', 'mixed query inserted no row');

# --- not implemented yet ----------------------------------------------------------------
$r = q_as('postgres', "BACKUP DATABASE x TO 'nodelocal://1/x'");
is_deeply([ $r->{error}{C}, $r->{error}{M}, $r->{types} ], [ '0A000', 'BACKUP ... TO is not implemented yet', 'EZ' ], 'BACKUP ... TO: not implemented yet');
$r = q_as('postgres', "RESTORE TABLE t FROM LATEST IN 'nodelocal://1/x' WITH kms = 'aws-kms:///k'");
is_deeply([ $r->{error}{C}, $r->{error}{M} ], [ '0A000', 'RESTORE with encryption, EXECUTION LOCALITY, virtual clusters or deferred copy is not implemented yet' ], 'RESTORE ... WITH kms: not implemented yet');
for my $sql ("RESTORE SYSTEM USERS FROM LATEST IN 'nodelocal://1/x' WITH detached",
	"SHOW BACKUP FILES FROM LATEST IN 'nodelocal://1/x'", 'PAUSE JOBS FOR SCHEDULE 2001', 'RESUME JOBS FOR SCHEDULES SELECT 2001', 'CANCEL JOBS FOR SCHEDULE 2001',
	'SHOW SCHEDULES', "CREATE SCHEDULE s1 FOR BACKUP INTO 'nodelocal://1/x' RECURRING '\@daily'",
	"CREATE EXTERNAL CONNECTION c1 AS 'nodelocal://1/x'")
{
	$r = q_as('postgres', $sql);
	is_deeply([ $r->{error}{C}, $r->{types} ], [ '0A000', 'EZ' ], "$sql: 0A000") or diag(explain $r->{error});
	like($r->{error}{M} // '', qr/^[A-Z][A-Za-z .]* is not implemented yet$/, "$sql: message " . ($r->{error}{M} // ''));
}

# --- transaction blocks ---------------------------------------------------------------------
{
	my $c = conn_as('postgres');
	my @steps = (
		[ 'BEGIN', 'T' ],
		[ 'SHOW JOBS', 'T' ],
		[ 'CREATE TABLE txn1 (a int)', 'T' ],
		[ 'SHOW JOB 2001', 'T' ],
		[ 'INSERT INTO txn1 VALUES (1)', 'T' ],
		[ "SHOW JOBS SELECT 2002", 'T' ],
		[ 'COMMIT', 'I' ]);
	my @got = map { my $r = $c->simple_query($_->[0]); ($r->{error} ? 'error' : '') . $r->{status} } @steps;
	is_deeply(\@got, [ map { $_->[1] } @steps ], 'transaction status kept across forwarded and local statements');
	is($pg->safe_psql('SELECT count(*) FROM txn1'), '1', 'the transaction committed');

	for my $stmt ([ 'BACKUP', "BACKUP INTO 'nodelocal://1/x'" ], [ 'RESTORE', "RESTORE FROM LATEST IN 'nodelocal://1/x'" ])
	{
		$c->simple_query('BEGIN');
		my $r = $c->simple_query($stmt->[1]);
		is_deeply([ $r->{error}{C}, $r->{error}{M}, $r->{status} ],
			[ '25001', "$stmt->[0] cannot be used inside a multi-statement transaction without DETACHED option", 'E' ],
			"$stmt->[0] in a transaction block: 25001, transaction failed");
		$r = $c->simple_query('SELECT 1');
		is($r->{error}{C}, '25P02', "upstream agrees the transaction failed after $stmt->[0]");
		is($c->simple_query('ROLLBACK')->{status}, 'I', 'ROLLBACK');
	}

	$c->simple_query('BEGIN');
	$r = $c->simple_query("BACKUP DATABASE x TO 'nodelocal://1/x' WITH detached");
	is($r->{error}{C}, '0A000', 'BACKUP WITH detached in a transaction: not 25001 but not implemented');
	$c->simple_query('ROLLBACK');

	$c->simple_query('BEGIN');
	$r = $c->simple_query('SELECT 1/0');
	is($r->{status}, 'E', 'failed transaction');
	for my $sql ('SHOW JOBS', 'SHOW JOB 2001', "BACKUP INTO 'nodelocal://1/x' WITH detached")
	{
		$r = $c->simple_query($sql);
		is_deeply([ $r->{error}{C}, $r->{error}{M}, $r->{status}, $r->{types} ],
			[ '25P02', 'current transaction is aborted, commands ignored until end of transaction block', 'E', 'EZ' ],
			"$sql in a failed transaction: 25P02");
	}
	is($c->simple_query('ROLLBACK')->{status}, 'I', 'ROLLBACK of the failed transaction');
	is_deeply($c->simple_query('SHOW JOB 2005')->{rows}[0][0], 2005, 'SHOW JOB works after ROLLBACK');
}

# --- extended protocol ------------------------------------------------------------------------
{
	my $c = conn_as('postgres');
	$r = $c->extended_query('SHOW JOB $1', ['2002'], describe => 1);
	is($r->{types}, '12TDCZ', 'extended SHOW JOB $1: Parse, Bind, Describe, Execute, Sync');
	is_deeply(ids($r), [2002], 'SHOW JOB $1 with a text parameter');
	is_deeply($r->{columns}, \@COLS, 'Describe portal gives the columns');
	is_deeply($r->{tags}, ['SHOW JOBS 1'], 'extended SHOW JOB tag');

	$c->parse('sj', 'SHOW JOB $1', 20);
	$c->describe('S', 'sj');
	$c->sync;
	$r = PgbrTest::Raw::summarize($c->read_until_ready);
	is($r->{types}, '1tTZ', 'Describe statement: ParameterDescription and RowDescription');
	is_deeply($r->{params}, [20], 'parameter typed int8');
	is_deeply($r->{coltypes}, \@TYPES, 'Describe statement gives the column types');
	for my $id (2001, 2003)
	{
		$c->bind('', 'sj', [$id]);
		$c->execute('', 0);
	}
	$c->sync;
	$r = PgbrTest::Raw::summarize($c->read_until_ready);
	is($r->{types}, '2DC2DCZ', 'named statement bound twice');
	is_deeply(ids($r), [ 2001, 2003 ], 'each Bind uses its own parameter');

	$r = $c->extended_query('SHOW JOBS SELECT $1::int8 UNION ALL SELECT $2::int8', [ '2003', '2005' ]);
	is_deeply(ids($r), [ 2005, 2003 ], 'SHOW JOBS <select> with $1 and $2');

	$r = $c->extended_query('BACKUP DATABASE x TO $1', ['nodelocal://1/x']);
	is($r->{error}{C}, '0A000', 'BACKUP DATABASE x TO $1: parses, then not implemented');
	is($r->{status}, 'I', 'idle after');

	$r = $c->extended_query('BACKUP INTO', []);
	is_deeply([ $r->{types}, $r->{error}{C}, $r->{error}{P} ], [ 'EZ', '42601', '12' ], 'syntax error at Parse, rest skipped to Sync');

	$r = $c->extended_query('SHOW JOB $1', [undef]);
	ok(!$r->{error} || $r->{error}{C} =~ /^22/, 'SHOW JOB NULL: no rows or a data error, not a crash');
	is($r->{status}, 'I', 'idle after SHOW JOB NULL');

	$r = $c->extended_query('SHOW JOB $1', ['not a number']);
	is($r->{error}{C}, '22P02', 'SHOW JOB with a non-numeric parameter: 22P02');

	# Execute with a row limit (drivers' fetch size) suspends the portal.
	$c->parse('', 'SHOW JOBS');
	$c->bind('', '', []);
	$c->execute('', 2);
	$c->execute('', 0);
	$c->sync;
	$r = PgbrTest::Raw::summarize($c->read_until_ready);
	is($r->{types}, '12DDsDDCZ', 'Execute with a row limit suspends the portal, the next Execute finishes it');
	is_deeply(ids($r), [ 2001, 2005, 2002, 2003 ], 'all rows across the two Executes, in order');
	is($c->simple_query('SELECT 1')->{rows}[0][0], '1', 'session still in sync');
}

$_->close for values %conn;
$pgbr->stop_ok;
done_testing();
