--
-- Our statements in transaction blocks: BACKUP/RESTORE without DETACHED are
-- refused (25001) and fail the transaction; in a failed transaction ours
-- answer 25P02 like any statement.
--
BEGIN;
SHOW JOBS;
BACKUP INTO 'nodelocal://1/x';
\echo :LAST_ERROR_SQLSTATE
SELECT 1;
ROLLBACK;
BEGIN;
RESTORE FROM LATEST IN 'nodelocal://1/x';
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
BACKUP INTO 'nodelocal://1/x' WITH detached;
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
SELECT 1/0;
SHOW JOBS;
\echo :LAST_ERROR_SQLSTATE
SHOW JOB 1;
BACKUP INTO 'nodelocal://1/x' WITH detached;
ROLLBACK;
SHOW JOBS;
