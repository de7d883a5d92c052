--
-- Statements pgbr owns but does not run yet answer 0A000.
--
BACKUP DATABASE x TO 'nodelocal://1/x';
\echo :LAST_ERROR_SQLSTATE
RESTORE SYSTEM USERS FROM LATEST IN 'nodelocal://1/x' WITH detached;
RESTORE DATABASE postgres FROM LATEST IN 'nodelocal://1/x' WITH encryption_passphrase = 'pw';
\echo :LAST_ERROR_SQLSTATE
-- Others: only the SQLSTATE is shown here.
\set VERBOSITY sqlstate
SHOW BACKUP FILES FROM LATEST IN 'nodelocal://1/x';
PAUSE JOBS FOR SCHEDULE 1;
RESUME JOBS FOR SCHEDULES SELECT 1;
CANCEL JOBS FOR SCHEDULE 1;
SHOW SCHEDULES;
\set VERBOSITY default
SELECT 'session still works' AS msg;
