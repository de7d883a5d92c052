#!/usr/bin/perl
# Hostile or broken clients: garbage startup packets, absurd lengths, bad
# protocol versions, unterminated startup packets, clients that stall or
# vanish, oversized and unknown messages after startup, random bytes from
# many connections, and more clients than max_client_conn. Each gets a clean
# FATAL error (or is closed) while other clients keep working.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Time::HiRes qw(time sleep);

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);

# A session that stays connected through everything below.
my $keeper = $pgbr->raw_connect;
$keeper->startup;

sub others_work
{
	my ($what) = @_;
	my $r = $keeper->simple_query("SELECT 'alive'", 10);
	is_deeply($r->{rows}, [ ['alive'] ], "after $what: existing session works");
	my $c = $pgbr->raw_connect;
	my @m = eval { $c->startup };
	my $ok = @m && $m[-1]{type} eq 'Z' && $c->simple_query('SELECT 1', 10)->{rows}[0][0] eq '1';
	ok($ok, "after $what: new session works");
	$c->close;
}

# Send bytes on a fresh connection; expect a FATAL ErrorResponse (SQLSTATE
# matching $code_re) and the connection closed.
sub expect_fatal
{
	my ($what, $bytes, $code_re) = @_;
	my $c = $pgbr->raw_connect;
	$c->send_raw($bytes);
	my @m;
	while (my $m = $c->read_msg(10)) { push @m, $m; last if $m->{type} eq 'E' }
	my $r = PgbrTest::Raw::summarize(@m);
	my $e = $r->{error};
	ok($e && ($e->{S} // '') eq 'FATAL', "$what: FATAL error") or diag('got: ' . explain(\@m) . ($c->eof ? ' (closed)' : ' (timeout)'));
	like($e ? ($e->{C} // '') : '', $code_re, "$what: SQLSTATE") if $code_re;
	ok($e && length($e->{M} // '') > 0, "$what: error has a message" . ($e ? ": $e->{M}" : ''));
	ok($c->wait_closed(10), "$what: connection closed");
	return $e;
}

my $startup_ok = PgbrTest::Raw::startup_packet(user => 'postgres', database => 'postgres');

# --- garbage startup packets ------------------------------------------------------------
expect_fatal('absurd length 0x7ffffff0', pack('NN', 0x7ffffff0, 196608), qr/^08P01$/);
expect_fatal('negative length', pack('NN', 0xffffffff, 196608), qr/^08P01$/);
expect_fatal('length 3', pack('N', 3) . "\0\0\0\0", qr/^08P01$/);
expect_fatal('HTTP request', "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", qr/^08P01$/);
expect_fatal('startup packet of 100000 bytes', pack('NN', 100000, 196608) . ("user\0postgres\0" x 7142) . "\0\0\0\0\0\0\0\0\0\0\0\0\0", qr/^08P01$/);
expect_fatal('protocol version 1.0', pack('NN', 8, 0x00010000), qr/^(08P01|0A000)$/);
expect_fatal('protocol version 9.9', pack('NN', 8, 0x00090009), qr/^(08P01|0A000)$/);
expect_fatal('no terminator', pack('NN', 8 + 13, 196608) . "user\0postgres", qr/^08P01$/);
expect_fatal('no user name', pack('NN', 8 + 18, 196608) . "database\0postgres\0\0", qr/^(28000|08P01)$/);
others_work('garbage startup packets');

# --- clients that stall or vanish ----------------------------------------------------
{
	my @stalled;
	for my $i (1 .. 5)
	{
		my $c = $pgbr->raw_connect;
		$c->send_raw(substr($startup_ok, 0, $i));    # part of a startup packet, then nothing
		push @stalled, $c;
	}
	my $t0 = time;
	others_work('stalled half-sent startup packets');
	ok(time - $t0 < 5, 'stalled clients do not slow down the others');
	$_->close for @stalled;

	for (1 .. 10)
	{
		my $c = $pgbr->raw_connect;    # connect and go away
		CORE::close($c->socket);
	}
	my $c = $pgbr->raw_connect;
	$c->send_raw(substr($startup_ok, 0, 10));
	CORE::close($c->socket);
	others_work('clients that vanished');
}

# --- bad messages after startup --------------------------------------------------------
{
	my $c = $pgbr->raw_connect;
	$c->startup;
	$c->send_raw('Q' . pack('N', 0x7ffffff0) . 'SELECT 1');    # 2 GB query announced
	my @m;
	while (my $m = $c->read_msg(10)) { push @m, $m }
	ok($c->eof, 'oversized message: connection closed') or diag(explain \@m);
	my $r = PgbrTest::Raw::summarize(@m);
	ok(!$r->{error} || $r->{error}{S} eq 'FATAL', 'oversized message: no error or a FATAL one');
	others_work('oversized message');

	$c = $pgbr->raw_connect;
	$c->startup;
	$c->send_raw('Q' . pack('N', 2));    # length below 4
	@m = ();
	while (my $m = $c->read_msg(10)) { push @m, $m }
	ok($c->eof, 'message length 2: connection closed') or diag(explain \@m);
	others_work('message length 2');

	$c = $pgbr->raw_connect;
	$c->startup;
	$c->send_msg('z', 'whatever');
	$r = PgbrTest::Raw::summarize($c->read_until_ready(10));
	is($r->{error}{S}, 'FATAL', 'unknown message type: FATAL');
	is($r->{error}{C}, '08P01', 'unknown message type: protocol violation');
	ok($c->wait_closed(10), 'unknown message type: connection closed');
	others_work('unknown message type');

	# A startup packet again in the middle of a session is not a message.
	$c = $pgbr->raw_connect;
	$c->startup;
	$c->send_raw($startup_ok);
	@m = ();
	while (my $m = $c->read_msg(10)) { push @m, $m }
	ok($c->eof, 'second startup packet: connection closed') or diag(explain \@m);
	others_work('second startup packet');
}

# --- random bytes from many connections at once ---------------------------------
{
	srand(20261124);
	my @conns;
	for my $i (1 .. 60)
	{
		my $c = $pgbr->raw_connect;
		my $bytes = join('', map { chr(int(rand(256))) } 1 .. (1 + int(rand(300))));
		$bytes = $startup_ok . $bytes if $i % 3 == 0;    # garbage after a good startup
		$c->send_raw($bytes);
		push @conns, $c;
	}
	sleep 1;
	$_->close for @conns;
	ok($pgbr->is_running, 'pgbr survives 60 connections of random bytes');
	others_work('random bytes');
}

# --- max_client_conn -----------------------------------------------------------------
{
	my $small = PgbrTest::Pgbr->new(pg => $pg, config => { max_client_conn => 5 });
	my @c;
	for (1 .. 5)
	{
		my $c = $small->raw_connect;
		$c->startup;
		push @c, $c;
	}
	my $c6 = $small->raw_connect;
	my @m = $c6->startup(expect_ok => 0);
	my $r = PgbrTest::Raw::summarize(@m);
	is($r->{error}{S}, 'FATAL', 'sixth client over max_client_conn=5: FATAL');
	like($r->{error}{M} // '', qr/too many|max_client_conn/i, 'the error says why: ' . ($r->{error}{M} // 'none'));
	is($r->{error}{C}, '53300', 'SQLSTATE too_many_connections');
	ok($c6->wait_closed(10), 'sixth client closed');
	my $ok = 1;
	for my $c (@c) { $ok &&= ($c->simple_query('SELECT 5', 10)->{rows}[0][0] // '') eq '5' }
	ok($ok, 'the five admitted clients keep working');
	$c[0]->close;
	ok(wait_for(sub {
				my $n = $small->raw_connect;
				my @m = $n->startup(expect_ok => 0);
				my $good = @m && $m[-1]{type} eq 'Z';
				$n->close;
				return $good;
			}, 10),
		'a slot freed by a leaving client is given to a new one');
	$_->close for @c[ 1 .. 4 ];
	$small->stop_ok('pgbr with max_client_conn=5');
}

$keeper->close;
$pgbr->stop_ok;
done_testing();
