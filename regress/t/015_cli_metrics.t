#!/usr/bin/perl
# The command line (--version, --help, bad flags, config file errors) and the
# Prometheus endpoint (--metrics-listen): connection and byte counters move
# with real traffic through pgbr.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use IO::Socket::INET;

my $bin = pgbr_bin();
my ($rc, $out, $err) = run_cmd([ $bin, '--version' ]);
is($rc, 0, '--version exits 0');
like($out, qr/^pgbr \d+\.\d+/, '--version prints the version');

($rc, $out, $err) = run_cmd([ $bin, '--help' ]);
is($rc, 0, '--help exits 0');
for my $flag (qw(config listen unix-socket-dir upstream-host upstream-port job-dsn catalog-db admin-role
                 external-io-dir node-id locality workers bundle-limit bundle-size metrics-listen tls-cert tls-key log-level pidfile job-retention)) {
    like($out, qr/--\Q$flag\E\b/, "--help lists --$flag");
}

($rc, $out, $err) = run_cmd([ $bin, '--no-such-flag' ]);
is($rc, 2, 'unknown flag exits 2');
like($err, qr/unknown option "--no-such-flag"/, 'unknown flag named');

($rc, $out, $err) = run_cmd([ $bin, '--log-level', 'loud' ]);
is($rc, 2, 'bad log level exits 2');
like($err, qr/invalid log level "loud"/, 'bad log level explained');

($rc, $out, $err) = run_cmd([ $bin, '--tls-cert', '/nonexistent.pem' ]);
is($rc, 2, '--tls-cert without --tls-key exits 2');
like($err, qr/--tls-cert and --tls-key must be given together/, 'TLS flag pairing explained');

my $dir = tempdir();
spew("$dir/bad.conf", "[pgbr]\nlisten = 127.0.0.1:1\nno_such_setting = 1\n");
($rc, $out, $err) = run_cmd([ $bin, '--config', "$dir/bad.conf" ]);
is($rc, 2, 'unknown config key exits 2');
like($err, qr/unknown setting "no_such_setting" in ".*bad\.conf" line 3/, 'unknown config key named with its line');

($rc, $out, $err) = run_cmd([ $bin, '--config', "$dir/missing.conf" ]);
is($rc, 2, 'missing config file exits 2');
like($err, qr/could not open configuration file/, 'missing config file explained');

# --- metrics ------------------------------------------------------------------------------
my $pg = PgbrTest::Postgres->new;
my $mport = free_port();
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--metrics-listen', "127.0.0.1:$mport", '--node-id', '7',
                                                    '--locality', 'region=eu,az=1' ]);

sub scrape {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 10) or return '';
    print $sock "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    local $/;
    my $resp = <$sock> // '';
    close $sock;
    return $resp;
}

my $m = scrape();
like($m, qr{^HTTP/1\.\d 200}, '/metrics answers 200');
like($m, qr/^# TYPE pgbr_client_connections gauge$/m, 'gauge typed');
like($m, qr/^pgbr_client_connections 0$/m, 'no clients yet');
my ($before) = $m =~ /^pgbr_proxy_bytes_total\{direction="upstream_to_client"\} (\d+)$/m;
ok(defined $before, 'byte counter exported');

($rc, $out, $err) = $pgbr->psql("SELECT repeat('x', 100000)");
is($rc, 0, 'a query through pgbr');
($rc, $out, $err) = $pgbr->psql('SHOW JOBS');
is($rc, 0, 'a statement of ours through pgbr');
$m = scrape();
my ($after) = $m =~ /^pgbr_proxy_bytes_total\{direction="upstream_to_client"\} (\d+)$/m;
cmp_ok($after - $before, '>=', 100000, 'relayed bytes counted');
like($m, qr/^pgbr_client_connections_total [1-9]\d*$/m, 'accepted connections counted');
like($m, qr/^pgbr_local_statements_total [1-9]\d*$/m, 'local statements counted');
my $bad = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 10);
print $bad "GET /nope HTTP/1.0\r\n\r\n";
my $resp = do { local $/; <$bad> } // '';
like($resp, qr{^HTTP/1\.\d 404}, 'other paths answer 404');

$pgbr->stop_ok;
$pg->stop;
done_testing();
