#!/usr/bin/perl
# Query cancellation through pgbr: psql's Ctrl-C (SIGINT -> PQcancel) stops
# the right upstream query and only that one; raw CancelRequests with a
# wrong key are ignored, with the right key they cancel; a cancel sent while
# idle is not held back for the next query.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);

# Number of upstream backends running the given query text.
sub running
{
	my ($like) = @_;
	return $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '$like' AND pid <> pg_backend_pid()");
}

sub start_psql
{
	my ($sql) = @_;
	my ($out, $err) = ('', '');
	my @cmd = (pg_bindir() . '/psql', '-X', '-A', '-t', '-q', '-d', $pgbr->connstr, '-c', $sql);
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$out, '2>', \$err, IPC::Run::timeout(120));
	return { h => $h, out => \$out, err => \$err };
}

sub finish
{
	my ($p, $timeout) = @_;
	my $t0 = time;
	my $ok = eval { $p->{h}->finish; 1 };
	return { ok => $ok, rc => $ok ? ($? >> 8) : -1, secs => time - $t0, err => ${ $p->{err} }, out => ${ $p->{out} } };
}

# --- psql Ctrl-C ------------------------------------------------------------
{
	my $p = start_psql('SELECT pg_sleep(60) /* c1 */');
	ok(wait_for(sub { running('%pg_sleep(60) /* c1 */%') == 1 }, 20), 'long query is running upstream');
	my $t0 = time;
	$p->{h}->signal('INT');
	my $r = finish($p);
	my $elapsed = time - $t0;
	ok($elapsed < 10, sprintf('psql returned %.1f s after SIGINT', $elapsed));
	is($r->{rc}, 1, 'psql exits 1 after the cancel');
	like($r->{err}, qr/canceling statement due to user request/, 'cancel error reaches psql');
	ok(wait_for(sub { running('%pg_sleep(60) /* c1 */%') == 0 }, 10), 'query no longer runs upstream');
}

# --- the cancel reaches the right backend -------------------------------------
{
	my $a = start_psql('SELECT pg_sleep(60) /* ca */');
	my $b = start_psql('SELECT pg_sleep(60) /* cb */');
	ok(wait_for(sub { running('%/* ca */%') == 1 && running('%/* cb */%') == 1 }, 20), 'two long queries running');
	$b->{h}->signal('INT');
	my $rb = finish($b);
	like($rb->{err}, qr/canceling statement due to user request/, 'second client cancelled');
	ok(wait_for(sub { running('%/* cb */%') == 0 }, 10), 'second query stopped upstream');
	sleep 0.5;
	is(running('%/* ca */%'), '1', 'first query still running (cancel went to the right backend)');
	$a->{h}->signal('INT');
	my $ra = finish($a);
	like($ra->{err}, qr/canceling statement due to user request/, 'first client cancelled too');
	ok(wait_for(sub { running('%/* ca */%') == 0 }, 10), 'first query stopped upstream');
}

# --- raw CancelRequest: wrong key, right key, while idle -----------------------
{
	my $c = $pgbr->raw_connect;
	$c->startup;
	ok(defined $c->backend_pid && defined $c->cancel_key, 'pgbr sent BackendKeyData');
	$c->query('SELECT pg_sleep(60) /* raw */');
	ok(wait_for(sub { running('%/* raw */%') == 1 }, 20), 'raw query running');
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c->backend_pid, key => ($c->cancel_key ^ 0x5a5a5a5a));
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => ($c->backend_pid ^ 0x1234), key => $c->cancel_key);
	sleep 1;
	is(running('%/* raw */%'), '1', 'CancelRequests with a wrong key or pid are ignored');
	my $t0 = time;
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c->backend_pid, key => $c->cancel_key);
	my $r = PgbrTest::Raw::summarize($c->read_until_ready(15));
	ok(time - $t0 < 10, 'cancelled promptly');
	is($r->{error}{C}, '57014', 'query_canceled SQLSTATE');
	is($r->{status}, 'I', 'idle after the cancel');

	# A cancel while idle must not hit the next query.
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c->backend_pid, key => $c->cancel_key);
	sleep 0.5;
	$r = $c->simple_query('SELECT pg_sleep(0.3), 17');
	ok(!$r->{error}, 'query after an idle-time cancel is not cancelled') or diag(explain $r->{error});
	is_deeply([ map { $_->[1] } @{ $r->{rows} } ], [17], 'and returns its row');

	# Cancel inside a transaction: the transaction is aborted, not the session.
	$r = $c->simple_query('BEGIN');
	$c->query('SELECT pg_sleep(60) /* intx */');
	ok(wait_for(sub { running('%/* intx */%') == 1 }, 20), 'query in transaction running');
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c->backend_pid, key => $c->cancel_key);
	$r = PgbrTest::Raw::summarize($c->read_until_ready(15));
	is($r->{error}{C}, '57014', 'cancelled inside the transaction');
	is($r->{status}, 'E', 'transaction is in failed state');
	$r = $c->simple_query('ROLLBACK');
	is($r->{status}, 'I', 'ROLLBACK returns to idle');
	$c->close;
}

# --- a second pgbr client's cancel key does not cancel the first --------------
{
	my $c1 = $pgbr->raw_connect;
	$c1->startup;
	my $c2 = $pgbr->raw_connect;
	$c2->startup;
	ok(!($c1->backend_pid == $c2->backend_pid && $c1->cancel_key == $c2->cancel_key), 'clients get distinct cancel keys');
	$c1->query('SELECT pg_sleep(60) /* k1 */');
	ok(wait_for(sub { running('%/* k1 */%') == 1 }, 20), 'k1 running');
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c2->backend_pid, key => $c2->cancel_key);
	sleep 1;
	is(running('%/* k1 */%'), '1', "another client's key does not cancel this query");
	PgbrTest::Raw::send_cancel(port => $pgbr->port, pid => $c1->backend_pid, key => $c1->cancel_key);
	my $r = PgbrTest::Raw::summarize($c1->read_until_ready(15));
	is($r->{error}{C}, '57014', 'own key cancels');
	is_deeply($c2->simple_query('SELECT 2')->{rows}, [ [2] ], 'other client unaffected');
	$c1->close;
	$c2->close;
}

# --- a statement of pgbr's own: SHOW JOBS <select> waits on a slow SELECT -------------
# The cancel must reach both pgbr's executor (the statement ends with 57014)
# and the internal query pgbr runs on the client's upstream session.
{
	my $p = start_psql('SHOW JOBS SELECT 1::bigint FROM pg_sleep(60) /* own */');
	ok(wait_for(sub { running('SELECT 1::bigint FROM pg_sleep(60)') == 1 }, 20), 'the SELECT of SHOW JOBS runs upstream');
	my $t0 = time;
	$p->{h}->signal('INT');
	my $r = finish($p);
	ok(time - $t0 < 10, 'psql returned promptly after SIGINT on a pgbr statement');
	like($r->{err}, qr/canceling statement due to user request/, 'pgbr statement cancelled with 57014');
	ok(wait_for(sub { running('SELECT 1::bigint FROM pg_sleep(60)') == 0 }, 10), 'its internal query stopped upstream');
	my ($rc, $out, $err) = $pgbr->psql("SHOW JOBS SELECT 1::bigint; ");
	is($rc, 0, 'pgbr statements work again afterwards') or diag($err);
}

$pgbr->stop_ok;
done_testing();
