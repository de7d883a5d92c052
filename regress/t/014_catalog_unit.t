#!/usr/bin/perl
# Runs the C unit test of the catalog and executor (test_catalog) against a
# real PostgreSQL: migrations from empty and when current, concurrent
# migrations, job ids, SHOW JOBS ordering and privileges. The program prints
# TAP itself; this file starts the server, runs it, and relays its verdict.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $unit_dir = $ENV{PGBR_UNIT_DIR};
plan skip_all => 'PGBR_UNIT_DIR is not set' unless $unit_dir && -x "$unit_dir/test_catalog";

my $pg = PgbrTest::Postgres->new;
my ($rc, $out, $err) = run_cmd(["$unit_dir/test_catalog"], timeout => 300,
    env => { PGBR_TEST_CATALOG_DSN => $pg->connstr(dbname => 'postgres', user => 'postgres') });
my @not_ok = grep { /^not ok/ } split /\n/, $out;
my ($planned) = $out =~ /^1\.\.(\d+)/m;
ok(defined $planned && $planned > 0 && $out !~ /SKIP/, 'test_catalog ran against PostgreSQL') or diag($out);
is(scalar(@not_ok), 0, "all $planned catalog/executor checks passed") or diag(join("\n", @not_ok), "\n", $err);
is($rc, 0, 'test_catalog exited 0') or diag($err);
$pg->stop;
done_testing();
