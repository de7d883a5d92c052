#!/usr/bin/perl
# pgbr as a daemon: --version/--help, bad command lines and config files,
# a config-file-only start with a pidfile, SIGHUP reloading max_client_conn
# (and surviving a broken file), SIGTERM exiting 0 and removing the pidfile,
# also with clients connected.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use IO::Socket::INET;

my $bin = pgbr_bin();

# --- command line ------------------------------------------------------------------
my ($rc, $out, $err) = run_cmd([ $bin, '--version' ]);
is($rc, 0, '--version exits 0');
like($out, qr/^pgbr \d+\.\d+/, '--version prints the version');
($rc, $out, $err) = run_cmd([ $bin, '--help' ]);
is($rc, 0, '--help exits 0');
like($out, qr/--listen.*--upstream-host.*--job-dsn/s, '--help lists the options');
($rc, $out, $err) = run_cmd([ $bin, '--no-such-option' ]);
isnt($rc, 0, 'unknown option fails');
like($err, qr/no-such-option/, 'unknown option named in the error');

my $pg = PgbrTest::Postgres->new;
my $dir = tempdir();
spew("$dir/bad.ini", "[pgbr]\nbogus_setting = 1\n");
($rc, $out, $err) = run_cmd([ $bin, '--config', "$dir/bad.ini" ], timeout => 30);
isnt($rc, 0, 'unknown config setting: exits non-zero');
like($err, qr/bogus_setting/, 'unknown config setting named in the error');

{
	my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 5, Proto => 'tcp', ReuseAddr => 1);
	my $bport = $busy->sockport;
	($rc, $out, $err) = run_cmd([ $bin, '--listen', "127.0.0.1:$bport", '--upstream-host', '127.0.0.1', '--upstream-port', $pg->port,
			'--job-dsn', 'user=postgres' ], timeout => 30);
	isnt($rc, 0, 'listen port in use: exits non-zero');
	like($err, qr/\Q$bport\E|address already in use/i, 'listen error names the port or the reason');
	close $busy;
}

# --- everything from a config file -----------------------------------------------------
my $port = free_port();
my %cfg = (
	listen => "127.0.0.1:$port",
	upstream_host => '127.0.0.1',
	upstream_port => $pg->port,
	job_dsn => 'user=postgres',
	pidfile => "$dir/pgbr.pid",
	max_client_conn => 100,
	log_level => 'info');
my $pgbr = PgbrTest::Pgbr->new(pg => $pg, no_defaults => 1, config => \%cfg, port => $port);
is($pgbr->safe_psql('SELECT 1'), '1', 'pgbr started from a config file only');
my $pid_in_file = slurp("$dir/pgbr.pid") // '';
$pid_in_file =~ s/\s+$//;
is($pid_in_file, $pgbr->pid, 'pidfile holds the process id');

sub try_connect
{
	my $c = $pgbr->raw_connect;
	my @m = $c->startup(expect_ok => 0);
	my $ok = @m && $m[-1]{type} eq 'Z';
	my $r = PgbrTest::Raw::summarize(@m);
	$c->close;
	return $ok ? 'ok' : ($r->{error} ? "error: $r->{error}{M}" : 'closed');
}

# --- SIGHUP: max_client_conn ------------------------------------------------------
my @held = map { my $c = $pgbr->raw_connect; $c->startup; $c } 1 .. 3;
$pgbr->write_config({ %cfg, max_client_conn => 3 });
$pgbr->signal('HUP');
ok(wait_for(sub { try_connect() =~ /^error/ }, 10), 'after SIGHUP with max_client_conn = 3, a fourth client is refused');
like(try_connect(), qr/^error: .*(too many|max_client_conn)/i, 'refusal says why');
my $alive = grep { ($_->simple_query('SELECT 1', 10)->{rows}[0][0] // '') eq '1' } @held;
is($alive, 3, 'the three connected clients keep working after the reload');

# A broken file on SIGHUP: logged, old settings kept, still serving.
spew($pgbr->configfile, "[pgbr]\nthis line is not a setting\n");
$pgbr->signal('HUP');
sleep 1;
ok($pgbr->is_running, 'pgbr keeps running after SIGHUP with a broken config file');
like(try_connect(), qr/^error/, 'old max_client_conn still in force');
like($pgbr->log_content, qr/line 2|syntax|config/i, 'the broken file is reported in the log');

$pgbr->write_config({ %cfg, max_client_conn => 100 });
$pgbr->signal('HUP');
ok(wait_for(sub { try_connect() eq 'ok' }, 10), 'after SIGHUP with max_client_conn = 100, new clients are admitted');
$_->close for @held;

# log_level reload: the same event (a cancel request for an unknown
# session, which pgbr logs at info) is logged at info and not at error.
{
	my $event_log_bytes = sub {
		my $before = length $pgbr->log_content;
		PgbrTest::Raw::send_cancel(port => $port, pid => 12345, key => 67890) for 1 .. 3;
		$pgbr->safe_psql('SELECT 1');
		sleep 0.5;
		return length($pgbr->log_content) - $before;
	};
	$pgbr->write_config({ %cfg, log_level => 'error' });
	$pgbr->signal('HUP');
	sleep 1;
	my $quiet = $event_log_bytes->();
	$pgbr->write_config({ %cfg, log_level => 'info' });
	$pgbr->signal('HUP');
	sleep 1;
	my $loud = $event_log_bytes->();
	is($quiet, 0, 'log_level = error after SIGHUP: nothing logged for unknown cancel requests');
	ok($loud > 0, "log_level = info after SIGHUP: they are logged ($loud bytes)");
}

# --- SIGTERM ----------------------------------------------------------------------------
$pgbr->signal('TERM');
is($pgbr->wait_exit(15), 0, 'SIGTERM: exit status 0');
ok(!-e "$dir/pgbr.pid", 'SIGTERM: pidfile removed');
ok(!IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 2), 'SIGTERM: port closed');
$pgbr->check_log_ok('pgbr (config file)');

# SIGTERM with a client connected (idle) and one in a transaction.
{
	my $p2 = PgbrTest::Pgbr->new(pg => $pg);
	my $idle = $p2->raw_connect;
	$idle->startup;
	my $intx = $p2->raw_connect;
	$intx->startup;
	$intx->simple_query('BEGIN');
	$p2->signal('TERM');
	is($p2->wait_exit(20), 0, 'SIGTERM with connected clients: exit status 0 within 20 s');
	ok($idle->wait_closed(5), 'idle client disconnected');
	ok($intx->wait_closed(5), 'client in a transaction disconnected');
	ok(!-e $p2->pidfile, 'pidfile removed');
	$p2->check_log_ok('pgbr (with clients)');
	ok(wait_for(sub { $pg->safe_psql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()") == 0 }, 10),
		'no upstream backends left behind');
}

done_testing();
