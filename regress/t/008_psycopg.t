#!/usr/bin/perl
# psycopg 3 (extended query protocol, Debian's python3-psycopg, which loads
# only with /usr/bin/python3) through pgbr: SHOW JOBS and forwarded SELECTs in
# one session, $n parameters, prepared statements, pipeline mode,
# transactions and the errors of our statements as psycopg exceptions.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use JSON::PP;

my $python = '/usr/bin/python3';
plan skip_all => "$python not found" unless -x $python;
my ($prc) = run_cmd([ $python, '-c', 'import psycopg' ]);
plan skip_all => 'python3-psycopg is not installed' if $prc;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);

# Two jobs of postgres, one of alice, inserted directly upstream.
ok($pgbr->wait_catalog, 'pgbr created pgbr.jobs at start') or do { diag('no pgbr.jobs: the rest of this file needs it'); done_testing(); exit 1 };
$pg->safe_psql(<<'SQL');
INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, created, started, fraction_completed)
VALUES (1001, 'BACKUP', 'running', 'BACKUP INTO ''nodelocal://1/a''', 'BACKUP INTO $1', 'postgres', now(), now(), 0.25),
       (1002, 'RESTORE', 'pending', 'RESTORE FROM LATEST IN ''nodelocal://1/a''', '', 'postgres', now(), NULL, 0),
       (1003, 'BACKUP', 'running', 'alice''s backup', '', 'alice', now(), now(), 0.5);
CREATE TABLE pyt (id int, v text);
SQL

# The script runs in sections, each with its own connection and a 20 s
# alarm, and prints one JSON object per result as it goes: a hang or an
# error in one section fails only the checks that depend on it.
my $script = <<'PY';
import json, signal, sys
import psycopg

dsn = sys.argv[1]

def emit(key, value):
    print(json.dumps({key: value}, default=str), flush=True)

def err_info(e):
    d = e.diag
    return {"class": type(e).__name__, "sqlstate": e.sqlstate, "message": d.message_primary,
            "position": d.statement_position, "severity": d.severity_nonlocalized}

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    raise Timeout("section timed out after 20 s")

signal.signal(signal.SIGALRM, on_alarm)

def section(name):
    def wrap(fn):
        signal.alarm(20)
        try:
            fn()
        except BaseException as e:
            emit("section_error_" + name, "%s: %s" % (type(e).__name__, e))
        finally:
            signal.alarm(0)
        return fn
    return wrap

def try_err(key, cur, sql, params=None):
    try:
        cur.execute(sql, params)
        emit(key, "no error")
    except psycopg.Error as e:
        emit(key, err_info(e))

@section("show_jobs")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute("SHOW JOBS")
        emit("show_jobs_columns", [c.name for c in cur.description])
        emit("show_jobs_type_oids", [c.type_code for c in cur.description])
        rows = cur.fetchall()
        emit("show_jobs_ids", sorted(r[0] for r in rows))
        emit("show_jobs_statusmessage", cur.statusmessage)
        r = {r[0]: r for r in rows}.get(1001)
        emit("job_1001", None if r is None else {"job_type": r[1], "status": r[5], "fraction": r[11],
             "created_is_datetime": type(r[7]).__name__, "finished": r[9], "execution_errors": r[15]})
        cur.execute("SELECT %s::int + 1, %s::text", (41, "forwarded"))
        emit("select", list(cur.fetchone()))
        cur.execute("SHOW JOB %s", (1002,))
        emit("show_job_param", [list(map(str, r[:2])) for r in cur.fetchall()])
        cur.execute("SHOW JOB %s", ("1003",))
        emit("show_job_text_param", [r[0] for r in cur.fetchall()])

@section("prepared")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        counts = []
        for i in range(8):
            cur.execute("SHOW JOBS", prepare=True)
            counts.append(len(cur.fetchall()))
        emit("prepared_show_jobs", counts)
        sel = []
        for i in range(8):
            cur.execute("SELECT %s::int * 2", (i,), prepare=True)
            sel.append(cur.fetchone()[0])
        emit("prepared_select", sel)

@section("errors")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        try_err("backup", cur, "BACKUP DATABASE x TO 'nodelocal://1/b'")
        try_err("backup_param", cur, "BACKUP DATABASE x TO %s WITH detached", ("nodelocal://1/c",))
        try_err("syntax", cur, "BACKUP INTO")
        cur.execute("SELECT 'still usable'")
        emit("after_errors", cur.fetchone()[0])

@section("pipeline")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.pipeline():
            c1 = conn.cursor(); c1.execute("SELECT 'first'")
            c2 = conn.cursor(); c2.execute("SHOW JOB %s", (1001,))
            c3 = conn.cursor(); c3.execute("INSERT INTO pyt VALUES (%s, %s)", (1, "piped"))
            c4 = conn.cursor(); c4.execute("SELECT count(*) FROM pyt")
        emit("pipeline", [c1.fetchone()[0], c2.fetchone()[0], c3.rowcount, c4.fetchone()[0]])

@section("copy")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor()
        with cur.copy("COPY pyt FROM STDIN") as cp:
            for i in range(2, 1002):
                cp.write_row((i, "copied %d" % i))
        cur.execute("SELECT count(*), sum(id) FROM pyt WHERE v LIKE 'copied%%'")
        emit("copy", list(cur.fetchone()))

@section("transaction")
def _():
    # Not autocommit: psycopg opens a transaction block itself.
    with psycopg.connect(dsn) as conn:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        cur.execute("SHOW JOBS")
        emit("txn_show_jobs_count", len(cur.fetchall()))
        emit("txn_status_after_show_jobs", conn.info.transaction_status.name)
        try_err("txn_backup", cur, "BACKUP INTO 'nodelocal://1/d'")
        emit("txn_status_after_error", conn.info.transaction_status.name)
        try_err("aborted_show_jobs", cur, "SHOW JOBS")
        conn.rollback()
        cur.execute("SHOW JOBS")
        emit("after_rollback_count", len(cur.fetchall()))
        conn.commit()
        emit("txn_status_end", conn.info.transaction_status.name)

@section("alice")
def _():
    with psycopg.connect(dsn.replace("user=postgres", "user=alice"), autocommit=True) as conn:
        emit("alice_jobs", [r[0] for r in conn.execute("SHOW JOBS").fetchall()])

@section("binary")
def _():
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor(binary=True)
        cur.execute("SHOW JOB %s", (1001,))
        r = cur.fetchone()
        emit("binary", [r[0], r[1], r[11]])
PY

my $dir = tempdir();
spew("$dir/t.py", $script);
my ($rc, $out, $err) = run_cmd([ $python, "$dir/t.py", $pgbr->connstr ], timeout => 240);
is($rc, 0, 'psycopg script ran') or diag("stdout: $out\nstderr: $err");
my $r = {};
# A field of an error result (a hash), or the string the script recorded.
sub f { my ($v, $k) = @_; return ref $v eq 'HASH' ? $v->{$k} : $v }
for my $line (split /\n/, $out)
{
	my $kv = eval { decode_json($line) } or next;
	%$r = (%$r, %$kv);
}
for my $k (sort grep { /^section_error_/ } keys %$r)
{
	diag("psycopg $k: $r->{$k}") unless $k eq 'section_error_binary';
}
diag("psycopg stderr: $err") if $err;

is_deeply($r->{show_jobs_columns},
	[qw(job_id job_type description statement user_name status running_status created started finished modified fraction_completed error coordinator_id trace_id execution_errors)],
	'SHOW JOBS columns');
is_deeply($r->{show_jobs_type_oids}, [ 20, 25, 25, 25, 25, 25, 25, 1184, 1184, 1184, 1184, 701, 25, 20, 20, 1009 ], 'SHOW JOBS column types');
is_deeply($r->{show_jobs_ids}, [ 1001, 1002, 1003 ], 'superuser sees all jobs');
is($r->{show_jobs_statusmessage}, 'SHOW JOBS 3', 'command tag SHOW JOBS 3');
is_deeply($r->{job_1001},
	{ job_type => 'BACKUP', status => 'running', fraction => 0.25, created_is_datetime => 'datetime', finished => undef, execution_errors => [] },
	'job values decoded by psycopg with the right types');
is_deeply($r->{select}, [ 42, 'forwarded' ], 'forwarded SELECT with parameters in the same session');
is_deeply($r->{show_job_param}, [ [ '1002', 'RESTORE' ] ], 'SHOW JOB with an int parameter');
is_deeply($r->{show_job_text_param}, [1003], 'SHOW JOB with a text parameter');
is_deeply($r->{prepared_show_jobs}, [ (3) x 8 ], 'SHOW JOBS as a prepared statement, 8 times');
is_deeply($r->{prepared_select}, [ map { $_ * 2 } 0 .. 7 ], 'prepared forwarded SELECT, 8 times');
is(f($r->{backup}, 'sqlstate'), '0A000', 'BACKUP: 0A000');
is(f($r->{backup}, 'class'), 'FeatureNotSupported', 'BACKUP: psycopg FeatureNotSupported');
is(f($r->{backup}, 'message'), 'BACKUP ... TO is not implemented yet', 'BACKUP: message');
is(f($r->{backup_param}, 'sqlstate'), '0A000', 'BACKUP with a $1 destination parses and answers 0A000');
is(f($r->{syntax}, 'sqlstate'), '42601', 'BACKUP syntax error: 42601');
is(f($r->{syntax}, 'message'), 'syntax error at end of input', 'syntax error message');
is(f($r->{syntax}, 'position'), '12', 'syntax error position');
is($r->{after_errors}, 'still usable', 'session usable after errors');
is_deeply($r->{pipeline}, [ 'first', 1001, 1, 1 ], 'pipeline mixing forwarded statements and SHOW JOB');
is_deeply($r->{copy}, [ 1000, 501500 ], 'COPY FROM STDIN through psycopg');
is($r->{txn_show_jobs_count}, 3, 'SHOW JOBS inside a transaction block');
is($r->{txn_status_after_show_jobs}, 'INTRANS', 'transaction still open after SHOW JOBS');
is(f($r->{txn_backup}, 'sqlstate'), '25001', 'BACKUP in a transaction: 25001');
is(f($r->{txn_backup}, 'message'), 'BACKUP cannot be used inside a multi-statement transaction without DETACHED option',
	'BACKUP in a transaction: message');
is($r->{txn_status_after_error}, 'INERROR', 'transaction failed after the error');
is(f($r->{aborted_show_jobs}, 'sqlstate'), '25P02', 'SHOW JOBS in a failed transaction: 25P02');
is($r->{after_rollback_count}, 3, 'SHOW JOBS after rollback');
is($r->{txn_status_end}, 'IDLE', 'idle at the end');
is_deeply($r->{alice_jobs}, [1003], 'alice sees only her job');

TODO:
{
	local $TODO = 'binary result format for our statements is beyond the issue';
	is_deeply($r->{binary}, [ 1001, 'BACKUP', 0.25 ], 'SHOW JOB with binary results requested')
	  or diag($r->{section_error_binary} // '');
}

$pgbr->stop_ok;
done_testing();
