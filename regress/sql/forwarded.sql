--
-- Statements that look like ours but are PostgreSQL's go through untouched.
--
CREATE TABLE backup (jobs int, restore text);
INSERT INTO backup VALUES (1, 'SHOW JOBS'), (2, 'BACKUP INTO ''x''');
SELECT * FROM backup ORDER BY jobs;
SELECT 'BACKUP INTO ''nodelocal://1/x''' AS text, $$SHOW JOBS$$ AS dollar;
SELECT 1 AS one -- BACKUP INTO 'x'
;
/* SHOW JOBS */ SELECT 2 AS two;
SET pgbr.jobs = 'a custom setting';
SHOW pgbr.jobs;
SHOW intervalstyle;
SELECT interval '1 day 2 hours' AS iv;
SELECT now() IS NOT NULL AS has_now, current_setting('DateStyle') AS datestyle;
DROP TABLE backup;
