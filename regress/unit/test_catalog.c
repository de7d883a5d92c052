/*
 * test_catalog.c - the catalog (migrations, job ids in the table, the SHOW
 * JOBS query) and the executor end to end, against a real PostgreSQL.
 *
 * Runs only when PGBR_TEST_CATALOG_DSN names a server where the DSN's user
 * may create databases and roles (a superuser). It works in a database of its
 * own (pgbr_test_catalog_<pid>) and roles named pgbr_t_*, and drops them at
 * the end. The executor is driven without the proxy: a fake
 * exec_session_ops runs "the client's own session" queries on a libpq
 * connection logged in as the test user, either answering at once or from the
 * event loop (to exercise cancel while a query is in flight).
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgbr/catalog.h"
#include "pgbr/exec.h"
#include "pgbr/pool.h"
#include "tap.h"

/* The parser may not be linked in (its objects come from another part of
 * the tree); this stand-in gives the names sql.h promises. A linked parser's
 * definition wins over this weak one. */
__attribute__((weak)) const char *sql_stmt_name(const sql_stmt *stmt)
{
    switch (stmt->kind) {
    case SQL_BACKUP: return "BACKUP";
    case SQL_RESTORE: return "RESTORE";
    case SQL_SHOW_BACKUPS: return "SHOW BACKUPS";
    case SQL_SHOW_BACKUP: return "SHOW BACKUP";
    case SQL_SHOW_JOBS: return "SHOW JOBS";
    case SQL_CONTROL_JOBS:
        return stmt->u.control_jobs.action == SQL_JOB_PAUSE    ? "PAUSE JOBS"
               : stmt->u.control_jobs.action == SQL_JOB_RESUME ? "RESUME JOBS"
                                                               : "CANCEL JOBS";
    case SQL_ALTER_BACKUP: return "ALTER BACKUP";
    case SQL_CREATE_SCHEDULE: return "CREATE SCHEDULE FOR BACKUP";
    case SQL_ALTER_BACKUP_SCHEDULE: return "ALTER BACKUP SCHEDULE";
    case SQL_SHOW_SCHEDULES: return "SHOW SCHEDULES";
    case SQL_SHOW_CREATE_SCHEDULE: return "SHOW CREATE SCHEDULE";
    case SQL_CONTROL_SCHEDULES: return "PAUSE SCHEDULES";
    case SQL_CREATE_EXTERNAL_CONNECTION: return "CREATE EXTERNAL CONNECTION";
    case SQL_DROP_EXTERNAL_CONNECTION: return "DROP EXTERNAL CONNECTION";
    case SQL_SHOW_CREATE_EXTERNAL_CONNECTION: return "SHOW CREATE EXTERNAL CONNECTION";
    }
    return "?";
}

static char *test_conninfo_for(const char *dsn, const char *dbname, const char *user)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg);
    size_t cap = 4096, len = 0;
    char *out = calloc(1, cap);

    if (opts == NULL) {
        tap_diag("bad DSN: %s", errmsg != NULL ? errmsg : "?");
        PQfreemem(errmsg);
        exit(1);
    }
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        const char *v = o->val;
        if (strcmp(o->keyword, "dbname") == 0 && dbname != NULL)
            v = dbname;
        if (strcmp(o->keyword, "user") == 0 && user != NULL)
            v = user;
        if (v == NULL)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s='", o->keyword);
        for (const char *c = v; *c != '\0' && len + 4 < cap; c++) {
            if (*c == '\'' || *c == '\\')
                out[len++] = '\\';
            out[len++] = *c;
        }
        len += (size_t)snprintf(out + len, cap - len, "' ");
    }
    if (dbname != NULL && strstr(out, "dbname=") == NULL)
        len += (size_t)snprintf(out + len, cap - len, "dbname='%s' ", dbname);
    if (user != NULL && strstr(out, "user=") == NULL)
        snprintf(out + len, cap - len, "user='%s' ", user);
    PQconninfoFree(opts);
    return out;
}

static PGconn *test_connect(const char *conninfo)
{
    PGconn *conn = PQconnectdb(conninfo);

    if (PQstatus(conn) != CONNECTION_OK) {
        tap_diag("connect failed: %s", PQerrorMessage(conn));
        exit(1);
    }
    PQclear(PQexec(conn, "SET client_min_messages = warning"));
    return conn;
}

static bool test_sql(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        tap_diag("SQL failed: %s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return ok;
}

/* First value of a query, malloc'd ("" for none, "<NULL>" for NULL). */
static char *test_scalar(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    char *out;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        tap_diag("SQL failed: %s: %s", sql, PQerrorMessage(conn));
        out = strdup("<ERROR>");
    } else if (PQntuples(res) == 0)
        out = strdup("");
    else if (PQgetisnull(res, 0, 0))
        out = strdup("<NULL>");
    else
        out = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

/* The job ids of a result set, comma separated (static buffer). */
static const char *test_ids_of(const result_set *rs)
{
    static char buf[1024];
    size_t len = 0;

    buf[0] = '\0';
    for (int r = 0; rs != NULL && r < rs->nrows && len < sizeof buf - 32; r++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", r > 0 ? "," : "",
                                result_set_value(rs, r, 0));
    return buf;
}

/* ---------------------------------------------------------------------------
 * Migrations
 * ------------------------------------------------------------------------- */

typedef struct migrate_thread {
    const char *conninfo;
    bool ok;
    char message[256];
} migrate_thread;

static void *migrate_thread_main(void *arg)
{
    migrate_thread *t = arg;
    pgbr_error err = PGBR_ERROR_INIT;
    PGconn *conn = catalog_connect(t->conninfo, &err);

    t->ok = conn != NULL && catalog_migrate(conn, &err);
    snprintf(t->message, sizeof t->message, "%s", err.message != NULL ? err.message : "");
    pgbr_error_clear(&err);
    PQfinish(conn);
    return NULL;
}

static void test_migrations(const char *conninfo)
{
    pgbr_error err = PGBR_ERROR_INIT;
    PGconn *conn = catalog_connect(conninfo, &err);
    char *before, *after, *cols;
    migrate_thread threads[4];
    pthread_t tids[4];
    bool all_ok = true;
    PGresult *res;

    tap_ok(conn != NULL, "catalog_connect to the test database");
    tap_is_int(catalog_schema_version(conn, &err), 0, "an empty database has catalog version 0");
    tap_ok(catalog_migrate(conn, &err), "migrate from empty");
    if (pgbr_error_is_set(&err))
        tap_diag("%s", err.message);
    tap_is_int(catalog_schema_version(conn, &err), CATALOG_SCHEMA_VERSION, "the catalog is at the current version");
    cols = test_scalar(conn, "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)"
                             " FROM information_schema.columns"
                             " WHERE table_schema = 'pgbr' AND table_name = 'jobs'");
    tap_is_str(cols,
               "id:bigint,job_type:text,status:text,description:text,statement:text,user_name:text,"
               "created:timestamp with time zone,started:timestamp with time zone,"
               "finished:timestamp with time zone,modified:timestamp with time zone,"
               "fraction_completed:double precision,running_status:text,error:text,execution_errors:ARRAY,"
               "coordinator_id:bigint,lease_expires:timestamp with time zone,checkpoint:jsonb,rows:bigint,"
               "index_entries:bigint,bytes:bigint,payload:jsonb,trace_id:bigint",
               "pgbr.jobs has the columns of the design");
    free(cols);

    before = test_scalar(conn, "SELECT xmin::text || '/' || version FROM pgbr.schema_version");
    tap_ok(catalog_migrate(conn, &err), "migrate again");
    after = test_scalar(conn, "SELECT xmin::text || '/' || version FROM pgbr.schema_version");
    tap_is_str(after, before, "migrating a current catalog changes nothing (same row version)");
    free(before);
    free(after);
    tap_is_int(PQtransactionStatus(conn), PQTRANS_IDLE, "migrate leaves the connection idle");

    res = PQexec(conn, "INSERT INTO pgbr.jobs (id, job_type, status, user_name) VALUES (1, 'BACKUP', 'bogus', 'u')");
    tap_is_str(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514", "the status CHECK rejects unknown statuses");
    PQclear(res);

    /* Several nodes starting at once. */
    test_sql(conn, "SET client_min_messages = warning; DROP SCHEMA pgbr CASCADE");
    for (int i = 0; i < 4; i++) {
        threads[i].conninfo = conninfo;
        pthread_create(&tids[i], NULL, migrate_thread_main, &threads[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(tids[i], NULL);
        if (!threads[i].ok) {
            all_ok = false;
            tap_diag("migration thread %d: %s", i, threads[i].message);
        }
    }
    tap_ok(all_ok, "four concurrent migrations all succeed");
    tap_is_int(catalog_schema_version(conn, &err), CATALOG_SCHEMA_VERSION, "and leave the current version");
    before = test_scalar(conn, "SELECT count(*) FROM pgbr.schema_version");
    tap_is_str(before, "1", "with exactly one version row");
    free(before);
    pgbr_error_clear(&err);
    PQfinish(conn);
}

static void test_job_ids_in_table(PGconn *conn)
{
    char *arr = malloc(3000 * 22 + 4);
    size_t len = 0;
    const char *params[1];
    PGresult *res;

    arr[len++] = '{';
    for (int i = 0; i < 3000; i++)
        len += (size_t)snprintf(arr + len, 24, "%s%lld", i > 0 ? "," : "",
                                (long long)catalog_new_job_id(i % 3 + 1));
    arr[len++] = '}';
    arr[len] = '\0';
    params[0] = arr;
    res = PQexecParams(conn,
                       "INSERT INTO pgbr.jobs (id, job_type, user_name)"
                       " SELECT unnest($1::int8[]), 'BACKUP', 'idtest'",
                       1, NULL, params, NULL, NULL, 0);
    tap_ok(PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdTuples(res), "3000") == 0,
           "3000 new job ids from three nodes go into the primary key without a clash");
    PQclear(res);
    free(arr);
    test_sql(conn, "DELETE FROM pgbr.jobs WHERE user_name = 'idtest'");
}

/* ---------------------------------------------------------------------------
 * The SHOW JOBS query
 * ------------------------------------------------------------------------- */

/* 101..111: see docs/jobs.md for the order they must come in. */
static const char fixture_sql[] =
    "INSERT INTO pgbr.jobs (id, job_type, status, description, user_name, created, started, finished,"
    " modified, fraction_completed, execution_errors) VALUES"
    " (101, 'BACKUP', 'running', repeat('x', 140) || '0123456789', 'pgbr_t_alice',"
    "  now() - interval '61 minutes', now() - interval '1 hour', NULL, now(), 1.0/3, '{}'),"
    " (102, 'RESTORE', 'running', 'RESTORE two', 'carol', now() - interval '11 minutes',"
    "  now() - interval '10 minutes', NULL, now(), 0.5, '{}'),"
    " (103, 'BACKUP', 'pending', 'pending alice', 'pgbr_t_alice', now() - interval '5 minutes',"
    "  NULL, NULL, now(), 0, '{}'),"
    " (104, 'BACKUP', 'paused', 'paused long ago', 'pgbr_t_alice', now() - interval '2 days',"
    "  now() - interval '2 days', NULL, now() - interval '2 days', 0.25, '{}'),"
    " (105, 'BACKUP', 'succeeded', 'done an hour ago', 'carol', now() - interval '2 hours',"
    "  now() - interval '2 hours', now() - interval '1 hour', now() - interval '1 hour', 0.1, '{}'),"
    " (106, 'RESTORE', 'failed', 'failed 30 minutes ago', 'pgbr_t_alice', now() - interval '1 hour',"
    "  now() - interval '1 hour', now() - interval '30 minutes', now() - interval '30 minutes', 0.5,"
    "  '{boom,\"second error\"}'),"
    " (107, 'BACKUP', 'canceled', 'canceled 13 hours ago', 'pgbr_t_alice', now() - interval '14 hours',"
    "  now() - interval '14 hours', now() - interval '13 hours', now() - interval '13 hours', 0.5, '{}'),"
    " (108, 'BACKUP', 'succeeded', 'two days old', 'carol', now() - interval '2 days',"
    "  now() - interval '2 days', now() - interval '2 days', now() - interval '2 days', 1, '{}'),"
    " (109, 'BACKUP', 'running', 'bob runs', 'pgbr_t_bob', now() - interval '6 minutes',"
    "  now() - interval '5 minutes', NULL, now(), 0.75, '{}'),"
    " (110, 'RESTORE', 'pending', 'pending carol', 'carol', now() - interval '1 minute',"
    "  NULL, NULL, now(), 0, '{}'),"
    " (111, 'RESTORE', 'revert-failed', 'revert failed', 'carol', now() - interval '1 hour',"
    "  now() - interval '1 hour', now() - interval '20 minutes', now() - interval '20 minutes', 0.5, '{}')";

static void test_show_jobs_query(PGconn *conn)
{
    pgbr_error err = PGBR_ERROR_INIT;
    result_set *rs = NULL;
    catalog_jobs_filter f = { .listing = true };
    int64_t ids[] = { 107, 108, 101, 999 };
    char *tz_before, *tz_after, *expected;

    tap_ok(test_sql(conn, fixture_sql), "insert the job fixture");

    tap_ok(catalog_show_jobs(conn, &f, &rs, &err), "SHOW JOBS listing query runs");
    tap_is_str(test_ids_of(rs), "109,102,101,104,110,103,111,106,105",
               "listing: in-flight jobs newest started first, never-started after them, then terminal"
               " jobs newest finished first; terminal jobs older than 12 hours are left out");
    tap_is_int(rs->ncols, CATALOG_SHOW_JOBS_NCOLS, "16 columns");
    tap_is_int((int)strlen(result_set_value(rs, 2, 2)), 100, "the listing truncates descriptions to 100 characters");
    tap_ok(result_set_value(rs, 5, 8) == NULL, "a job that never started has a NULL started");
    tap_is_str(result_set_value(rs, 7, 12), "", "error is '' when there is none");
    tap_is_str(result_set_value(rs, 7, 15), "{boom,\"second error\"}", "execution_errors is a text array");
    tap_is_str(result_set_value(rs, 8, 11), "0.1", "float8 prints shortest-exact (0.1)");
    tap_is_str(result_set_value(rs, 2, 11), "0.3333333333333333", "float8 prints shortest-exact (1/3)");
    result_set_free(rs);

    f.user_name = "pgbr_t_alice";
    tap_ok(catalog_show_jobs(conn, &f, &rs, &err), "listing for one user");
    tap_is_str(test_ids_of(rs), "101,104,103,106", "only that user's jobs, same order");
    result_set_free(rs);

    f.listing = false;
    f.user_name = NULL;
    f.ids = ids;
    f.nids = 4;
    tap_ok(catalog_show_jobs(conn, &f, &rs, &err), "by-id query runs");
    tap_is_str(test_ids_of(rs), "101,107,108", "by id: any age, unknown ids give no row, same order");
    tap_is_int((int)strlen(result_set_value(rs, 0, 2)), 150, "by id: the full description");
    result_set_free(rs);
    f.user_name = "carol";
    tap_ok(catalog_show_jobs(conn, &f, &rs, &err), "by-id query for one user");
    tap_is_str(test_ids_of(rs), "108", "another user's jobs are invisible");
    result_set_free(rs);
    f.nids = 0;
    tap_ok(catalog_show_jobs(conn, &f, &rs, &err) && rs->nrows == 0, "no ids: no rows");
    result_set_free(rs);

    /* Timestamps in the client session's style, without leaking settings. */
    tz_before = test_scalar(conn, "SHOW TimeZone");
    f.user_name = NULL;
    f.ids = ids + 2;
    f.nids = 1;
    f.datestyle = "SQL, DMY";
    f.timezone = "Asia/Kolkata";
    f.intervalstyle = "iso_8601";
    tap_ok(catalog_show_jobs(conn, &f, &rs, &err), "by-id query with session settings");
    tz_after = test_scalar(conn, "SHOW TimeZone");
    tap_is_str(tz_after, tz_before, "the session settings do not outlive the query");
    test_sql(conn, "BEGIN; SET LOCAL DateStyle = 'SQL, DMY'; SET LOCAL TimeZone = 'Asia/Kolkata'");
    expected = test_scalar(conn, "SELECT created FROM pgbr.jobs WHERE id = 101");
    test_sql(conn, "COMMIT");
    tap_is_str(result_set_value(rs, 0, 7), expected, "created prints as the client's DateStyle/TimeZone would");
    tap_ok(strstr(result_set_value(rs, 0, 7), "IST") != NULL, "(in SQL style, Asia/Kolkata)");
    free(expected);
    free(tz_before);
    free(tz_after);
    result_set_free(rs);

    f.timezone = "Not/AZone";
    tap_ok(!catalog_show_jobs(conn, &f, &rs, &err) && strcmp(err.sqlstate, "22023") == 0,
           "an invalid session setting is an error, not a silent default");
    tap_is_int(PQtransactionStatus(conn), PQTRANS_IDLE, "and leaves the connection idle");
    pgbr_error_clear(&err);
}

/* ---------------------------------------------------------------------------
 * WHEN COMPLETE's count, PAUSE / RESUME / CANCEL's status changes
 * (028_job_control.t drives them through pgbr; here the catalog calls alone)
 * ------------------------------------------------------------------------- */

static int control(PGconn *conn, catalog_job_action action, const int64_t *ids, int nids, const char *job_type,
                   const char *user, pgbr_error *err)
{
    catalog_control_request req = { action, ids, nids, job_type, user, user == NULL, NULL };
    int acted = -1;

    pgbr_error_clear(err);
    if (!catalog_control_jobs(conn, &req, &acted, err))
        return -1;
    return acted;
}

static void test_control_query(PGconn *conn)
{
    pgbr_error err = PGBR_ERROR_INIT;
    int64_t ids[] = { 101, 105, 110, 999 }, one[] = { 201 }, twice[] = { 201, 201 }, bad[] = { 201, 202 };
    catalog_jobs_filter f = { .ids = ids, .nids = 4 };
    int count = -1;
    char *got;

    tap_ok(catalog_jobs_count_unfinished(conn, &f, &count, &err) && count == 2,
           "count_unfinished: 101 (running) and 110 (pending); 105 finished, 999 unknown");
    f.user_name = "carol";
    tap_ok(catalog_jobs_count_unfinished(conn, &f, &count, &err) && count == 1,
           "count_unfinished for one user counts only theirs");

    test_sql(conn, "INSERT INTO pgbr.jobs (id, job_type, status, user_name, coordinator_id, lease_expires, modified)"
                   " VALUES (201, 'IMPORT', 'reverting', 'dave', 7, now() + interval '1 minute', now() - interval '1 day'),"
                   "        (202, 'IMPORT', 'succeeded', 'dave', NULL, NULL, now() - interval '1 day')");
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, twice, 2, NULL, NULL, &err), 1,
               "PAUSE a reverting job named twice: acts on 1 job");
    got = test_scalar(conn, "SELECT status || ' ' || (payload->>'paused_from') || ' ' || (payload ? 'pause_reason')"
                            " || ' ' || (modified > now() - interval '1 minute') FROM pgbr.jobs WHERE id = 201");
    tap_is_str(got, "pause-requested reverting false true", "pause-requested, paused_from kept, modified now");
    free(got);
    test_sql(conn, "UPDATE pgbr.jobs SET status = 'paused' WHERE id = 201");
    tap_is_int(control(conn, CATALOG_JOB_RESUME, one, 1, NULL, NULL, &err), 1, "RESUME the paused job");
    got = test_scalar(conn, "SELECT status || ' ' || coalesce(coordinator_id::text, 'null') || ' '"
                            " || coalesce(lease_expires::text, 'null') || ' ' || (payload ? 'paused_from')"
                            " FROM pgbr.jobs WHERE id = 201");
    tap_is_str(got, "reverting null null false", "back to reverting, lease and coordinator cleared");
    free(got);
    tap_is_int(control(conn, CATALOG_JOB_CANCEL, bad, 2, NULL, NULL, &err), -1, "CANCEL of 201 and 202 fails");
    tap_is_str(err.sqlstate, "55000", "55000");
    tap_is_str(err.message, "job with status reverting cannot be requested to be canceled",
               "the first job in the list that refuses is named");
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, bad, 2, NULL, "erin", &err), -1, "another user: refused");
    tap_is_str(err.sqlstate, "42501", "42501");
    tap_is_str(err.message, "permission denied to pause job 201", "permission denied to pause job 201");
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, bad, 2, NULL, NULL, &err), -1, "PAUSE of 201 and 202 fails");
    got = test_scalar(conn, "SELECT status FROM pgbr.jobs WHERE id = 201");
    tap_is_str(got, "reverting", "... and changed nothing, not even the job that could be paused");
    free(got);
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, NULL, 0, "IMPORT", "erin", &err), 0,
               "PAUSE ALL IMPORT JOBS as a user with none: 0");
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, NULL, 0, "IMPORT", "dave", &err), 1,
               "PAUSE ALL IMPORT JOBS as their owner: the reverting one (the succeeded one is left out)");
    tap_is_int(control(conn, CATALOG_JOB_PAUSE, NULL, 0, "IMPORT", NULL, &err), 0,
               "again: nothing left to change");
    test_sql(conn, "DELETE FROM pgbr.jobs WHERE id IN (201, 202)");
    pgbr_error_clear(&err);
}

/* ---------------------------------------------------------------------------
 * The executor, end to end (without the proxy)
 * ------------------------------------------------------------------------- */

typedef struct fake_session {
    PGconn *conn;           /* "the client's own upstream session" */
    bool async;             /* answer from the event loop, not at once */
} fake_session;

typedef struct fake_reply {
    exec_query_cb cb;
    void *arg;
    result_set *rs;
    pgbr_error err;
} fake_reply;

typedef struct outcome {
    int ndone;
    result_set *rs;
    char sqlstate[6];
    char *message;
} outcome;

static struct event_base *test_base;

static void fake_deliver(evutil_socket_t fd, short what, void *arg)
{
    fake_reply *r = arg;

    (void)fd;
    (void)what;
    r->cb(r->arg, r->rs, r->rs != NULL ? NULL : &r->err);
    pgbr_error_clear(&r->err);
    free(r);
}

static void fake_run_query(void *session, const char *sql, int nparams, const char *const *params,
                           exec_query_cb cb, void *arg)
{
    fake_session *s = session;
    fake_reply *r = calloc(1, sizeof *r);
    PGresult *res = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);

    r->cb = cb;
    r->arg = arg;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        const char *names[64], *row[64];
        uint32_t types[64];
        int nf = PQnfields(res) < 64 ? PQnfields(res) : 64;
        for (int c = 0; c < nf; c++) {
            names[c] = PQfname(res, c);
            types[c] = (uint32_t)PQftype(res, c);
        }
        r->rs = result_set_new(nf, names, types);
        for (int i = 0; i < PQntuples(res); i++) {
            for (int c = 0; c < nf; c++)
                row[c] = PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c);
            result_set_add_row(r->rs, row);
        }
    } else if (PQresultStatus(res) == PGRES_COMMAND_OK) {
        r->rs = result_set_new_tag_only(PQcmdStatus(res));
    } else {
        pgbr_error_set(&r->err, PQresultErrorField(res, PG_DIAG_SQLSTATE), "%s",
                       PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    }
    PQclear(res);
    if (s->async) {
        struct timeval zero = { 0, 0 };
        event_base_once(test_base, -1, EV_TIMEOUT, fake_deliver, r, &zero);
    } else {
        fake_deliver(-1, 0, r);
    }
}

static const exec_session_ops fake_ops = { fake_run_query };

static void on_done(void *arg, result_set *rs, pgbr_error *err, const char *const *notices)
{
    outcome *o = arg;

    (void)notices;
    o->ndone++;
    result_set_free(o->rs);
    o->rs = rs;
    free(o->message);
    o->message = NULL;
    o->sqlstate[0] = '\0';
    if (err != NULL) {
        snprintf(o->sqlstate, sizeof o->sqlstate, "%s", err->sqlstate);
        o->message = strdup(err->message);
    }
}

static void outcome_reset(outcome *o)
{
    result_set_free(o->rs);
    free(o->message);
    memset(o, 0, sizeof *o);
}

static void keepalive(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Run the loop until o has been answered `target` times or ms have passed. */
static void spin(const outcome *o, int target, int ms)
{
    struct timespec start, now;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((o != NULL && o->ndone >= target) ||
            (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > ms)
            return;
        event_base_loop(test_base, EVLOOP_ONCE);
    }
}

/* Start stmt as the session's user and, when wait, run until it answers. */
static exec_request *run(fake_session *s, const sql_stmt *st, int nparams, const char *const *params, char txn,
                         outcome *o, bool wait)
{
    exec_params p = { nparams, params };
    exec_session_info info = {
        .user = PQuser(s->conn),
        .database = PQdb(s->conn),
        .txn_status = txn,
        .datestyle = PQparameterStatus(s->conn, "DateStyle"),
        .timezone = PQparameterStatus(s->conn, "TimeZone"),
        .intervalstyle = PQparameterStatus(s->conn, "IntervalStyle"),
        .ops = &fake_ops,
        .session = s,
        .base = test_base,
    };
    exec_request *req;

    outcome_reset(o);
    req = exec_start(st, "", &p, &info, on_done, o);
    if (wait)
        spin(o, 1, 10000);
    return req;
}

static void expect_rows(const outcome *o, const char *ids, const char *what)
{
    if (o->rs == NULL)
        tap_diag("error %s: %s", o->sqlstate, o->message != NULL ? o->message : "(none)");
    tap_is_str(o->rs != NULL ? test_ids_of(o->rs) : "<error>", ids, "%s", what);
}

static void expect_error(const outcome *o, const char *sqlstate, const char *message, const char *what)
{
    tap_ok(o->ndone == 1 && o->rs == NULL && strcmp(o->sqlstate, sqlstate) == 0 &&
               (message == NULL || (o->message != NULL && strcmp(o->message, message) == 0)),
           "%s", what);
    if (o->rs != NULL || strcmp(o->sqlstate, sqlstate) != 0)
        tap_diag("got %s: %s", o->rs != NULL ? "rows" : o->sqlstate, o->message != NULL ? o->message : "");
    else if (message != NULL && (o->message == NULL || strcmp(o->message, message) != 0))
        tap_diag("got message: %s", o->message != NULL ? o->message : "(null)");
}

static sql_stmt show_jobs(sql_jobs_form form, sql_raw *raw)
{
    sql_stmt st;

    memset(&st, 0, sizeof st);
    st.kind = SQL_SHOW_JOBS;
    st.u.show_jobs.form = form;
    if (form == SQL_JOBS_ONE)
        st.u.show_jobs.expr = raw;
    else
        st.u.show_jobs.select = raw;
    if (raw != NULL && raw->param > 0)
        st.nparams = raw->param;
    return st;
}

static void test_executor_show_jobs(fake_session *su, fake_session *alice, fake_session *bob)
{
    outcome o = { 0 };
    sql_raw lit101 = { "101", 0, 0, false, true }, p1 = { "$1", 0, 1, false, false };
    sql_raw expr = { "100 + 1", 0, 0, false, false }, huge = { "99999999999999999999", 0, 0, false, true };
    sql_raw sel = { "SELECT * FROM (VALUES (101), (105), (999)) v", 0, 0, false, false };
    sql_raw badsel = { "SELECT 'x'", 0, 0, false, false }, lit102 = { "102", 0, 0, false, true };
    sql_stmt st = show_jobs(SQL_JOBS_ALL, NULL);
    const char *v107[] = { "107" }, *vabc[] = { "abc" }, *vnull[] = { NULL };
    char *expected;

    run(su, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "109,102,101,104,110,103,111,106,105", "SHOW JOBS as superuser: every user's jobs");
    tap_ok(o.rs != NULL && o.rs->ncols == 16 && o.rs->has_rows, "16 columns");
    tap_is_str(o.rs != NULL ? o.rs->command_tag : NULL, "SHOW JOBS 9", "command tag SHOW JOBS 9");
    tap_ok(o.rs != NULL && strlen(result_set_value(o.rs, 2, 2)) == 100, "description truncated to 100");
    run(alice, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101,104,103,106", "SHOW JOBS as an ordinary user: own jobs only");
    run(alice, &st, 0, NULL, 'T', &o, true);
    expect_rows(&o, "101,104,103,106", "SHOW JOBS inside a transaction block works");
    run(bob, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "109,102,101,104,110,103,111,106,105", "a member of the admin role sees every job");
    exec_configure(&(exec_config){ "pgbr_t_no_such_role", 1 });
    run(bob, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "109", "an admin role that does not exist: nobody is a member");
    exec_configure(&(exec_config){ "pgbr_t_admins", 1 });
    run(su, &st, 0, NULL, 'E', &o, true);
    expect_error(&o, "25P02", "current transaction is aborted, commands ignored until end of transaction block",
                 "in a failed transaction: 25P02");

    st = show_jobs(SQL_JOBS_ONE, &lit101);
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101", "SHOW JOB <literal>");
    tap_ok(o.rs != NULL && strlen(result_set_value(o.rs, 0, 2)) == 150, "SHOW JOB shows the full description");
    tap_is_str(o.rs != NULL ? o.rs->command_tag : NULL, "SHOW JOBS 1", "command tag SHOW JOBS 1");
    run(alice, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101", "a user sees their own job");
    st = show_jobs(SQL_JOBS_ONE, &lit102);
    run(alice, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "", "another user's job looks like no job");
    st = show_jobs(SQL_JOBS_ONE, &p1);
    run(su, &st, 1, v107, 'I', &o, true);
    expect_rows(&o, "107", "SHOW JOB $1 (an old finished job is still shown by id)");
    run(su, &st, 1, vabc, 'I', &o, true);
    expect_error(&o, "22P02", "invalid input syntax for type bigint: \"abc\"", "SHOW JOB $1 = 'abc': 22P02");
    run(su, &st, 1, vnull, 'I', &o, true);
    expect_rows(&o, "", "SHOW JOB NULL: no rows");
    st = show_jobs(SQL_JOBS_ONE, &expr);
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101", "SHOW JOB <expression> is evaluated on the client's session");
    st = show_jobs(SQL_JOBS_ONE, &huge);
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22003", "value \"99999999999999999999\" is out of range for type bigint",
                 "SHOW JOB with an out-of-range literal: 22003");
    st = show_jobs(SQL_JOBS_SELECT, &sel);
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101,105", "SHOW JOBS <select>");
    st = show_jobs(SQL_JOBS_SELECT, &badsel);
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22P02", "invalid input syntax for type bigint: \"x\"", "SHOW JOBS <select> of text: 22P02");

    st = show_jobs(SQL_JOBS_ALL, NULL);
    st.u.show_jobs.automatic = true;
    run(su, &st, 0, NULL, 'I', &o, true);
    tap_ok(o.rs != NULL && o.rs->nrows == 0 && o.rs->ncols == 16 && strcmp(o.rs->command_tag, "SHOW JOBS 0") == 0,
           "SHOW AUTOMATIC JOBS: the columns, no rows");
    st.u.show_jobs.automatic = false;
    st.u.show_jobs.changefeed = true;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "0A000", "SHOW CHANGEFEED JOBS is not supported by pgbr", "SHOW CHANGEFEED JOBS: 0A000");
    st.u.show_jobs.changefeed = false;

    /* WHEN COMPLETE: terminal jobs answer at once; a running one is waited
     * for, and a cancel ends the wait with 57014. */
    st = show_jobs(SQL_JOBS_SELECT, &sel);
    st.u.show_jobs.when_complete = true;
    test_sql(su->conn, "UPDATE pgbr.jobs SET status = 'succeeded', finished = now() WHERE id = 101");
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "101,105", "SHOW JOBS WHEN COMPLETE <select> of finished jobs (999 does not exist)");
    test_sql(su->conn, "UPDATE pgbr.jobs SET status = 'running', finished = NULL WHERE id = 101");
    {
        exec_request *req = run(su, &st, 0, NULL, 'I', &o, false);
        spin(&o, 1, 1200);
        tap_ok(req != NULL && o.ndone == 0, "SHOW JOBS WHEN COMPLETE waits while job 101 runs");
        test_sql(su->conn, "UPDATE pgbr.jobs SET status = 'failed', finished = now() WHERE id = 101");
        spin(&o, 1, 5000);
        expect_rows(&o, "101,105", "... and answers once it failed");
        test_sql(su->conn, "UPDATE pgbr.jobs SET status = 'running', finished = NULL WHERE id = 101");
        req = run(su, &st, 0, NULL, 'I', &o, false);
        spin(&o, 1, 700);
        tap_ok(req != NULL && o.ndone == 0, "waiting again");
        exec_cancel(req);
        expect_error(&o, "57014", "canceling statement due to user request", "a cancel ends the wait: 57014");
        req = run(su, &st, 0, NULL, 'I', &o, false);
        spin(&o, 1, 700);
        exec_abandon(req);
        spin(NULL, 0, 700);
        tap_is_int(o.ndone, 0, "abandoned while waiting: never answered");
    }
    st = show_jobs(SQL_JOBS_ONE, &lit102);
    st.u.show_jobs.when_complete = true;
    run(alice, &st, 0, NULL, 'I', &o, true);
    expect_rows(&o, "", "SHOW JOB WHEN COMPLETE of another user's running job: nothing to wait for");

    /* Timestamps as the client's own session prints them. */
    test_sql(su->conn, "SET DateStyle = 'SQL, DMY'; SET TimeZone = 'America/New_York'");
    st = show_jobs(SQL_JOBS_ONE, &lit101);
    run(su, &st, 0, NULL, 'I', &o, true);
    expected = test_scalar(su->conn, "SELECT created FROM pgbr.jobs WHERE id = 101");
    tap_is_str(o.rs != NULL ? result_set_value(o.rs, 0, 7) : NULL, expected,
               "created is printed with the client's DateStyle and TimeZone");
    free(expected);
    test_sql(su->conn, "RESET DateStyle; RESET TimeZone");
    outcome_reset(&o);
}

static void test_executor_checks(fake_session *su)
{
    outcome o = { 0 };
    sql_stmt st;
    sql_string pass = { "secret", 0, 0 }, kms_uri = { "aws-kms:///k", 0, 0 }, name = { "x", 0, 0 };
    sql_string_list kms = { 1, &kms_uri };
    char *dbs[] = { "a", "b" };

    memset(&st, 0, sizeof st);
    st.kind = SQL_BACKUP;
    st.u.backup.targets.kind = SQL_TARGET_DATABASES;
    st.u.backup.targets.n = 1;
    st.u.backup.targets.databases = dbs;
    st.u.backup.dest_kind = SQL_BACKUP_TO;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "0A000", "BACKUP ... TO is not implemented yet",
                 "BACKUP ... TO: not implemented yet (no fake success)");
    run(su, &st, 0, NULL, 'T', &o, true);
    expect_error(&o, "25001", "BACKUP cannot be used inside a multi-statement transaction without DETACHED option",
                 "BACKUP in a transaction block without DETACHED: 25001");
    st.u.backup.options.detached = (sql_bool_opt){ true, true, NULL };
    run(su, &st, 0, NULL, 'T', &o, true);
    expect_error(&o, "0A000", "BACKUP ... TO is not implemented yet",
                 "BACKUP ... WITH detached in a transaction passes the check");
    st.u.backup.options.encryption_passphrase = &pass;
    st.u.backup.options.kms = &kms;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22023", "cannot have both encryption_passphrase and kms option set", "passphrase and kms: 22023");

    memset(&st, 0, sizeof st);
    st.kind = SQL_RESTORE;
    st.u.restore.targets.kind = SQL_TARGET_TABLES;
    run(su, &st, 0, NULL, 'T', &o, true);
    expect_error(&o, "25001", "RESTORE cannot be used inside a multi-statement transaction without DETACHED option",
                 "RESTORE in a transaction block without DETACHED: 25001");
    st.u.restore.options.verify_backup_table_data = (sql_bool_opt){ true, true, NULL };
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22023", "to set the verify_backup_table_data option, the schema_only option must be set",
                 "verify_backup_table_data without schema_only: 22023");
    st.u.restore.options.schema_only = (sql_bool_opt){ true, true, NULL };
    st.u.restore.targets.kind = SQL_TARGET_SYSTEM_USERS;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "0A000", "RESTORE SYSTEM USERS is not implemented yet", "with schema_only it passes the check");
    st.u.restore.targets.kind = SQL_TARGET_DATABASES;
    st.u.restore.targets.n = 2;
    st.u.restore.targets.databases = dbs;
    st.u.restore.options.new_db_name = &name;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22023", "new_db_name can only be used for RESTORE DATABASE with a single target database",
                 "new_db_name with two databases: 22023");
    st.u.restore.options.new_db_name = NULL;
    st.u.restore.options.into_db = &name;
    run(su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "22023", "cannot use \"into_db\" option when restoring database(s)", "into_db with databases: 22023");

    memset(&st, 0, sizeof st);
    st.kind = SQL_CONTROL_JOBS;
    st.u.control_jobs.action = SQL_JOB_PAUSE;
    st.u.control_jobs.form = SQL_JOBS_FOR_SCHEDULES;
    tap_ok(run(su, &st, 0, NULL, 'I', &o, false) == NULL, "an answer found without I/O: exec_start returns NULL");
    expect_error(&o, "0A000", "PAUSE JOBS FOR SCHEDULES is not implemented yet",
                 "PAUSE JOBS FOR SCHEDULES: not implemented yet");
    outcome_reset(&o);
}

static void test_executor_cancel(fake_session *su)
{
    outcome o = { 0 };
    sql_stmt st = show_jobs(SQL_JOBS_ALL, NULL);
    exec_request *req;

    su->async = true;
    req = run(su, &st, 0, NULL, 'I', &o, false);
    tap_ok(req != NULL && o.ndone == 0, "SHOW JOBS waits for the privilege query");
    exec_cancel(req);
    expect_error(&o, "57014", "canceling statement due to user request", "cancel answers at once with 57014");
    spin(NULL, 0, 200);
    tap_is_int(o.ndone, 1, "the late query result is discarded");
    req = run(su, &st, 0, NULL, 'I', &o, false);
    exec_abandon(req);
    spin(NULL, 0, 200);
    tap_is_int(o.ndone, 0, "abandoned during a query: never answered, freed when the query returns");

    su->async = false;
    req = run(su, &st, 0, NULL, 'I', &o, false);
    tap_ok(req != NULL && o.ndone == 0, "SHOW JOBS waits for the worker");
    exec_cancel(req);
    expect_error(&o, "57014", "canceling statement due to user request", "cancel during the worker task: 57014");
    spin(NULL, 0, 300);
    tap_is_int(o.ndone, 1, "the worker's late result is discarded");
    req = run(su, &st, 0, NULL, 'I', &o, false);
    exec_abandon(req);
    spin(NULL, 0, 300);
    tap_is_int(o.ndone, 0, "abandoned during the worker task: never answered");
    exec_cancel(NULL);
    exec_abandon(NULL);
    outcome_reset(&o);
}

static void test_describe(void)
{
    sql_stmt st;
    result_set *rs;

    memset(&st, 0, sizeof st);
    st.kind = SQL_SHOW_JOBS;
    rs = exec_describe(&st);
    tap_ok(rs->ncols == 16 && rs->nrows == 0 && strcmp(rs->cols[15].name, "execution_errors") == 0 &&
               rs->cols[15].type_oid == PGBR_OID_TEXT_ARRAY,
           "describe SHOW JOBS: 16 columns");
    result_set_free(rs);
    st.kind = SQL_BACKUP;
    rs = exec_describe(&st);
    tap_ok(rs->ncols == 6 && strcmp(rs->cols[5].name, "bytes") == 0 && rs->cols[2].type_oid == PGBR_OID_FLOAT8,
           "describe BACKUP: job_id, status, fraction_completed, rows, index_entries, bytes");
    result_set_free(rs);
    st.u.backup.options.detached = (sql_bool_opt){ true, true, NULL };
    rs = exec_describe(&st);
    tap_ok(rs->ncols == 1 && strcmp(rs->cols[0].name, "job_id") == 0, "describe BACKUP ... detached: job_id");
    result_set_free(rs);
    memset(&st, 0, sizeof st);
    st.kind = SQL_SHOW_BACKUPS;
    rs = exec_describe(&st);
    tap_ok(rs->ncols == 1 && strcmp(rs->cols[0].name, "path") == 0, "describe SHOW BACKUPS: path");
    result_set_free(rs);
    st.kind = SQL_CONTROL_JOBS;
    rs = exec_describe(&st);
    tap_ok(!rs->has_rows, "describe PAUSE JOBS: no rows");
    result_set_free(rs);
}

static void test_executor(const char *dsn, const char *dbname, const char *test_info)
{
    char *su_info = test_conninfo_for(dsn, dbname, NULL);
    char *alice_info = test_conninfo_for(dsn, dbname, "pgbr_t_alice");
    char *bob_info = test_conninfo_for(dsn, dbname, "pgbr_t_bob");
    fake_session su = { test_connect(su_info), false };
    fake_session alice = { test_connect(alice_info), false }, bob = { test_connect(bob_info), false };
    struct event *tick;
    struct timeval tv = { 0, 20000 };
    outcome o = { 0 };
    sql_stmt st = show_jobs(SQL_JOBS_ALL, NULL);

    evthread_use_pthreads();
    test_base = event_base_new();
    tick = event_new(test_base, -1, EV_PERSIST, keepalive, NULL);
    event_add(tick, &tv);
    exec_configure(&(exec_config){ "pgbr_t_admins", 1 });

    /* No pool yet: work runs at once with a clear reason, never hangs. */
    run(&su, &st, 0, NULL, 'I', &o, true);
    expect_error(&o, "57P03", "the worker pool is not running", "without a worker pool: 57P03");

    tap_ok(pool_start(test_base, &(pool_config){ 2, test_info }), "pool_start with two workers");
    test_executor_show_jobs(&su, &alice, &bob);

    /* Workers whose connections were killed reconnect. */
    test_sql(su.conn, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE application_name = 'pgbr' AND pid <> pg_backend_pid()");
    usleep(100000);
    for (int i = 0; i < 3; i++) {
        run(&su, &st, 0, NULL, 'I', &o, true);
        expect_rows(&o, "109,102,101,104,110,103,111,106,105", "SHOW JOBS after the workers' sessions were killed");
    }
    test_executor_checks(&su);
    test_executor_cancel(&su);
    test_describe();
    pool_stop();

    tap_ok(pool_start(test_base, &(pool_config){ 1, "host=127.0.0.1 port=1 connect_timeout=2" }),
           "pool_start with an unreachable catalog");
    run(&su, &st, 0, NULL, 'I', &o, true);
    tap_ok(strcmp(o.sqlstate, "08006") == 0 && o.message != NULL &&
               strncmp(o.message, "could not connect to the catalog database: ", 43) == 0,
           "an unreachable catalog: 08006 could not connect to the catalog database: ...");
    tap_diag("%s", o.message != NULL ? o.message : "");
    pool_stop();

    outcome_reset(&o);
    exec_configure(NULL);
    event_free(tick);
    event_base_free(test_base);
    libevent_global_shutdown();
    PQfinish(su.conn);
    PQfinish(alice.conn);
    PQfinish(bob.conn);
    free(su_info);
    free(alice_info);
    free(bob_info);
}

int main(void)
{
    const char *dsn = getenv("PGBR_TEST_CATALOG_DSN");
    char dbname[64], sql[256];
    char *admin_info, *test_info;
    PGconn *admin, *conn;

    if (dsn == NULL || dsn[0] == '\0') {
        printf("1..0 # SKIP PGBR_TEST_CATALOG_DSN not set\n");
        return 0;
    }
    snprintf(dbname, sizeof dbname, "pgbr_test_catalog_%d", (int)getpid());
    admin_info = test_conninfo_for(dsn, NULL, NULL);
    admin = test_connect(admin_info);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", dbname);
    if (!test_sql(admin, sql))
        return 1;
    test_sql(admin, "DROP ROLE IF EXISTS pgbr_t_alice");
    test_sql(admin, "DROP ROLE IF EXISTS pgbr_t_bob");
    test_sql(admin, "DROP ROLE IF EXISTS pgbr_t_admins");
    test_sql(admin, "CREATE ROLE pgbr_t_alice LOGIN");
    test_sql(admin, "CREATE ROLE pgbr_t_bob LOGIN");
    test_sql(admin, "CREATE ROLE pgbr_t_admins NOLOGIN");
    test_sql(admin, "GRANT pgbr_t_admins TO pgbr_t_bob");

    test_info = test_conninfo_for(dsn, dbname, NULL);
    test_migrations(test_info);
    conn = test_connect(test_info);
    test_job_ids_in_table(conn);
    test_show_jobs_query(conn);
    test_control_query(conn);
    PQfinish(conn);

    test_executor(dsn, dbname, test_info);

    snprintf(sql, sizeof sql, "DROP DATABASE %s WITH (FORCE)", dbname);
    test_sql(admin, sql);
    test_sql(admin, "DROP ROLE pgbr_t_alice");
    test_sql(admin, "DROP ROLE pgbr_t_bob");
    test_sql(admin, "DROP ROLE pgbr_t_admins");
    PQfinish(admin);
    free(admin_info);
    free(test_info);
    return tap_done();
}
