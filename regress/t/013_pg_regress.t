#!/usr/bin/perl
# Runs the pg_regress suite (regress/sql/*.sql against regress/expected/*.out)
# through pgbr: one TAP result per SQL file, the diffs printed on failure.
#
# The database pgbr_regress is created directly upstream before pgbr starts
# and is pgbr's catalog database here (--catalog-db), so the SQL files can
# INSERT jobs into pgbr.jobs and see them with SHOW JOBS in the same
# database. Run one file:  PGBR_REGRESS_TESTS="show_jobs" prove ... this file
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Cwd qw(abs_path);

my $regress_dir = abs_path("$FindBin::Bin/..");
my $pg_regress = $ENV{PG_REGRESS};
if (!$pg_regress)
{
	my $pgxs = `pg_config --pgxs 2>/dev/null`;
	chomp $pgxs;
	($pg_regress = $pgxs) =~ s{src/makefiles/pgxs\.mk$}{src/test/regress/pg_regress} if $pgxs;
	$pg_regress = '/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress' unless $pg_regress && -x $pg_regress;
}
plan skip_all => "pg_regress not found ($pg_regress)" unless -x $pg_regress;

my @tests = $ENV{PGBR_REGRESS_TESTS}
  ? split(/[\s,]+/, $ENV{PGBR_REGRESS_TESTS})
  : map { m{([^/]+)\.sql$} ? $1 : () } sort glob("$regress_dir/sql/*.sql");
plan skip_all => 'no SQL files' unless @tests;

my $pg = PgbrTest::Postgres->new;
$pg->safe_psql('CREATE DATABASE pgbr_regress');
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--catalog-db', 'pgbr_regress', '--admin-role', 'backup_admins' ]);
ok($pgbr->wait_catalog('pgbr_regress'), 'pgbr created pgbr.jobs in its catalog database at start');

my $outdir = tempdir();
my ($rc, $out, $err) = run_cmd(
	[
		$pg_regress, '--bindir=' . pg_bindir(), '--host=127.0.0.1', '--port=' . $pgbr->port, '--user=postgres',
		'--dbname=pgbr_regress', '--use-existing', "--inputdir=$regress_dir", "--outputdir=$outdir", @tests
	],
	timeout => 300);

my %seen;
for my $line (split /\n/, $out)
{
	# PostgreSQL 15: "test name ... ok 12 ms"; 16+: "ok 1 - name 12 ms"
	if ($line =~ /^(?:test\s+)?(\S+)\s+\.\.\.\s+(ok|FAILED|failed \(ignored\))/) { $seen{$1} = $2 }
	elsif ($line =~ /^(not ok|ok)\s+\d+\s+[-+]\s+(\S+)/) { $seen{$2} = $1 eq 'ok' ? 'ok' : 'FAILED' }
}
for my $t (@tests)
{
	is($seen{$t} // 'not run', 'ok', "pg_regress $t");
}
is($rc, 0, 'pg_regress exit status') or diag("pg_regress output:\n$out\n$err");
if ($rc != 0)
{
	my $diffs = slurp("$outdir/regression.diffs") // '';
	my @l = split /\n/, $diffs;
	@l = (@l[0 .. 399], '... (cut; see ' . "$outdir/regression.diffs)") if @l > 400;
	diag(join("\n", @l)) if @l;
}

$pgbr->stop_ok;
done_testing();
