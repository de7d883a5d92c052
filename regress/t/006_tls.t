#!/usr/bin/perl
# TLS between clients and pgbr: SSLRequest answers, sslmode=require and
# verify-full, SCRAM and md5 over TLS, large results, COPY, pgbench and
# cancel over TLS, a client that speaks garbage after 'S', and a pgbr
# without a certificate answering 'N'.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(time sleep);

my $dir = tempdir();
for my $name (qw(server other))
{
	my ($rc, $out, $err) = run_cmd([
			'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
			'-keyout', "$dir/$name.key", '-out', "$dir/$name.crt", '-subj', '/CN=localhost',
			'-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost' ]);
	die "openssl failed: $err" if $rc;
	chmod 0600, "$dir/$name.key";
}

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--tls-cert', "$dir/server.crt", '--tls-key', "$dir/server.key" ]);

# --- SSLRequest answers 'S' -----------------------------------------------------
{
	my $c = $pgbr->raw_connect;
	$c->send_raw(pack('NN', 8, 80877103));
	is($c->read_bytes(1, 10), 'S', "SSLRequest answered with 'S'");
	$c->send_raw("this is not a TLS ClientHello\r\n" x 4);
	ok($c->wait_closed(10), 'garbage instead of a TLS handshake: connection closed');
}

sub tls_psql
{
	my ($sql, %o) = @_;
	my %conn = (sslmode => 'require', %{ delete $o{conn} // {} });
	return $pgbr->psql($sql, conn => \%conn, %o);
}

my ($rc, $out, $err) = tls_psql('SELECT 1');
is($rc, 0, 'sslmode=require through pgbr') or diag($err);
is($out, '1', 'query over TLS');
($rc, $out, $err) = tls_psql('\conninfo');
like($out, qr/SSL connection \(protocol: TLSv1\.[23]/, 'the connection really is TLS');

($rc, $out, $err) = tls_psql('SELECT 2', conn => { sslmode => 'verify-full', sslrootcert => "$dir/server.crt" });
is($out, '2', 'sslmode=verify-full with the right root certificate') or diag($err);
($rc, $out, $err) = tls_psql('SELECT 3', conn => { sslmode => 'verify-full', sslrootcert => "$dir/other.crt" });
isnt($rc, 0, 'verify-full with a wrong root certificate fails');
like($err, qr/certificate verify failed/, 'certificate verification error');

# --- passwords over TLS -----------------------------------------------------------
($rc, $out, $err) = tls_psql('SELECT current_user', user => 'scramuser', env => { PGPASSWORD => 'scrampass' });
is($out, 'scramuser', 'SCRAM login over TLS') or diag($err);
($rc, $out, $err) = tls_psql('SELECT current_user', user => 'scramuser', env => { PGPASSWORD => 'bad' });
like($err, qr/password authentication failed for user "scramuser"/, 'SCRAM wrong password over TLS fails');
($rc, $out, $err) = tls_psql('\conninfo', user => 'scramuser', env => { PGPASSWORD => 'scrampass' });
like($out, qr/SSL connection/, 'SCRAM session is over TLS');
($rc, $out, $err) = tls_psql('SELECT current_user', user => 'md5user', env => { PGPASSWORD => 'md5pass' });
is($out, 'md5user', 'md5 login over TLS') or diag($err);
($rc, $out, $err) = tls_psql('SELECT current_user', user => 'md5user', env => { PGPASSWORD => 'bad' });
like($err, qr/password authentication failed for user "md5user"/, 'md5 wrong password over TLS fails');

# --- volume over TLS ---------------------------------------------------------
($rc, $out, $err) = tls_psql("SELECT repeat('0123456789abcdef', 2*1024*1024)");
is(length($out), 32 * 1024 * 1024, '32 MiB value over TLS arrives whole');
ok($out eq ('0123456789abcdef' x (2 * 1024 * 1024)), '32 MiB value over TLS intact');
$pg->safe_psql("CREATE TABLE tl AS SELECT g AS id, md5(g::text) AS t FROM generate_series(1, 100000) g");
my ($r1, $o1) = tls_psql('COPY tl TO STDOUT');
my ($r2, $o2) = $pg->psql('COPY tl TO STDOUT');
is(md5_hex($o1), md5_hex($o2), 'COPY out over TLS equals direct');
$pg->safe_psql('CREATE TABLE tl2 (LIKE tl)');
($rc, $out, $err) = tls_psql('COPY tl2 FROM STDIN', stdin => "$o1\n");
is($rc, 0, 'COPY in over TLS') or diag($err);
is($pg->safe_psql('SELECT count(*) FROM (SELECT * FROM tl EXCEPT SELECT * FROM tl2) x') . '/' . $pg->safe_psql('SELECT count(*) FROM tl2'),
	'0/100000', 'COPY in over TLS stored the same rows');

# --- pgbench over TLS ---------------------------------------------------------------
($rc, $out, $err) = run_cmd([ pg_bindir() . '/pgbench', '-i', '-s', '1', '-q', '-d', $pgbr->connstr(sslmode => 'require') ]);
is($rc, 0, 'pgbench -i over TLS') or diag($err);
($rc, $out, $err) = run_cmd([ pg_bindir() . '/pgbench', '-M', 'extended', '-T', '2', '-c', '4', '-j', '2', '-d', $pgbr->connstr(sslmode => 'require') ],
	timeout => 60);
is($rc, 0, 'pgbench over TLS exits 0') or diag("$out\n$err");
like($out, qr/number of failed transactions: 0 \(/, 'pgbench over TLS: no failed transactions');

# --- cancel of a TLS session (libpq sends the CancelRequest unencrypted) ----------
{
	my ($o, $e) = ('', '');
	my @cmd = (pg_bindir() . '/psql', '-X', '-A', '-t', '-q', '-d', $pgbr->connstr(sslmode => 'require'), '-c', 'SELECT pg_sleep(60) /* tlscancel */');
	my $h = IPC::Run::start(\@cmd, '<', \undef, '>', \$o, '2>', \$e, IPC::Run::timeout(60));
	ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%/* tlscancel */%' AND pid <> pg_backend_pid()") == 1 }, 20),
		'long query over TLS running');
	my $t0 = time;
	$h->signal('INT');
	eval { $h->finish };
	ok(time - $t0 < 10, 'cancel over TLS took effect promptly');
	like($e, qr/canceling statement due to user request/, 'TLS session cancelled');
}

is((tls_psql('SELECT 4'))[1], '4', 'pgbr still serves TLS clients');
$pgbr->stop_ok('pgbr with TLS');

# --- pgbr without a certificate answers 'N' ---------------------------------------------
{
	my $plain = PgbrTest::Pgbr->new(pg => $pg);
	my $c = $plain->raw_connect;
	$c->send_raw(pack('NN', 8, 80877103));
	is($c->read_bytes(1, 10), 'N', "no certificate: SSLRequest answered with 'N'");
	my @m = $c->startup;    # the same connection goes on in plain text
	is($m[-1]{type}, 'Z', 'startup after N on the same connection');
	$c->close;

	# GSSENCRequest: not supported, answered 'N', and the connection goes on.
	$c = $plain->raw_connect;
	$c->send_raw(pack('NN', 8, 80877104));
	is($c->read_bytes(1, 10), 'N', "GSSENCRequest answered with 'N'");
	@m = $c->startup;
	is($m[-1]{type}, 'Z', 'startup after GSSENCRequest refusal');
	$c->close;

	my ($rc, $out, $err) = $plain->psql('SELECT 1', conn => { sslmode => 'require' });
	isnt($rc, 0, 'sslmode=require fails against pgbr without TLS');
	like($err, qr/server does not support SSL, but SSL was required/, 'libpq says the server has no SSL');
	($rc, $out, $err) = $plain->psql('SELECT 1', conn => { sslmode => 'prefer' });
	is($out, '1', 'sslmode=prefer falls back to plain text');
	$plain->stop_ok('pgbr without TLS');
}

done_testing();
