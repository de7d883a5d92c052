/*
 * test_sql.c - unit tests of src/sql and grammar/: the splitter and the
 * "maybe ours" check, every statement form of the reference parsed to the
 * expected tree (compared through sql_stmt_dump), deparse round trips,
 * copy, redaction, and error reports (SQLSTATE, message, character
 * position). Prints TAP; meant to run under valgrind too.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gram.h"
#include "pgbr/sql.h"
#include "tap.h"

#define ARRAY_LEN(a) ((int) (sizeof(a) / sizeof((a)[0])))

/* A test name on one line: newlines and tabs of SQL text escaped. */
static const char *
name_of(const char *sql)
{
    static char out[4][512];
    static int next;
    char *o = out[next++ % 4];
    size_t n = 0;

    for (; *sql != '\0' && n < sizeof out[0] - 3; sql++) {
        if (*sql == '\n' || *sql == '\t') {
            o[n++] = '\\';
            o[n++] = *sql == '\n' ? 'n' : 't';
        } else {
            o[n++] = *sql;
        }
    }
    o[n] = '\0';
    return o;
}

/* ---- Keywords --------------------------------------------------------- */

typedef struct keyword_entry {
    const char *name;
    int token;
    sql_keyword_category category;
} keyword_entry;

#define PGBR_KEYWORD(name, token, category) { name, token, category },
static const keyword_entry keyword_list[] = {
#include "../../grammar/keywords.h"
};
#undef PGBR_KEYWORD

static void
test_keywords(void)
{
    bool sorted = true;
    bool found = true;

    for (int i = 0; i < ARRAY_LEN(keyword_list); i++) {
        const char *name = NULL;
        sql_keyword_category category = 0;

        if (i > 0 && strcmp(keyword_list[i - 1].name, keyword_list[i].name) >= 0) {
            tap_diag("keyword %s is out of order", keyword_list[i].name);
            sorted = false;
        }
        if (sql_keyword_lookup(keyword_list[i].name, strlen(keyword_list[i].name), &name, &category)
                != keyword_list[i].token
            || category != keyword_list[i].category || strcmp(name, keyword_list[i].name) != 0) {
            tap_diag("keyword %s not found", keyword_list[i].name);
            found = false;
        }
    }
    tap_ok(sorted, "keyword list is sorted");
    tap_ok(found, "every keyword is found with its token and category");
    tap_is_int(sql_keyword_lookup("backu", 5, NULL, NULL), -1, "a prefix of a keyword is not one");
    tap_is_int(sql_keyword_lookup("backupx", 7, NULL, NULL), -1, "a keyword plus a letter is not one");
    tap_is_int(sql_keyword_lookup("backups_", 7, NULL, NULL), BACKUPS, "lookup uses the given length");
}

/* ---- Splitter --------------------------------------------------------- */

typedef struct split_case {
    const char *query;
    const char *spans;      /* "F:0-8 O:10-19": kind, byte start, byte end */
} split_case;

static const split_case split_cases[] = {
    { "SHOW JOBS", "O:0-9" },
    { "SHOW search_path", "F:0-16" },
    { "show /* x */ JOBS", "O:0-17" },
    { "SHOW -- comment\n jobs", "O:0-21" },
    { "SHOW ALL", "F:0-8" },
    { "SHOW running", "F:0-12" },
    { "SHOW CREATE TABLE t", "F:0-19" },
    { "CREATE TABLE t (a int)", "F:0-22" },
    { "ALTER TABLE t ADD b int", "F:0-23" },
    { "DROP TABLE t", "F:0-12" },
    { "CREATE EXTERNAL TABLE t", "F:0-23" },
    { "CANCEL QUERY 1", "F:0-14" },
    { "SELECT 'a;b'; SHOW JOBS", "F:0-12 O:14-23" },
    { "SELECT 'it''s;'; BACKUP INTO 'x'", "F:0-15 O:17-32" },
    { "SELECT E'a\\';b'; SHOW JOBS", "F:0-15 O:17-26" },
    { "SELECT e'\\\\'; SHOW JOBS", "F:0-12 O:14-23" },
    { "SELECT 'a\\'; SHOW JOBS", "F:0-11 O:13-22" },
    { "SELECT U&'a;b', U&\"c;d\", B'1;', X'f;', N'g;'; SHOW JOBS", "F:0-44 O:46-55" },
    { "SELECT \"a\"\";b\"; SHOW JOBS", "F:0-14 O:16-25" },
    { "SELECT $$;$$; SELECT $tag$ $$ ; $ $tag$; SHOW JOBS", "F:0-12 F:14-39 O:41-50" },
    { "SELECT $a$ $b$ ; $b$ $a$; SHOW JOBS", "F:0-24 O:26-35" },
    { "SELECT $1; SHOW JOBS", "F:0-9 O:11-20" },
    { "SELECT a$b, c$$; SHOW JOBS", "F:0-15 O:17-26" },
    { "SELECT 1 /* ; /* ; */ ; */; SHOW JOBS", "F:0-26 O:28-37" },
    { "SELECT 1 -- ;\n; SHOW JOBS", "F:0-14 O:16-25" },
    { "SELECT (1; 2); SHOW JOBS", "F:0-9 F:11-13 O:15-24" },
    { "SELECT 'abc; SHOW JOBS", "F:0-22" },
    { "SELECT 1 /* abc; SHOW JOBS", "F:0-26" },
    { "SELECT $$abc; SHOW JOBS", "F:0-23" },
    { "BACKUP INTO 'abc; SHOW JOBS", "O:0-27" },
    { ";;", "E:0-0 E:1-1" },
    { "", "E:0-0" },
    { "  /* only */ -- a comment", "E:25-25" },
    { "SELECT 1;", "F:0-8" },
    { "SELECT 1; ;", "F:0-8 E:10-10" },
    { "  /* c */ -- x\n BACKUP INTO 'x'", "O:16-31" },
    { "SELECT 1; BACKUP INTO 'x'; SET x = 1; SHOW JOBS;", "F:0-8 O:10-25 F:27-36 O:38-47" },
    { "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END; SHOW JOBS",
      "F:0-81 O:83-92" },
    { "CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; END; BACKUP INTO 'x'",
      "F:0-82 O:84-99" },
    { "BEGIN; SELECT 1; END; SHOW JOBS", "F:0-5 F:7-15 F:17-20 O:22-31" },
    { "BACKUP", "O:0-6" },
    { "RESTORE FROM LATEST IN 'x'", "O:0-26" },
    { "SHOW BACKUP FROM LATEST IN 'x'", "O:0-30" },
    { "SHOW BACKUPS IN 'x'", "O:0-19" },
    { "SHOW JOB 1", "O:0-10" },
    { "SHOW AUTOMATIC JOBS", "O:0-19" },
    { "SHOW AUTOMATIC", "F:0-14" },
    { "SHOW CHANGEFEED JOB 1", "O:0-21" },
    { "SHOW CHANGEFEED JOBS", "O:0-20" },
    { "SHOW SCHEDULE 1", "O:0-15" },
    { "SHOW SCHEDULES", "O:0-14" },
    { "SHOW RUNNING SCHEDULES", "O:0-22" },
    { "SHOW PAUSED SCHEDULES", "O:0-21" },
    { "SHOW CREATE SCHEDULE 1", "O:0-22" },
    { "SHOW CREATE ALL SCHEDULES", "O:0-25" },
    { "SHOW CREATE EXTERNAL CONNECTION x", "O:0-33" },
    { "SHOW CREATE ALL EXTERNAL CONNECTIONS", "O:0-36" },
    { "PAUSE JOB 1", "O:0-11" },
    { "pause jobs select 1", "O:0-19" },
    { "PAUSE ALL BACKUP JOBS", "O:0-21" },
    { "PAUSE SCHEDULE 1", "O:0-16" },
    { "RESUME SCHEDULES SELECT 1", "O:0-25" },
    { "RESUME JOB 1", "O:0-12" },
    { "CANCEL JOBS SELECT 1", "O:0-20" },
    { "CANCEL ALL IMPORT JOBS", "O:0-22" },
    { "ALTER BACKUP LATEST IN 'x' ADD NEW_KMS = 'a' WITH OLD_KMS = 'b'", "O:0-63" },
    { "ALTER BACKUP SCHEDULE 1 EXECUTE IMMEDIATELY", "O:0-43" },
    { "CREATE SCHEDULE FOR BACKUP INTO 'x' RECURRING '@daily'", "O:0-54" },
    { "CREATE EXTERNAL CONNECTION c AS 'x'", "O:0-35" },
    { "DROP SCHEDULE 1", "O:0-15" },
    { "DROP SCHEDULES SELECT 1", "O:0-23" },
    { "DROP EXTERNAL CONNECTION c", "O:0-26" },
    { "(BACKUP INTO 'x')", "F:0-17" },
    { "\"BACKUP\" INTO 'x'", "F:0-17" },
    { "SHOW \"JOBS\"", "F:0-11" },
    { "SELECT 1;\n/* BACKUP */ select 'backup'", "F:0-8 F:23-38" },
};

static char *
render_spans(const sql_span *spans, int n)
{
    static char out[1024];
    size_t len = 0;

    out[0] = '\0';
    for (int i = 0; i < n && len < sizeof out - 64; i++) {
        char kind = spans[i].kind == SQL_SPAN_OURS ? 'O' : spans[i].kind == SQL_SPAN_FORWARD ? 'F' : 'E';
        len += (size_t) snprintf(out + len, sizeof out - len, "%s%c:%zu-%zu", i > 0 ? " " : "", kind,
                                 spans[i].start, spans[i].end);
    }
    return out;
}

/* True if any span of query is ours: then sql_maybe_ours must say so too. */
static bool
has_ours(const char *query)
{
    sql_span *spans;
    int n;
    bool ours = false;

    sql_split(query, strlen(query), &spans, &n);
    for (int i = 0; i < n; i++)
        if (spans[i].kind == SQL_SPAN_OURS)
            ours = true;
    free(spans);
    return ours;
}

static void
test_split(void)
{
    for (int i = 0; i < ARRAY_LEN(split_cases); i++) {
        const split_case *c = &split_cases[i];
        sql_span *spans;
        int n;

        sql_split(c->query, strlen(c->query), &spans, &n);
        tap_is_str(render_spans(spans, n), c->spans, "split: %s", name_of(c->query));
        free(spans);
    }

    tap_ok(!sql_maybe_ours("SELECT 1", 8), "maybe_ours: SELECT 1 is not");
    tap_ok(!sql_maybe_ours("SHOW search_path", 16), "maybe_ours: SHOW search_path is not");
    tap_ok(!sql_maybe_ours("CREATE TABLE t (a int); INSERT INTO t VALUES (1)", 48),
           "maybe_ours: plain DDL/DML is not");
    tap_ok(sql_maybe_ours("SELECT 1; bAcKuP INTO 'x'", 25), "maybe_ours: second statement BACKUP, any case");
    tap_ok(sql_maybe_ours("select 1; Show Jobs", 19), "maybe_ours: SHOW JOBS");
    tap_ok(!sql_maybe_ours("SELECT 1; BACKU", 15), "maybe_ours: a cut keyword does not count");
    tap_ok(sql_maybe_ours("SELECT 1; BACKUP", 16), "maybe_ours: keyword at the very end");
    tap_ok(!sql_maybe_ours("SELECT 1; BACKUP", 15), "maybe_ours: honours len");
}

/* ---- Statements ----------------------------------------------------- */

typedef struct stmt_case {
    const char *sql;
    const char *dump;
} stmt_case;

static const stmt_case stmt_cases[] = {
    { "BACKUP INTO 's3://bucket/path?AUTH=implicit'",
      "(BACKUP targets=(CLUSTER) into=('s3://bucket/path?AUTH=implicit'))" },
    { "BACKUP DATABASE bank INTO 'nodelocal://1/backups'",
      "(BACKUP targets=(DATABASES bank) into=('nodelocal://1/backups'))" },
    { "BACKUP DATABASE a, b INTO LATEST IN 'external://store'",
      "(BACKUP targets=(DATABASES a b) into_latest_in=('external://store'))" },
    { "BACKUP TABLE bank.public.customers, bank.accounts INTO '2023/03/23-213101.37' IN 's3://b'",
      "(BACKUP targets=(TABLES bank.public.customers bank.accounts) into_subdir='2023/03/23-213101.37' in=('s3://b'))" },
    { "BACKUP bank.customers, db.sch.*, sch.*, * INTO 's3://b'",
      "(BACKUP targets=(TABLES bank.customers db.sch.* sch.* *) into=('s3://b'))" },
    { "BACKUP db.* INTO ('s3://a?COCKROACH_LOCALITY=default', 's3://b?COCKROACH_LOCALITY=region%3Dus-west')",
      "(BACKUP targets=(TABLES db.*) into=('s3://a?COCKROACH_LOCALITY=default' 's3://b?COCKROACH_LOCALITY=region%3Dus-west'))" },
    { "BACKUP INTO '2023/01' IN $1 AS OF SYSTEM TIME '-10s'",
      "(BACKUP targets=(CLUSTER) into_subdir='2023/01' in=($1) as_of=(raw:string '-10s') nparams=1)" },
    { "BACKUP INTO 's3://b' AS OF SYSTEM TIME now() - interval '1h' WITH revision_history",
      "(BACKUP targets=(CLUSTER) into=('s3://b') as_of=(raw now() - interval '1h') options=(revision_history))" },
    { "BACKUP TO 's3://b' AS OF SYSTEM TIME 1700000000000000000 INCREMENTAL FROM 's3://full', 's3://inc1' WITH detached",
      "(BACKUP targets=(CLUSTER) to=('s3://b') as_of=(raw:int 1700000000000000000) incremental_from=('s3://full' 's3://inc1') options=(detached))" },
    { "BACKUP TABLE t TO ('s3://x', 's3://y') INCREMENTAL FROM ('s3://full')",
      "(BACKUP targets=(TABLES t) to=('s3://x' 's3://y') incremental_from=('s3://full'))" },
    { "BACKUP INTO 's3://b' WITH encryption_passphrase = 'pw', revision_history = false, detached = true, kms = ('aws:///k1', 'aws:///k2'), incremental_location = 's3://inc', EXECUTION LOCALITY = 'region=us-west-1', include_all_virtual_clusters = true, updates_cluster_monitoring_metrics",
      "(BACKUP targets=(CLUSTER) into=('s3://b') options=(revision_history=false encryption_passphrase='pw' detached kms=('aws:///k1' 'aws:///k2') incremental_location=('s3://inc') execution locality='region=us-west-1' include_all_virtual_clusters updates_cluster_monitoring_metrics))" },
    { "BACKUP INTO 's3://b' WITH OPTIONS (detached = false, revision_history = $2, include_all_secondary_tenants)",
      "(BACKUP targets=(CLUSTER) into=('s3://b') options=(revision_history=(raw:param $2) detached=false include_all_virtual_clusters) nparams=2)" },
    { "backup database \"Bank\", \"a\"\"b\" into latest in 's3://b' with KMS = 'aws:///k'",
      "(BACKUP targets=(DATABASES \"Bank\" \"a\"\"b\") into_latest_in=('s3://b') options=(kms=('aws:///k')))" },
    { "BACKUP INTO 's3://b' WITH revision_history = 'true', updates_cluster_monitoring_metrics = false",
      "(BACKUP targets=(CLUSTER) into=('s3://b') options=(revision_history=(raw:string 'true') updates_cluster_monitoring_metrics=false))" },
    { "BACKUP INTO LATEST IN 's3://b' AS OF SYSTEM TIME '2021-01-01'::timestamp with time zone WITH detached",
      "(BACKUP targets=(CLUSTER) into_latest_in=('s3://b') as_of=(raw '2021-01-01'::timestamp with time zone) options=(detached))" },
    { "BACKUP INTO latest",
      "(BACKUP targets=(CLUSTER) into=('latest'))" },
    { "BACKUP INTO 's3://b' WITH execution locality = region, encryption_passphrase = $1",
      "(BACKUP targets=(CLUSTER) into=('s3://b') options=(encryption_passphrase=$1 execution locality='region') nparams=1)" },
    { "BACKUP TABLE jobs, schedule.backup, \"select\".latest INTO 's3://b'",
      "(BACKUP targets=(TABLES jobs schedule.backup \"select\".latest) into=('s3://b'))" },
    { "BACKUP INTO $$s3://b$$ WITH encryption_passphrase = $tag$p'w$$$tag$",
      "(BACKUP targets=(CLUSTER) into=('s3://b') options=(encryption_passphrase='p''w$$'))" },
    { "BACKUP INTO E'tab\\there\\\\' WITH encryption_passphrase = U&'d\\0061t\\+000061'",
      "(BACKUP targets=(CLUSTER) into=('tab\there\\') options=(encryption_passphrase='data'))" },
    { "bAcKuP dAtAbAsE X iNtO 's3://b' wItH DeTaChEd",
      "(BACKUP targets=(DATABASES x) into=('s3://b') options=(detached))" },
    { "BACKUP /* c */ INTO -- x\n 's3://b';",
      "(BACKUP targets=(CLUSTER) into=('s3://b'))" },
    { "BACKUP INTO 's3://b' AS OF SYSTEM TIME -5 WITH detached",
      "(BACKUP targets=(CLUSTER) into=('s3://b') as_of=(raw:int -5) options=(detached))" },
    { "RESTORE FROM LATEST IN 's3://b'",
      "(RESTORE targets=(CLUSTER) latest_in=(('s3://b')))" },
    { "RESTORE FROM '2023/03/23-213101.37' IN ('s3://east', 's3://west') AS OF SYSTEM TIME '2023-01-23 18:56:48'",
      "(RESTORE targets=(CLUSTER) subdir='2023/03/23-213101.37' in=(('s3://east' 's3://west')) as_of=(raw:string '2023-01-23 18:56:48'))" },
    { "RESTORE DATABASE movr FROM '/2023/01/23-185448.11' IN 'external://backup_s3' WITH new_db_name = movr2",
      "(RESTORE targets=(DATABASES movr) subdir='/2023/01/23-185448.11' in=(('external://backup_s3')) options=(new_db_name='movr2'))" },
    { "RESTORE TABLE bank.customers FROM LATEST IN 's3://b' WITH into_db = newdb, skip_missing_foreign_keys, skip_missing_sequences, skip_missing_sequence_owners, skip_missing_views, skip_missing_udfs",
      "(RESTORE targets=(TABLES bank.customers) latest_in=(('s3://b')) options=(into_db='newdb' skip_missing_foreign_keys skip_missing_sequences skip_missing_sequence_owners skip_missing_views skip_missing_udfs))" },
    { "RESTORE bank.* FROM LATEST IN 's3://b' WITH detached = false, skip_localities_check, schema_only, verify_backup_table_data, remove_regions",
      "(RESTORE targets=(TABLES bank.*) latest_in=(('s3://b')) options=(detached=false skip_localities_check schema_only verify_backup_table_data remove_regions))" },
    { "RESTORE SYSTEM USERS FROM LATEST IN 's3://b'",
      "(RESTORE targets=(SYSTEM USERS) latest_in=(('s3://b')))" },
    { "RESTORE SYSTEM USERS FROM '2023/01' IN 's3://b' WITH detached",
      "(RESTORE targets=(SYSTEM USERS) subdir='2023/01' in=(('s3://b')) options=(detached))" },
    { "RESTORE FROM 's3://full', 's3://inc1'",
      "(RESTORE targets=(CLUSTER) from=(('s3://full') ('s3://inc1')))" },
    { "RESTORE DATABASE a FROM ('s3://p1a', 's3://p1b'), ('s3://p2a', 's3://p2b') WITH encryption_passphrase = 'pw', kms = 'aws:///k'",
      "(RESTORE targets=(DATABASES a) from=(('s3://p1a' 's3://p1b') ('s3://p2a' 's3://p2b')) options=(encryption_passphrase='pw' kms=('aws:///k')))" },
    { "RESTORE FROM LATEST IN (('s3://a', 's3://b'), ('s3://c', 's3://d'))",
      "(RESTORE targets=(CLUSTER) latest_in=(('s3://a' 's3://b') ('s3://c' 's3://d')))" },
    { "RESTORE FROM LATEST IN 's3://b' WITH OPTIONS (EXECUTION LOCALITY = 'region=1', virtual_cluster_name = 't2', virtual_cluster = '5', unsafe_restore_incompatible_version, EXPERIMENTAL DEFERRED COPY, incremental_location = ('s3://i1', 's3://i2'))",
      "(RESTORE targets=(CLUSTER) latest_in=(('s3://b')) options=(incremental_location=('s3://i1' 's3://i2') execution locality='region=1' virtual_cluster_name='t2' virtual_cluster='5' unsafe_restore_incompatible_version experimental deferred copy))" },
    { "RESTORE FROM $1 IN $2 AS OF SYSTEM TIME $3",
      "(RESTORE targets=(CLUSTER) subdir=$1 in=(($2)) as_of=(raw:param $3) nparams=3)" },
    { "RESTORE FROM daily_backups IN 's3://b'",
      "(RESTORE targets=(CLUSTER) subdir='daily_backups' in=(('s3://b')))" },
    { "RESTORE FROM 'LATEST' IN 's3://b'",
      "(RESTORE targets=(CLUSTER) subdir='LATEST' in=(('s3://b')))" },
    { "RESTORE TABLE \"My Table\" FROM LATEST IN 's3://b' WITH into_db = \"NewDb\"",
      "(RESTORE targets=(TABLES \"My Table\") latest_in=(('s3://b')) options=(into_db='NewDb'))" },
    { "RESTORE system FROM LATEST IN 's3://b'",
      "(RESTORE targets=(TABLES system) latest_in=(('s3://b')))" },
    { "SHOW BACKUPS IN 's3://b'",
      "(SHOW BACKUPS in=('s3://b'))" },
    { "SHOW BACKUPS IN ('s3://a', 's3://b')",
      "(SHOW BACKUPS in=('s3://a' 's3://b'))" },
    { "SHOW BACKUP FROM LATEST IN 's3://b'",
      "(SHOW BACKUP latest_in=('s3://b'))" },
    { "SHOW BACKUP SCHEMAS FROM '2023/01' IN 's3://b' WITH privileges",
      "(SHOW BACKUP what=SCHEMAS subdir='2023/01' in=('s3://b') options=(privileges))" },
    { "SHOW BACKUP FILES FROM LATEST IN 's3://b' WITH check_files, as_json",
      "(SHOW BACKUP what=FILES latest_in=('s3://b') options=(as_json check_files))" },
    { "SHOW BACKUP RANGES LATEST IN 's3://b' WITH debug_ids",
      "(SHOW BACKUP what=RANGES latest_in=('s3://b') options=(debug_ids))" },
    { "SHOW BACKUP VALIDATE FROM LATEST IN 's3://b'",
      "(SHOW BACKUP what=VALIDATE latest_in=('s3://b'))" },
    { "SHOW BACKUP '2023/01/23-185448.11' IN 's3://b' WITH OPTIONS (kms = ('aws:///a', 'aws:///b'), incremental_location = 's3://i', encryption_passphrase = 'pw', encryption_info_dir = 's3://d', skip size, debug_dump_metadata_sst)",
      "(SHOW BACKUP subdir='2023/01/23-185448.11' in=('s3://b') options=(skip size incremental_location=('s3://i') kms=('aws:///a' 'aws:///b') encryption_passphrase='pw' encryption_info_dir='s3://d' debug_dump_metadata_sst))" },
    { "SHOW BACKUP SCHEMAS LATEST IN 's3://b'",
      "(SHOW BACKUP what=SCHEMAS latest_in=('s3://b'))" },
    { "SHOW BACKUP 's3://full/path' WITH encryption_passphrase = 'pw'",
      "(SHOW BACKUP path='s3://full/path' options=(encryption_passphrase='pw'))" },
    { "SHOW BACKUP SCHEMAS 's3://full/path'",
      "(SHOW BACKUP what=SCHEMAS path='s3://full/path')" },
    { "SHOW BACKUP CONNECTION 's3://b'",
      "(SHOW BACKUP CONNECTION uri='s3://b')" },
    { "SHOW BACKUP CONNECTION 's3://b' WITH TRANSFER = '5MiB', TIME = '2m', CONCURRENTLY = 4",
      "(SHOW BACKUP CONNECTION uri='s3://b' options=(transfer='5MiB' time='2m' concurrently=(raw:int 4)))" },
    { "SHOW BACKUP CONNECTION 's3://b' WITH OPTIONS (CONCURRENTLY = $1)",
      "(SHOW BACKUP CONNECTION uri='s3://b' options=(concurrently=(raw:param $1)) nparams=1)" },
    { "SHOW JOBS",
      "(SHOW JOBS form=ALL)" },
    { "SHOW AUTOMATIC JOBS",
      "(SHOW JOBS form=ALL automatic)" },
    { "SHOW JOBS WITH EXECUTION DETAILS",
      "(SHOW JOBS form=ALL execution_details)" },
    { "SHOW CHANGEFEED JOBS",
      "(SHOW JOBS form=ALL changefeed)" },
    { "SHOW JOBS SELECT id FROM system.jobs WHERE status = 'running'",
      "(SHOW JOBS form=SELECT select=(raw SELECT id FROM system.jobs WHERE status = 'running'))" },
    { "SHOW JOBS (SELECT 1)",
      "(SHOW JOBS form=SELECT select=(raw (SELECT 1)))" },
    { "SHOW JOBS VALUES (1), (2)",
      "(SHOW JOBS form=SELECT select=(raw VALUES (1), (2)))" },
    { "SHOW JOBS TABLE pgbr.jobs",
      "(SHOW JOBS form=SELECT select=(raw TABLE pgbr.jobs))" },
    { "SHOW JOBS WHEN COMPLETE SELECT job_id FROM [SHOW JOBS] WHERE job_type = 'BACKUP'",
      "(SHOW JOBS form=SELECT when_complete select=(raw SELECT job_id FROM [SHOW JOBS] WHERE job_type = 'BACKUP'))" },
    { "SHOW JOBS FOR SCHEDULES SELECT id FROM [SHOW SCHEDULES]",
      "(SHOW JOBS form=FOR_SCHEDULES select=(raw SELECT id FROM [SHOW SCHEDULES]))" },
    { "SHOW JOBS FOR SCHEDULE 123",
      "(SHOW JOBS form=FOR_SCHEDULE expr=(raw:int 123))" },
    { "SHOW JOB 123",
      "(SHOW JOBS form=ONE expr=(raw:int 123))" },
    { "SHOW JOB $1 WITH EXECUTION DETAILS",
      "(SHOW JOBS form=ONE execution_details expr=(raw:param $1) nparams=1)" },
    { "SHOW JOB WHEN COMPLETE 123",
      "(SHOW JOBS form=ONE when_complete expr=(raw:int 123))" },
    { "SHOW CHANGEFEED JOB 5",
      "(SHOW JOBS form=ONE changefeed expr=(raw:int 5))" },
    { "SHOW CHANGEFEED JOBS SELECT 1",
      "(SHOW JOBS form=SELECT changefeed select=(raw SELECT 1))" },
    { "SHOW JOBS WITH x AS (SELECT 1) SELECT * FROM x",
      "(SHOW JOBS form=SELECT select=(raw WITH x AS (SELECT 1) SELECT * FROM x))" },
    { "SHOW JOBS WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
      "(SHOW JOBS form=SELECT select=(raw WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r))" },
    { "SHOW JOBS WITH execution AS MATERIALIZED (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM execution, b",
      "(SHOW JOBS form=SELECT select=(raw WITH execution AS MATERIALIZED (SELECT 1), b AS NOT MATERIALIZED (SELECT 2) SELECT * FROM execution, b))" },
    { "PAUSE JOB 123",
      "(PAUSE JOBS form=ONE expr=(raw:int 123))" },
    { "PAUSE JOB 123 WITH REASON = 'maintenance'",
      "(PAUSE JOBS form=ONE expr=(raw:int 123) reason='maintenance')" },
    { "PAUSE JOBS SELECT id FROM t WHERE x IN (1, 2) WITH REASON = $1",
      "(PAUSE JOBS form=SELECT select=(raw SELECT id FROM t WHERE x IN (1, 2)) reason=$1 nparams=1)" },
    { "PAUSE JOBS SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY WITH REASON = upgrade",
      "(PAUSE JOBS form=SELECT select=(raw SELECT * FROM unnest(ARRAY[1, 2]) WITH ORDINALITY) reason='upgrade')" },
    { "PAUSE JOBS FOR SCHEDULE 5",
      "(PAUSE JOBS form=FOR_SCHEDULE expr=(raw:int 5))" },
    { "PAUSE JOBS FOR SCHEDULES SELECT id FROM s",
      "(PAUSE JOBS form=FOR_SCHEDULES select=(raw SELECT id FROM s))" },
    { "PAUSE ALL BACKUP JOBS",
      "(PAUSE JOBS form=ALL_OF_TYPE type=BACKUP)" },
    { "RESUME JOB -5",
      "(RESUME JOBS form=ONE expr=(raw:int -5))" },
    { "RESUME JOBS SELECT 1",
      "(RESUME JOBS form=SELECT select=(raw SELECT 1))" },
    { "RESUME JOBS FOR SCHEDULE (SELECT 1)",
      "(RESUME JOBS form=FOR_SCHEDULE expr=(raw (SELECT 1)))" },
    { "RESUME JOBS FOR SCHEDULES SELECT 1",
      "(RESUME JOBS form=FOR_SCHEDULES select=(raw SELECT 1))" },
    { "RESUME ALL RESTORE JOBS",
      "(RESUME JOBS form=ALL_OF_TYPE type=RESTORE)" },
    { "CANCEL JOB 1",
      "(CANCEL JOBS form=ONE expr=(raw:int 1))" },
    { "CANCEL JOBS SELECT id FROM j",
      "(CANCEL JOBS form=SELECT select=(raw SELECT id FROM j))" },
    { "CANCEL JOBS FOR SCHEDULE 1",
      "(CANCEL JOBS form=FOR_SCHEDULE expr=(raw:int 1))" },
    { "CANCEL JOBS FOR SCHEDULES SELECT 1",
      "(CANCEL JOBS form=FOR_SCHEDULES select=(raw SELECT 1))" },
    { "CANCEL ALL CHANGEFEED JOBS",
      "(CANCEL JOBS form=ALL_OF_TYPE type=CHANGEFEED)" },
    { "CANCEL ALL IMPORT JOBS",
      "(CANCEL JOBS form=ALL_OF_TYPE type=IMPORT)" },
    { "ALTER BACKUP LATEST IN 's3://b' ADD NEW_KMS = 'aws:///new' WITH OLD_KMS = 'aws:///old'",
      "(ALTER BACKUP latest_in=('s3://b') cmds=((new_kms=('aws:///new') old_kms=('aws:///old'))))" },
    { "ALTER BACKUP '2023/01' IN 's3://b' ADD NEW_KMS = ('aws:///a', 'aws:///b') WITH OLD_KMS = 'aws:///c' ADD NEW_KMS = 'aws:///d' WITH OLD_KMS = ('aws:///e', 'aws:///f')",
      "(ALTER BACKUP subdir='2023/01' in=('s3://b') cmds=((new_kms=('aws:///a' 'aws:///b') old_kms=('aws:///c')) (new_kms=('aws:///d') old_kms=('aws:///e' 'aws:///f'))))" },
    { "ALTER BACKUP 's3://full/path' ADD NEW_KMS = 'aws:///a' WITH OLD_KMS = 'aws:///b'",
      "(ALTER BACKUP path='s3://full/path' cmds=((new_kms=('aws:///a') old_kms=('aws:///b'))))" },
    { "CREATE SCHEDULE FOR BACKUP INTO 's3://b' RECURRING '@daily'",
      "(CREATE SCHEDULE FOR BACKUP targets=(CLUSTER) into=('s3://b') recurring='@daily')" },
    { "CREATE SCHEDULE 'schedule_database' FOR BACKUP DATABASE movr INTO 'external://s' WITH revision_history RECURRING '@daily' FULL BACKUP ALWAYS",
      "(CREATE SCHEDULE FOR BACKUP label='schedule_database' targets=(DATABASES movr) into=('external://s') options=(revision_history) recurring='@daily' full_backup=ALWAYS)" },
    { "CREATE SCHEDULE IF NOT EXISTS daily FOR BACKUP TABLE movr.public.vehicles INTO 'gs://b' WITH detached, kms = 'aws:///k' RECURRING '@hourly' FULL BACKUP '@weekly' WITH SCHEDULE OPTIONS first_run = '2021-10-19 00:00:00+00:00', on_execution_failure = 'RESCHEDULE', on_previous_running = wait, ignore_existing_backups, updates_cluster_last_backup_time_metric",
      "(CREATE SCHEDULE FOR BACKUP if_not_exists label='daily' targets=(TABLES movr.public.vehicles) into=('gs://b') options=(detached kms=('aws:///k')) recurring='@hourly' full_backup='@weekly' schedule_options=(first_run='2021-10-19 00:00:00+00:00' on_execution_failure='RESCHEDULE' on_previous_running='wait' ignore_existing_backups updates_cluster_last_backup_time_metric))" },
    { "CREATE SCHEDULE $1 FOR BACKUP db.* INTO ('s3://a', 's3://b') WITH OPTIONS (EXECUTION LOCALITY = 'r=1', incremental_location = 's3://i') RECURRING $2 FULL BACKUP $3 WITH SCHEDULE OPTIONS ('First_Run' = 'now')",
      "(CREATE SCHEDULE FOR BACKUP label=$1 targets=(TABLES db.*) into=('s3://a' 's3://b') options=(incremental_location=('s3://i') execution locality='r=1') recurring=$2 full_backup=$3 schedule_options=(first_run='now') nparams=3)" },
    { "CREATE SCHEDULE FOR BACKUP INTO 's3://b' RECURRING NEVER",
      "(CREATE SCHEDULE FOR BACKUP targets=(CLUSTER) into=('s3://b') recurring=NEVER)" },
    { "CREATE SCHEDULE if FOR BACKUP INTO 's3://b' RECURRING '*/5 * * * *'",
      "(CREATE SCHEDULE FOR BACKUP label='if' targets=(CLUSTER) into=('s3://b') recurring='*/5 * * * *')" },
    { "ALTER BACKUP SCHEDULE 123 SET LABEL 'new', SET INTO 's3://y'",
      "(ALTER BACKUP SCHEDULE id=(raw:int 123) cmds=((set_label 'new') (set_into ('s3://y'))))" },
    { "ALTER BACKUP SCHEDULE 123 SET WITH revision_history = true, SET WITH kms = ('aws:///a', 'aws:///b'), SET WITH encryption_passphrase = ''",
      "(ALTER BACKUP SCHEDULE id=(raw:int 123) cmds=((set_with option=(revision_history)) (set_with option=(kms=('aws:///a' 'aws:///b'))) (set_with option=(encryption_passphrase=''))))" },
    { "ALTER BACKUP SCHEDULE 123 SET RECURRING '@hourly', SET RECURRING NEVER, SET FULL BACKUP '@daily', SET FULL BACKUP ALWAYS",
      "(ALTER BACKUP SCHEDULE id=(raw:int 123) cmds=((set_recurring '@hourly') (set_recurring NEVER) (set_full_backup '@daily') (set_full_backup ALWAYS)))" },
    { "ALTER BACKUP SCHEDULE $1 SET SCHEDULE OPTION on_execution_failure = 'pause', SET SCHEDULE OPTION updates_cluster_last_backup_time_metric",
      "(ALTER BACKUP SCHEDULE id=(raw:param $1) cmds=((set_schedule_option on_execution_failure='pause') (set_schedule_option updates_cluster_last_backup_time_metric)) nparams=1)" },
    { "ALTER BACKUP SCHEDULE 123 EXECUTE IMMEDIATELY",
      "(ALTER BACKUP SCHEDULE id=(raw:int 123) cmds=((execute_immediately)))" },
    { "ALTER BACKUP SCHEDULE 123 EXECUTE FULL IMMEDIATELY",
      "(ALTER BACKUP SCHEDULE id=(raw:int 123) cmds=((execute_full_immediately)))" },
    { "SHOW SCHEDULES",
      "(SHOW SCHEDULES)" },
    { "SHOW RUNNING SCHEDULES",
      "(SHOW SCHEDULES filter=RUNNING)" },
    { "SHOW PAUSED SCHEDULES FOR BACKUP",
      "(SHOW SCHEDULES filter=PAUSED for=(BACKUP))" },
    { "SHOW SCHEDULES FOR SQL STATISTICS",
      "(SHOW SCHEDULES for=(SQL STATISTICS))" },
    { "SHOW RUNNING SCHEDULES FOR CHANGEFEED",
      "(SHOW SCHEDULES filter=RUNNING for=(CHANGEFEED))" },
    { "SHOW SCHEDULE 123",
      "(SHOW SCHEDULE id=(raw:int 123))" },
    { "SHOW CREATE SCHEDULE 123",
      "(SHOW CREATE SCHEDULE id=(raw:int 123))" },
    { "SHOW CREATE ALL SCHEDULES",
      "(SHOW CREATE ALL SCHEDULES)" },
    { "PAUSE SCHEDULE 123",
      "(PAUSE SCHEDULES id=(raw:int 123))" },
    { "PAUSE SCHEDULES WITH x AS (SHOW SCHEDULES) SELECT id FROM x WHERE label = 'schedule_database'",
      "(PAUSE SCHEDULES select=(raw WITH x AS (SHOW SCHEDULES) SELECT id FROM x WHERE label = 'schedule_database'))" },
    { "RESUME SCHEDULE $1",
      "(RESUME SCHEDULES id=(raw:param $1) nparams=1)" },
    { "RESUME SCHEDULES SELECT id FROM s",
      "(RESUME SCHEDULES select=(raw SELECT id FROM s))" },
    { "DROP SCHEDULE 1",
      "(DROP SCHEDULES id=(raw:int 1))" },
    { "DROP SCHEDULES SELECT id FROM s",
      "(DROP SCHEDULES select=(raw SELECT id FROM s))" },
    { "CREATE EXTERNAL CONNECTION backup_bucket AS 's3://bucket?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=b'",
      "(CREATE EXTERNAL CONNECTION name='backup_bucket' uri='s3://bucket?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=b')" },
    { "CREATE EXTERNAL CONNECTION IF NOT EXISTS 'kms_conn' AS 'aws-kms:///arn?AUTH=implicit'",
      "(CREATE EXTERNAL CONNECTION if_not_exists name='kms_conn' uri='aws-kms:///arn?AUTH=implicit')" },
    { "DROP EXTERNAL CONNECTION backup_bucket",
      "(DROP EXTERNAL CONNECTION name='backup_bucket')" },
    { "SHOW CREATE EXTERNAL CONNECTION 'backup_bucket'",
      "(SHOW CREATE EXTERNAL CONNECTION name='backup_bucket')" },
    { "SHOW CREATE ALL EXTERNAL CONNECTIONS",
      "(SHOW CREATE ALL EXTERNAL CONNECTIONS)" },
};

static sql_stmt *
parse(const char *sql, int base, pgbr_error *err)
{
    return sql_parse(sql, strlen(sql), base, err);
}

static void
test_statements(void)
{
    for (int i = 0; i < ARRAY_LEN(stmt_cases); i++) {
        const stmt_case *c = &stmt_cases[i];
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *stmt = parse(c->sql, 0, &err);
        sql_stmt *again;
        sql_stmt *copy;
        char *dump;
        char *text;
        char *dump2;

        if (stmt == NULL) {
            tap_ok(0, "parse: %s", name_of(c->sql));
            tap_diag("%s: %s", err.sqlstate, err.message);
            pgbr_error_clear(&err);
            continue;
        }
        dump = sql_stmt_dump(stmt);
        tap_is_str(dump, c->dump, "parse: %s", name_of(c->sql));

        /* deparse round trip: the canonical text parses to the same tree */
        text = sql_stmt_deparse(stmt, false);
        again = parse(text, 0, &err);
        dump2 = again != NULL ? sql_stmt_dump(again) : NULL;
        tap_is_str(dump2, dump, "round trip: %s", name_of(text));
        if (again == NULL)
            tap_diag("%s at %d", err.message, err.position);
        pgbr_error_clear(&err);
        free(dump2);
        sql_stmt_free(again);
        free(text);

        /* the redacted text parses too, and a copy dumps the same */
        text = sql_stmt_deparse(stmt, true);
        again = parse(text, 0, &err);
        copy = sql_stmt_copy(stmt);
        dump2 = copy != NULL ? sql_stmt_dump(copy) : NULL;
        tap_ok(again != NULL && dump2 != NULL && strcmp(dump2, dump) == 0,
               "redacted text parses, copy is equal: %s", name_of(text));
        pgbr_error_clear(&err);
        free(dump2);
        sql_stmt_free(copy);
        sql_stmt_free(again);
        free(text);
        free(dump);
        sql_stmt_free(stmt);
    }
}

/* ---- Errors ----------------------------------------------------------- */

typedef struct error_case {
    const char *sql;
    int base;
    const char *sqlstate;
    const char *message;
    int position;
} error_case;

static const error_case error_cases[] = {
    { "BACKUP", 0, "42601", "syntax error at end of input", 7 },
    { "BACKUP INTO", 0, "42601", "syntax error at end of input", 12 },
    { "BACKUP INTO   ", 0, "42601", "syntax error at end of input", 15 },
    { "BACKUP INTO ;", 0, "42601", "syntax error at or near \";\"", 13 },
    { "BACKUP INTO 'x' WITH", 0, "42601", "syntax error at end of input", 21 },
    { "BACKUP INTO 'x' AS OF SYSTEM TIME", 0, "42601", "syntax error at end of input", 34 },
    { "BACKUP INTO 'x' WITH foo", 0, "42601", "syntax error at or near \"foo\"", 22 },
    { "BACKUP INTO 'x' WITH detached, foo = 1", 0, "42601", "syntax error at or near \"foo\"", 32 },
    { "BACKUP INTO 'x' WITH detached = maybe", 0, "42601", "syntax error at or near \"maybe\"", 33 },
    { "BACKUP INTO 'x' WITH OPTIONS (detached", 0, "42601", "syntax error at end of input", 39 },
    { "BACKUP INTO 'x' WITH detached, revision_history, DETACHED", 0, "42601",
      "detached option specified multiple times", 50 },
    { "BACKUP INTO 'x' WITH kms = 'a', kms = 'b'", 0, "42601", "kms option specified multiple times", 33 },
    { "BACKUP INTO 'x' WITH EXECUTION LOCALITY = 'a', execution locality = 'b'", 0, "42601",
      "execution locality option specified multiple times", 48 },
    { "BACKUP INTO 'x' WITH include_all_virtual_clusters, include_all_secondary_tenants = true", 0, "42601",
      "include_all_virtual_clusters option specified multiple times", 52 },
    { "RESTORE FROM LATEST IN 'x' WITH into_db = a, INTO_DB = b", 0, "42601",
      "into_db option specified multiple times", 46 },
    { "RESTORE FROM LATEST IN 'x' WITH experimental deferred copy, experimental deferred copy", 0, "42601",
      "experimental deferred copy option specified multiple times", 61 },
    { "RESTORE FROM LATEST IN 'x' WITH revision_history", 0, "42601",
      "syntax error at or near \"revision_history\"", 33 },
    { "SHOW BACKUP FROM LATEST IN 'x' WITH skip size, skip size", 0, "42601",
      "skip size option specified multiple times", 48 },
    { "SHOW BACKUP CONNECTION 'x' WITH TIME = '1', time = '2'", 0, "42601",
      "time option specified multiple times", 45 },
    { "CREATE SCHEDULE FOR BACKUP INTO 'x' RECURRING '@daily' WITH SCHEDULE OPTIONS first_run = 'now', "
      "FIRST_RUN = 'now'", 0, "42601", "first_run option specified multiple times", 97 },
    { "CREATE SCHEDULE FOR BACKUP INTO 'x'", 0, "42601", "syntax error at end of input", 36 },
    { "CREATE SCHEDULE FOR BACKUP INTO 'x' RECURRING daily", 0, "42601",
      "syntax error at or near \"daily\"", 47 },
    { "CREATE SCHEDULE FOR BACKUP INTO 'x' AS OF SYSTEM TIME '-1s' RECURRING '@daily'", 0, "42601",
      "syntax error at or near \"AS\"", 37 },
    { "ALTER BACKUP SCHEDULE 1", 0, "42601", "syntax error at end of input", 24 },
    { "ALTER BACKUP SCHEDULE 1 SET WITH detached, SET LABEL", 0, "42601", "syntax error at end of input", 53 },
    { "SHOW JOBS WITH EXECUTION", 0, "42601", "syntax error at end of input", 25 },
    { "SHOW JOB", 0, "42601", "syntax error at end of input", 9 },
    { "SHOW JOB WHEN COMPLETE", 0, "42601", "syntax error at end of input", 23 },
    { "RESUME JOB 1 WITH REASON = 'x'", 0, "42601", "syntax error at or near \"WITH\"", 14 },
    { "PAUSE ALL JOBS", 0, "42601", "syntax error at or near \"JOBS\"", 11 },
    { "BACKUP DATABASE a.b INTO 'x'", 0, "42601", "syntax error at or near \".\"", 18 },
    { "BACKUP TABLE a.b.c.d INTO 'x'", 0, "42601", "syntax error at or near \".\"", 19 },
    { "BACKUP INTO 'x' IN", 0, "42601", "syntax error at end of input", 19 },
    { "BACKUP INTO LATEST 'x'", 0, "42601", "syntax error at or near \"'x'\"", 20 },
    { "RESTORE FROM ('a'", 0, "42601", "syntax error at end of input", 18 },
    { "BACKUP INTO 'x'; BACKUP INTO 'y'", 0, "42601", "syntax error at or near \"BACKUP\"", 18 },
    { "SHOW BACKUP", 0, "42601", "syntax error at end of input", 12 },
    { "SHOW BACKUP FROM LATEST", 0, "42601", "syntax error at end of input", 24 },
    { "SHOW BACKUP FROM 'p'", 0, "42601", "syntax error at end of input", 21 },
    /* positions count characters, not bytes, and start at position_base */
    { "BACKUP INTO 'ünïcödé' WITH bogus", 0, "42601", "syntax error at or near \"bogus\"", 28 },
    { "BACKUP DATABASE \"日本\" INTO 'x' WITH bogus", 0, "42601", "syntax error at or near \"bogus\"", 36 },
    { "SHOW JOBS bogus", 10, "42601", "syntax error at or near \"bogus\"", 21 },
    { "SHOW JOB", 100, "42601", "syntax error at end of input", 109 },
    { "BACKUP INTO 'é' WITH detached, detached", 7, "42601", "detached option specified multiple times", 39 },
    /* lexical errors, worded as PostgreSQL does */
    { "BACKUP INTO 'abc", 0, "42601", "unterminated quoted string at or near \"'abc\"", 13 },
    { "BACKUP INTO E'abc\\'", 0, "42601", "unterminated quoted string at or near \"E'abc\\'\"", 13 },
    { "BACKUP INTO $$abc", 0, "42601", "unterminated dollar-quoted string at or near \"$$abc\"", 13 },
    { "BACKUP INTO $x$abc$y$", 0, "42601", "unterminated dollar-quoted string at or near \"$x$abc$y$\"", 13 },
    { "BACKUP DATABASE \"abc", 0, "42601", "unterminated quoted identifier at or near \"\"abc\"", 17 },
    { "BACKUP /* abc /* */", 0, "42601", "unterminated /* comment at or near \"/* abc /* */\"", 8 },
    { "BACKUP DATABASE \"\" INTO 'x'", 0, "42601", "zero-length delimited identifier at or near \"\"\"\"", 17 },
    { "BACKUP INTO 'x' AS OF SYSTEM TIME 12abc", 0, "42601",
      "trailing junk after numeric literal at or near \"12a\"", 35 },
    { "BACKUP INTO $1abc", 0, "42601", "trailing junk after parameter at or near \"$1a\"", 13 },
    { "BACKUP INTO $0", 0, "42P02", "there is no parameter $0", 13 },
    { "SHOW JOB 0x", 0, "42601", "invalid hexadecimal integer at or near \"0x\"", 10 },
    { "BACKUP INTO E'\\u00'", 0, "42601", "invalid Unicode escape at or near \"\\u00\"", 15 },
    { "BACKUP INTO E'\\uD800x'", 0, "42601", "invalid Unicode surrogate pair at or near \"x\"", 21 },
    { "BACKUP INTO U&'\\zzzz'", 0, "42601", "invalid Unicode escape", 13 },
    { "BACKUP INTO U&'x' UESCAPE 'ab'", 0, "42601", "invalid Unicode escape character", 27 },
    { "BACKUP INTO U&'x' UESCAPE x", 0, "42601", "UESCAPE must be followed by a simple string literal", 27 },
    { "BACKUP INTO B'0101", 0, "42601", "unterminated bit string literal at or near \"B'0101\"", 13 },
    { "BACKUP INTO X'ff", 0, "42601", "unterminated hexadecimal string literal at or near \"X'ff\"", 13 },
};

static void
test_errors(void)
{
    for (int i = 0; i < ARRAY_LEN(error_cases); i++) {
        const error_case *c = &error_cases[i];
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *stmt = parse(c->sql, c->base, &err);

        tap_ok(stmt == NULL && strcmp(err.sqlstate, c->sqlstate) == 0 && err.message != NULL
                   && strcmp(err.message, c->message) == 0 && err.position == c->position,
               "error: %s", name_of(c->sql));
        if (stmt != NULL)
            tap_diag("parsed; expected %s", c->message);
        else if (strcmp(err.message, c->message) != 0 || err.position != c->position
                 || strcmp(err.sqlstate, c->sqlstate) != 0)
            tap_diag("got %s \"%s\" at %d, expected %s \"%s\" at %d", err.sqlstate, err.message, err.position,
                     c->sqlstate, c->message, c->position);
        sql_stmt_free(stmt);
        pgbr_error_clear(&err);
    }

    {
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *stmt = parse("BACKUP INTO U&'\\zzzz'", 0, &err);

        tap_is_str(err.hint, "Unicode escapes must be \\XXXX or \\+XXXXXX.", "invalid U& escape has a hint");
        sql_stmt_free(stmt);
        pgbr_error_clear(&err);
    }
    {
        /* a statement of another length than its NUL-terminated text */
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *stmt = sql_parse("SHOW JOBS; junk", 9, 0, &err);

        tap_ok(stmt != NULL && stmt->kind == SQL_SHOW_JOBS, "parse honours len");
        sql_stmt_free(stmt);
    }
}

/* ---- Redaction, names, raw flags, copy ------------------------------- */

/* The redacted text of a statement (a job's description) is want. */
static void
redacted_is(const char *sql, const char *want, const char *name)
{
    pgbr_error err = PGBR_ERROR_INIT;
    sql_stmt *stmt = parse(sql, 0, &err);
    char *text = sql_stmt_deparse(stmt, true);

    tap_is_str(text, want, "%s", name);
    free(text);
    sql_stmt_free(stmt);
}

static void
test_redaction(void)
{
    static const struct {
        const char *in;
        const char *out;
    } uris[] = {
        { "s3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=s", "s3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=redacted" },
        { "s3://b/p?AWS_SESSION_TOKEN=t&AUTH=specified", "s3://b/p?AWS_SESSION_TOKEN=redacted&AUTH=specified" },
        { "gs://b/p?AUTH=specified&CREDENTIALS=abc=&x=1", "gs://b/p?AUTH=specified&CREDENTIALS=redacted&x=1" },
        { "gs://b/p?BEARER_TOKEN=tok", "gs://b/p?BEARER_TOKEN=redacted" },
        { "azure-blob://c/p?AZURE_ACCOUNT_NAME=n&AZURE_ACCOUNT_KEY=k&AZURE_CLIENT_SECRET=s#frag",
          "azure-blob://c/p?AZURE_ACCOUNT_NAME=n&AZURE_ACCOUNT_KEY=redacted&AZURE_CLIENT_SECRET=redacted#frag" },
        { "https://user:pass@host:8080/p?x=1", "https://user:redacted@host:8080/p?x=1" },
        { "https://user@host/p", "https://user@host/p" },
        { "nodelocal://1/backups", "nodelocal://1/backups" },
        { "aws-kms:///arn:aws:kms:us-east-1:1:key/k?AUTH=specified&aws_secret_access_key=x",
          "aws-kms:///arn:aws:kms:us-east-1:1:key/k?AUTH=specified&aws_secret_access_key=redacted" },
        { "s3://b/p?&AWS_SECRET_ACCESS_KEY", "s3://b/p?&AWS_SECRET_ACCESS_KEY" },
    };

    for (int i = 0; i < ARRAY_LEN(uris); i++) {
        char *r = sql_redact_uri(uris[i].in);

        tap_is_str(r, uris[i].out, "redact uri: %s", uris[i].in);
        free(r);
    }

    {
        const char *sql = "BACKUP INTO 's3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=s' "
                          "WITH encryption_passphrase = 'pw'";
        pgbr_error err = PGBR_ERROR_INIT;
        sql_stmt *stmt = parse(sql, 0, &err);
        char *text = sql_stmt_deparse(stmt, true);
        char *plain = sql_stmt_deparse(stmt, false);

        tap_is_str(text,
                   "BACKUP INTO 's3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=redacted' "
                   "WITH encryption_passphrase = 'redacted'",
                   "deparse redacts the secret key and the passphrase");
        tap_ok(strstr(text, "=s'") == NULL && strstr(text, "'pw'") == NULL, "no secret in redacted text");
        tap_is_str(plain,
                   "BACKUP INTO 's3://b/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=s' "
                   "WITH encryption_passphrase = 'pw'",
                   "deparse without redact keeps them");
        free(text);
        free(plain);
        sql_stmt_free(stmt);
    }
    redacted_is("RESTORE FROM LATEST IN ('s3://a?AWS_SECRET_ACCESS_KEY=x', 's3://b?AWS_SECRET_ACCESS_KEY=y') "
                "WITH kms = 'aws-kms:///k?AWS_SECRET_ACCESS_KEY=z', encryption_passphrase = $1",
                "RESTORE FROM LATEST IN ('s3://a?AWS_SECRET_ACCESS_KEY=redacted', "
                "'s3://b?AWS_SECRET_ACCESS_KEY=redacted') WITH encryption_passphrase = $1, "
                "kms = 'aws-kms:///k?AWS_SECRET_ACCESS_KEY=redacted'",
                "restore: locality URIs and KMS URIs redacted, placeholders kept");
    /* the job description of an incremental keeps its location, redacted */
    redacted_is("BACKUP DATABASE d INTO LATEST IN 'nodelocal://0/c' "
                "WITH incremental_location = 's3://i/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=s'",
                "BACKUP DATABASE d INTO LATEST IN 'nodelocal://0/c' "
                "WITH incremental_location = 's3://i/p?AWS_ACCESS_KEY_ID=a&AWS_SECRET_ACCESS_KEY=redacted'",
                "incremental_location: kept in the description, its secret redacted");
}

static void
test_api(void)
{
    static const struct {
        const char *sql;
        const char *name;
    } names[] = {
        { "BACKUP INTO 'x'", "BACKUP" },
        { "RESTORE FROM LATEST IN 'x'", "RESTORE" },
        { "SHOW BACKUPS IN 'x'", "SHOW BACKUPS" },
        { "SHOW BACKUP CONNECTION 'x'", "SHOW BACKUP" },
        { "SHOW JOB 1", "SHOW JOBS" },
        { "PAUSE JOB 1", "PAUSE JOBS" },
        { "RESUME ALL BACKUP JOBS", "RESUME JOBS" },
        { "CANCEL JOBS SELECT 1", "CANCEL JOBS" },
        { "ALTER BACKUP LATEST IN 'x' ADD NEW_KMS = 'a' WITH OLD_KMS = 'b'", "ALTER BACKUP" },
        { "CREATE SCHEDULE FOR BACKUP INTO 'x' RECURRING '@daily'", "CREATE SCHEDULE FOR BACKUP" },
        { "ALTER BACKUP SCHEDULE 1 EXECUTE IMMEDIATELY", "ALTER BACKUP SCHEDULE" },
        { "SHOW SCHEDULE 1", "SHOW SCHEDULES" },
        { "SHOW CREATE ALL SCHEDULES", "SHOW CREATE SCHEDULE" },
        { "PAUSE SCHEDULE 1", "PAUSE SCHEDULES" },
        { "RESUME SCHEDULES SELECT 1", "RESUME SCHEDULES" },
        { "DROP SCHEDULE 1", "DROP SCHEDULES" },
        { "CREATE EXTERNAL CONNECTION c AS 'x'", "CREATE EXTERNAL CONNECTION" },
        { "DROP EXTERNAL CONNECTION c", "DROP EXTERNAL CONNECTION" },
        { "SHOW CREATE ALL EXTERNAL CONNECTIONS", "SHOW CREATE EXTERNAL CONNECTION" },
    };
    pgbr_error err = PGBR_ERROR_INIT;
    sql_stmt *stmt;

    for (int i = 0; i < ARRAY_LEN(names); i++) {
        stmt = parse(names[i].sql, 0, &err);
        tap_is_str(stmt != NULL ? sql_stmt_name(stmt) : NULL, names[i].name, "name of %s", names[i].sql);
        sql_stmt_free(stmt);
        pgbr_error_clear(&err);
    }

    /* raw flags and locations */
    stmt = parse("BACKUP INTO 'x' AS OF SYSTEM TIME E'-1\\x30s'", 0, &err);
    tap_ok(stmt != NULL && stmt->u.backup.as_of->is_string && strcmp(stmt->u.backup.as_of->text, "-10s") == 0
               && stmt->u.backup.as_of->location == 34,
           "AS OF SYSTEM TIME string: decoded value, location");
    sql_stmt_free(stmt);
    stmt = parse("SHOW JOB - 5", 0, &err);
    tap_ok(stmt != NULL && !stmt->u.show_jobs.expr->is_integer, "'- 5' is not an integer literal");
    sql_stmt_free(stmt);
    stmt = parse("SHOW JOB 0x10", 0, &err);
    tap_ok(stmt != NULL && !stmt->u.show_jobs.expr->is_integer, "'0x10' is not flagged as a decimal integer");
    sql_stmt_free(stmt);
    stmt = parse("SHOW JOB (1) -- why\n", 0, &err);
    tap_is_str(stmt != NULL ? stmt->u.show_jobs.expr->text : NULL, "(1)", "raw text excludes trailing comment");
    sql_stmt_free(stmt);
    stmt = parse("PAUSE JOBS SELECT id FROM t WHERE u = $1 AND '$7' <> $2 WITH REASON = $3", 0, &err);
    tap_ok(stmt != NULL && stmt->nparams == 3 && stmt->u.control_jobs.select->max_param == 2,
           "max_param: the highest $n in the select's own text (not in strings, not the reason's $3)");
    sql_stmt_free(stmt);
    stmt = parse("SHOW JOB (1 + $2) -- $9\n", 0, &err);
    tap_ok(stmt != NULL && stmt->u.show_jobs.expr->max_param == 2 && stmt->u.show_jobs.expr->param == 0,
           "max_param of an expression");
    sql_stmt_free(stmt);
    stmt = parse("SHOW JOB 7", 0, &err);
    tap_ok(stmt != NULL && stmt->u.show_jobs.expr->max_param == 0, "max_param 0 without placeholders");
    sql_stmt_free(stmt);
    stmt = parse("RESTORE TABLE db.t FROM $2 IN $1 WITH into_db = $3", 0, &err);
    tap_ok(stmt != NULL && stmt->nparams == 3 && stmt->u.restore.subdir->param == 2
               && stmt->u.restore.subdir->value == NULL && stmt->u.restore.from[0].items[0].param == 1
               && stmt->u.restore.targets.tables[0].location == 14,
           "placeholders, nparams and pattern location");

    /* a caller may bind a placeholder by replacing its value; free and copy cope */
    if (stmt != NULL) {
        sql_stmt *copy;
        char *dump;

        stmt->u.restore.subdir->value = strdup("2024/01/01-000000.00");
        stmt->u.restore.subdir->param = 0;
        copy = sql_stmt_copy(stmt);
        dump = copy != NULL ? sql_stmt_dump(copy) : NULL;
        tap_is_str(dump,
                   "(RESTORE targets=(TABLES db.t) subdir='2024/01/01-000000.00' in=(($1)) "
                   "options=(into_db=$3) nparams=3)",
                   "copy after binding");
        free(dump);
        sql_stmt_free(copy);
        sql_stmt_free(stmt);
    }

    stmt = parse("SHOW JOBS", 0, &err);
    tap_ok(stmt != NULL && stmt->nparams == 0, "no placeholders: nparams 0");
    sql_stmt_free(stmt);
    tap_ok(sql_stmt_copy(NULL) == NULL, "copy of NULL is NULL");
    sql_stmt_free(NULL);
    pgbr_error_clear(&err);
}

/* sql_maybe_ours is never false for a query with a statement of ours. */
static void
test_maybe_ours_invariant(void)
{
    bool ok = true;
    char buf[4096];

    for (int i = 0; i < ARRAY_LEN(split_cases); i++) {
        const char *q = split_cases[i].query;

        if (has_ours(q) && !sql_maybe_ours(q, strlen(q))) {
            tap_diag("maybe_ours false for %s", q);
            ok = false;
        }
    }
    for (int i = 0; i < ARRAY_LEN(stmt_cases); i++) {
        /* also as the second statement of a query */
        snprintf(buf, sizeof buf, "SELECT 1; %s", stmt_cases[i].sql);
        if (!has_ours(stmt_cases[i].sql) || !has_ours(buf)) {
            tap_diag("not split as ours: %s", stmt_cases[i].sql);
            ok = false;
        }
        if (!sql_maybe_ours(stmt_cases[i].sql, strlen(stmt_cases[i].sql)) || !sql_maybe_ours(buf, strlen(buf))) {
            tap_diag("maybe_ours false for %s", stmt_cases[i].sql);
            ok = false;
        }
    }
    tap_ok(ok, "every statement of ours is split as ours and passes sql_maybe_ours");
}

int
main(void)
{
    test_keywords();
    test_split();
    test_statements();
    test_errors();
    test_redaction();
    test_api();
    test_maybe_ours_invariant();
    return tap_done();
}
