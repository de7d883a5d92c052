--
-- SHOW JOBS, SHOW JOB n and SHOW JOBS <select> through pgbr. The jobs are
-- inserted straight into pgbr.jobs (a forwarded INSERT: this database is
-- pgbr's catalog database in this suite). pg_regress's session prints
-- timestamps as DateStyle 'Postgres, MDY' in America/Los_Angeles; SHOW JOBS must too.
--
DELETE FROM pgbr.jobs;
INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, created, started, finished, modified, fraction_completed, running_status, error, coordinator_id, trace_id, execution_errors) VALUES
  (101, 'BACKUP', 'running', 'BACKUP DATABASE app INTO ''nodelocal://1/backups''', 'BACKUP DATABASE app INTO $1', 'postgres', '2026-01-01 10:00:00+00', '2026-01-01 10:00:05.25+00', NULL, '2026-01-01 10:01:00+00', 0.25, 'exporting spans', '', 1, 42, '{}'),
  (102, 'RESTORE', 'pending', 'RESTORE DATABASE app FROM LATEST IN ''nodelocal://1/backups''', '', 'postgres', '2026-01-01 11:00:00+00', NULL, NULL, '2026-01-01 11:00:00+00', 0, NULL, '', NULL, NULL, '{}'),
  (103, 'BACKUP', 'failed', 'BACKUP TABLE t INTO ''nodelocal://1/t''', '', 'alice', '2025-07-01 09:00:00+00', '2025-07-01 09:00:01+00', '2025-07-01 09:05:00+00', '2025-07-01 09:05:00+00', 0.5, NULL, 'connection refused', 1, NULL, '{"attempt 1: connection refused","attempt 2: timeout"}'),
  (104, 'BACKUP', 'paused', repeat('a very long description ', 10), '', 'bob', '2026-01-01 09:00:00+00', '2026-01-01 09:00:00+00', NULL, '2026-01-01 09:30:00+00', 0.125, 'paused by user', '', 2, NULL, '{}');
-- The listing: unfinished jobs, most recently started first, never started
-- ones after them; 103 finished long ago and is not listed. Descriptions
-- are cut to 100 characters.
SHOW JOBS;
-- One job by id, any age, full description.
\x on
SHOW JOB 103;
SHOW JOB 104;
\x off
SHOW JOB 999;
SHOW JOBS SELECT 103 UNION ALL SELECT 101;
SHOW JOBS SELECT id FROM pgbr.jobs WHERE job_type = 'RESTORE';
SHOW JOBS VALUES (102), (101);
show job 101;
/* leading comment */ SHOW JOB 102;
SHOW JOB 101 ;
-- Timestamps follow the session's settings.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SHOW JOB 101;
SET TimeZone = 'Asia/Kolkata';
SHOW JOB 101;
RESET TimeZone;
RESET DateStyle;
-- SHOW JOBS inside a transaction block, between forwarded statements.
BEGIN;
SELECT count(*) FROM pgbr.jobs;
SHOW JOB 102;
SELECT 'still in the transaction' AS msg;
COMMIT;
-- A user that is neither superuser nor in the admin role sees only its own.
\c - alice
SHOW JOB 103;
SHOW JOB 101;
SHOW JOBS;
\c - postgres
DELETE FROM pgbr.jobs;
SHOW JOBS;
