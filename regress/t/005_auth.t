#!/usr/bin/perl
# Authentication relayed through pgbr: pg_hba.conf of the upstream decides
# (trust for postgres/alice, md5 for md5user, SCRAM for scramuser). Right and
# wrong passwords, no password, an abandoned login, many logins at once;
# with the upstream reached over TCP and over its Unix socket.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr_tcp = PgbrTest::Pgbr->new(pg => $pg);
my $pgbr_sock = PgbrTest::Pgbr->new(pg => $pg, upstream_socket => 1);

for my $case ([ 'TCP upstream', $pgbr_tcp ], [ 'Unix-socket upstream', $pgbr_sock ])
{
	my ($what, $pgbr) = @$case;

	for my $u ([ 'md5user', 'md5pass', 'md5' ], [ 'scramuser', 'scrampass', 'SCRAM' ])
	{
		my ($user, $pass, $method) = @$u;
		my ($rc, $out, $err) = $pgbr->psql('SELECT current_user', user => $user, env => { PGPASSWORD => $pass });
		is($rc, 0, "$what: $method login with the right password") or diag($err);
		is($out, $user, "$what: $method session runs as $user");

		($rc, $out, $err) = $pgbr->psql('SELECT current_user', user => $user, env => { PGPASSWORD => "wrong$pass" });
		isnt($rc, 0, "$what: $method login with a wrong password fails");
		like($err, qr/FATAL:  password authentication failed for user "$user"/, "$what: $method wrong password error relayed");

		($rc, $out, $err) = $pgbr->psql('SELECT 1', user => $user);
		isnt($rc, 0, "$what: $method login without a password fails");
		like($err, qr/no password supplied/, "$what: $method asks for a password");
	}

	my ($rc, $out, $err) = $pgbr->psql('SELECT current_user', user => 'alice');
	is($out, 'alice', "$what: trust login");

	# The SCRAM password is never known to pgbr: channel binding cannot be
	# faked over a plain connection and libpq refuses when required.
	($rc, $out, $err) = $pgbr->psql('SELECT 1', user => 'scramuser', conn => { channel_binding => 'require' },
		env => { PGPASSWORD => 'scrampass' });
	isnt($rc, 0, "$what: channel_binding=require without TLS is refused");
}

# --- raw md5 exchange: exact SQLSTATEs -------------------------------------------
{
	my $c = $pgbr_tcp->raw_connect;
	my @m = $c->startup(params => { user => 'md5user' }, password => 'md5pass');
	is($m[-1]{type}, 'Z', 'raw md5 login succeeds');
	is_deeply($c->simple_query('SELECT current_user')->{rows}, [ ['md5user'] ], 'raw md5 session works');
	$c->close;

	$c = $pgbr_tcp->raw_connect;
	@m = $c->startup(params => { user => 'md5user' }, password => 'nope', expect_ok => 0);
	my $r = PgbrTest::Raw::summarize(@m);
	is($r->{error}{C}, '28P01', 'wrong md5 password: SQLSTATE 28P01');
	is($r->{error}{S}, 'FATAL', 'wrong md5 password: FATAL');
	ok($c->wait_closed, 'connection closed after failed login');

	# The client goes away while the server waits for its password.
	$c = $pgbr_tcp->raw_connect;
	@m = $c->startup(params => { user => 'md5user' }, expect_ok => 0);
	is($c->{auth_request}, 5, 'server asks for an md5 password');
	$c->close;
	ok(wait_for(sub {
			$pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE usename = 'md5user'") == 0 }, 10),
		'abandoned login leaves no upstream backend');
}

# --- many logins at once ------------------------------------------------------------
{
	my @h;
	for my $i (1 .. 16)
	{
		my ($o, $e) = ('', '');
		my ($user, $pass) = $i % 2 ? ('scramuser', 'scrampass') : ('md5user', 'md5pass');
		$pass = 'bad' if $i % 4 == 3;    # some wrong ones in the mix
		my @cmd = (pg_bindir() . '/psql', '-X', '-A', '-t', '-q', '-w', '-d', $pgbr_tcp->connstr(user => $user), '-c', "SELECT $i");
		local $ENV{PGPASSWORD} = $pass;
		push @h, [ IPC::Run::start(\@cmd, '<', \undef, '>', \$o, '2>', \$e, IPC::Run::timeout(60)), \$o, \$e, $i ];
	}
	my ($good, $bad) = (0, 0);
	for my $x (@h)
	{
		eval { $x->[0]->finish };
		if ($x->[3] % 4 == 3) { $bad++ if ${ $x->[2] } =~ /password authentication failed/ }
		else { $good++ if ${ $x->[1] } eq "$x->[3]\n" }
	}
	is($good, 12, '12 concurrent logins with right passwords succeed');
	is($bad, 4, '4 concurrent logins with wrong passwords fail cleanly');
}

is($pgbr_tcp->safe_psql('SELECT 1'), '1', 'pgbr still serves clients after failed logins');
$pgbr_tcp->stop_ok('pgbr (TCP upstream)');
$pgbr_sock->stop_ok('pgbr (socket upstream)');
done_testing();
