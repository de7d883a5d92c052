/*
 * job.c - what every BACKUP / RESTORE job shares: the row in pgbr.jobs
 * (inserted once the statement's checks passed, progress at most once a
 * second, the end with its counts or error), and the two ways a client waits
 * for it: blocking (one result row job_id, status, fraction_completed, rows,
 * index_entries, bytes when the job ends) or WITH detached (the job id at
 * once; the job then lives on its own on the worker pool).
 *
 * Steps: on a worker, ops->prepare checks what only the upstream or the
 * storage can tell (a refused statement creates no job), then the job row
 * is inserted; ops->run does the work on a worker; its end is recorded.
 * A client that cancels its blocking statement (CancelRequest, psql's
 * Ctrl-C) cancels the job: the engine's next progress call stops it, it
 * removes what it wrote, its row says "canceled" and the statement ends
 * with 57014. Not yet: PAUSE/RESUME/CANCEL JOB, adoption after a crash (a
 * job whose node restarts is marked failed at start).
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec_internal.h"
#include "pgbr/catalog.h"
#include "pgbr/log.h"
#include "pgbr/pool.h"

exec_job *exec_job_new(exec_request *req, const exec_job_ops *ops, void *state, bool detached)
{
    exec_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        if (ops->free_state)
            ops->free_state(state);
        return NULL;
    }
    job->ops = ops;
    job->state = state;
    job->id = catalog_new_job_id(req->node_id);
    job->detached = detached;
    job->description = sql_stmt_deparse(req->stmt, true);
    job->conninfo = strdup(req->job_conninfo ? req->job_conninfo : "");
    job->external_io_dir = req->external_io_dir ? strdup(req->external_io_dir) : NULL;
    job->node_id = req->node_id;
    job->workers = req->workers;
    job->bundle_limit = req->bundle_limit;
    job->bundle_size = req->bundle_size;
    job->storage.external_io_dir = job->external_io_dir;
    job->storage.node_id = job->node_id;
    return job;
}

void exec_job_free(exec_job *job)
{
    if (job == NULL)
        return;
    if (job->ops->free_state)
        job->ops->free_state(job->state);
    free(job->user);
    free(job->description);
    free(job->conninfo);
    free(job->external_io_dir);
    pgbr_error_clear(&job->err);
    free(job);
}

/* ---- worker side ---- */

bool exec_job_progress(void *arg, double fraction, const char *status)
{
    exec_job *job = arg;
    time_t now = time(NULL);
    char frac[32], id[32];
    const char *params[3];
    pgbr_error err = PGBR_ERROR_INIT;
    if (job->cancel_requested)
        return false;
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

static void job_record_end(exec_job *job, PGconn *conn)
{
    char id[32], rows[32], idx[32], bytes[32];
    const char *params[6];
    pgbr_error err = PGBR_ERROR_INIT;
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(rows, sizeof rows, "%" PRIu64, job->rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->bytes);
    params[0] = id;
    params[1] = job->ok ? "succeeded"
                : job->cancel_requested && strcmp(job->err.sqlstate, "57014") == 0 ? "canceled"
                                                                                 : "failed";
    params[2] = job->ok ? "" : (job->err.message ? job->err.message : "unknown error");
    params[3] = rows;
    params[4] = idx;
    params[5] = bytes;
    if (PQstatus(conn) != CONNECTION_OK)
        PQreset(conn);
    if (!catalog_exec(conn,
                      "UPDATE pgbr.jobs SET status = $2, error = $3, rows = $4::int8, index_entries = $5::int8, "
                      "bytes = $6::int8, finished = now(), modified = now(), "
                      "fraction_completed = CASE WHEN $2 = 'succeeded' THEN 1 ELSE fraction_completed END, "
                      "running_status = NULL WHERE id = $1::int8",
                      6, params, &err))
        log_error("job %" PRId64 ": could not record its end: %s", job->id, err.message);
    pgbr_error_clear(&err);
}

static void job_run(exec_job *job, PGconn *conn)
{
    if (!catalog_require_conn(conn, &job->err))
        return;
    job->conn = conn;
    job->ok = job->ops->run(job, &job->err);
    job->conn = NULL;
    if (!job->ok && job->cancel_requested && strcmp(job->err.sqlstate, "57014") == 0) {
        pgbr_error_clear(&job->err);
        pgbr_error_set(&job->err, "57014", "canceling statement due to user request");
        pgbr_error_detail(&job->err, "Job %" PRId64 " was canceled; what it had written is removed.", job->id);
    }
    job_record_end(job, conn);
    if (job->ok)
        log_info("job %" PRId64 ": %s succeeded", job->id, job->ops->job_type);
    else
        log_info("job %" PRId64 ": %s failed: %s", job->id, job->ops->job_type,
                 job->err.message ? job->err.message : "unknown error");
}

/* The statement's own checks, then the job row (worker thread). */
static void job_insert(exec_job *job, PGconn *conn)
{
    char id[32], node[16];
    const char *params[5];
    if (!catalog_require_conn(conn, &job->err))
        return;
    if (job->ops->prepare && !job->ops->prepare(job, conn, &job->err))
        return;
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(node, sizeof node, "%d", job->node_id);
    params[0] = id;
    params[1] = job->description;
    params[2] = job->user;
    params[3] = node;
    params[4] = job->ops->job_type;
    job->inserted = catalog_exec(conn,
                                 "INSERT INTO pgbr.jobs (id, job_type, status, description, statement, user_name, "
                                 "created, started, modified, coordinator_id) "
                                 "VALUES ($1::int8, $5, 'running', $2, $2, $3, now(), now(), now(), $4::int8)",
                                 5, params, &job->err);
}

/* ---- detached: the job outlives the request ---- */

static void detached_work(void *arg, struct pg_conn *conn)
{
    job_run(arg, conn);
}

static void detached_done(void *arg)
{
    exec_job_free(arg);
}

/* ---- loop side ---- */

static char *job_tag(const exec_job *job)
{
    char *tag = NULL;
    if (asprintf(&tag, "%s 1", job->ops->job_type) < 0)
        return NULL;
    return tag;
}

static void result_row(exec_request *req, exec_job *job)
{
    static const char *const names[] = { "job_id", "status", "fraction_completed", "rows", "index_entries", "bytes" };
    static const uint32_t types[] = { PGBR_OID_INT8, PGBR_OID_TEXT, PGBR_OID_FLOAT8,
                                      PGBR_OID_INT8, PGBR_OID_INT8, PGBR_OID_INT8 };
    char id[32], rows[32], idx[32], bytes[32];
    const char *row[6];
    result_set *rs = result_set_new(6, names, types);
    char *tag = job_tag(job);
    snprintf(id, sizeof id, "%" PRId64, job->id);
    snprintf(rows, sizeof rows, "%" PRIu64, job->rows);
    snprintf(idx, sizeof idx, "%" PRIu64, job->index_entries);
    snprintf(bytes, sizeof bytes, "%" PRIu64, job->bytes);
    row[0] = id;
    row[1] = "succeeded";
    row[2] = "1";
    row[3] = rows;
    row[4] = idx;
    row[5] = bytes;
    result_set_add_row(rs, row);
    result_set_set_tag(rs, "%s", tag ? tag : "SELECT 1");
    free(tag);
    exec_finish(req, rs, NULL);
}

static void blocking_work(exec_request *req, struct pg_conn *conn)
{
    job_run(req->job, conn);
}

static void blocking_after(exec_request *req)
{
    exec_job *job = req->job;
    job->running = false;
    if (job->ok)
        result_row(req, job);
    else
        exec_finish(req, NULL, &job->err);
}

static void insert_work(exec_request *req, struct pg_conn *conn)
{
    job_insert(req->job, conn);
}

static void insert_after(exec_request *req)
{
    exec_job *job = req->job;
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
        char *tag = job_tag(job);
        snprintf(id, sizeof id, "%" PRId64, job->id);
        result_set_add_row(rs, row);
        result_set_set_tag(rs, "%s", tag ? tag : "SELECT 1");
        free(tag);
        req->job = NULL;            /* the job now lives on its own */
        pool_submit(detached_work, detached_done, job);
        exec_finish(req, rs, NULL);
        return;
    }
    job->running = true;
    exec_submit(req, blocking_work, blocking_after);
}

bool exec_job_cancel(exec_request *req)
{
    exec_job *job = req->job;
    if (job == NULL || job->detached || !job->running)
        return false;
    job->cancel_requested = true;
    log_info("job %" PRId64 ": canceled by its client", job->id);
    return true;
}

void exec_job_submit(exec_request *req)
{
    exec_job *job = req->job;
    if (job->user == NULL)
        job->user = strdup(req->current_user ? req->current_user : "");
    job->is_admin = req->is_admin;
    exec_submit(req, insert_work, insert_after);
}
