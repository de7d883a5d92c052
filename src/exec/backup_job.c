/*
 * backup_job.c - BACKUP DATABASE ... INTO <collection>: a full backup run as
 * a job recorded in pgbr.jobs, blocking (one result row when the job ends)
 * or WITH detached (the job id at once).
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

#include "exec_internal.h"
#include "pgbr/backup.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"
#include "pgbr/pool.h"
#include "pgbr/storage.h"

struct backup_job {
    int64_t id;
    bool detached;
    char *user;
    char *description;
    char *url;
    char **dbs;
    int ndbs;
    char *conninfo;
    char *external_io_dir;
    int node_id;
    int workers;
    bool check_selects;        /* not an admin: SELECT on every table is required */
    PGconn *conn;              /* the worker's catalog connection, during the run */
    time_t last_progress;
    bool inserted;
    bool ok;
    backup_result res;
    pgbr_error err;
};

static void job_free(backup_job *job)
{
    if (job == NULL)
        return;
    free(job->user);
    free(job->description);
    free(job->url);
    for (int i = 0; i < job->ndbs; i++)
        free(job->dbs[i]);
    free(job->dbs);
    free(job->conninfo);
    free(job->external_io_dir);
    pgbr_error_clear(&job->err);
    free(job);
}

void exec_backup_job_free(backup_job *job)
{
    job_free(job);
}

/* ---- worker side ---- */

static bool job_progress(void *arg, double fraction, const char *status)
{
    backup_job *job = arg;
    time_t now = time(NULL);
    char frac[32], id[32];
    const char *params[3];
    pgbr_error err = PGBR_ERROR_INIT;
    /* at most once a second: SHOW JOBS from another session sees it move */
    if (job->conn == NULL || now == job->last_progress)
        return true;
    job->last_progress = now;
    snprintf(frac, sizeof frac, "%.4f", fraction);
    snprintf(id, sizeof id, "%" PRId64, job->id);
    params[0] = id;
    params[1] = frac;
    params[2] = status;
    if (!catalog_exec(job->conn,
                      "UPDATE pgbr.jobs SET fraction_completed = $2::float8, running_status = $3, modified = now() "
                      "WHERE id = $1::int8",
                      3, params, &err))
        log_warning("job %" PRId64 ": could not record progress: %s", job->id, err.message);
    pgbr_error_clear(&err);
    return true;
}

/* Non-admins need SELECT on every table of each database, as PostgreSQL
 * decides it for their role. */
static bool job_check_selects(backup_job *job, pgbr_error *err)
{
    for (int i = 0; i < job->ndbs; i++) {
        const char *keys[] = { "dbname", "dbname", NULL };
        const char *vals[] = { job->conninfo, job->dbs[i], NULL };
        PGconn *c;
        PGresult *res;
        const char *params[1] = { job->user };
        bool ok = true;
        /* expand_dbname: the first "dbname" is the whole conninfo; the
         * second one overrides its database */
        c = PQconnectdbParams(keys, vals, 1);
        if (PQstatus(c) != CONNECTION_OK) {
            pgbr_error_set(err, "08006", "could not connect to database \"%s\": %s", job->dbs[i],
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
                              job->dbs[i]);
        PQclear(res);
        PQfinish(c);
        if (!ok)
            return false;
    }
    return true;
}

static void job_record_end(backup_job *job, PGconn *conn)
{
    char id[32], rows[32], idx[32], bytes[32];
    const char *params[6];
    pgbr_error err = PGBR_ERROR_INIT;
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(rows, sizeof rows, "%" PRIu64, job->res.rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->res.index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->res.bytes);
    params[0] = id;
    params[1] = job->ok ? "succeeded" : "failed";
    params[2] = job->ok ? "" : (job->err.message ? job->err.message : "unknown error");
    params[3] = rows;
    params[4] = idx;
    params[5] = bytes;
    if (!catalog_exec(conn,
                      "UPDATE pgbr.jobs SET status = $2, error = $3, rows = $4::int8, index_entries = $5::int8, "
                      "bytes = $6::int8, finished = now(), modified = now(), "
                      "fraction_completed = CASE WHEN $2 = 'succeeded' THEN 1 ELSE fraction_completed END, "
                      "running_status = NULL WHERE id = $1::int8",
                      6, params, &err))
        log_error("job %" PRId64 ": could not record its end: %s", job->id, err.message);
    pgbr_error_clear(&err);
}

/* Run the backup (worker thread). */
static void job_run(backup_job *job, PGconn *conn)
{
    storage_config sc = { job->external_io_dir, job->node_id };
    backup_request br;
    if (!catalog_require_conn(conn, &job->err))
        return;
    job->conn = conn;
    memset(&br, 0, sizeof br);
    br.conninfo = job->conninfo;
    br.databases = (const char *const *)job->dbs;
    br.ndatabases = (size_t)job->ndbs;
    br.collection_url = job->url;
    br.storage = &sc;
    br.job_id = job->id;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        br.end_time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    br.workers = job->workers;
    job->ok = backup_run(&br, job_progress, job, &job->res, &job->err);
    job->conn = NULL;
    job_record_end(job, conn);
    if (job->ok)
        log_info("job %" PRId64 ": BACKUP succeeded", job->id);
    else
        log_info("job %" PRId64 ": BACKUP failed: %s", job->id, job->err.message ? job->err.message : "unknown error");
}

/* Check what only the databases themselves can tell, then insert the job
 * row (worker thread). A refused backup creates no job. */
static void job_insert(backup_job *job, PGconn *conn)
{
    char id[32], node[16];
    const char *params[4];
    if (!catalog_require_conn(conn, &job->err))
        return;
    if (job->check_selects && !job_check_selects(job, &job->err))
        return;
    {
        /* the destination must be usable before a job exists */
        storage_config sc = { job->external_io_dir, job->node_id };
        storage *st = storage_open(job->url, &sc, &job->err);
        if (st == NULL)
            return;
        storage_close(st);
    }
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(node, sizeof node, "%d", job->node_id);
    params[0] = id;
    params[1] = job->description;
    params[2] = job->user;
    params[3] = node;
    job->inserted = catalog_exec(conn,
                                 "INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, "
                                 "created, started, modified, coordinator_id) "
                                 "VALUES ($1::int8, 'BACKUP', 'running', $2, $2, $3, now(), now(), now(), $4::int8)",
                                 4, params, &job->err);
}

/* ---- detached: the job outlives the request ---- */

static void detached_work(void *arg, struct pg_conn *conn)
{
    job_run(arg, conn);
}

static void detached_done(void *arg)
{
    job_free(arg);
}

/* ---- loop side ---- */

static void backup_result_row(exec_request *req, backup_job *job)
{
    static const char *const names[] = { "job_id", "status", "fraction_completed", "rows", "index_entries", "bytes" };
    static const uint32_t types[] = { PGBR_OID_INT8, PGBR_OID_TEXT, PGBR_OID_FLOAT8,
                                      PGBR_OID_INT8, PGBR_OID_INT8, PGBR_OID_INT8 };
    char id[32], rows[32], idx[32], bytes[32];
    const char *row[6];
    result_set *rs = result_set_new(6, names, types);
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(rows, sizeof rows, "%" PRIu64, job->res.rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->res.index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->res.bytes);
    row[0] = id;
    row[1] = "succeeded";
    row[2] = "1";
    row[3] = rows;
    row[4] = idx;
    row[5] = bytes;
    result_set_add_row(rs, row);
    result_set_set_tag(rs, "BACKUP 1");
    exec_finish(req, rs, NULL);
}

static void blocking_work(exec_request *req, struct pg_conn *conn)
{
    job_run(req->backup_job, conn);
}

static void blocking_after(exec_request *req)
{
    backup_job *job = req->backup_job;
    if (job->ok)
        backup_result_row(req, job);
    else
        exec_finish(req, NULL, &job->err);
}

static void insert_work(exec_request *req, struct pg_conn *conn)
{
    job_insert(req->backup_job, conn);
}

static void insert_after(exec_request *req)
{
    backup_job *job = req->backup_job;
    if (!job->inserted) {
        exec_finish(req, NULL, &job->err);
        return;
    }
    if (job->detached) {
        static const char *const names[] = { "job_id" };
        static const uint32_t types[] = { PGBR_OID_INT8 };
        char id[32];
        const char *row[1] = { id };
        result_set *rs = result_set_new(1, names, types);
        snprintf(id, sizeof id, "%" PRId64, job->id);
        result_set_add_row(rs, row);
        result_set_set_tag(rs, "BACKUP 1");
        req->backup_job = NULL;            /* the job now lives on its own */
        pool_submit(detached_work, detached_done, job);
        exec_finish(req, rs, NULL);
        return;
    }
    exec_submit(req, blocking_work, blocking_after);
}

static void on_databases(exec_request *req, result_set *rs, pgbr_error *err)
{
    backup_job *job = req->backup_job;
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
    job->user = strdup(req->current_user);
    job->check_selects = !req->is_admin;
    exec_submit(req, insert_work, insert_after);
}

static void on_identity(exec_request *req)
{
    backup_job *job = req->backup_job;
    if (!exec_check_implicit_access(req, job->url))
        return;
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
    backup_job *job;
    const char *url;

    if (b->targets.kind != SQL_TARGET_DATABASES) {
        exec_fail_not_implemented(req, b->targets.kind == SQL_TARGET_CLUSTER ? "BACKUP of the whole server"
                                                                             : "BACKUP TABLE");
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
    job->id = catalog_new_job_id(req->node_id);
    job->detached = detached;
    job->url = strdup(url);
    job->description = sql_stmt_deparse(req->stmt, true);
    job->ndbs = b->targets.n;
    job->dbs = calloc((size_t)job->ndbs, sizeof *job->dbs);
    for (int i = 0; i < job->ndbs; i++)
        job->dbs[i] = strdup(b->targets.databases[i]);
    job->conninfo = req->job_conninfo ? strdup(req->job_conninfo) : strdup("");
    job->external_io_dir = req->external_io_dir ? strdup(req->external_io_dir) : NULL;
    job->node_id = req->node_id;
    job->workers = req->workers;
    req->backup_job = job;
    exec_identify(req, on_identity);
}
