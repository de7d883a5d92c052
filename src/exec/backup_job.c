/*
 * backup_job.c - BACKUP DATABASE ... INTO <collection>: a full backup run as
 * a job (job.c: recorded in pgbr.jobs, blocking or WITH detached).
 *
 * Steps: on the loop thread, the checks of exec.c, then the caller's
 * identity and, for non-admins, CONNECT on each database (on the client's own
 * session); on a worker, the job row is inserted, SELECT on every table is
 * checked for non-admins (PostgreSQL's has_table_privilege, in each database),
 * and backup_run() (src/backup) copies the data; progress goes to the job row.
 * Not yet: table and whole-server targets, incrementals, encryption, AS OF
 * SYSTEM TIME, pause/resume/cancel of the job, adoption after a crash (a job
 * whose node restarts is marked failed at start).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec_internal.h"
#include "pgbr/backup.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"
#include "pgbr/pool.h"
#include "pgbr/storage.h"

/* What a backup job needs besides the generic job. */
typedef struct backup_state {
    char *url;
    bool cluster;               /* BACKUP INTO ...: every database, and the roles */
    char **dbs;
    int ndbs;
} backup_state;

static void state_free(void *arg)
{
    backup_state *st = arg;
    if (st == NULL)
        return;
    free(st->url);
    for (int i = 0; i < st->ndbs; i++)
        free(st->dbs[i]);
    free(st->dbs);
    free(st);
}

/* ---- worker side ---- */

/* Non-admins need SELECT on every table of each database, as PostgreSQL
 * decides it for their role. */
static bool job_check_selects(exec_job *job, pgbr_error *err)
{
    backup_state *st = job->state;
    for (int i = 0; i < st->ndbs; i++) {
        const char *keys[] = { "dbname", "dbname", NULL };
        const char *vals[] = { job->conninfo, st->dbs[i], NULL };
        PGconn *c;
        PGresult *res;
        const char *params[1] = { job->user };
        bool ok = true;
        /* expand_dbname: the first "dbname" is the whole conninfo; the
         * second one overrides its database */
        c = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(c) != CONNECTION_OK) {
            pgbr_error_set(err, "08006", "could not connect to database \"%s\": %s", st->dbs[i],
                           PQerrorMessage(c));
            PQfinish(c);
            return false;
        }
        res = PQexecParams(c,
                           "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
                           "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE c.relkind IN ('r', 'p', 'm', 'S') AND c.relpersistence <> 't' "
                           "AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pgbr') "
                           "AND n.nspname NOT LIKE 'pg_toast%' "
                           "AND NOT pg_catalog.has_table_privilege($1, c.oid, 'SELECT') ORDER BY 1 LIMIT 1",
                           1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            ok = catalog_error_from_result(err, res, c);
        else if (PQntuples(res) > 0)
            ok = pgbr_error_set(err, "42501", "permission denied for table %s", PQgetvalue(res, 0, 0));
        if (!ok && PQntuples(res) > 0)
            pgbr_error_detail(err, "BACKUP DATABASE \"%s\" needs SELECT on every table of it, or the admin role.",
                              st->dbs[i]);
        PQclear(res);
        PQfinish(c);
        if (!ok)
            return false;
    }
    return true;
}

static bool backup_prepare(exec_job *job, struct pg_conn *conn, pgbr_error *err)
{
    backup_state *st = job->state;
    (void)conn;
    if (!job->is_admin && !job_check_selects(job, err))
        return false;
    /* the destination must be usable before a job exists */
    storage *s = storage_open(st->url, &job->storage, err);
    if (s == NULL)
        return false;
    storage_close(s);
    return true;
}

/*
 * Test hook (regress/t): with PGBR_TEST_SNAPSHOT_DIR set, each database's
 * exported snapshot id is written to <dir>/<database>.snapshot and the backup
 * waits (up to 60 s) for <dir>/<database>.go before it reads any row, so a
 * test can compute checksums in a transaction that imports the very snapshot
 * the backup copies. Unset in production: no effect.
 */
static void test_snapshot_hook(void *arg, const char *database, const char *snapshot)
{
    const char *dir = arg;
    char *path = NULL, *tmp = NULL, *go = NULL;
    if (asprintf(&path, "%s/%s.snapshot", dir, database) < 0 || asprintf(&tmp, "%s.tmp", path) < 0 ||
        asprintf(&go, "%s/%s.go", dir, database) < 0)
        goto done;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        goto done;
    fprintf(f, "%s\n", snapshot);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        goto done;
    for (int i = 0; i < 600 && access(go, F_OK) != 0; i++) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
done:
    free(path);
    free(tmp);
    free(go);
}

static bool backup_work(exec_job *job, pgbr_error *err)
{
    backup_state *st = job->state;
    backup_request br;
    backup_result res;
    struct timespec ts;
    memset(&br, 0, sizeof br);
    br.conninfo = job->conninfo;
    br.databases = (const char *const *)st->dbs;
    br.ndatabases = (size_t)st->ndbs;
    br.cluster = st->cluster;
    br.collection_url = st->url;
    br.storage = &job->storage;
    br.job_id = job->id;
    clock_gettime(CLOCK_REALTIME, &ts);
    br.end_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    br.workers = job->workers;
    if (getenv("PGBR_TEST_SNAPSHOT_DIR") != NULL) {
        br.after_snapshot = test_snapshot_hook;
        br.after_snapshot_arg = getenv("PGBR_TEST_SNAPSHOT_DIR");
    }
    bool ok = backup_run(&br, exec_job_progress, job, &res, err);
    job->rows = res.rows;
    job->index_entries = res.index_entries;
    job->bytes = res.bytes;
    return ok;
}

static const exec_job_ops backup_ops = { "BACKUP", backup_prepare, backup_work, state_free };

/* ---- loop side ---- */

static void on_databases(exec_request *req, result_set *rs, pgbr_error *err)
{
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    /* rows: datname, exists, may_connect, in the order given */
    for (int i = 0; i < rs->nrows; i++) {
        const char *name = result_set_value(rs, i, 0);
        if (strcmp(result_set_value(rs, i, 1), "t") != 0) {
            exec_fail(req, "3D000", "database \"%s\" does not exist", name);
            result_set_free(rs);
            return;
        }
        if (!req->is_admin && strcmp(result_set_value(rs, i, 2), "t") != 0) {
            exec_fail(req, "42501", "permission denied for database %s", name);
            result_set_free(rs);
            return;
        }
    }
    result_set_free(rs);
    exec_job_submit(req);
}

/* A whole-server backup: every database that is not a template and
 * accepts connections. */
static void on_all_databases(exec_request *req, result_set *rs, pgbr_error *err)
{
    backup_state *job = req->job->state;
    if (rs == NULL) {
        exec_finish(req, NULL, err);
        return;
    }
    char **dbs = calloc((size_t)rs->nrows + 1, sizeof *dbs);
    bool ok = dbs != NULL;
    for (int i = 0; ok && i < rs->nrows; i++)
        ok = (dbs[i] = strdup(result_set_value(rs, i, 0))) != NULL;
    if (ok) {
        for (int i = 0; i < job->ndbs; i++)
            free(job->dbs[i]);
        free(job->dbs);
        job->dbs = dbs;
        job->ndbs = rs->nrows;
    } else if (dbs != NULL) {
        for (int i = 0; i < rs->nrows; i++)
            free(dbs[i]);
        free(dbs);
    }
    result_set_free(rs);
    if (!ok) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_job_submit(req);
}

static void on_identity(exec_request *req)
{
    backup_state *job = req->job->state;
    if (job->cluster && !req->is_admin) {
        exec_fail(req, "42501", "only users with the admin role or the BACKUP system privilege are allowed to "
                                "perform full cluster backups");
        return;
    }
    if (!exec_check_implicit_access(req, job->url))
        return;
    if (job->cluster) {
        exec_run_query(req, "SELECT datname FROM pg_catalog.pg_database WHERE NOT datistemplate AND datallowconn "
                            "ORDER BY datname", 0, NULL, on_all_databases);
        return;
    }
    /* a text[] literal of the names, built by PostgreSQL's own quoting rules
     * on the server side: pass them one per parameter */
    char *sql = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&sql, &len);
    const char **params = calloc((size_t)job->ndbs, sizeof *params);
    fputs("SELECT d, EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d), "
          "EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = d "
          "AND pg_catalog.has_database_privilege(current_user, datname, 'CONNECT')) "
          "FROM (VALUES ", f);
    for (int i = 0; i < job->ndbs; i++) {
        fprintf(f, "%s($%d::text, %d)", i ? ", " : "", i + 1, i);
        params[i] = job->dbs[i];
    }
    fputs(") AS t(d, o) ORDER BY o", f);
    fclose(f);
    exec_run_query(req, sql, job->ndbs, params, on_databases);
    free(params);
    free(sql);
}

void exec_backup_job_start(exec_request *req, bool detached)
{
    const sql_backup *b = &req->stmt->u.backup;
    pgbr_error err = PGBR_ERROR_INIT;
    backup_state *job;
    const char *url;

    if (b->targets.kind == SQL_TARGET_TABLES) {
        exec_fail_not_implemented(req, "BACKUP TABLE");
        return;
    }
    if (b->dest_kind != SQL_BACKUP_INTO) {
        exec_fail_not_implemented(req, b->dest_kind == SQL_BACKUP_TO ? "BACKUP ... TO" : "incremental BACKUP");
        return;
    }
    if (b->as_of != NULL) {
        exec_fail(req, "0A000", "BACKUP ... AS OF SYSTEM TIME is not supported");
        return;
    }
    if (b->options.encryption_passphrase || b->options.kms || b->options.revision_history.set ||
        b->options.incremental_location || b->options.execution_locality) {
        exec_fail_not_implemented(req, "BACKUP with encryption, revision_history, incremental_location or "
                                       "EXECUTION LOCALITY");
        return;
    }
    if (detached && req->info.txn_status == 'T') {
        exec_fail_not_implemented(req, "BACKUP ... WITH detached inside a transaction block");
        return;
    }
    if (b->dest.n != 1) {
        exec_fail_not_implemented(req, "locality-aware BACKUP");
        return;
    }
    url = exec_string_value(req, &b->dest.items[0], &err);
    if (url == NULL) {
        exec_finish(req, NULL, &err);
        pgbr_error_clear(&err);
        return;
    }
    job = calloc(1, sizeof *job);
    bool ok = job != NULL;
    if (ok) {
        job->url = strdup(url);
        job->cluster = b->targets.kind == SQL_TARGET_CLUSTER;
        job->ndbs = job->cluster ? 0 : b->targets.n;
        job->dbs = calloc((size_t)job->ndbs + 1, sizeof *job->dbs);
        ok = job->url != NULL && job->dbs != NULL;
        for (int i = 0; ok && i < job->ndbs; i++)
            ok = (job->dbs[i] = strdup(b->targets.databases[i])) != NULL;
        if (!ok)
            state_free(job);
    }
    if (!ok || (req->job = exec_job_new(req, &backup_ops, job, detached)) == NULL) {
        exec_fail(req, "53200", "out of memory");
        return;
    }
    exec_identify(req, on_identity);
}
