--
-- Syntax errors in our statements: SQLSTATE 42601 and the position of the
-- offending token, shown by psql as LINE n and a caret, as PostgreSQL does.
--
BACKUP INTO;
\echo :LAST_ERROR_SQLSTATE
BACKUP INTO 'nodelocal://1/x' WITH bogus;
RESTORE FROM LATEST IN 'nodelocal://1/x' WITH bogus;
SHOW JOBS 42;
SHOW JOB;
PAUSE JOB;
-- Positions count leading blanks and comments, and lines.
   /* comment */   BACKUP INTO 'x' WITH nope;
BACKUP INTO 'nodelocal://1/x'
  WITH
    detached, nope;
-- A repeated option.
\set VERBOSITY sqlstate
BACKUP INTO 'nodelocal://1/x' WITH detached, detached;
\echo :LAST_ERROR_MESSAGE
\set VERBOSITY default
-- The session goes on.
SELECT 'after the errors' AS msg;
