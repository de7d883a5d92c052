#!/usr/bin/perl
# PAUSE / RESUME / CANCEL JOB(S), SHOW JOB(S) WHEN COMPLETE and job retention,
# through a real pgbr in front of a real PostgreSQL.
#
# The statements only change rows of pgbr.jobs (the node running a job reacts
# to them), so the jobs here are rows inserted as the superuser with the
# statuses and owners each check needs. Checked: every status change and
# no-op, the three refusals (55000), unknown ids (42704), other users' jobs
# (42501), atomicity of several ids, the <select> form with a real subquery
# and with $1 (psycopg 3), the ALL form, command tags, the pause reason and
# paused_from in payload; WHEN COMPLETE answering once another session makes
# the job terminal, its cancel (57014) and its client going away; retention
# deleting only old terminal rows (jobs_retention_tool).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use IO::Select;
use Time::HiRes qw(sleep time);

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--admin-role', 'backup_admins' ]);
ok($pgbr->wait_catalog, 'pgbr created its catalog');
$pg->safe_psql('GRANT backup_admins TO carol');

my %conn;
sub conn_as
{
	my ($user) = @_;
	return $conn{$user} //= do { my $c = $pgbr->raw_connect; $c->startup(params => { user => $user }); $c };
}
sub q_as { my ($user, $sql) = @_; return conn_as($user)->simple_query($sql) }
sub err_of { my ($r) = @_; return $r->{error} ? "$r->{error}{C} $r->{error}{M}" : 'no error' }

# A job row: id, status, owner, type; running jobs hold a lease of node 1.
sub job
{
	my ($id, $status, $user, %o) = @_;
	my $type = $o{type} // 'BACKUP';
	my $payload = defined $o{payload} ? "'$o{payload}'" : 'NULL';
	my $finished = $o{finished} // 'NULL';
	my $modified = $o{modified} // "now() - interval '1 hour'";
	$pg->safe_psql("INSERT INTO pgbr.jobs (id, job_type, status, user_name, created, started, finished, modified,
	                                       coordinator_id, lease_expires, payload)
	                VALUES ($id, '$type', '$status', '$user', now() - interval '2 hours', now() - interval '2 hours',
	                        $finished, $modified, 1, now() + interval '1 minute', $payload)");
}

# status|coordinator|lease|paused_from|pause_reason|modified just now?
sub row
{
	my ($id) = @_;
	return $pg->safe_psql("SELECT concat_ws('|', status, coalesce(coordinator_id::text, '-'),
	                              CASE WHEN lease_expires IS NULL THEN '-' ELSE 'lease' END,
	                              coalesce(payload->>'paused_from', '-'), coalesce(payload->>'pause_reason', '-'),
	                              CASE WHEN modified > now() - interval '1 minute' THEN 'now' ELSE 'old' END)
	                         FROM pgbr.jobs WHERE id = $id");
}

# Run $sql as $user; expect the tag and no rows (or the error "C M").
sub expect_tag
{
	my ($user, $sql, $tag, $name) = @_;
	my $r = q_as($user, $sql);
	if ($r->{error})
	{
		fail($name);
		diag("$sql: " . err_of($r));
		return;
	}
	is_deeply([ $r->{tags}, $r->{types}, $r->{status} ], [ [$tag], 'CZ', 'I' ], $name);
}

# As superuser: $sql acts on one job ($tag), after which row($id) is $row.
sub acts
{
	my ($sql, $tag, $id, $row, $name) = @_;
	expect_tag('postgres', $sql, $tag, $name);
	is(row($id), $row, "$name: $row");
}

sub expect_error
{
	my ($user, $sql, $error, $name) = @_;
	is(err_of(q_as($user, $sql)), $error, $name);
}

# ---------------------------------------------------------------------------
# PAUSE
# ---------------------------------------------------------------------------

job(101, 'pending', 'alice');
job(102, 'running', 'alice');
job(103, 'reverting', 'alice');
job(104, 'paused', 'alice', payload => '{"paused_from": "running"}');
job(105, 'pause-requested', 'alice', payload => '{"paused_from": "running"}');
my %terminal = (106 => 'succeeded', 107 => 'failed', 108 => 'canceled', 109 => 'revert-failed');
job($_, $terminal{$_}, 'alice', finished => 'now()') for sort keys %terminal;
job(110, 'cancel-requested', 'alice');

acts('PAUSE JOB 101', 'PAUSE JOBS 1', 101, 'pause-requested|1|lease|pending|-|now', 'PAUSE JOB of a pending job: tag PAUSE JOBS 1, no rows');
acts("PAUSE JOB 102 WITH REASON = 'maintenance window'", 'PAUSE JOBS 1', 102, 'pause-requested|1|lease|running|maintenance window|now', 'PAUSE JOB ... WITH REASON');
acts('PAUSE JOB 100 + 3', 'PAUSE JOBS 1', 103, 'pause-requested|1|lease|reverting|-|now', 'PAUSE JOB <expression> (evaluated upstream)');
acts('PAUSE JOB 104', 'PAUSE JOBS 1', 104, 'paused|1|lease|running|-|old', 'PAUSE of a paused job: a no-op that counts');
acts("PAUSE JOB 105 WITH REASON = 'again'", 'PAUSE JOBS 1', 105, 'pause-requested|1|lease|running|-|old', 'PAUSE of a pause-requested job: no-op');
for my $id (sort keys %terminal, 110)
{
	my $status = $terminal{$id} // 'cancel-requested';
	expect_error('postgres', "PAUSE JOB $id", "55000 job with status $status cannot be requested to be paused",
		"PAUSE of a $status job: 55000");
}
is($pg->safe_psql("SELECT count(*) FROM pgbr.jobs WHERE id BETWEEN 106 AND 110 AND modified > now() - interval '1 minute'"),
	'0', 'the refused jobs were not touched');

# ---------------------------------------------------------------------------
# RESUME
# ---------------------------------------------------------------------------

acts('RESUME JOB 104', 'RESUME JOBS 1', 104, 'running|-|-|-|-|now', 'RESUME JOB of a paused job');
$pg->safe_psql(q{UPDATE pgbr.jobs SET status = 'paused' WHERE id IN (101, 103)});
acts('RESUME JOB 101', 'RESUME JOBS 1', 101, 'pending|-|-|-|-|now', 'RESUME of a job paused while pending');
acts('RESUME JOB 103', 'RESUME JOBS 1', 103, 'reverting|-|-|-|-|now', 'RESUME of a job paused while reverting');
acts('RESUME JOB 102', 'RESUME JOBS 1', 102, 'running|1|lease|-|maintenance window|now', 'RESUME of a pause-requested job');
$pg->safe_psql(q{UPDATE pgbr.jobs SET modified = now() - interval '1 hour' WHERE id IN (102, 103)});
expect_tag('postgres', 'RESUME JOB 102', 'RESUME JOBS 1', 'RESUME of a running job: no-op');
expect_tag('postgres', 'RESUME JOB 103', 'RESUME JOBS 1', 'RESUME of a reverting job: no-op');
is(row(102) . ' ' . row(103), 'running|1|lease|-|maintenance window|old reverting|-|-|-|-|old', 'both unchanged');
for my $id (101, sort(keys %terminal), 110)
{
	my $status = $id == 101 ? 'pending' : $terminal{$id} // 'cancel-requested';
	expect_error('postgres', "RESUME JOB $id", "55000 job with status $status cannot be resumed",
		"RESUME of a $status job: 55000");
}

# ---------------------------------------------------------------------------
# CANCEL
# ---------------------------------------------------------------------------

job(201, 'pending', 'alice');
job(202, 'running', 'alice');
job(203, 'paused', 'alice', payload => '{"paused_from": "running"}');
job(204, 'pause-requested', 'alice', payload => '{"paused_from": "running"}');
job(205, 'reverting', 'alice');
acts('CANCEL JOB 201', 'CANCEL JOBS 1', 201, 'cancel-requested|1|lease|-|-|now', 'CANCEL JOB of a pending job');
acts('CANCEL JOB 202', 'CANCEL JOBS 1', 202, 'cancel-requested|1|lease|-|-|now', 'CANCEL JOB of a running job');
acts('CANCEL JOB 203', 'CANCEL JOBS 1', 203, 'cancel-requested|-|-|running|-|now', 'CANCEL JOB of a paused job');
acts('CANCEL JOB 204', 'CANCEL JOBS 1', 204, 'cancel-requested|1|lease|running|-|now', 'CANCEL JOB of a pause-requested job');
expect_tag('postgres', 'CANCEL JOB 108', 'CANCEL JOBS 1', 'CANCEL of a canceled job: no-op');
expect_tag('postgres', 'CANCEL JOB 110', 'CANCEL JOBS 1', 'CANCEL of a cancel-requested job: no-op');
is(row(108) . ' ' . row(110), 'canceled|1|lease|-|-|old cancel-requested|1|lease|-|-|old', 'both unchanged');
for my $id (106, 107, 109, 205)
{
	my $status = $terminal{$id} // 'reverting';
	expect_error('postgres', "CANCEL JOB $id", "55000 job with status $status cannot be requested to be canceled",
		"CANCEL of a $status job: 55000");
}

# ---------------------------------------------------------------------------
# Unknown ids, several ids, NULL, the <select> form, FOR SCHEDULE(S)
# ---------------------------------------------------------------------------

expect_error('postgres', 'PAUSE JOB 999999', '42704 job with ID 999999 does not exist', 'unknown id: 42704');
expect_error('postgres', "PAUSE JOB 'abc'", '22P02 invalid input syntax for type bigint: "abc"', 'not an id: 22P02');
expect_tag('postgres', "PAUSE JOB '101'", 'PAUSE JOBS 1', "PAUSE JOB '101': a string literal is taken as the id");
expect_tag('postgres', 'PAUSE JOB NULL', 'PAUSE JOBS 0', 'PAUSE JOB NULL acts on no job');

job(301, 'running', 'bob');
job(302, 'running', 'bob');
job(303, 'succeeded', 'bob', finished => 'now()');
expect_error('postgres', 'PAUSE JOBS SELECT unnest(ARRAY[301, 303, 302])',
	'55000 job with status succeeded cannot be requested to be paused', 'PAUSE JOBS with one terminal job: 55000');
is(row(301) . ' ' . row(302), 'running|1|lease|-|-|old running|1|lease|-|-|old', '... and nothing changed (all checked first)');
expect_error('postgres', 'CANCEL JOBS VALUES (301), (999998)', '42704 job with ID 999998 does not exist',
	'CANCEL JOBS with an unknown id: 42704');
is(row(301), 'running|1|lease|-|-|old', '... and nothing changed');

expect_tag('postgres', "PAUSE JOBS (SELECT id FROM pgbr.jobs WHERE user_name = 'bob' AND status = 'running') WITH REASON = 'disk'",
	'PAUSE JOBS 2', 'PAUSE JOBS (SELECT id FROM pgbr.jobs WHERE ...): a real subquery');
is(row(301) . ' ' . row(302), 'pause-requested|1|lease|running|disk|now pause-requested|1|lease|running|disk|now',
	'both pause-requested with the reason');
expect_tag('postgres', 'RESUME JOBS SELECT x FROM (VALUES (301), (301), (302), (NULL)) v(x)', 'RESUME JOBS 2',
	'RESUME JOBS <select> naming a job twice and a NULL: 2 jobs');
expect_error('postgres', 'CANCEL JOBS SELECT', '42601 the select of CANCEL JOBS must return the job ids in its first column',
	'a select without columns: 42601');

for my $stmt ('PAUSE JOBS FOR SCHEDULE 1', 'RESUME JOBS FOR SCHEDULES SELECT 1', 'CANCEL JOBS FOR SCHEDULE 1')
{
	my ($verb, $what) = $stmt =~ /^(\w+) JOBS FOR (SCHEDULES?)/;
	expect_error('postgres', $stmt, "0A000 $verb JOBS FOR $what is not implemented yet", "$stmt: 0A000");
}

# psql prints the command tag.
{
	my ($rc, $out, $err) = run_cmd([ pg_bindir() . '/psql', '-X', '-d', $pgbr->connstr, '-c', 'PAUSE JOB 301' ]);
	is($out, "PAUSE JOBS 1\n", 'psql shows the tag PAUSE JOBS 1') or diag($err);
	($rc, $out, $err) = run_cmd([ pg_bindir() . '/psql', '-X', '-d', $pgbr->connstr, '-c', 'RESUME JOB 301' ]);
	is($out, "RESUME JOBS 1\n", 'psql shows the tag RESUME JOBS 1') or diag($err);
}

# $1 through the extended protocol (psycopg 3, server-side binding).
SKIP:
{
	my $python = '/usr/bin/python3';
	my ($prc) = run_cmd([ $python, '-c', 'import psycopg' ]);
	skip 'python3-psycopg is not installed', 3 if $prc;
	my $script = <<'PY';
import sys, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    cur = conn.cursor()
    cur.execute("PAUSE JOB %s WITH REASON = %s", [301, "from psycopg"])
    print(cur.statusmessage)
    cur.execute("CANCEL JOBS SELECT id FROM pgbr.jobs WHERE user_name = %s AND status = %s", ["bob", "pause-requested"])
    print(cur.statusmessage)
    cur.execute("PAUSE JOBS SELECT id FROM pgbr.jobs WHERE id = %s WITH REASON = %s", [302, "second"])
    print(cur.statusmessage)
PY
	my ($rc, $out, $err) = run_cmd([ $python, '-c', $script, $pgbr->connstr ]);
	is($rc, 0, 'psycopg ran PAUSE JOB $1 WITH REASON = $2, CANCEL JOBS <select with $1, $2>') or diag($err);
	is($out, "PAUSE JOBS 1\nCANCEL JOBS 1\nPAUSE JOBS 1\n", 'psycopg: the command tags');
	is(row(301) . ' ' . row(302), 'cancel-requested|1|lease|running|from psycopg|now pause-requested|1|lease|running|second|now',
		'psycopg: the reason from $2, the select with $1 (and $1 with the reason $2 after it)');
}

# ---------------------------------------------------------------------------
# ALL <type> JOBS, privileges
# ---------------------------------------------------------------------------

$pg->safe_psql('DELETE FROM pgbr.jobs');
job(401, 'running', 'alice');
job(402, 'pending', 'bob');
job(403, 'succeeded', 'alice', finished => 'now()');
job(404, 'running', 'alice', type => 'RESTORE');
job(405, 'paused', 'bob', type => 'RESTORE');
expect_tag('alice', 'PAUSE ALL BACKUP JOBS', 'PAUSE JOBS 1', 'PAUSE ALL BACKUP JOBS as a user: only their own');
is(row(401) . ' ' . row(402), 'pause-requested|1|lease|running|-|now pending|1|lease|-|-|old', "alice's paused, bob's not");
expect_tag('postgres', 'PAUSE ALL BACKUP JOBS', 'PAUSE JOBS 1', 'PAUSE ALL BACKUP JOBS as superuser: every user, only those it changes');
is(row(402), 'pause-requested|1|lease|pending|-|now', "bob's paused now");
is(row(403), 'succeeded|1|lease|-|-|old', 'the succeeded one left alone (no error)');
expect_tag('carol', 'RESUME ALL RESTORE JOBS', 'RESUME JOBS 1', 'RESUME ALL RESTORE JOBS as an admin-role member');
is(row(405), 'running|-|-|-|-|now', 'the paused restore resumed');
expect_tag('postgres', 'CANCEL ALL RESTORE JOBS', 'CANCEL JOBS 2', 'CANCEL ALL RESTORE JOBS');
expect_tag('postgres', 'PAUSE ALL CHANGEFEED JOBS', 'PAUSE JOBS 0', 'PAUSE ALL CHANGEFEED JOBS: pgbr has none');
expect_tag('postgres', 'CANCEL ALL IMPORT JOBS', 'CANCEL JOBS 0', 'CANCEL ALL IMPORT JOBS: none');

job(501, 'running', 'alice');
job(502, 'running', 'bob');
expect_error('alice', 'PAUSE JOB 502', '42501 permission denied to pause job 502', "a user pausing another's job: 42501");
is(q_as('alice', 'CANCEL JOB 502')->{error}{D}, 'Job 502 belongs to role "bob"; only its owner and pgbr admins may cancel it.',
	'the detail names the owner');
expect_error('alice', 'CANCEL JOBS SELECT unnest(ARRAY[501, 502])', '42501 permission denied to cancel job 502',
	'one foreign job among several: 42501');
is(row(501) . ' ' . row(502), 'running|1|lease|-|-|old running|1|lease|-|-|old', 'nothing changed');
expect_tag('alice', 'PAUSE JOB 501', 'PAUSE JOBS 1', 'a user pausing their own job');
expect_tag('bob', 'CANCEL JOB 502', 'CANCEL JOBS 1', 'a user canceling their own job');
expect_tag('carol', 'RESUME JOB 501', 'RESUME JOBS 1', "an admin-role member resuming another user's job");
is(row(501) . ' ' . row(502), 'running|1|lease|-|-|now cancel-requested|1|lease|-|-|now', 'all three took effect');

# In a transaction block the change is pgbr's own, made at once.
{
	my $c = conn_as('alice');
	$c->simple_query('BEGIN');
	my $r = $c->simple_query('PAUSE JOB 501');
	is_deeply([ $r->{tags}, $r->{status} ], [ ['PAUSE JOBS 1'], 'T' ], 'PAUSE JOB inside a transaction block');
	$c->simple_query('ROLLBACK');
	is(row(501), 'pause-requested|1|lease|running|-|now', '... is not undone by ROLLBACK (it is not part of it)');
	$c->simple_query('BEGIN');
	$c->simple_query('SELECT 1/0');
	is(err_of($c->simple_query('RESUME JOB 501')),
		'25P02 current transaction is aborted, commands ignored until end of transaction block', 'in a failed transaction: 25P02');
	$c->simple_query('ROLLBACK');
}

# ---------------------------------------------------------------------------
# SHOW JOB(S) WHEN COMPLETE
# ---------------------------------------------------------------------------

$pg->safe_psql('DELETE FROM pgbr.jobs');
job(601, 'running', 'alice');
job(602, 'succeeded', 'alice', finished => "now() - interval '1 minute'");
job(603, 'running', 'bob');

my $r = q_as('alice', 'SHOW JOB WHEN COMPLETE 602');
is_deeply([ (map { $_->[0] } @{ $r->{rows} }), $r->{tags}[0] ], [ 602, 'SHOW JOBS 1' ], 'SHOW JOB WHEN COMPLETE of a finished job answers at once');
is(scalar @{ $r->{columns} }, 16, 'with the 16 columns of SHOW JOBS');

sub answered_within
{
	my ($c, $seconds) = @_;
	return IO::Select->new($c->socket)->can_read($seconds) ? 1 : 0;
}

{
	my $c = $pgbr->raw_connect;
	$c->startup(params => { user => 'alice' });
	my $t0 = time;
	$c->query('SHOW JOBS WHEN COMPLETE SELECT unnest(ARRAY[601, 602])');
	$c->query('SELECT 7');    # pipelined behind it
	is(answered_within($c, 1.5), 0, 'SHOW JOBS WHEN COMPLETE waits while job 601 runs');
	is(q_as('postgres', 'SHOW JOBS')->{tags}[0], 'SHOW JOBS 3', 'other sessions are served meanwhile');
	$pg->safe_psql("UPDATE pgbr.jobs SET status = 'failed', error = 'boom', finished = now() WHERE id = 601");
	my $w = PgbrTest::Raw::summarize($c->read_until_ready(10));
	is_deeply([ map { "$_->[0] $_->[5]" } @{ $w->{rows} } ], [ '601 failed', '602 succeeded' ],
		'... and answers with both rows once 601 failed in another session');
	is($w->{tags}[0], 'SHOW JOBS 2', 'tag SHOW JOBS 2');
	ok(time - $t0 < 6, 'within a poll interval or so');
	is(PgbrTest::Raw::summarize($c->read_until_ready(10))->{rows}[0][0], '7', 'then the query sent behind it');

	$c->query('SHOW JOB WHEN COMPLETE 603');
	is(answered_within($c, 1), 1, "another user's running job is not waited for (it is not visible): ...");
	my $w2 = PgbrTest::Raw::summarize($c->read_until_ready(10));
	is_deeply([ scalar @{ $w2->{rows} }, $w2->{tags}[0] ], [ 0, 'SHOW JOBS 0' ], '... no rows') or diag(explain $w2);
	$c->close;
}

# A cancel (CancelRequest) ends the wait with 57014; the session goes on.
{
	my $c = $pgbr->raw_connect;
	$c->startup(params => { user => 'bob' });
	$c->query('SHOW JOB WHEN COMPLETE 603');
	is(answered_within($c, 1.2), 0, 'bob waits for job 603');
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c->backend_pid, key => $c->cancel_key);
	my $w = PgbrTest::Raw::summarize($c->read_until_ready(10));
	is(err_of($w), '57014 canceling statement due to user request', 'a CancelRequest ends it: 57014');
	is($c->simple_query('SELECT 42')->{rows}[0][0], '42', 'the session still works');
	$c->close;
}

# The client goes away while waiting: its session (and upstream backend) go too.
{
	my $bobs = sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'bob'") };
	my $before = $bobs->();
	my $c = $pgbr->raw_connect;
	$c->startup(params => { user => 'bob' });
	$c->query('SHOW JOB WHEN COMPLETE 603');
	is(answered_within($c, 0.8), 0, 'bob waits again');
	is($bobs->(), $before + 1, 'with an upstream session of his own');
	$c->close;
	ok(wait_for(sub { $bobs->() == $before }, 10), 'after the client left, its upstream session is closed');
	is(q_as('postgres', 'SELECT 1')->{rows}[0][0], '1', 'pgbr serves on');
}

# ---------------------------------------------------------------------------
# Retention (catalog_delete_expired_jobs through jobs_retention_tool)
# ---------------------------------------------------------------------------

SKIP:
{
	my $tool = ($ENV{PGBR_UNIT_DIR} // '') . '/jobs_retention_tool';
	skip 'PGBR_UNIT_DIR/jobs_retention_tool is not built', 8 unless -x $tool;
	my $dsn = $pg->connstr(dbname => 'postgres', user => 'postgres');
	$pg->safe_psql('DELETE FROM pgbr.jobs');
	job(701, 'succeeded', 'alice', finished => "now() - interval '15 days'");
	job(702, 'failed', 'alice', finished => "now() - interval '20 days'");
	job(703, 'canceled', 'alice', modified => "now() - interval '30 days'");          # no finished time
	job(704, 'revert-failed', 'alice', finished => "now() - interval '15 days'");
	job(705, 'succeeded', 'alice', finished => "now() - interval '1 day'");
	job(706, 'running', 'alice', modified => "now() - interval '30 days'");
	job(707, 'paused', 'alice', modified => "now() - interval '30 days'");
	job(708, 'succeeded', 'alice', finished => "now() - interval '30 days'");          # a chain's full backup
	$pg->safe_psql("SELECT pg_create_physical_replication_slot('pgbr_708_1')");
	my $left = sub { $pg->safe_psql('SELECT string_agg(id::text, \',\' ORDER BY id) FROM pgbr.jobs') };

	my ($rc, $out, $err) = run_cmd([ $tool, $dsn, '14d' ]);
	is("$rc $out", "0 4\n", 'retention 14d deletes the four terminal jobs finished over 14 days ago') or diag($err);
	is($left->(), '705,706,707,708', 'left: the recent one, the unfinished ones, the one whose slot exists');
	($rc, $out, $err) = run_cmd([ $tool, $dsn, '0' ]);
	is("$rc $out", "0 0\n", 'retention 0 keeps everything');
	($rc, $out, $err) = run_cmd([ $tool, $dsn, '12h' ]);
	is("$rc $out", "0 1\n", 'retention 12h deletes the one finished a day ago');
	$pg->safe_psql("SELECT pg_drop_replication_slot('pgbr_708_1')");
	($rc, $out, $err) = run_cmd([ $tool, $dsn, '1209600' ]);
	is("$rc $out", "0 1\n", 'once its slot is gone, the old full backup goes too');
	is($left->(), '706,707', 'running and paused jobs stay, whatever their age');
	($rc, $out, $err) = run_cmd([ $tool, $dsn, 'two weeks' ]);
	is($rc, 2, 'a bad duration is refused');
	($rc, $out, $err) = run_cmd([ $tool, 'host=127.0.0.1 port=1 connect_timeout=2', '14d' ]);
	like($err, qr/^ERROR: 08006 could not connect to the catalog database/, 'an unreachable catalog: 08006');
}

$_->close for values %conn;
$pgbr->stop;
$pgbr->check_log_ok('pgbr');
done_testing();
