
=pod

=head1 NAME

PgbrTest - harness for pgbr's Perl TAP tests

=head1 SYNOPSIS

  use FindBin; use lib "$FindBin::Bin/lib";
  use PgbrTest;
  use Test::More;

  my $pg   = PgbrTest::Postgres->new;           # initdb + start, stopped at exit
  my $pgbr = PgbrTest::Pgbr->new(pg => $pg);    # started, ready, stopped at exit
  is($pgbr->safe_psql('SELECT 1'), '1', 'select through pgbr');
  my $raw = $pgbr->raw_connect;                 # wire-protocol client
  my $r = $raw->simple_query('SHOW JOBS');
  done_testing();

=head1 DESCRIPTION

Everything a test needs to run a real PostgreSQL and a real pgbr:

=over

=item * PgbrTest::Postgres: initdb into a private temp dir (as the user
C<pgtest> when run as root, created with useradd if missing), listen on
127.0.0.1 and a Unix socket, test roles with md5 and SCRAM passwords,
pg_ctl start/stop.

=item * PgbrTest::Pgbr: run the pgbr binary (C<$ENV{PGBR_BIN}>) with any
flags or an INI config file, wait until its TCP port accepts connections,
send it signals, stop it and check its log for sanitizer reports.

=item * psql/pgbench helpers that run as the current user and return exit
code, stdout and stderr.

=item * PgbrTest::Raw: a small frontend/backend protocol client over a raw
socket, for startup, garbage, cancel and pipeline tests.

=back

Cleanup is guaranteed: every process a test starts is stopped in an END
block (also when the test dies or times out), and the temp dirs are removed
unless PGBR_TEST_KEEP=1 or a test failed (then their path is printed).

Environment: PGBR_BIN (required for pgbr), PG_BINDIR (default: pg_config
--bindir, else /usr/lib/postgresql/15/bin), PGBR_TEST_TIMEOUT (seconds for a
whole test file, default 600), PGBR_TEST_KEEP, PGBR_TEST_TMPDIR (default
/tmp), PGBR_TEST_INITDB_TEMPLATE (an initdb'd data dir copied instead of
running initdb; run-tests.sh makes one), PGBR_TEST_PGUSER (unprivileged user
for PostgreSQL when root, default pgtest), PGBR_ASAN (binary built with
ASan).

=cut

package PgbrTest;

use strict;
use warnings;

use Carp;
use Cwd qw(abs_path);
use Exporter 'import';
use Fcntl qw(:flock O_CREAT O_EXCL O_WRONLY);
use File::Path qw(remove_tree make_path);
use File::Temp ();
use IO::Socket::INET;
use IPC::Run ();
use POSIX ();
use Test::More ();
use Time::HiRes qw(time sleep);

our @EXPORT = qw(
  pg_bindir free_port tempdir run_cmd run_psql wait_for slurp spew
  is_root pg_run_user pgbr_bin test_timeout
  table_sum_sql tables_sum_sql result_row
);

our $IS_ROOT = ($> == 0);
our $PG_RUN_USER = $ENV{PGBR_TEST_PGUSER} // 'pgtest';
our $TMPBASE = $ENV{PGBR_TEST_TMPDIR} // '/tmp';
our $TIMEOUT = $ENV{PGBR_TEST_TIMEOUT} // 600;

# Everything started, in start order; stopped in reverse order at exit.
our @LIVE;
our @PORTLOCKS;
our @TEMPDIRS;
our $MAIN_PID = $$;

# Never let the environment pick a server for us.
delete $ENV{$_} for grep { /^PG/ && !/^PGBR_/ && $_ ne 'PG_BINDIR' } keys %ENV;
$ENV{PGCONNECT_TIMEOUT} = 20;
$ENV{LC_ALL} = 'C';
$ENV{LC_MESSAGES} = 'C';
$ENV{PGAPPNAME} = 'pgbr_test';

# A hung test must not hang `make check`: the whole file gets a deadline.
$SIG{ALRM} = sub { Test::More::diag("test file timed out after ${TIMEOUT}s"); exit 3 };
alarm($TIMEOUT);
$SIG{INT} = $SIG{TERM} = sub { Test::More::diag("interrupted"); exit 4 };
$SIG{PIPE} = 'IGNORE';

sub is_root { return $IS_ROOT }
sub pg_run_user { return $IS_ROOT ? $PG_RUN_USER : scalar getpwuid($>) }
sub test_timeout { return $TIMEOUT }

my $bindir;
sub pg_bindir
{
	return $bindir if defined $bindir;
	$bindir = $ENV{PG_BINDIR};
	if (!$bindir)
	{
		my $b = `pg_config --bindir 2>/dev/null`;
		chomp $b if defined $b;
		$bindir = ($b && -x "$b/initdb") ? $b : '/usr/lib/postgresql/15/bin';
	}
	return $bindir;
}

sub pgbr_bin
{
	my $b = $ENV{PGBR_BIN};
	if (!$b)
	{
		# Running one file by hand: use the default build of this checkout.
		my $here = abs_path(__FILE__);
		(my $root = $here) =~ s{/regress/t/lib/PgbrTest\.pm\z}{};
		$b = "$root/bin/pgbr" if -x "$root/bin/pgbr";
	}
	croak "PGBR_BIN is not set and bin/pgbr was not found" unless $b && -x $b;
	return $b;
}

sub slurp
{
	my ($file) = @_;
	open(my $fh, '<', $file) or return undef;
	local $/;
	my $c = <$fh>;
	close $fh;
	return $c;
}

sub spew
{
	my ($file, $content) = @_;
	open(my $fh, '>', $file) or croak "cannot write $file: $!";
	print $fh $content;
	close $fh or croak "cannot close $file: $!";
}

# Make sure the unprivileged user exists (root only). Serialised with a lock
# because test files may run in parallel.
sub ensure_pg_user
{
	return unless $IS_ROOT;
	return if defined getpwnam($PG_RUN_USER);
	open(my $lk, '>', "$TMPBASE/.pgbr_test_useradd.lock") or croak "lock: $!";
	flock($lk, LOCK_EX);
	if (!defined getpwnam($PG_RUN_USER))
	{
		system('useradd', '-m', '-s', '/bin/sh', $PG_RUN_USER) == 0
		  or croak "useradd $PG_RUN_USER failed";
	}
	close $lk;
}

# A fresh temp dir, removed at exit (unless kept). Traversable by the
# unprivileged PostgreSQL user when run as root.
sub tempdir
{
	my ($tmpl) = @_;
	$tmpl //= 'pgbr_t_XXXXXX';
	my $dir = File::Temp::tempdir($tmpl, DIR => $TMPBASE, CLEANUP => 0);
	chmod 0755, $dir;
	push @TEMPDIRS, $dir;
	return $dir;
}

# A subdir owned by the PostgreSQL run user.
sub pg_owned_dir
{
	my ($path) = @_;
	make_path($path);
	if ($IS_ROOT)
	{
		ensure_pg_user();
		my ($uid, $gid) = (getpwnam($PG_RUN_USER))[2, 3];
		chown $uid, $gid, $path or croak "chown $path: $!";
	}
	chmod 0700, $path;
	return $path;
}

sub port_is_free
{
	my ($port) = @_;
	my $s = IO::Socket::INET->new(
		LocalAddr => '127.0.0.1',
		LocalPort => $port,
		Proto => 'tcp',
		ReuseAddr => 1,
		Listen => 1);
	return 0 unless $s;
	CORE::close($s);
	# Nothing may be listening on the wildcard address either.
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp', Timeout => 1);
	if ($c) { close $c; return 0 }
	return 1;
}

# A free TCP port on 127.0.0.1, below the ephemeral range, reserved for this
# process with a lock file so parallel test files never pick the same one.
sub free_port
{
	my $lockdir = "$TMPBASE/pgbr_test_portlock";
	if (!-d $lockdir)
	{
		mkdir $lockdir;
		chmod 01777, $lockdir;
	}
	for (1 .. 2000)
	{
		my $port = 15000 + int(rand(32000 - 15000));
		next unless port_is_free($port);
		my $lf = "$lockdir/$port";
		if (sysopen(my $fh, $lf, O_CREAT | O_EXCL | O_WRONLY, 0644))
		{
			print $fh "$$\n";
			close $fh;
			push @PORTLOCKS, $lf;
			return $port;
		}
		my $pid = slurp($lf) // '';
		chomp $pid;
		if ($pid =~ /^\d+$/ && !kill(0, $pid))
		{
			unlink $lf;    # stale lock of a dead test; try another port
		}
	}
	croak "no free port found";
}

# Poll $cond every $step seconds until it returns true or $timeout passes.
# A table's content checksum, independent of row order: a query giving
# "<rows>:<md5>" for $table (an SQL name).
sub table_sum_sql
{
	my ($table) = @_;
	return "SELECT count(*) || ':' || coalesce(md5(string_agg(m, '' ORDER BY m)), '') "
	  . "FROM (SELECT md5(t::text) AS m FROM $table t) s";
}

# The checksums of several tables in one query: rows "<table>|<sum>",
# ordered by table.
sub tables_sum_sql
{
	my (@tables) = @_;
	return join("\nUNION ALL ",
		map { my ($t, $q) = ($_, table_sum_sql($_)); $q =~ s/^SELECT /SELECT '$t', /; $q } @tables)
	  . "\nORDER BY 1";
}

# The data row of a blocking BACKUP/RESTORE's raw psql output:
# (job_id, status, fraction_completed, rows, index_entries, bytes).
sub result_row
{
	my ($out) = @_;
	for my $l (split /\n/, $out // '')
	{
		next unless $l =~ /^\s*\d+\s*\|/;
		my @f = split /\|/, $l;
		s/^\s+|\s+$//g for @f;
		return @f;
	}
	return ();
}

sub wait_for
{
	my ($cond, $timeout, $step) = @_;
	$timeout //= 30;
	$step //= 0.05;
	my $deadline = time + $timeout;
	while (1)
	{
		my $r = $cond->();
		return $r if $r;
		return 0 if time > $deadline;
		sleep $step;
	}
}

# Run a command; returns ($exit_code, $stdout, $stderr). Options: stdin
# (string), timeout (seconds, default 120), env (hashref merged into %ENV),
# as_pg_user (run via runuser when root), cwd.
sub run_cmd
{
	my ($cmd, %o) = @_;
	my @cmd = @$cmd;
	if ($o{as_pg_user} && $IS_ROOT)
	{
		ensure_pg_user();
		@cmd = ('runuser', '-u', $PG_RUN_USER, '--', @cmd);
	}
	my ($in, $out, $err) = ($o{stdin} // '', '', '');
	my $cwd = $o{cwd} // ($o{as_pg_user} ? $TMPBASE : undef);
	local %ENV = (%ENV, %{ $o{env} // {} });
	my $t = IPC::Run::timeout($o{timeout} // 120);
	my $ok = eval {
		IPC::Run::run(\@cmd, (defined $cwd ? (init => sub { chdir $cwd or die "chdir $cwd: $!" }) : ()),
			\$in, \$out, \$err, $t);
		1;
	};
	if (!$ok)
	{
		my $e = $@;
		return (-1, $out, $err . "\n[run_cmd: $e]") if $e =~ /timeout/i;
		return (-1, $out, $err . "\n[run_cmd: $e]");
	}
	my $rc = $? >> 8;
	$rc = 128 + ($? & 127) if $? & 127;
	return ($rc, $out, $err);
}

# psql with a conninfo string. Returns ($rc, $stdout, $stderr); stdout has
# its trailing newline removed. Options: stdin, timeout, env, extra (array of
# extra psql flags), plus `raw => 1` for no -A -t.
sub run_psql
{
	my ($conninfo, $sql, %o) = @_;
	my @cmd = (pg_bindir() . '/psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-w');
	push @cmd, ('-A', '-t') unless $o{raw};
	push @cmd, @{ $o{extra} // [] };
	push @cmd, '-d', $conninfo;
	push @cmd, '-c', $sql if defined $sql;
	my ($rc, $out, $err) = run_cmd(\@cmd, %o);
	$out =~ s/\n\z//;
	return ($rc, $out, $err);
}

END
{
	# Only the process that loaded us cleans up (not forked children).
	if ($$ == $MAIN_PID)
	{
		my $exit = $?;
		alarm(0);
		for my $obj (reverse @LIVE)
		{
			eval { $obj->_cleanup };
			Test::More::diag("cleanup: $@") if $@;
		}
		unlink @PORTLOCKS;
		my $tb = Test::More->builder;
		my $failed = ($exit != 0) || !$tb->is_passing;
		if ($failed || $ENV{PGBR_TEST_KEEP})
		{
			Test::More::diag("kept temp dir: $_") for @TEMPDIRS;
		}
		else
		{
			remove_tree($_, { safe => 1 }) for @TEMPDIRS;
		}
		$? = $exit;
	}
}

###########################################################################################################################################

package PgbrTest::Endpoint;

# What a PostgreSQL server and a pgbr in front of one have in common for a
# test: a host and port to connect to, psql, and a raw protocol connection.
# Subclasses provide host(), port() and a label for error messages.

use strict;
use warnings;
use Carp;

sub connstr
{
	my ($self, %o) = @_;
	my %c = (host => $self->host, port => $self->port, dbname => 'postgres', user => 'postgres', %o);
	return join(' ', map { "$_=" . PgbrTest::_cq($c{$_}) } sort keys %c);
}

# psql; ($rc, $out, $err). %o: dbname, user, conn (hashref of more conninfo
# keys) plus run_psql's options.
sub psql
{
	my ($self, $sql, %o) = @_;
	my %c = %{ delete $o{conn} // {} };
	$c{dbname} = delete $o{dbname} if exists $o{dbname};
	$c{user} = delete $o{user} if exists $o{user};
	return PgbrTest::run_psql($self->connstr(%c), $sql, %o);
}

sub safe_psql
{
	my ($self, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->psql($sql, %o);
	croak "psql (" . $self->endpoint_label . ") failed ($rc): $err\nquery: $sql" if $rc;
	return $out;
}

sub raw_connect
{
	my ($self, %o) = @_;
	return PgbrTest::Raw->new(port => $self->port, %o);
}

###########

package PgbrTest::Postgres;

our @ISA = ('PgbrTest::Endpoint');
sub endpoint_label { 'direct' }

use strict;
use warnings;
use Carp;
use File::Copy ();
use Time::HiRes qw(time sleep);

# PgbrTest::Postgres->new(%opts): initdb and start a PostgreSQL.
#   conf => [lines]           extra postgresql.conf lines
#   max_connections => N      (default 100)
#   hba => 'text'             replaces the default pg_hba.conf
#   start => 0                do not start yet
# Test roles (created at start): md5user/md5pass (md5), scramuser/scrampass
# (SCRAM), alice, bob, carol (trust, no superuser), role backup_admins.
sub new
{
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	$self->{base} = PgbrTest::tempdir('pgbr_pg_XXXXXX');
	PgbrTest::pg_owned_dir("$self->{base}/pg");
	$self->{datadir} = "$self->{base}/pg/data";
	$self->{sockdir} = "$self->{base}/pg";
	$self->{logfile} = "$self->{base}/pg/server.log";
	$self->{port} = PgbrTest::free_port();
	$self->{host} = '127.0.0.1';
	chmod 0755, "$self->{base}/pg";    # clients (root or not) reach the socket
	$self->_initdb;
	push @PgbrTest::LIVE, $self;
	$self->start unless defined $o{start} && !$o{start};
	return $self;
}

sub port { $_[0]{port} }
sub host { $_[0]{host} }
sub sockdir { $_[0]{sockdir} }
sub datadir { $_[0]{datadir} }
sub logfile { $_[0]{logfile} }

sub _initdb
{
	my ($self) = @_;
	my $tmpl = $ENV{PGBR_TEST_INITDB_TEMPLATE};
	if ($tmpl && -f "$tmpl/PG_VERSION")
	{
		my ($rc, $out, $err) = PgbrTest::run_cmd(['cp', '-a', $tmpl, $self->{datadir}], as_pg_user => 1);
		croak "copying initdb template failed: $err" if $rc;
	}
	else
	{
		my ($rc, $out, $err) = PgbrTest::run_cmd(
			[
				PgbrTest::pg_bindir() . '/initdb', '-D', $self->{datadir}, '-U', 'postgres',
				'-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync', '--no-instructions'
			],
			as_pg_user => 1,
			timeout => 120);
		croak "initdb failed ($rc): $out $err" if $rc;
	}
	my $maxc = $self->{max_connections} // 100;
	my $conf = join("\n",
		"listen_addresses = '127.0.0.1'",
		"port = $self->{port}",
		"unix_socket_directories = '$self->{sockdir}'",
		"max_connections = $maxc",
		"wal_level = logical",
		"max_wal_senders = 10",
		"max_replication_slots = 40",
		"fsync = off",
		"full_page_writes = off",
		"synchronous_commit = on",
		"shared_buffers = 64MB",
		"password_encryption = 'scram-sha-256'",
		"log_line_prefix = '%m [%p] %q%u@%d '",
		"log_connections = on",
		"log_disconnections = on",
		"lc_messages = 'C'",
		"datestyle = 'iso, mdy'",
		"timezone = 'UTC'",
		@{ $self->{conf} // [] }) . "\n";
	$self->append_conf($conf);
	my $hba = $self->{hba} // join("\n",
		"local all md5user md5",
		"local all scramuser scram-sha-256",
		"local all all trust",
		"local replication all trust",
		"host all md5user 127.0.0.1/32 md5",
		"host all scramuser 127.0.0.1/32 scram-sha-256",
		"host all all 127.0.0.1/32 trust",
		"host replication all 127.0.0.1/32 trust") . "\n";
	$self->_write_pg_file('pg_hba.conf', $hba, 0);
}

sub _write_pg_file
{
	my ($self, $name, $content, $append) = @_;
	my $f = "$self->{datadir}/$name";
	open(my $fh, $append ? '>>' : '>', $f) or croak "cannot write $f: $!";
	print $fh $content;
	close $fh;
	if ($PgbrTest::IS_ROOT)
	{
		my ($uid, $gid) = (getpwnam($PgbrTest::PG_RUN_USER))[2, 3];
		chown $uid, $gid, $f;
	}
}

sub append_conf
{
	my ($self, $text) = @_;
	$self->_write_pg_file('postgresql.conf', $text, 1);
}

sub start
{
	my ($self) = @_;
	my ($rc, $out, $err) = PgbrTest::run_cmd(
		[ PgbrTest::pg_bindir() . '/pg_ctl', '-D', $self->{datadir}, '-l', $self->{logfile}, '-w', '-t', '60', 'start' ],
		as_pg_user => 1,
		timeout => 90);
	if ($rc)
	{
		my $log = PgbrTest::slurp($self->{logfile}) // '';
		croak "pg_ctl start failed ($rc): $out $err\n$log";
	}
	$self->{running} = 1;
	if (!$self->{roles_made})
	{
		$self->safe_psql(<<'SQL');
SET password_encryption = 'md5';
CREATE ROLE md5user LOGIN PASSWORD 'md5pass';
SET password_encryption = 'scram-sha-256';
CREATE ROLE scramuser LOGIN PASSWORD 'scrampass';
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE ROLE carol LOGIN;
CREATE ROLE backup_admins NOLOGIN;
GRANT backup_admins TO carol;
SQL
		$self->{roles_made} = 1;
	}
}

sub stop
{
	my ($self, $mode) = @_;
	return unless $self->{running};
	$mode //= 'fast';
	my ($rc, $out, $err) = PgbrTest::run_cmd(
		[ PgbrTest::pg_bindir() . '/pg_ctl', '-D', $self->{datadir}, '-m', $mode, '-w', '-t', '60', 'stop' ],
		as_pg_user => 1,
		timeout => 90);
	$self->{running} = 0;
	carp "pg_ctl stop: $out $err" if $rc;
}

sub restart { my ($s) = @_; $s->stop; $s->start }

sub reload
{
	my ($self) = @_;
	PgbrTest::run_cmd([ PgbrTest::pg_bindir() . '/pg_ctl', '-D', $self->{datadir}, 'reload' ], as_pg_user => 1);
}

sub _cleanup
{
	my ($self) = @_;
	return unless $self->{running};
	my $tb = Test::More->builder;
	if (!$tb->is_passing)
	{
		my $log = PgbrTest::slurp($self->{logfile}) // '';
		my @l = grep { !/LOG:  (connection received|connection authorized|disconnection):/ } split /\n/, $log;
		@l = @l[-40 .. -1] if @l > 40;
		Test::More::diag("--- PostgreSQL log (tail) $self->{logfile}\n" . join("\n", @l));
	}
	$self->stop('immediate');
}

###########################################################################

package PgbrTest::Pgbr;

our @ISA = ('PgbrTest::Endpoint');
sub endpoint_label { 'through pgbr' }

use strict;
use warnings;
use Carp;
use POSIX ();
use Time::HiRes qw(time sleep);

# PgbrTest::Pgbr->new(%opts): start pgbr in front of a PgbrTest::Postgres.
#   pg => $pg                      the upstream (required unless args say it all)
#   args => [...]                  extra command-line flags
#   config => { key => value }     write an INI file ([pgbr]) and pass --config
#   unix_socket => 1               --unix-socket-dir <tempdir>
#   upstream_socket => 1           --upstream-host <pg socket dir> instead of TCP
#   no_defaults => 1               pass only args (and --config)
#   start => 0                     do not start yet
#   ready_timeout => seconds       default 60
#   port => N                      the port it listens on when args/config set it
sub new
{
	my ($class, %o) = @_;
	my $self = bless { %o }, $class;
	$self->{base} = PgbrTest::tempdir('pgbr_px_XXXXXX');
	$self->{port} = $o{port} // PgbrTest::free_port();
	$self->{logfile} = "$self->{base}/pgbr.log";
	$self->{pidfile} = "$self->{base}/pgbr.pid";
	$self->{sockdir} = "$self->{base}/sock" if $o{unix_socket};
	mkdir $self->{sockdir} if $self->{sockdir};
	$self->{configfile} = "$self->{base}/pgbr.ini" if $o{config};
	$self->write_config($o{config}) if $o{config};
	push @PgbrTest::LIVE, $self;
	$self->start unless defined $o{start} && !$o{start};
	return $self;
}

sub port { $_[0]{port} }
sub host { '127.0.0.1' }
sub pid { $_[0]{pid} }
sub logfile { $_[0]{logfile} }
sub pidfile { $_[0]{pidfile} }
sub sockdir { $_[0]{sockdir} }
sub configfile { $_[0]{configfile} }
sub pg { $_[0]{pg} }

sub write_config
{
	my ($self, $cfg) = @_;
	$self->{configfile} //= "$self->{base}/pgbr.ini";
	my $text = "; written by PgbrTest\n[pgbr]\n";
	$text .= "$_ = $cfg->{$_}\n" for sort keys %$cfg;
	PgbrTest::spew($self->{configfile}, $text);
}

sub command
{
	my ($self) = @_;
	my @cmd = (PgbrTest::pgbr_bin());
	push @cmd, '--config', $self->{configfile} if $self->{configfile};
	if (!$self->{no_defaults})
	{
		my $pg = $self->{pg};
		push @cmd, '--listen', "127.0.0.1:$self->{port}";
		push @cmd, '--pidfile', $self->{pidfile};
		push @cmd, '--unix-socket-dir', $self->{sockdir} if $self->{sockdir};
		if ($pg)
		{
			push @cmd, '--upstream-host', ($self->{upstream_socket} ? $pg->sockdir : $pg->host);
			push @cmd, '--upstream-port', $pg->port;
			push @cmd, '--job-dsn', "host=127.0.0.1 port=" . $pg->port . " user=postgres dbname=postgres";
		}
	}
	push @cmd, @{ $self->{args} // [] };
	return @cmd;
}

sub start
{
	my ($self) = @_;
	croak "pgbr already running" if $self->{pid};
	if ($ENV{PGBR_TEST_DIRECT})
	{
		# Harness development only: talk to PostgreSQL directly.
		$self->{port} = $self->{pg}->port;
		$self->{sockdir} = $self->{pg}->sockdir;
		$self->{exit_status} = 0;
		return $self;
	}
	my @cmd = $self->command;
	$self->{cmdline} = join(' ', @cmd);
	open(my $log, '>>', $self->{logfile}) or croak "cannot open $self->{logfile}: $!";
	print $log "# started: $self->{cmdline}\n";
	$log->flush;
	local $ENV{ASAN_OPTIONS} = $ENV{ASAN_OPTIONS} // 'detect_leaks=1:abort_on_error=0:print_stacktrace=1';
	local $ENV{UBSAN_OPTIONS} = $ENV{UBSAN_OPTIONS} // 'print_stacktrace=1';
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0)
	{
		open(STDIN, '<', '/dev/null');
		open(STDOUT, '>&', $log);
		open(STDERR, '>&', $log);
		chdir $self->{base};
		{ no warnings 'exec'; exec { $cmd[0] } @cmd; }
		print STDERR "exec $cmd[0] failed: $!\n";
		POSIX::_exit(127);
	}
	close $log;
	$self->{pid} = $pid;
	$self->{exit_status} = undef;
	$self->wait_ready unless $self->{no_wait};
	return $self;
}

# Wait until the TCP port accepts connections; die with the log if pgbr
# exits first or the deadline passes.
sub wait_ready
{
	my ($self) = @_;
	my $timeout = $self->{ready_timeout} // ($ENV{PGBR_ASAN} ? 90 : 60);
	my $ok = PgbrTest::wait_for(
		sub {
			return -1 unless $self->is_running;
			my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $self->{port}, Proto => 'tcp', Timeout => 1);
			return 0 unless $s;
			close $s;
			return 1;
		},
		$timeout);
	if ($ok != 1)
	{
		my $why = $self->is_running ? "not ready after ${timeout}s" : "exited with status " . $self->exit_code;
		croak "pgbr $why\ncommand: $self->{cmdline}\nlog:\n" . $self->log_content;
	}
}

# Wait until pgbr has created its catalog table pgbr.jobs in $db (default
# postgres) upstream, which it does at start. True when it exists.
sub wait_catalog
{
	my ($self, $db, $timeout) = @_;
	$db //= 'postgres';
	return PgbrTest::wait_for(
		sub {
			my ($rc, $out) = $self->{pg}->psql("SELECT to_regclass('pgbr.jobs') IS NOT NULL", dbname => $db);
			return $rc == 0 && $out eq 't';
		},
		$timeout // 15,
		0.1);
}

# True while the process lives (reaps it when it has exited).
sub is_running
{
	my ($self) = @_;
	return 0 unless $self->{pid};
	my $r = waitpid($self->{pid}, POSIX::WNOHANG());
	if ($r == $self->{pid})
	{
		$self->{exit_status} = $?;
		$self->{pid} = undef;
		return 0;
	}
	return 1;
}

# Exit code of the last run: 0..255, or 128+signal, undef while running.
sub exit_code
{
	my ($self) = @_;
	my $st = $self->{exit_status};
	return undef unless defined $st;
	return 128 + ($st & 127) if $st & 127;
	return $st >> 8;
}

sub signal
{
	my ($self, $sig) = @_;
	croak "pgbr not running" unless $self->{pid};
	kill $sig, $self->{pid};
}

# Wait for exit; returns exit code, or undef on timeout.
sub wait_exit
{
	my ($self, $timeout) = @_;
	PgbrTest::wait_for(sub { !$self->is_running }, $timeout // 30);
	return $self->exit_code;
}

# SIGTERM, wait, SIGKILL if needed. Returns the exit code.
sub stop
{
	my ($self, %o) = @_;
	return $self->exit_code unless $self->{pid};
	kill 'TERM', $self->{pid};
	my $code = $self->wait_exit($o{timeout} // 30);
	if (!defined $code && $self->{pid})
	{
		Test::More::diag("pgbr did not exit on SIGTERM, sending SIGKILL");
		kill 'KILL', $self->{pid};
		$code = $self->wait_exit(10);
	}
	return $code;
}

sub log_content { return PgbrTest::slurp($_[0]{logfile}) // '' }

# Sanitizer/crash reports in the log (empty list when clean).
sub sanitizer_reports
{
	my ($self) = @_;
	my @r = grep { /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer/ }
	  split /\n/, $self->log_content;
	return @r;
}

# Stop and assert a clean exit (code 0) and no sanitizer report.
sub stop_ok
{
	my ($self, $name) = @_;
	$name //= 'pgbr';
	my $code = $self->stop;
	Test::More::is($code, 0, "$name exits 0 on SIGTERM");
	$self->check_log_ok($name);
	return $code;
}

sub check_log_ok
{
	my ($self, $name) = @_;
	my @r = $self->sanitizer_reports;
	Test::More::ok(!@r, "$name log has no sanitizer report")
	  or Test::More::diag(join("\n", @r) . "\n" . _tail($self->log_content, 80));
}

sub _tail
{
	my ($text, $n) = @_;
	my @l = split /\n/, $text;
	@l = @l[-$n .. -1] if @l > $n;
	return join("\n", @l);
}

sub _cleanup
{
	my ($self) = @_;
	my $tb = Test::More->builder;
	if ($self->{pid})
	{
		kill 'TERM', $self->{pid};
		if (!defined $self->wait_exit(15))
		{
			kill 'KILL', $self->{pid};
			$self->wait_exit(5);
		}
	}
	if (!$tb->is_passing || $self->sanitizer_reports)
	{
		Test::More::diag("--- pgbr log (tail) $self->{logfile}\n" . _tail($self->log_content, 60));
	}
}

###########################################################################

package PgbrTest::Raw;

# A minimal protocol-3 frontend over a raw TCP socket. Reads are buffered and
# every read has a timeout, so a broken server fails a test instead of
# hanging it.

use strict;
use warnings;
use Carp;
use Digest::MD5 ();
use IO::Select;
use IO::Socket::INET;
use Time::HiRes qw(time);

sub new
{
	my ($class, %o) = @_;
	my $sock = IO::Socket::INET->new(
		PeerAddr => $o{host} // '127.0.0.1',
		PeerPort => $o{port},
		Proto => 'tcp',
		Timeout => 10) or croak "connect to port $o{port}: $!";
	$sock->autoflush(1);
	binmode $sock;
	return bless { sock => $sock, buf => '', timeout => $o{timeout} // 30, eof => 0 }, $class;
}

sub socket { $_[0]{sock} }

sub send_raw
{
	my ($self, $bytes) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length $bytes)
	{
		my $n = syswrite($self->{sock}, $bytes, length($bytes) - $off, $off);
		return 0 unless defined $n && $n > 0;
		$off += $n;
	}
	return 1;
}

# One typed message: type byte, int32 length, payload.
sub send_msg
{
	my ($self, $type, $payload) = @_;
	$payload //= '';
	return $self->send_raw($type . pack('N', 4 + length $payload) . $payload);
}

sub startup_packet
{
	my (%params) = @_;
	my $body = pack('N', 196608);
	for my $k (sort keys %params)
	{
		$body .= "$k\0$params{$k}\0";
	}
	$body .= "\0";
	return pack('N', 4 + length $body) . $body;
}

# Send a startup packet (user/database default to postgres) and read until
# ReadyForQuery or an error. Trust auth only (and cleartext/md5 if
# password => given). Returns the message list; croaks unless it ended with Z
# when $o{expect_ok} (default 1).
sub startup
{
	my ($self, %o) = @_;
	my %p = (user => 'postgres', database => 'postgres', %{ $o{params} // {} });
	$self->send_raw(startup_packet(%p));
	my @msgs;
	while (1)
	{
		my $m = $self->read_msg;
		if (!$m)
		{
			croak "startup: connection closed/timed out after " . scalar(@msgs) . " messages" if $o{expect_ok} // 1;
			last;
		}
		push @msgs, $m;
		if ($m->{type} eq 'R')
		{
			my $code = unpack('N', $m->{body});
			next if $code == 0;
			if ($code == 5 && defined $o{password})
			{
				my $salt = substr($m->{body}, 4, 4);
				my $inner = Digest::MD5::md5_hex($o{password} . $p{user});
				$self->send_msg('p', 'md5' . Digest::MD5::md5_hex($inner . $salt) . "\0");
				next;
			}
			if ($code == 3 && defined $o{password})
			{
				$self->send_msg('p', "$o{password}\0");
				next;
			}
			$self->{auth_request} = $code;
			croak "startup: server asked for authentication method $code" if $o{expect_ok} // 1;
			last;
		}
		elsif ($m->{type} eq 'K')
		{
			($self->{backend_pid}, $self->{cancel_key}) = unpack('NN', $m->{body});
		}
		elsif ($m->{type} eq 'S')
		{
			my ($k, $v) = split /\0/, $m->{body};
			$self->{params}{$k} = $v;
		}
		elsif ($m->{type} eq 'Z')
		{
			$self->{status} = $m->{body};
			last;
		}
		elsif ($m->{type} eq 'E')
		{
			croak "startup failed: " . PgbrTest::Raw::error_string($m) if $o{expect_ok} // 1;
			last;
		}
	}
	return @msgs;
}

sub backend_pid { $_[0]{backend_pid} }
sub cancel_key { $_[0]{cancel_key} }
sub status { $_[0]{status} }

# Fill the buffer until it holds $n bytes. Returns false on EOF or timeout.
sub _fill
{
	my ($self, $n, $timeout) = @_;
	my $deadline = time + ($timeout // $self->{timeout});
	my $sel = IO::Select->new($self->{sock});
	while (length($self->{buf}) < $n)
	{
		my $left = $deadline - time;
		if ($left <= 0)
		{
			# Out of step with the server from now on: later reads on this
			# connection fail at once instead of each waiting again.
			$self->{timed_out} = 1;
			$self->{broken} = 1;
			Test::More::diag("raw client: no answer within the timeout; "
				  . "treating this connection as out of sync") unless $self->{quiet};
			return 0;
		}
		next unless $sel->can_read($left);
		my $r = sysread($self->{sock}, $self->{buf}, 65536, length $self->{buf});
		if (!$r) { $self->{eof} = 1; return 0 }
	}
	return 1;
}

# Next message as { type, body }, or undef on EOF/timeout (check ->eof and
# ->timed_out).
sub read_msg
{
	my ($self, $timeout) = @_;
	return undef if $self->{broken};
	$self->{timed_out} = 0;
	return undef unless $self->_fill(5, $timeout);
	my ($type, $len) = unpack('a1 N', substr($self->{buf}, 0, 5));
	croak "bad message length $len from server (type '$type')" if $len < 4 || $len > 1_500_000_000;
	return undef unless $self->_fill(1 + $len, $timeout);
	my $body = substr($self->{buf}, 5, $len - 4);
	substr($self->{buf}, 0, 1 + $len) = '';
	return { type => $type, body => $body };
}

# Read exactly $n raw bytes (e.g. the SSLRequest answer).
sub read_bytes
{
	my ($self, $n, $timeout) = @_;
	return undef unless $self->_fill($n, $timeout);
	my $b = substr($self->{buf}, 0, $n);
	substr($self->{buf}, 0, $n) = '';
	return $b;
}

sub eof { $_[0]{eof} }
sub timed_out { $_[0]{timed_out} }

# True when the server closes the connection within $timeout (default 10 s),
# discarding anything it still sends.
sub wait_closed
{
	my ($self, $timeout) = @_;
	my $deadline = time + ($timeout // 10);
	while (time < $deadline)
	{
		my $m = $self->read_msg($deadline - time);
		return 1 if !$m && $self->{eof};
		return 0 if !$m;
	}
	return 0;
}

# Read messages until ReadyForQuery (inclusive). Returns the list; the last
# element is not Z if the connection closed or the read timed out.
sub read_until_ready
{
	my ($self, $timeout) = @_;
	my @msgs;
	while (my $m = $self->read_msg($timeout))
	{
		push @msgs, $m;
		if ($m->{type} eq 'Z') { $self->{status} = $m->{body}; last }
	}
	return @msgs;
}

sub close
{
	my ($self) = @_;
	return unless $self->{sock};
	$self->send_msg('X') unless $self->{eof};
	CORE::close($self->{sock});
	$self->{sock} = undef;
}

# ---- message builders ---------------------------------------------------

sub query { my ($s, $sql) = @_; $s->send_msg('Q', "$sql\0") }
sub sync { $_[0]->send_msg('S') }
sub flush { $_[0]->send_msg('H') }

sub parse
{
	my ($self, $name, $sql, @types) = @_;
	$self->send_msg('P', "$name\0$sql\0" . pack('n', scalar @types) . join('', map { pack('N', $_) } @types));
}

# bind($portal, $stmt, \@params) - text params; undef = NULL; text results.
sub bind
{
	my ($self, $portal, $stmt, $params) = @_;
	$params //= [];
	my $b = "$portal\0$stmt\0" . pack('n', 0) . pack('n', scalar @$params);
	for my $p (@$params)
	{
		$b .= defined $p ? pack('N', length $p) . $p : pack('l>', -1);
	}
	$b .= pack('n', 0);
	$self->send_msg('B', $b);
}

sub describe { my ($s, $kind, $name) = @_; $s->send_msg('D', $kind . ($name // '') . "\0") }
sub execute { my ($s, $portal, $max) = @_; $s->send_msg('E', ($portal // '') . "\0" . pack('N', $max // 0)) }
sub close_stmt { my ($s, $kind, $name) = @_; $s->send_msg('C', $kind . ($name // '') . "\0") }

# Parse/Bind/Describe portal/Execute of one unnamed statement (no Sync).
sub extended
{
	my ($self, $sql, $params, %o) = @_;
	$self->parse('', $sql);
	$self->bind('', '', $params // []);
	$self->describe('P', '') if $o{describe};
	$self->execute('', 0);
}

# ---- message decoding ---------------------------------------------------

# ErrorResponse/NoticeResponse body -> { S, V, C, M, D, H, P, ... }
sub fields
{
	my ($m) = @_;
	my %f;
	for my $part (split /\0/, $m->{body})
	{
		next if $part eq '';
		$f{ substr($part, 0, 1) } = substr($part, 1);
	}
	return \%f;
}

sub error_string
{
	my ($m) = @_;
	my $f = fields($m);
	return join(' ', map { $_ // '' } $f->{S}, $f->{C}, $f->{M});
}

sub row_description
{
	my ($m) = @_;
	my $n = unpack('n', $m->{body});
	my $off = 2;
	my @cols;
	for (1 .. $n)
	{
		my $end = index($m->{body}, "\0", $off);
		my $name = substr($m->{body}, $off, $end - $off);
		$off = $end + 1;
		my ($tbl, $att, $typ, $len, $mod, $fmt) = unpack('N n N s> l> n', substr($m->{body}, $off, 18));
		$off += 18;
		push @cols, { name => $name, type => $typ, typlen => $len, typmod => $mod, format => $fmt };
	}
	return \@cols;
}

sub data_row
{
	my ($m) = @_;
	my $n = unpack('n', $m->{body});
	my $off = 2;
	my @vals;
	for (1 .. $n)
	{
		my $len = unpack('l>', substr($m->{body}, $off, 4));
		$off += 4;
		if ($len < 0) { push @vals, undef; next }
		push @vals, substr($m->{body}, $off, $len);
		$off += $len;
	}
	return \@vals;
}

# Summarise a response list: { types => 'string of type bytes', rows =>
# [[...]], columns => [names], coltypes => [oids], tags => [...], errors =>
# [fields], notices => [fields], status => Z status, params => [oids] }.
sub summarize
{
	my (@msgs) = @_;
	my %r = (types => '', rows => [], tags => [], errors => [], notices => [], notifications => []);
	for my $m (@msgs)
	{
		$r{types} .= $m->{type};
		if ($m->{type} eq 'T')
		{
			my $cols = row_description($m);
			$r{columns} = [ map { $_->{name} } @$cols ];
			$r{coltypes} = [ map { $_->{type} } @$cols ];
		}
		elsif ($m->{type} eq 'D') { push @{ $r{rows} }, data_row($m) }
		elsif ($m->{type} eq 'C') { my $t = $m->{body}; $t =~ s/\0\z//; push @{ $r{tags} }, $t }
		elsif ($m->{type} eq 'E') { push @{ $r{errors} }, fields($m) }
		elsif ($m->{type} eq 'N') { push @{ $r{notices} }, fields($m) }
		elsif ($m->{type} eq 'A')
		{
			my ($pid, $rest) = (unpack('N', $m->{body}), substr($m->{body}, 4));
			my ($ch, $payload) = split /\0/, $rest, -1;
			push @{ $r{notifications} }, { pid => $pid, channel => $ch, payload => $payload };
		}
		elsif ($m->{type} eq 't')
		{
			my $n = unpack('n', $m->{body});
			$r{params} = [ unpack("x2 N$n", $m->{body}) ];
		}
		elsif ($m->{type} eq 'Z') { $r{status} = $m->{body} }
	}
	$r{error} = $r{errors}[0];
	return \%r;
}

# Simple query; returns summarize() of the response up to ReadyForQuery.
sub simple_query
{
	my ($self, $sql, $timeout) = @_;
	$self->query($sql);
	return summarize($self->read_until_ready($timeout));
}

# Extended query with one Sync; returns summarize().
sub extended_query
{
	my ($self, $sql, $params, %o) = @_;
	$self->extended($sql, $params, %o);
	$self->sync;
	return summarize($self->read_until_ready($o{timeout}));
}

# CancelRequest on a new connection to $port.
sub send_cancel
{
	my (%o) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $o{port}, Proto => 'tcp', Timeout => 10)
	  or croak "connect for cancel: $!";
	syswrite($s, pack('NNNN', 16, 80877102, $o{pid}, $o{key}));
	# The server closes the connection after reading the request.
	my $sel = IO::Select->new($s);
	my $buf;
	sysread($s, $buf, 1) if $sel->can_read(5);
	CORE::close($s);
}

package PgbrTest;

# Quote a conninfo value.
sub _cq
{
	my ($v) = @_;
	return $v if $v =~ /^[A-Za-z0-9_.\/=:-]+$/;
	$v =~ s/(['\\])/\\$1/g;
	return "'$v'";
}

###########################################################################
# Restore fidelity helpers: what a database holds, in a form two databases
# (or two servers) can be compared by. Methods of PgbrTest::Postgres, so
# that they also work on a second instance.

package PgbrTest::Postgres;

# A whole-row reference that no column name can shadow (a column named like
# the alias would win over the row in "alias::text").
my $ROW_TEXT = q{(fidelity_row.*)::text};

# $pg->table_checksums($dbname, %o) -> { key => value }
#   "schema.table"     => "<rows>:<md5 of the row texts ordered bytewise>"
#                         for every ordinary table, partition and
#                         materialized view ("unpopulated" for a matview
#                         WITH NO DATA), rows of that table only (FROM ONLY);
#   "seq:schema.name"  => "<last_value>:<is_called>" for every sequence
#                         (identity and serial sequences too).
# System schemas are skipped, and so is pgbr's own schema unless
# include_pgbr => 1. tables => [ 'schema.table', ... ] restricts the result
# to those keys (and "seq:" keys of sequences named in seqs => [...]).
# One psql run: the per-table queries are glued with UNION ALL.
sub table_checksums
{
	my ($self, $dbname, %o) = @_;
	my $skip_pgbr = $o{include_pgbr} ? '' : q{ AND n.nspname <> 'pgbr'};
	my $list_sql = <<"SQL";
SELECT string_agg(q, E'\\nUNION ALL\\n' ORDER BY k) FROM (
  SELECT n.nspname || '.' || c.relname AS k,
         CASE WHEN c.relkind = 'm' AND NOT c.relispopulated
              THEN format('SELECT %L, %L', n.nspname || '.' || c.relname, 'unpopulated')
              ELSE format('SELECT %L, count(*) || '':'' || coalesce(md5(string_agg($ROW_TEXT, E''\\n'' ORDER BY $ROW_TEXT COLLATE "C")), '''') FROM ONLY %I.%I AS fidelity_row',
                          n.nspname || '.' || c.relname, n.nspname, c.relname)
         END AS q
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'm')
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    AND c.relpersistence <> 't'$skip_pgbr
  UNION ALL
  SELECT 'seq:' || n.nspname || '.' || c.relname,
         format('SELECT %L, last_value || '':'' || is_called FROM %I.%I',
                'seq:' || n.nspname || '.' || c.relname, n.nspname, c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'S'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
    AND c.relpersistence <> 't'$skip_pgbr
) per_relation
SQL
	my $query = $self->safe_psql($list_sql, dbname => $dbname);
	my %sum;
	return \%sum if $query eq '';
	# Field separator \x1f: keys may hold any printable character.
	my $out = $self->safe_psql($query, dbname => $dbname, extra => [ '-F', "\x1f" ], timeout => 600);
	for my $line (split /\n/, $out)
	{
		my ($k, $v) = split /\x1f/, $line, 2;
		$sum{$k} = $v;
	}
	if ($o{tables} || $o{seqs})
	{
		my %want = map { ($_ => 1) } @{ $o{tables} // [] }, map { "seq:$_" } @{ $o{seqs} // [] };
		delete $sum{$_} for grep { !$want{$_} } keys %sum;
	}
	return \%sum;
}

# $pg->schema_dump($dbname, %o) -> text of `pg_dump --schema-only` of the
# database, passed through PgbrTest::normalize_dump($text, $dbname) so that
# two databases (of any name, on any server of the same version) compare
# equal when their schemas are. %o: tables => [ 'schema.table', ... ] dumps
# only those (pg_dump -t, exact names: quoted for pg_dump's pattern syntax);
# args => [ more pg_dump flags ]. Croaks when pg_dump fails.
sub schema_dump
{
	my ($self, $dbname, %o) = @_;
	my @cmd = (
		PgbrTest::pg_bindir() . '/pg_dump', '--schema-only', '--no-sync',
		'-h', $self->host, '-p', $self->port, '-U', 'postgres', '-d', $dbname);
	for my $t (@{ $o{tables} // [] })
	{
		my ($s, $n) = split /\./, $t, 2;
		push @cmd, '-t', _dump_pattern_ident($s) . '.' . _dump_pattern_ident($n);
	}
	push @cmd, @{ $o{args} // [] };
	my ($rc, $out, $err) = PgbrTest::run_cmd(\@cmd, timeout => 300);
	croak "pg_dump --schema-only $dbname failed ($rc): $err" if $rc;
	return PgbrTest::normalize_dump($out, $dbname);
}

# One part of a pg_dump -t pattern that matches exactly this identifier:
# double-quoted, so case, dots and pattern characters (* ? .) are literal.
sub _dump_pattern_ident
{
	my ($id) = @_;
	return '"' . ($id =~ s/"/""/gr) . '"';
}

package PgbrTest;

# normalize_dump($text, $dbname) -> a pg_dump/pg_restore plain-text script
# with what differs between two dumps of equal schemas made the same:
#   - the \restrict / \unrestrict key (random per run) becomes "KEY";
#   - \connect <db> and the statements that name the database itself
#     (COMMENT ON / ALTER / GRANT / REVOKE / SECURITY LABEL ... DATABASE <db>)
#     say "<dbname>" instead (a --schema-only dump without --create has none).
sub normalize_dump
{
	my ($text, $dbname) = @_;
	my $qname = $dbname =~ /^[a-z_][a-z0-9_\$]*\z/ ? $dbname : '"' . ($dbname =~ s/"/""/gr) . '"';
	my @lines;
	for my $l (split /\n/, $text, -1)
	{
		$l =~ s/^\\(unrestrict|restrict) \S+$/\\$1 KEY/;
		$l =~ s/^\\connect .*/\\connect <dbname>/;
		if ($l =~ /^(COMMENT ON|ALTER|GRANT|REVOKE|SECURITY LABEL) / && $l =~ /\bDATABASE \Q$qname\E(?=[\s;]|\z)/)
		{
			$l =~ s/\bDATABASE \Q$qname\E(?=[\s;]|\z)/DATABASE <dbname>/g;
		}
		push @lines, $l;
	}
	my $out = join("\n", @lines);
	# pgbr's own publications (a chain's change stream, docs/incremental.md)
	# are pgbr's, not the database's: a restore leaves them out
	$out =~ s/^--\n-- Name: pgbr_\d+(?: [^\n]*?)?; Type: PUBLICATION(?: TABLE)?;.*?(?=^--\n-- (?:Name: |PostgreSQL database dump complete)|\z)//msg;
	return $out;
}

# archive_schema($file, $dbname) -> the schema script of a pg_dump custom
# archive (pg_restore --schema-only -f -), normalized as schema_dump's output
# is, so that it compares equal to $pg->schema_dump($dbname) of the database
# it was taken from. Croaks when pg_restore fails.
sub archive_schema
{
	my ($file, $dbname) = @_;
	my ($rc, $out, $err) = run_cmd([ pg_bindir() . '/pg_restore', '--schema-only', '-f', '-', $file ], timeout => 300);
	croak "pg_restore --schema-only $file failed ($rc): $err" if $rc;
	return normalize_dump($out, $dbname);
}

# text_diff($a, $b, $label_a, $label_b) -> a unified diff of two texts ('' if
# equal), for diag() when two dumps differ.
sub text_diff
{
	my ($x, $y, $la, $lb) = @_;
	return '' if $x eq $y;
	my $dir = File::Temp::tempdir('pgbr_diff_XXXXXX', DIR => $TMPBASE, CLEANUP => 0);
	my ($na, $nb) = map { my $n = $_; $n =~ s/[^\w.-]/_/g; $n } ($la // 'a', $lb // 'b');
	$nb .= '.2' if $na eq $nb;
	spew("$dir/$na", "$x\n");
	spew("$dir/$nb", "$y\n");
	my ($rc, $out, $err) = run_cmd([ 'diff', '-u', $na, $nb ], cwd => $dir);
	remove_tree($dir);
	return $out ne '' ? $out : "texts differ (diff: $err)";
}

# checksum_differences(\%a, \%b) -> list of "key: <a> vs <b>" for every key
# whose value differs or that only one side has (sorted); empty when equal.
sub checksum_differences
{
	my ($x, $y) = @_;
	my %keys = map { ($_ => 1) } keys %$x, keys %$y;
	my @d;
	for my $k (sort keys %keys)
	{
		my ($va, $vb) = ($x->{$k}, $y->{$k});
		next if defined $va && defined $vb && $va eq $vb;
		push @d, "$k: " . ($va // '(missing)') . ' vs ' . ($vb // '(missing)');
	}
	return @d;
}

1;
