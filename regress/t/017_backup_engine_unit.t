#!/usr/bin/perl
# Runs the C unit test of the backup engine (test_backup_engine) against a
# real PostgreSQL: a scratch database backed up into a temporary
# external_io_dir, the manifest, data files, schema dump and LATEST checked
# against the source, writes after the snapshot not seen, failures leaving
# nothing behind. The program prints TAP itself; this file starts the server,
# runs it, and relays its verdict.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $unit_dir = $ENV{PGBR_UNIT_DIR};
plan skip_all => 'PGBR_UNIT_DIR is not set' unless $unit_dir && -x "$unit_dir/test_backup_engine";

my $pg = PgbrTest::Postgres->new;
my $dsn = $pg->connstr(dbname => 'postgres', user => 'postgres');
$dsn =~ s/\s*dbname=\S+//;    # the engine adds dbname per database
my ($rc, $out, $err) = run_cmd(["$unit_dir/test_backup_engine"], timeout => 600,
    env => { PGBR_TEST_BACKUP_DSN => $dsn });
my @not_ok = grep { /^not ok/ } split /\n/, $out;
my ($planned) = $out =~ /^1\.\.(\d+)/m;
ok(defined $planned && $planned > 0 && $out !~ /SKIP/, 'test_backup_engine ran against PostgreSQL')
    or diag($out);
is(scalar(@not_ok), 0, "all $planned backup engine checks passed") or diag(join("\n", @not_ok), "\n", $err);
is($rc, 0, 'test_backup_engine exited 0') or diag($err);
$pg->stop;
done_testing();
