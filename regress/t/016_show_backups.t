#!/usr/bin/perl
# SHOW BACKUPS IN: the full backups of a collection under --external-io-dir,
# ascending, incrementals and junk ignored; confinement to external_io_dir;
# the admin role required for nodelocal:// and file://; unsupported schemes
# and a missing --external-io-dir give clear errors; $1 works in the
# extended protocol.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use PgbrTest;
use Test::More;
use File::Path qw(make_path);

my $pg = PgbrTest::Postgres->new;
my $extern = tempdir();
my $coll = "$extern/coll";
for my $d ('2026/11/24-080102.53', '2026/11/23-120000.00', '2025/01/02-030405.06') {
	make_path("$coll/$d");
	spew("$coll/$d/BACKUP_MANIFEST", '{}');
}
make_path("$coll/incrementals/2026/11/23-120000.00/20261123/130000.00");
spew("$coll/incrementals/2026/11/23-120000.00/20261123/130000.00/BACKUP_MANIFEST", '{}');
make_path("$coll/2026/11/25-000000.00");               # no manifest: an unfinished backup
make_path("$coll/junk/dir/x");
spew("$coll/junk/dir/x/BACKUP_MANIFEST", '{}');          # not a backup subdir name

my $pgbr = PgbrTest::Pgbr->new(pg => $pg, args => [ '--external-io-dir', $extern, '--admin-role', 'backup_admins' ]);

my ($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'");
is($rc, 0, 'SHOW BACKUPS IN nodelocal') or diag($err);
is($out, "/2025/01/02-030405.06\n/2026/11/23-120000.00\n/2026/11/24-080102.53", 'full backups, ascending, nothing else');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'file://$coll'");
is($out, "/2025/01/02-030405.06\n/2026/11/23-120000.00\n/2026/11/24-080102.53", 'the same through file://');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://self/empty'");
is($rc, 0, 'a collection that does not exist yet is empty');
is($out, '', 'no rows');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'", raw => 1);
like($out, qr/^\s*path\s*$/m, 'the column is named path');
like($out, qr/\(3 rows\)/, 'three rows');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/../'");
like($err, qr/leads outside external_io_dir/, '.. refused');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'file:///etc'");
like($err, qr/ERROR/, 'file:// outside external_io_dir refused');
unlike($err, qr/passwd|shadow/, 'nothing of /etc leaks');
symlink('/etc', "$extern/escape");
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/escape'");
like($err, qr/ERROR/, 'a symlink out of external_io_dir refused');

($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 's3://bucket/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=topsecret'");
like($err, qr/s3 storage is not implemented yet/, 's3 not yet');
unlike($err, qr/topsecret/, 'no secret in the error');
unlike(slurp($pgbr->logfile), qr/topsecret/, 'no secret in the log');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'ftp://x/y'");
like($err, qr/unsupported storage scheme: "ftp"/, 'unknown scheme');

# Privileges: admin role for nodelocal/file.
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'", user => 'alice');
like($err, qr/only users with the admin role are allowed to access the specified nodelocal URI/, 'non-admin refused');
$pg->safe_psql('GRANT backup_admins TO bob');
($rc, $out, $err) = $pgbr->psql("SHOW BACKUPS IN 'nodelocal://0/coll'", user => 'bob');
is($rc, 0, 'a member of the admin role may') or diag($err);

# Extended protocol with the URI as $1 (psycopg 3).
my $py = <<'PY';
import sys, psycopg
with psycopg.connect(sys.argv[1]) as c:
    rows = c.execute("SHOW BACKUPS IN %s", ["nodelocal://0/coll"], prepare=False).fetchall()
    print(",".join(r[0] for r in rows))
PY
($rc, $out, $err) = run_cmd([ '/usr/bin/python3', '-c', $py, $pgbr->connstr ]);
is($rc, 0, 'psycopg ran SHOW BACKUPS IN $1') or diag($err);
is($out, "/2025/01/02-030405.06,/2026/11/23-120000.00,/2026/11/24-080102.53\n", 'rows through the extended protocol');

# No external_io_dir configured.
my $bare = PgbrTest::Pgbr->new(pg => $pg);
($rc, $out, $err) = $bare->psql("SHOW BACKUPS IN 'nodelocal://0/coll'");
like($err, qr/ERROR/, 'nodelocal without --external-io-dir is an error');
like($err, qr/external-io-dir|external_io_dir/, 'the error names the setting');

$bare->stop_ok;
$pgbr->stop_ok;
$pg->stop;
done_testing();
