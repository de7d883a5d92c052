#!/usr/bin/perl
# Replication connections (replication=database) relayed by pgbr: walsender
# commands through psql, and pg_recvlogical creating a slot, streaming a
# change made after it, and dropping the slot, all through pgbr.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;

my $pg = PgbrTest::Postgres->new;
my $pgbr = PgbrTest::Pgbr->new(pg => $pg);
my $dir = tempdir();

my $sysid = $pg->safe_psql('SELECT system_identifier FROM pg_control_system()');
my ($rc, $out, $err) = $pgbr->psql('IDENTIFY_SYSTEM', conn => { replication => 'database' });
is($rc, 0, 'IDENTIFY_SYSTEM through pgbr') or diag($err);
my @f = split /\|/, $out;
is($f[0], $sysid, 'system identifier of the upstream');
is($f[1], '1', 'timeline 1');
is($f[3], 'postgres', 'database of the replication connection');

($rc, $out, $err) = $pgbr->psql('SELECT 1 + 1', conn => { replication => 'database' });
is($out, '2', 'SQL on a replication=database connection');

# --- logical decoding with pg_recvlogical ---------------------------------------------
my @recv = (pg_bindir() . '/pg_recvlogical', '-d', $pgbr->connstr, '-S', 'pgbr_slot');
($rc, $out, $err) = run_cmd([ @recv, '--create-slot', '-P', 'test_decoding' ]);
is($rc, 0, 'pg_recvlogical --create-slot through pgbr') or diag($err);
is($pg->safe_psql("SELECT plugin FROM pg_replication_slots WHERE slot_name = 'pgbr_slot'"), 'test_decoding', 'slot exists upstream');

$pg->safe_psql("CREATE TABLE rt (id int PRIMARY KEY, v text); INSERT INTO rt VALUES (1, 'hello'), (2, 'world'); UPDATE rt SET v = 'again' WHERE id = 2");
my $lsn = $pg->safe_psql('SELECT pg_current_wal_lsn()');
($rc, $out, $err) = run_cmd([ @recv, '--start', '--no-loop', '-E', $lsn, '-f', "$dir/out.txt", '-o', 'include-xids=0' ], timeout => 60);
is($rc, 0, 'pg_recvlogical --start through pgbr reached the end position') or diag($err);
my $got = slurp("$dir/out.txt") // '';
like($got, qr/table public\.rt: INSERT: id\[integer\]:1 v\[text\]:'hello'/, 'first INSERT streamed');
like($got, qr/table public\.rt: INSERT: id\[integer\]:2 v\[text\]:'world'/, 'second INSERT streamed');
like($got, qr/table public\.rt: UPDATE: id\[integer\]:2 v\[text\]:'again'/, 'UPDATE streamed');
my $confirmed = $pg->safe_psql("SELECT confirmed_flush_lsn >= '$lsn'::pg_lsn FROM pg_replication_slots WHERE slot_name = 'pgbr_slot'");
is($confirmed, 't', 'feedback through pgbr advanced the slot');

# A second run starts after the confirmed position: only new changes.
$pg->safe_psql("INSERT INTO rt VALUES (3, 'later')");
$lsn = $pg->safe_psql('SELECT pg_current_wal_lsn()');
($rc, $out, $err) = run_cmd([ @recv, '--start', '--no-loop', '-E', $lsn, '-f', "$dir/out2.txt", '-o', 'include-xids=0' ], timeout => 60);
is($rc, 0, 'second pg_recvlogical run');
$got = slurp("$dir/out2.txt") // '';
like($got, qr/INSERT: id\[integer\]:3 v\[text\]:'later'/, 'new change streamed');
unlike($got, qr/'hello'/, 'old changes not streamed again');

($rc, $out, $err) = run_cmd([ @recv, '--drop-slot' ]);
is($rc, 0, 'pg_recvlogical --drop-slot through pgbr') or diag($err);
is($pg->safe_psql("SELECT count(*) FROM pg_replication_slots"), '0', 'slot dropped');
is($pgbr->safe_psql('SELECT 1'), '1', 'normal sessions unaffected');

# A physical replication connection (replication=true) is relayed too.
($rc, $out, $err) = $pgbr->psql('IDENTIFY_SYSTEM', conn => { replication => 'true' });
like($out, qr/^\Q$sysid\E\|1\|/, 'physical replication connection (replication=true)') or diag($err);

$pgbr->stop_ok;
done_testing();
