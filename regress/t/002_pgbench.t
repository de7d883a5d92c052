#!/usr/bin/perl
# pgbench through pgbr: initialisation (COPY, DDL, VACUUM), then the TPC-B
# like script in the simple, extended and prepared query modes for 5 s
# each, with no failed transaction and consistent balances afterwards; then
# a short run that reconnects for every transaction.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);
my $secs = $ENV{PGBR_PGBENCH_SECONDS} // 5;

sub pgbench
{
	my (@args) = @_;
	return PgbrTest::run_cmd(
		[ pg_bindir() . '/pgbench', '-h', '127.0.0.1', '-p', $pgbr->port, '-U', 'postgres', @args, 'postgres' ],
		timeout => 120 + $secs);
}

my ($rc, $out, $err) = pgbench('-i', '-s', '2', '-q');
is($rc, 0, 'pgbench -i through pgbr') or diag($err);
is($pg->safe_psql('SELECT count(*) FROM pgbench_accounts'), '200000', 'accounts loaded (seen directly)');
is($pg->safe_psql('SELECT count(*) FROM pgbench_branches'), '2', 'branches loaded');

for my $mode (qw(simple extended prepared))
{
	# The first run vacuums and truncates pgbench_history (through pgbr);
	# the others keep the history so the balances can be checked at the end.
	($rc, $out, $err) = pgbench('-M', $mode, '-T', $secs, '-c', '4', '-j', '2', ($mode eq 'simple' ? () : ('-n')));
	is($rc, 0, "pgbench -M $mode exits 0") or diag("stdout:\n$out\nstderr:\n$err");
	my ($n) = $out =~ /number of transactions actually processed: (\d+)/;
	ok(defined $n && $n > 0, "pgbench -M $mode processed transactions (" . ($n // 'none') . ')');
	like($out, qr/number of failed transactions: 0 \(/, "pgbench -M $mode: no failed transactions");
	like($out, qr/query mode: $mode/, "pgbench ran in $mode mode");
	unlike($err, qr/error|ERROR|FATAL/, "pgbench -M $mode: no errors on stderr") or diag($err);
	my ($tps) = $out =~ /tps = ([\d.]+)/;
	diag("pgbench -M $mode: " . ($tps // '?') . " tps through pgbr");
}

# Every transaction moved the same delta through all three tables.
is($pg->safe_psql(<<'SQL'), 't', 'balances consistent after the runs');
SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(bbalance) FROM pgbench_branches)
   AND (SELECT sum(bbalance) FROM pgbench_branches) = (SELECT sum(tbalance) FROM pgbench_tellers)
   AND (SELECT sum(tbalance) FROM pgbench_tellers) = (SELECT coalesce(sum(delta), 0) FROM pgbench_history)
SQL
ok($pg->safe_psql('SELECT count(*) FROM pgbench_history') > 0, 'history rows written');

# A new client connection per transaction (connection churn).
($rc, $out, $err) = pgbench('-C', '-S', '-T', 2, '-c', '2', '-j', '2');
is($rc, 0, 'pgbench -C (reconnect per transaction) exits 0') or diag("$out\n$err");
like($out, qr/number of failed transactions: 0 \(/, 'pgbench -C: no failed transactions');

# Reconnecting clients do not pile up upstream connections (pooled or not).
my $nback = $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()");
ok($nback <= 10, "at most 10 upstream client backends left after the churn ($nback)")
  or diag($pg->safe_psql("SELECT pid, usename, application_name, state, query FROM pg_stat_activity WHERE backend_type = 'client backend'"));

$pgbr->stop_ok;
done_testing();
